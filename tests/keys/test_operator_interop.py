"""Operator keys with real Ed25519 (cryptography) and pycose as an
independent COSE implementation; the key files and trusted-operators file
as input surfaces; the `keys operator-*` / `keys technician-token` CLI."""

import os
import stat
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st
from pycose.algorithms import HMAC256
from pycose.headers import KID, Algorithm
from pycose.keys import OKPKey, SymmetricKey
from pycose.keys.curves import Ed25519
from pycose.keys.keyparam import OKPKpCurve, OKPKpX
from pycose.messages import CoseMessage, Mac0Message

import operator_vectors_make
from conftest import ROOT
from edge_agent.core import cbor, cose
from edge_agent.core import operator as op
from edge_agent.keys.operators import (OperatorError, create_operator, load_operator, load_trusted, parse_duration)

NOW = 1_800_000_000_000
HOUR = 3_600_000


@pytest.fixture
def operator(tmp_path):
    return create_operator(str(tmp_path / "op"), "ops-team")


@pytest.fixture
def trusted(operator, tmp_path):
    path = tmp_path / "operators.toml"
    path.write_text(operator.public_entry())
    return load_trusted(str(path))


def test_vectors_file_is_current_and_genuine():
    with open(operator_vectors_make.OUT) as f:
        assert f.read() == operator_vectors_make.render(), "run tests/operator_vectors_make.py"
    public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(operator_vectors_make.public_hex(
        operator_vectors_make.OPERATOR_KEY)))
    vectors = operator_vectors_make.vectors()
    genuine = [name for name in vectors if not name.endswith(("rogue", "unknown_operator"))]
    for name in genuine:
        envelope = cose.parse(vectors[name])
        tbs = b"".join(cose._structure("Signature1", envelope.protected, envelope.payload, b""))
        public.verify(envelope.authenticator, tbs)
    assert len(genuine) == 13


def _pycose_public(operator):
    return OKPKey.from_dict({OKPKpCurve: Ed25519, OKPKpX: bytes.fromhex(operator.public_key_hex())})


def test_pycose_verifies_our_commands_and_tokens(operator):
    for message in (operator.command("unit-1", "alert.ack", {"alert": "4"}, 1, 60),
                    operator.technician_token("unit-1", "alice", ["read"], 60)):
        decoded = CoseMessage.decode(message)
        decoded.key = _pycose_public(operator)
        assert decoded.verify_signature()
        assert decoded.get_attr(KID) == b"ops-team"
        assert cbor.loads(decoded.payload)[op.O_TARGET] == "unit-1"


def test_we_verify_pycose_mac0_commands():
    secret = os.urandom(32)
    payload = op.command_payload("unit-1", "quarantine.force", {"component": "fan"}, 7, NOW, NOW + HOUR)
    message = Mac0Message(phdr={Algorithm: HMAC256, KID: b"ops-team"}, uhdr={}, payload=payload)
    message.key = SymmetricKey(k=secret)
    command = op.verify_command(message.encode(tag=True), {b"ops-team": secret}, "unit-1", None, NOW, 0)
    assert (command.name, command.counter) == ("quarantine.force", 7)


def test_real_signatures_round_trip_and_reject_other_keys(operator, trusted, tmp_path):
    now = NOW
    message = operator.command("unit-1", "quarantine.release", {"component": "fan"}, 3, 60, now_ms=now)
    command = op.verify_command(message, trusted, "unit-1", "M", now, 2)
    assert (command.operator, command.counter) == ("ops-team", 3)
    impostor = create_operator(str(tmp_path / "impostor"), "ops-team")  # same name, other key
    forged = impostor.command("unit-1", "quarantine.release", {"component": "fan"}, 4, 60, now_ms=now)
    with pytest.raises(op.Rejection) as info:
        op.verify_command(forged, trusted, "unit-1", "M", now, 3)
    assert info.value.reason == "bad-signature"
    token = operator.technician_token("unit-1", "alice", ["override"], 8 * 3600, now_ms=now)
    assert op.verify_token(token, trusted, "unit-1", now + 8 * HOUR - 1).scopes == ("override",)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(min_value=0, max_value=400), st.integers(0, 255))
def test_mutated_or_random_input_only_ever_rejects(data, index, value):
    message = bytearray(operator_vectors_make.vectors()["cmd_release"])
    message[index % len(message)] = value
    verify = _real_verifier()
    for candidate in (bytes(message), data, bytes(message) + data):
        try:
            op.verify_command(candidate, {b"ops-team": verify}, "unit-1", "EA-TEST-1", NOW, 0)
        except op.Rejection as exc:
            assert exc.reason and exc.detail
        else:
            assert candidate == operator_vectors_make.vectors()["cmd_release"]


def _real_verifier():
    public = operator_vectors_make.OPERATOR_KEY.public_key()

    def verify(signature, message):
        public.verify(signature, message)  # raises InvalidSignature

    return verify


def test_operator_files(tmp_path, operator):
    directory = operator.directory
    assert stat.S_IMODE(os.stat(os.path.join(directory, "operator.key")).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    operator.record_counter("unit-17", 1)  # which commands went where: the operator's own business
    assert stat.S_IMODE(os.stat(operator._counters_path()).st_mode) == 0o600
    assert "PRIVATE" not in repr(operator) and operator.public_key_hex() not in repr(operator)
    loaded = load_operator(directory)
    assert loaded.public_key_hex() == operator.public_key_hex()
    with pytest.raises(OperatorError, match="refusing to overwrite"):
        create_operator(directory, "ops-team")
    os.chmod(os.path.join(directory, "operator.key"), 0o644)
    with pytest.raises(OperatorError, match="chmod 600"):
        load_operator(directory)
    with pytest.raises(OperatorError, match="keys operator-init"):
        load_operator(str(tmp_path / "nothing"))
    with pytest.raises(OperatorError, match="--name"):
        create_operator(str(tmp_path / "x"), "bad name")


def test_counters_persist_and_never_go_down(operator):
    assert operator.next_counter("unit-1") == 1
    operator.record_counter("unit-1", 5)
    operator.record_counter("model:EA-1", 2)
    operator.record_counter("unit-1", 3)
    again = load_operator(operator.directory)
    assert (again.next_counter("unit-1"), again.next_counter("model:EA-1")) == (6, 3)


@pytest.mark.parametrize("content, words", [
    (None, "not found"),
    ("", "no [operators.NAME] entries"),
    ("[operators.a]\npublic_key = 'zz'\n", "64 hex digits"),
    ("[operators.'a b']\npublic_key = '%s'\n" % ("00" * 32), "'a b' has ' '"),
    ("[operators\n", "not valid TOML"),
])
def test_trusted_file_errors(tmp_path, content, words):
    path = tmp_path / "operators.toml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(OperatorError, match=None) as info:
        load_trusted(str(path))
    assert words in str(info.value) and str(path) in str(info.value)


def test_trusted_file_writable_by_others_is_refused(tmp_path, operator):
    path = tmp_path / "operators.toml"
    path.write_text(operator.public_entry())
    os.chmod(path, 0o666)
    with pytest.raises(OperatorError, match="chmod o-w"):
        load_trusted(str(path))


def test_parse_duration():
    assert [parse_duration(t) for t in ("90s", "30m", "8h", "2d", "15")] == [90, 1800, 28800, 172800, 15]
    for bad in ("", "h", "-1h", "8x"):
        with pytest.raises(OperatorError):
            parse_duration(bad)


def run_cli(*args):
    result = subprocess.run([sys.executable, "-m", "edge_agent", *args], capture_output=True, text=True, timeout=30,
                            cwd=ROOT)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_cli_operator_init_entry_and_token(tmp_path):
    directory = str(tmp_path / "op")
    result = run_cli("keys", "operator-init", directory, "--name", "site-ops")
    assert result.returncode == 0 and "never printed" in result.stdout
    entry = run_cli("keys", "operator-entry", directory)
    (tmp_path / "operators.toml").write_text(entry.stdout)
    trusted = load_trusted(str(tmp_path / "operators.toml"))
    token = run_cli("keys", "technician-token", "--operator", directory, "--device", "unit-1", "--subject", "bob",
                    "--scopes", "read,ack", "override", "--ttl", "30m")
    assert token.returncode == 0, token.stderr
    verified = op.verify_token(op.token_from_text(token.stdout), trusted, "unit-1", op_now())
    assert (verified.subject, verified.scopes) == ("bob", ("read", "ack", "override"))
    with open(os.path.join(directory, "operator.key")) as f:
        pem = f.read()
    body = "".join(pem.strip().splitlines()[1:-1])
    for output in (result, entry, token):
        assert body not in output.stdout + output.stderr


def op_now():
    import time

    return time.time_ns() // 1_000_000


@pytest.mark.parametrize("args, words", [
    (["--scopes", "root"], "unknown scope 'root'"),
    (["--scopes", "read", "--ttl", "30d"], "between 1 s and 168 h"),
    (["--scopes", "read", "--ttl", "soon"], "write e.g. 90s"),
    (["--scopes", "read", "--subject", "a b"], "--subject"),
])
def test_cli_token_errors(tmp_path, args, words):
    directory = str(tmp_path / "op")
    create_operator(directory, "site-ops")  # in process: the CLI itself is tested above
    base = ["keys", "technician-token", "--operator", directory, "--device", "unit-1"]
    if "--subject" not in args:
        base += ["--subject", "bob"]
    result = run_cli(*base, *args)
    assert result.returncode == 2 and words in result.stderr, result.stderr


def test_cli_token_without_operator_dir(tmp_path):
    missing = run_cli("keys", "technician-token", "--operator", str(tmp_path / "none"), "--device", "u",
                      "--subject", "b", "--scopes", "read")
    assert missing.returncode == 2 and "keys operator-init" in missing.stderr


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_token_text_parser_only_ever_rejects(text):
    try:
        data = op.token_from_text(text)
    except op.Rejection as exc:
        assert exc.reason == "malformed" and exc.detail
        return
    assert op.token_from_text(op.token_to_text(data)) == data
    with pytest.raises(op.Rejection):
        op.verify_token(data, {}, "unit-1", NOW)


@pytest.mark.parametrize("args, words", [
    (["quarantine.force"], "give one of --device ID or --model MODEL"),
    (["--device", "u1", "--model", "M", "quarantine.force"], "give one of"),
    (["--device", "u1", "reboot"], "unknown command 'reboot'"),
    (["--device", "u1", "quarantine.force"], "needs argument 'component'"),
    (["--device", "u1", "quarantine.force", "component"], "write NAME=VALUE"),
    (["--device", "u1", "config.update", "patch={oops"], "not valid JSON"),
    (["--device", "u1", "config.update", "--patch", "/nonexistent.json"], "--patch /nonexistent.json"),
    (["--device", "u1", "quarantine.force", "component=fan", "--ttl", "never"], "write e.g. 90s"),
])
def test_cli_cmd_send_errors(tmp_path, args, words):
    directory = str(tmp_path / "op")
    create_operator(directory, "site-ops")  # in process: the CLI itself is tested above
    result = run_cli("cmd", "send", "--operator", directory, *args, "--broker", "127.0.0.1:1", "--insecure")
    assert result.returncode == 2 and words in result.stderr, result.stderr
    assert not os.path.exists(os.path.join(directory, "counters.toml"))  # nothing signed, no counter used


def test_cli_cmd_send_unreachable_broker_uses_up_the_counter(tmp_path):
    directory = str(tmp_path / "op")
    create_operator(directory, "site-ops")  # in process: the CLI itself is tested above
    result = run_cli("cmd", "send", "--operator", directory, "--device", "u1", "quarantine.force",
                     "component=fan", "--broker", "127.0.0.1:1", "--insecure")
    assert result.returncode == 2 and "broker 127.0.0.1:1" in result.stderr
    assert load_operator(directory).next_counter("u1") == 2  # never reused, even though unsent


def test_a_command_devices_would_refuse_as_too_large_is_not_signed(tmp_path):
    from edge_agent.core import operator as op
    from edge_agent.keys.operators import OperatorError, create_operator

    operator = create_operator(str(tmp_path / "ops"), "ops-team")
    big = {"patch": {"sensors": {"s%d" % i: {"period_ms": 1000, "note": "x" * 200} for i in range(400)}}}
    with pytest.raises(OperatorError, match="devices take commands of at most 65536 bytes"):
        operator.command("unit-17", "config.update", big, 1, 600)
    small = operator.command("unit-17", "config.update", {"patch": {"sensors": {"s1": {"period_ms": 1000}}}}, 1, 600)
    assert len(small) < op.MAX_COMMAND_BYTES
