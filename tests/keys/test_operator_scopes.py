"""Operator scopes in the trusted-operators file, `keys operator-entry
--scopes`, and the receiver's signer of `replay` requests
(Operator.replay_command), verified by the device's core with real Ed25519
and pycose as an independent COSE implementation."""

import subprocess
import sys

import pytest
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.keys.keyparam import OKPKpCurve, OKPKpX
from pycose.messages import CoseMessage

from conftest import ROOT
from edge_agent.core import cbor
from edge_agent.core import operator as op
from edge_agent.keys.operators import OperatorError, create_operator, load_operators

NOW = 1_800_000_000_000


@pytest.fixture
def keys(tmp_path):
    ops = create_operator(str(tmp_path / "ops"), "ops-team")
    rx = create_operator(str(tmp_path / "rx"), "rx-repair")
    path = tmp_path / "operators.toml"
    path.write_text(ops.public_entry() + rx.public_entry(["replay"]))
    trusted, scopes = load_operators(str(path))
    return ops, rx, trusted, scopes


def test_a_replay_scoped_key_sends_replay_and_nothing_else(keys):
    ops, rx, trusted, scopes = keys
    assert scopes == {"rx-repair": ("replay",)}
    message = rx.replay_command("unit-1", [[4, 9], [20, 20]], "rx/1", 1, 60, now_ms=NOW)
    command = op.verify_command(message, trusted, "unit-1", "EA-M", NOW, 0, scopes)
    assert (command.name, command.args) == ("replay", {"ranges": [[4, 9], [20, 20]], "request": "rx/1"})
    # pycose checks the same signature with the public key from the file.
    public = bytes.fromhex(rx.public_key_hex())
    decoded = CoseMessage.decode(message)
    decoded.key = OKPKey.from_dict({OKPKpCurve: Ed25519, OKPKpX: public})
    assert decoded.verify_signature()
    assert cbor.loads(decoded.payload)[op.O_NAME] == "replay"
    wrong = rx.command("unit-1", "quarantine.force", {"component": "fan"}, 2, 60, now_ms=NOW)
    assert _reason(wrong, trusted, scopes) == "wrong-scope"
    assert _reason(ops.replay_command("unit-1", [[1, 1]], "r", 1, 60, now_ms=NOW), trusted, scopes) == "wrong-scope"


def _reason(message, trusted, scopes):
    with pytest.raises(op.Rejection) as refused:
        op.verify_command(message, trusted, "unit-1", "EA-M", NOW, 0, scopes)
    return refused.value.reason


def test_the_signer_refuses_a_request_the_device_would_refuse(keys):
    rx = keys[1]
    for ranges, request in (([], "r"), ([[5, 1]], "r"), ([[0, 4096]], "r"), ([[1, 2]], ""), ([[1, 2]], "r" * 41)):
        with pytest.raises(OperatorError, match="replay: "):
            rx.replay_command("unit-1", ranges, request, 1, 60)
    with pytest.raises(OperatorError, match="one device id"):
        rx.replay_command("model:EA-M", [[1, 2]], "r", 1, 60)
    assert rx.replay_command("unit-1", [(1, 2)], "r", 1, 60, device_secret=b"s" * 32)[0] == 0xD1  # Mac0 (tag 17)


def test_bad_scopes_in_the_file_are_refused_naming_the_entry(keys, tmp_path):
    ops = keys[0]
    for text in ('scopes = ["override"]', "scopes = []", 'scopes = "replay"'):
        path = tmp_path / "bad.toml"
        path.write_text(ops.public_entry() + text + "\n")
        with pytest.raises(OperatorError, match=r"operators\.ops-team: .*scopes"):
            load_operators(str(path))


def test_operator_entry_prints_the_scopes(tmp_path, keys):
    out = subprocess.run([sys.executable, "-m", "edge_agent", "keys", "operator-entry", str(tmp_path / "rx"),
                          "--scopes", "replay"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.endswith('scopes = ["replay"]\n')
    out = subprocess.run([sys.executable, "-m", "edge_agent", "keys", "operator-entry", str(tmp_path / "rx"),
                          "--scopes", "root"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2 and "unknown scope 'root'" in out.stderr
