"""Operator tokens and commands: parsing, binding, expiry, counters, on both
interpreters. Sign1 vectors were signed with real Ed25519 on CPython
(operator_vectors.py); the verifier here accepts exactly the genuine
signatures over exactly the bytes that were signed. Mac0 (HMAC boards) is
computed here. Real Ed25519 and pycose interop: tests/keys/test_operator_interop.py."""

import hashlib

from operator_vectors import NOW, SIGNED, VECTORS
from support import raises

from edge_agent.core import audit, cbor, cose
from edge_agent.core import operator as op
from edge_agent.core import signals as sg

HOUR = 3600000


def _vector_verify(signature, message):
    return SIGNED.get(signature.hex()) == hashlib.sha256(message).digest().hex()


TRUSTED = {b"ops-team": _vector_verify}
SECRET = bytes(range(32))


def _reason(fn, *args):
    return raises(op.Rejection, fn, *args).reason


def _token(name, device="unit-1", now=NOW, trusted=TRUSTED):
    return op.verify_token(VECTORS[name], trusted, device, now)


def _command(name, device="unit-1", model="EA-TEST-1", now=NOW, last=0, trusted=TRUSTED):
    return op.verify_command(VECTORS[name], trusted, device, model, now, last)


def test_valid_token():
    token = _token("token_ok")
    assert (token.subject, token.scopes, token.operator) == ("alice", ("read", "override"), "ops-team")
    assert token.expires_ms == NOW + 8 * HOUR
    assert token.allows("override") and not token.allows("config")


def test_token_refusals_have_stable_reasons():
    assert _reason(_token, "token_other_device") == "wrong-device"
    assert _reason(_token, "token_ok", "unit-2") == "wrong-device"
    assert _reason(_token, "token_expired") == "expired"
    assert _reason(_token, "token_future") == "not-yet-valid"
    assert _reason(_token, "token_too_long") == "too-long-lived"
    assert _reason(_token, "token_bad_scope") == "bad-scope"
    assert _reason(_token, "token_rogue") == "bad-signature"
    assert _reason(_token, "token_unknown_operator") == "unknown-operator"
    assert _reason(_token, "cmd_release") == "wrong-type"


def test_token_expiry_boundary_and_clock_skew():
    assert _token("token_ok", now=NOW + 8 * HOUR - 1).subject == "alice"
    assert _reason(_token, "token_ok", "unit-1", NOW + 8 * HOUR) == "expired"
    # Issued up to CLOCK_SKEW_MS ahead of the device's clock is tolerated.
    assert _token("token_ok", now=NOW - op.CLOCK_SKEW_MS).subject == "alice"
    assert _reason(_token, "token_ok", "unit-1", NOW - op.CLOCK_SKEW_MS - 1) == "not-yet-valid"


def test_valid_command_and_advisory():
    command = _command("cmd_release")
    assert (command.name, command.args, command.counter) == ("quarantine.release", {"component": "fan"}, 5)
    assert (command.operator, command.target) == ("ops-team", "unit-1")
    advisory = _command("cmd_advisory")
    assert advisory.target == "model:EA-TEST-1" and advisory.args["severity"] == "warning"


def test_command_refusals_have_stable_reasons():
    assert _reason(_command, "cmd_other_device") == "wrong-device"
    assert _reason(_command, "cmd_wrong_model") == "wrong-model"
    assert _reason(_command, "cmd_advisory", "unit-1", "EA-OTHER") == "wrong-model"
    assert _reason(_command, "cmd_advisory", "unit-1", None) == "wrong-model"
    assert _reason(_command, "cmd_unknown_name") == "bad-command"
    assert _reason(_command, "cmd_expired") == "expired"
    assert _reason(_command, "cmd_rogue") == "bad-signature"
    assert _reason(_command, "token_ok") == "wrong-type"
    assert _reason(_command, "cmd_release", "unit-1", "EA-TEST-1", NOW, 0, {}) == "unknown-operator"


def test_counter_replay_and_stale():
    assert _reason(_command, "cmd_release", "unit-1", "EA-TEST-1", NOW, 5) == "replay"
    assert _reason(_command, "cmd_release", "unit-1", "EA-TEST-1", NOW, 9) == "stale-counter"
    assert _command("cmd_release_6", last=5).counter == 6


def test_counters_are_per_operator_and_target():
    counters = op.Counters()
    command = _command("cmd_release", last=counters)
    counters.advance(command)
    assert _reason(_command, "cmd_release", "unit-1", "EA-TEST-1", NOW, counters) == "replay"
    # The model stream is separate: an advisory with counter 2 still passes.
    counters.advance(_command("cmd_advisory", last=counters))
    assert counters.last("ops-team", "model:EA-TEST-1") == 2
    restored = op.Counters.from_map(cbor.loads(cbor.dumps(counters.to_map())))
    assert restored.last("ops-team", "unit-1") == 5
    assert _reason(_command, "cmd_release", "unit-1", "EA-TEST-1", NOW, restored) == "replay"
    raises(ValueError, op.Counters.from_map, {"ops-team unit-1": -1})
    raises(ValueError, op.Counters.from_map, [1])


def test_every_flipped_byte_is_refused():
    message = VECTORS["cmd_release"]
    for i in range(len(message)):
        tampered = bytearray(message)
        tampered[i] ^= 0x01
        try:
            op.verify_command(bytes(tampered), TRUSTED, "unit-1", "EA-TEST-1", NOW, 0)
        except op.Rejection:
            continue
        raise AssertionError("flipping byte %d went unnoticed" % i)


def test_garbage_is_malformed_never_a_crash():
    for data in (b"", b"\x00", b"\xff" * 10, cbor.dumps([1, 2]), cbor.dumps(cbor.Tag(18, [b"", {}, b"", b""])),
                 "text", None, VECTORS["token_ok"][:-1], VECTORS["token_ok"] + b"\x00"):
        assert _reason(op.verify_token, data, TRUSTED, "unit-1", NOW) == "malformed"


def test_verifier_may_raise_or_return_false():
    def raising(signature, message):
        raise ValueError("InvalidSignature")

    assert _reason(_token, "token_ok", "unit-1", NOW, {b"ops-team": raising}) == "bad-signature"
    assert _reason(_token, "token_ok", "unit-1", NOW, {b"ops-team": lambda s, m: False}) == "bad-signature"
    assert _token("token_ok", trusted={b"ops-team": lambda s, m: None}).subject == "alice"


def _payload_sign1(payload):
    # A Sign1 whose signature the test verifier accepts, to reach the
    # payload checks with shapes no real operator would sign.
    return cose.sign1(payload, b"ops-team", lambda tbs: hashlib.sha256(tbs).digest() * 2)


def test_payload_shapes_are_checked_after_the_signature():
    trusted = {b"ops-team": lambda sig, msg: sig == hashlib.sha256(msg).digest() * 2}
    good = {op.O_VERSION: 1, op.O_TYPE: "command", op.O_TARGET: "unit-1", op.O_ISSUED: NOW,
            op.O_EXPIRES: NOW + HOUR, op.O_NAME: "alert.ack", op.O_ARGS: {"alert": "17"}, op.O_COUNTER: 1}
    assert op.verify_command(_payload_sign1(cbor.dumps(good)), trusted, "unit-1", "M", NOW, 0).args == {"alert": "17"}
    cases = [
        ({op.O_VERSION: 2}, "unsupported-version"),
        ({op.O_ISSUED: -1}, "malformed"),
        ({op.O_EXPIRES: "later"}, "malformed"),
        ({op.O_EXPIRES: NOW}, "malformed"),
        ({op.O_TARGET: 7}, "malformed"),
        ({op.O_COUNTER: 0}, "malformed"),
        ({op.O_COUNTER: True}, "malformed"),
        ({op.O_ARGS: {"alert": 17}}, "bad-command"),
        ({op.O_ARGS: {"alert": "1", "extra": "x"}}, "bad-command"),
        ({op.O_ARGS: []}, "bad-command"),
        ({op.O_TYPE: "config"}, "wrong-type"),
        # Values no message should print: a 5,000-digit int (CPython cannot
        # format it), a long text; refused by reason, not an internal error.
        ({op.O_VERSION: 10 ** 5000}, "unsupported-version"),
        ({op.O_TYPE: 10 ** 5000}, "wrong-type"),
        ({op.O_TARGET: "x" * 5000}, "wrong-device"),
    ]
    for change, reason in cases:
        body = dict(good)
        body.update(change)
        got = _reason(op.verify_command, _payload_sign1(cbor.dumps(body)), trusted, "unit-1", "M", NOW, 0)
        assert got == reason, (change, got)
    assert _reason(op.verify_command, _payload_sign1(cbor.dumps([1])), trusted, "unit-1", "M", NOW, 0) == "malformed"
    assert _reason(op.verify_command, _payload_sign1(b"\xff"), trusted, "unit-1", "M", NOW, 0) == "malformed"


def test_mac0_for_hmac_boards():
    trusted = {b"ops-team": SECRET}
    message = op.mac_command(SECRET, "ops-team", "unit-1", "quarantine.force", {"component": "fan"}, 3, NOW,
                             NOW + HOUR)
    command = op.verify_command(message, trusted, "unit-1", "EA-TEST-1", NOW, 2)
    assert (command.name, command.counter, command.operator) == ("quarantine.force", 3, "ops-team")
    assert _reason(op.verify_command, message, {b"ops-team": bytes(32)}, "unit-1", "M", NOW, 0) == "bad-signature"
    # An Ed25519-trusted operator cannot be impersonated with a MAC, nor the reverse.
    assert _reason(op.verify_command, message, TRUSTED, "unit-1", "M", NOW, 0) == "wrong-algorithm"
    assert _reason(_command, "cmd_release", "unit-1", "M", NOW, 0, trusted) == "wrong-algorithm"
    token = op.mac_token(SECRET, "ops-team", "unit-1", "bob", ["ack"], NOW, NOW + HOUR)
    assert op.verify_token(token, trusted, "unit-1", NOW).scopes == ("ack",)
    assert _reason(op.verify_token, token, trusted, "unit-9", NOW) == "wrong-device"


def test_token_text_round_trip():
    for data in (VECTORS["token_ok"], b"\x00", b"\xfb\xff\xfe" * 7):
        text = op.token_to_text(data)
        for ch in text:
            assert ch in op._B64URL
        assert op.token_from_text("  " + text + "\r\n") == data
    for bad in ("", "   ", "abc$", "a b", None, "A"):
        raises(op.Rejection, op.token_from_text, bad)


def test_check_command_and_names():
    assert op.check_command("alert.ack", {"alert": "3"}) is None
    assert "unknown command" in op.check_command("reboot", {})
    assert "needs argument" in op.check_command("quarantine.force", {})
    assert "severity" in op.check_command("advisory", {"text": "t", "severity": "doom"})
    assert op.check_name("alice") is None
    assert op.check_name("") and op.check_name("a b") and op.check_name("x" * 65) and op.check_name(3)


def test_audit_signal():
    signal = audit.audit_signal(NOW, "alice", "quarantine.release", "fan", "quarantined", "ok", audit.APPLIED, "",
                                audit.CHANNEL_CONSOLE)
    assert (signal.kind, signal.priority, signal.time_ms) == (sg.KIND_AUDIT, sg.PRIORITY_HIGH, NOW)
    assert signal.body[sg.U_RESULT] == "applied" and signal.body[sg.U_CHANNEL] == "console"
    signal.device, signal.seq = "unit-1", 9
    decoded = sg.decode(signal.encode())
    assert decoded.body == signal.body
    refused = audit.audit_signal(NOW, None, "x", None, {"a": (1, 2)}, None, audit.REFUSED, "r" * 500, "downlink")
    assert refused.body[sg.U_WHO] == "" and len(refused.body[sg.U_REASON]) == audit.MAX_TEXT
    assert refused.body[sg.U_BEFORE] == {"a": [1, 2]}
    assert audit.describe(refused.body).startswith("refused x")
    raises(ValueError, audit.audit_signal, NOW, "a", "b", "c", None, None, "maybe", "", "console")


def test_topics():
    assert op.command_topic("unit-1") == "ea/v1/unit-1/cmd"
    assert op.topic_for_target("unit-1") == "ea/v1/unit-1/cmd"
    assert op.topic_for_target("model:EA-TEST-1") == "ea/v1/model/EA-TEST-1/cmd"


def test_refused_authentic_commands_name_themselves():
    err = raises(op.Rejection, _command, "cmd_advisory", "unit-1", "EA-OTHER")
    assert (err.reason, err.command_name, err.command_args["severity"]) == ("wrong-model", "advisory", "warning")
    err = raises(op.Rejection, _command, "cmd_rogue")
    assert err.command_name is None and err.command_args is None


def test_config_patches_only_touch_board_tables():
    assert op.check_command("config.update", {"patch": {"sensors": {}}}) is None
    assert "not 'board'" in op.check_command("config.update", {"patch": {"board": {"model": "X"}}})
    assert "non-empty" in op.check_command("config.update", {"patch": {}})
    assert "non-empty" in op.check_command("advisory", {"text": "t", "patch": [1]})


def test_refusals_never_print_a_huge_or_long_value():
    huge = 10 ** 5000
    assert "unknown command a value of type int" in op.check_command(huge, {})
    assert len(op.check_command("quarantine.force", {huge: 1})) < 150
