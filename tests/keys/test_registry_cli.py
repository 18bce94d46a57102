"""`keys init` and `keys registry-entry` through the real CLI (subprocesses
under a 022 umask, as on a usual login): the registry step the hint gives
keeps an HMAC secret in a file only its owner can read."""

import os
import stat
import subprocess
import sys

import pytest

from edge_agent.receiver.registry import Registry

from conftest import ROOT


def cli(*args, stdout=subprocess.PIPE):
    result = subprocess.run([sys.executable, "-m", "edge_agent", *args], stdout=stdout, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, timeout=60, umask=0o022)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(scope="module")
def ids(tmp_path_factory):
    """An HMAC identity (a board) and an Ed25519 one (a gateway) made by
    `keys init`, with what it printed."""
    base = tmp_path_factory.mktemp("ids")
    board, gateway = str(base / "board 1"), str(base / "gw")
    made = {"board": cli("keys", "init", "--hmac", "--dir", board, "--device-id", "board-1"),
            "gateway": cli("keys", "init", "--dir", gateway, "--device-id", "gw-1")}
    for result in made.values():
        assert result.returncode == 0, result.stderr
    return board, gateway, made


def test_init_hint_is_the_exact_registry_command(ids):
    board, gateway, made = ids
    # The directory is shell-quoted (it has a space), the HMAC one has the secret and a 0600 file.
    assert ("register it with the receiver: edge-agent keys registry-entry '%s' --include-secret --output "
            "devices.toml\n" % board) in made["board"].stdout, made["board"].stdout
    assert ("register it with the receiver: edge-agent keys registry-entry %s --output devices.toml\n" % gateway
            in made["gateway"].stdout), made["gateway"].stdout


def test_output_creates_the_registry_0600_under_umask_022_and_appends(ids, tmp_path):
    board, gateway, _ = ids
    registry = str(tmp_path / "devices.toml")
    first = cli("keys", "registry-entry", board, "--include-secret", "--output", registry)
    assert first.returncode == 0, first.stderr
    assert "added device board-1 (HMAC256, with its secret) to %s (a new file, mode 0600)" % registry in first.stdout
    assert mode(registry) == 0o600
    secret = open(os.path.join(board, "device.secret"), "rb").read().hex()
    assert secret not in first.stdout + first.stderr  # into the file, never onto the screen
    second = cli("keys", "registry-entry", gateway, "--model", "EA-DEMO-1", "--output", registry)
    assert second.returncode == 0 and "added device gw-1 (EdDSA) to" in second.stdout, second.stderr
    assert mode(registry) == 0o600
    loaded = Registry.load(registry)  # the receiver takes it (it refuses secrets others can read)
    assert loaded.devices["board-1"].secret.hex() == secret
    assert loaded.devices["gw-1"].model == "EA-DEMO-1"
    # The same device again would make the file invalid TOML: refused, nothing written.
    before = open(registry).read()
    again = cli("keys", "registry-entry", board, "--include-secret", "--output", registry)
    assert again.returncode == 2 and "already registers device board-1" in again.stderr, again.stderr
    assert open(registry).read() == before


def test_a_secret_is_not_appended_to_a_registry_others_can_read(ids, tmp_path):
    board, gateway, _ = ids
    registry = tmp_path / "devices.toml"
    registry.write_text("# the fleet\n")
    os.chmod(registry, 0o644)
    refused = cli("keys", "registry-entry", board, "--include-secret", "--output", str(registry))
    assert refused.returncode == 2
    assert ("is readable by group or others (mode 644) and would hold board-1's HMAC secret; run `chmod 600 %s` "
            "first (nothing written)" % registry) in refused.stderr, refused.stderr
    assert registry.read_text() == "# the fleet\n" and mode(registry) == 0o644
    # A public key may go there; after the chmod the secret may too.
    assert cli("keys", "registry-entry", gateway, "--output", str(registry)).returncode == 0
    os.chmod(registry, 0o600)
    assert cli("keys", "registry-entry", board, "--include-secret", "--output", str(registry)).returncode == 0
    assert sorted(Registry.load(str(registry)).devices) == ["board-1", "gw-1"]


def test_a_secret_on_stdout_is_refused_into_a_readable_file_and_warned_about_otherwise(ids, tmp_path):
    board, _, _ = ids
    secret = open(os.path.join(board, "device.secret"), "rb").read().hex()
    # What `registry-entry --include-secret >> devices.toml` does under umask 022.
    path = tmp_path / "devices.toml"
    with open(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644), "ab") as shell_redirect:
        refused = cli("keys", "registry-entry", board, "--include-secret", stdout=shell_redirect)
    assert refused.returncode == 2 and "stdout is a file readable by group or others (mode 644)" in refused.stderr
    assert "Use --output devices.toml" in refused.stderr
    assert path.read_bytes() == b""
    # A pipe (ssh to the receiver, a secret store) gets it, with a warning on stderr.
    piped = cli("keys", "registry-entry", board, "--include-secret")
    assert piped.returncode == 0 and 'secret = "%s"' % secret in piped.stdout
    assert "warning: stdout gets device board-1's HMAC secret" in piped.stderr, piped.stderr
    # Without --include-secret an HMAC identity says what to type.
    missing = cli("keys", "registry-entry", board)
    assert missing.returncode == 2 and "pass --include-secret --output devices.toml" in missing.stderr
