"""Device identities and the receiver's registry: keys never leak, files are
private, every kind of bad signal is rejected with its reason."""

import os
import stat
import subprocess
import sys

import pytest

from edge_agent.core import signals as sg
from edge_agent.keys.identity import HMAC256, IdentityError, create_identity, load_identity
from edge_agent.receiver.registry import Registry, RegistryError, Rejection

from conftest import ROOT


def _signal(device="unit-17", seq=1):
    return sg.Signal(sg.KIND_ALERT, 0, 1700000000000, {0: "out_of_range"}, device, seq).encode()


@pytest.fixture(params=["EdDSA", HMAC256])
def identity(request, tmp_path):
    return create_identity(str(tmp_path / "id"), "unit-17", request.param)


@pytest.fixture
def registry(identity):
    registry = Registry()
    registry.add_entries(identity.registry_entry(include_secret=True))
    return registry


def test_key_files_are_private_and_reload(identity):
    for name in os.listdir(identity.directory):
        mode = stat.S_IMODE(os.stat(os.path.join(identity.directory, name)).st_mode)
        if name != "identity.toml":
            assert mode == 0o600, (name, oct(mode))
    again = load_identity(identity.directory)
    assert (again.device_id, again.algorithm) == ("unit-17", identity.algorithm)


def test_sealed_signal_opens(identity, registry):
    signal = registry.open_signal(identity.seal(_signal()), "ea/v1/unit-17/alert")
    assert (signal.device, signal.seq, signal.kind) == ("unit-17", 1, sg.KIND_ALERT)


def test_rejections_with_reasons(identity, registry, tmp_path):
    good = identity.seal(_signal())
    tampered = bytearray(good)
    tampered[-40] ^= 0xFF  # inside the signature / tag
    impostor = create_identity(str(tmp_path / "impostor"), "unit-17", identity.algorithm)
    other_device = create_identity(str(tmp_path / "other"), "unit-99", identity.algorithm)
    registry.add_entries(other_device.registry_entry(include_secret=True))
    cases = [
        (bytes(tampered), None, ("bad-signature", "bad-mac", "malformed")),
        (good[: len(good) // 2], None, ("malformed",)),  # truncated
        (_signal(), None, ("malformed",)),  # unsigned
        (impostor.seal(_signal()), None, ("bad-signature", "bad-mac")),  # right id, wrong key
        (other_device.seal(_signal(device="unit-17")), None, ("device-mismatch",)),  # speaking for another
        (good, "ea/v1/unit-99/alert", ("topic-mismatch",)),
        (identity.seal(b"\xa1\x00\x02"), None, ("unsupported-version",)),
        (identity.seal(b"\x01"), None, ("bad-signal",)),
        (create_identity(str(tmp_path / "x"), "stranger").seal(_signal("stranger")), None, ("unknown-device",)),
    ]
    for data, topic, reasons in cases:
        with pytest.raises(Rejection) as info:
            registry.open_signal(data, topic)
        assert info.value.reason in reasons, (info.value, reasons)


def test_refuses_to_overwrite_and_loose_permissions(identity):
    with pytest.raises(IdentityError, match="refusing to overwrite"):
        create_identity(identity.directory, "unit-17")
    key_file = [n for n in os.listdir(identity.directory) if n.startswith("device.")][0]
    os.chmod(os.path.join(identity.directory, key_file), 0o644)
    with pytest.raises(IdentityError, match="chmod 600"):
        load_identity(identity.directory)


def test_repr_and_entry_never_show_private_material(tmp_path):
    identity = create_identity(str(tmp_path / "e"), "unit-17")
    pem = open(os.path.join(identity.directory, "device.key")).read()
    secret_line = pem.splitlines()[1]
    assert secret_line not in repr(identity) + identity.registry_entry()
    hmac = create_identity(str(tmp_path / "h"), "unit-18", HMAC256)
    with pytest.raises(IdentityError, match="--include-secret"):
        hmac.registry_entry()


def test_registry_file_errors(tmp_path):
    path = tmp_path / "devices.toml"
    path.write_text('[devices.a]\nalgorithm = "RSA"\n[devices.b]\nalgorithm = "EdDSA"\npublic_key = "zz"\n')
    with pytest.raises(RegistryError) as info:
        Registry.load(str(path))
    assert "devices.a: algorithm must be" in str(info.value) and "devices.b: public_key" in str(info.value)
    hmac = create_identity(str(tmp_path / "h"), "unit-18", HMAC256)
    path.write_text(hmac.registry_entry(include_secret=True))
    os.chmod(path, 0o644)
    with pytest.raises(RegistryError, match="chmod 600"):
        Registry.load(str(path))
    os.chmod(path, 0o600)
    assert "unit-18" in Registry.load(str(path)).devices


def test_keys_cli_never_prints_private_keys(tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "edge_agent", *args], capture_output=True, text=True,
                              cwd=ROOT, timeout=60)

    directory = str(tmp_path / "cli-id")
    made = cli("keys", "init", "--dir", directory, "--device-id", "cli-17")
    assert made.returncode == 0 and "created EdDSA identity for device cli-17" in made.stdout
    key_body = "".join(open(os.path.join(directory, "device.key")).read().splitlines()[1:-1])
    shown = cli("keys", "show", directory)
    entry = cli("keys", "registry-entry", directory, "--model", "EA-DEMO-1")
    again = cli("keys", "init", "--dir", directory, "--device-id", "cli-17")
    for result in (made, shown, entry, again):
        assert key_body not in result.stdout + result.stderr
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr
    registry = Registry()
    registry.add_entries(entry.stdout)
    assert registry.devices["cli-17"].model == "EA-DEMO-1"
