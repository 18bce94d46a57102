"""Downlink messages (tokens, commands) and the downlink's audit signals
against docs/schema.cddl (pycddl, an independent CDDL implementation); the
core's command checker and the schema agree on every generated command."""

import os

import pycddl
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.core import audit, cbor, cose
from edge_agent.core import operator as op

from conftest import ROOT

SCHEMA_TEXT = open(os.path.join(ROOT, "docs", "schema.cddl")).read()
OPERATOR_MESSAGE = pycddl.Schema("root = operator-message\n" + SCHEMA_TEXT)
SIGNAL = pycddl.Schema("root = signal\n" + SCHEMA_TEXT)
SEALED = pycddl.Schema("root = sealed\n" + SCHEMA_TEXT)
PROTECTED = pycddl.Schema("root = protected-header\n" + SCHEMA_TEXT)
# The alternatives of `command`, checked one by one: pycddl 0.6 accepts a
# choice of maps when each alternative fails on a different key (e.g. an
# alert.ack whose "alert" is a list passes `command`), so the choice is
# evaluated here as CDDL defines it: valid if any alternative is.
ALTERNATIVES = [pycddl.Schema("root = %s\n%s" % (rule, SCHEMA_TEXT)) for rule in (
    "quarantine-command", "ack-command", "config-command", "advisory-command", "replay-command", "token")]


def schema_accepts(payload):
    for schema in ALTERNATIVES:
        try:
            schema.validate_cbor(payload)
            return True
        except pycddl.ValidationError:
            pass
    return False
NOW = 1_800_000_000_000

EXAMPLES = {
    "quarantine.force": {"component": "cabinet_fan"},
    "quarantine.release": {"component": "cabinet_fan", "note": "fan replaced"},
    "alert.ack": {"alert": "17"},
    "config.update": {"patch": {"sensors": {"coolant_temp": {"valid_range": [-20.0, 95.0]}}}},
    "advisory": {"text": "inspect the fan", "id": "incident-3", "severity": "warning",
                 "patch": {"health": {"storm_window_s": 30}}},
    "replay": {"ranges": [[3, 9], [12, 12]], "request": "rx-1/gap-7"},
}


def test_every_command_validates():
    assert sorted(EXAMPLES) == sorted(op.COMMANDS)
    for name, args in EXAMPLES.items():
        for target in ("unit-1", "model:EA-DEMO-1") if name != "replay" else ("unit-1",):
            payload = op.command_payload(target, name, args, 7, NOW, NOW + 1)
            OPERATOR_MESSAGE.validate_cbor(payload)
            assert schema_accepts(payload)


def test_tokens_validate_and_bad_scopes_do_not():
    OPERATOR_MESSAGE.validate_cbor(op.token_payload("unit-1", "alice", list(op.SCOPES), NOW, NOW + 1))
    assert not schema_accepts(op.token_payload("unit-1", "alice", ["root"], NOW, NOW + 1))
    assert not schema_accepts(op.token_payload("a/b", "alice", ["read"], NOW, NOW + 1))


def test_sealed_envelopes_validate():
    key = Ed25519PrivateKey.generate()
    payload = op.command_payload("unit-1", "alert.ack", {"alert": "1"}, 1, NOW, NOW + 1)
    for message in (cose.sign1(payload, b"ops-team", key.sign), cose.mac0(payload, b"ops-team", bytes(32))):
        SEALED.validate_cbor(message)
        PROTECTED.validate_cbor(cbor.loads(message).value[0])


def test_downlink_audits_validate():
    cases = [
        ("ops-team", "quarantine.force", "cabinet_fan", "ok", "forced", audit.APPLIED, ""),
        ("unverified", "command", "ea/v1/u/cmd", None, None, audit.REFUSED, "bad-signature: ..."),
        ("ops-team", "config.rollback", "board", "0123456789abcdef", "base", audit.APPLIED, "self-check-failed"),
    ]
    for seq, case in enumerate(cases, 1):
        signal = audit.audit_signal(NOW, *case, channel=audit.CHANNEL_DOWNLINK)
        signal.device, signal.seq = "unit-1", seq
        SIGNAL.validate_cbor(signal.encode())


text = st.text(min_size=1, max_size=12)
VALID = {"text": text, "patch": st.dictionaries(st.sampled_from(op.PATCHABLE),
                                                 st.dictionaries(text, st.integers(), max_size=2),
                                                 min_size=1, max_size=2)}
# Not a patch of the wrong tables ({"board": ...}): the schema leaves patch
# keys to the checker (pycddl 0.6 cannot validate them, docs/schema.cddl);
# tests/core/test_operator.py covers them.
WRONG = st.one_of(st.integers(), st.just(""), st.just({}), st.lists(text))


@st.composite
def commands(draw):
    """Mostly-valid commands, then at most one mutation: a name, args and
    values near the edge of what the checker accepts."""
    # (replay checks its own args: test_replay_requests_the_device_takes_validate)
    name = draw(st.sampled_from(sorted(set(op.COMMANDS) - set(op.OWN_ARGS))))
    spec = dict(op.COMMANDS[name])
    optional = op.OPTIONAL_ARGS.get(name, {})
    spec.update({k: v for k, v in optional.items() if draw(st.booleans())})
    args = {arg: draw(VALID[kind]) for arg, kind in spec.items()}
    if "severity" in args:
        args["severity"] = draw(st.sampled_from(["info", "warning", "critical", "doom"]))
    mutation = draw(st.sampled_from(["none", "none", "drop", "add", "wrong", "rename"]))
    if mutation == "drop" and args:
        del args[draw(st.sampled_from(sorted(args)))]
    elif mutation == "add":
        args[draw(st.sampled_from(["bogus", "component", "note", "patch", "text"]))] = draw(text)
    elif mutation == "wrong" and args:
        args[draw(st.sampled_from(sorted(args)))] = draw(WRONG)
    elif mutation == "rename":
        name = draw(st.one_of(text, st.just("reboot")))
    return name, args


@settings(max_examples=400, deadline=None)
@given(commands())
def test_core_checker_and_schema_agree(command):
    name, args = command
    payload = op.command_payload("unit-1", name, args, 1, NOW, NOW + 1)
    assert schema_accepts(payload) == (op.check_command(name, args) is None), (name, args, op.check_command(name, args))


REPLAY = pycddl.Schema("root = replay-command\n" + SCHEMA_TEXT)


def test_replay_commands_the_device_takes_validate_and_malformed_ones_do_not():
    from edge_agent.core import repair

    good = {"ranges": [[0, 4095]], "request": "r" * 40}
    assert repair.request_problem(good["ranges"], good["request"]) is None
    REPLAY.validate_cbor(op.command_payload("unit-1", "replay", good, 1, NOW, NOW + 1))
    # (33 ranges: pycddl 0.6 ignores the upper bound of 1*32; the device refuses them, too-large)
    assert repair.request_problem([[n, n] for n in range(33)], "r") is not None
    for args in ({"ranges": [], "request": "r"}, {"ranges": [[1, 2]], "request": ""}, {"ranges": [[1, 2]], "request": "r" * 41},
                 {"ranges": [[1]], "request": "r"}, {"ranges": [[1, 2]]}, {"ranges": [["1", 2]], "request": "r"}):
        payload = op.command_payload("unit-1", "replay", args, 1, NOW, NOW + 1)
        try:
            REPLAY.validate_cbor(payload)
        except pycddl.ValidationError:
            pass
        else:
            raise AssertionError("the schema took %r" % args)
        assert repair.request_problem(args.get("ranges"), args.get("request")) is not None


def test_the_repair_signal_validates():
    from edge_agent.core import repair
    from edge_agent.core import signals as sg

    answer = repair.Repair("rx-1/gap-7", [[3, 9]])
    for seq in (5, 6, 8):
        answer.mark(sg.Signal(sg.KIND_TELEMETRY, 2, 1, {}, "unit-1", seq).encode())
    signal = answer.answer(NOW, True)
    signal.device, signal.seq = "unit-1", 40
    SIGNAL.validate_cbor(signal.encode())
    assert signal.body[sg.R_SENDING] == [[5, 6], [8, 8]]
    assert signal.body[sg.R_GONE] == [[3, 4, "outside-window"], [7, 7, "not-held"], [9, 9, "not-held"]]
    signal.body[sg.R_GONE][0][2] = "lost"
    try:
        SIGNAL.validate_cbor(signal.encode())
    except pycddl.ValidationError:
        pass
    else:
        raise AssertionError("the schema took a gone reason it does not know")


seq_ranges = st.lists(st.tuples(st.integers(0, 2 ** 64 - 1), st.integers(0, 5000)), min_size=1, max_size=33)


@settings(max_examples=200, deadline=None)
@given(seq_ranges, st.text(min_size=0, max_size=42))
def test_replay_requests_the_device_takes_validate(starts, request):
    """What the device accepts, the schema accepts (the schema cannot say
    ascending, non-overlapping or 4096 seqs in all: the device does)."""
    from edge_agent.core import repair

    ranges = [[first, min(first + span, 2 ** 64 - 1)] for first, span in starts]
    payload = op.command_payload("unit-1", "replay", {"ranges": ranges, "request": request}, 1, NOW, NOW + 1)
    if repair.request_problem(ranges, request) is None:
        REPLAY.validate_cbor(payload)
