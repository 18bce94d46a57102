"""command_flow: the verify -> save counter -> apply -> audit flow that the
gateway's downlink and the firmware's commands share (each adds its own
counter file and its own _apply); COSE_Mac0 commands, a real core Device."""

from support import copy_board

from edge_agent.core import board as bd
from edge_agent.core import cbor, cose
from edge_agent.core import device as dv
from edge_agent.core import operator as op
from edge_agent.core import signals as sg
from edge_agent.core.command_flow import REFUSAL_WINDOW_MS, REFUSALS_PER_WINDOW, CommandFlow, RefusalLimiter
from edge_agent.core.hmac_sha256 import hmac_sha256

KEY = b"k" * 32
NOW = 1800000000000


class Flow(CommandFlow):
    def __init__(self, model="EA-TEST-1", trusted=None):
        self.events = []
        self.signals_reasons = []
        self.lines = []
        self.now = NOW
        device = dv.Device(bd.board_from_dict(copy_board(), "demo.toml"), "unit-17")
        super().__init__(device, model, trusted or {b"ops": KEY}, op.Counters(), lambda: self.now, self._dispatch,
                         lambda level, text: self.lines.append((level, text)))

    def _dispatch(self, outputs):
        for item in outputs:
            if isinstance(item, sg.Signal) and item.kind == sg.KIND_AUDIT:
                body = item.body
                self.signals_reasons.append(body[sg.U_REASON])
                self.events.append(("audit", body[sg.U_WHO], body[sg.U_ACTION], body[sg.U_TARGET],
                                    body[sg.U_RESULT], body[sg.U_REASON].split(":")[0]))

    def _save_counters(self):
        self.events.append(("saved", self.counters.last("ops", "unit-17")))

    def _apply(self, command, now_ms):
        if command.name == "alert.ack":
            raise RuntimeError("a bug")
        before, after, outputs = op.apply_quarantine(self.device, command, now_ms)
        return before, after, command.args.get("note", "")

    def _applied(self, command):
        self.events.append(("applied", command.counter))


def _command(name, args, counter):
    return op.mac_command(KEY, "ops", "unit-17", name, args, counter, NOW, NOW + 60000)


def test_counter_saved_before_apply_then_audited():
    flow = Flow()
    flow.on_message("t", _command("quarantine.force", {"component": "fan", "note": "noisy"}, 3))
    assert flow.events == [("saved", 3), ("audit", "ops", "quarantine.force", "fan", "applied", "noisy"),
                           ("applied", 3)]
    assert flow.device.component_states()["fan"] == "forced" and flow.applied == 1


def test_refusals_name_the_operator_only_once_authenticated():
    flow = Flow()
    force = _command("quarantine.force", {"component": "fan"}, 1)
    flow.on_message("t", force)
    flow.on_message("t", force)
    flow.on_message("t", force[:-1] + bytes([force[-1] ^ 1]))
    flow.on_message("t", _command("quarantine.release", {"component": "pump"}, 2))
    assert flow.events[3:] == [
        ("audit", "ops", "quarantine.force", "fan", "refused", "replay"),
        ("audit", "unverified", "command", "t", "refused", "bad-signature"),
        ("saved", 2), ("audit", "ops", "quarantine.release", "pump", "refused", "unknown-component"),
    ]
    assert flow.refused == 3 and flow.applied == 1


def test_a_failing_apply_is_audited_and_does_not_raise():
    # Its counter is spent (saved before the apply): it cannot come again,
    # so it is audited like any authentic refusal, naming command and operator.
    flow = Flow()
    flow.on_message("t", _command("alert.ack", {"alert": "7"}, 1))
    assert flow.events[-2:] == [("saved", 1), ("audit", "ops", "alert.ack", "alert #7", "refused", "internal-error")]
    assert flow.lines[-1][0] == "error" and "RuntimeError: a bug" in flow.lines[-1][1]
    assert (flow.applied, flow.refused) == (0, 1)


def _flood(flow, message, count=60):
    """``count`` copies of ``message``, one a second (all in one window),
    then one more a window later: [(audits in the window), (the later ones)]."""
    for i in range(count):
        flow.now = NOW + i * 1000
        flow.on_message("t", message)
    during = list(flow.events)
    flow.now = NOW + REFUSAL_WINDOW_MS + 1000
    flow.on_message("t", message)
    return during, flow.events[len(during):]


def _hostile_alg(alg):
    """A COSE_Mac0 from the trusted kid, its MAC good, whose alg header is ``alg``."""
    protected = cbor.dumps({cose.HEADER_ALG: alg, cose.HEADER_KID: b"ops"})
    payload = op.command_payload("unit-17", "quarantine.force", {"component": "fan"}, 1, NOW, NOW + 600000)
    tag = hmac_sha256(KEY, cbor.dumps(["MAC0", protected, b"", payload]))
    return cbor.dumps(cbor.Tag(cose.TAG_MAC0, [protected, {}, payload, tag]))


def test_a_hostile_alg_from_a_trusted_kid_is_refused_within_the_limit():
    # A huge integer alg once made one internal-error audit per message (on
    # CPython, printing it raises): 60 a minute, past the limit of 20.
    flow = Flow()
    during, later = _flood(flow, _hostile_alg(10 ** 5000))
    assert len(during) == REFUSALS_PER_WINDOW
    assert all(event[1:5] == ("unverified", "command", "t", "refused") for event in during)
    assert len(flow.lines) == REFUSALS_PER_WINDOW + 2  # the log is limited too: the summary, then the message
    assert later[0][:5] == ("audit", "unverified", "command", "t", "refused")
    assert flow.signals_reasons[-2] == "rate-limited: %d more messages refused unaudited" % (60 - REFUSALS_PER_WINDOW)
    assert (flow.applied, flow.refused) == (0, 61)
    assert flow.device.component_states()["fan"] == "ok"


class BrokenTrust(dict):
    """A trust map whose lookup fails: a bug anywhere before the signature
    checks out, whatever it raises."""

    def get(self, key, default=None):
        raise RuntimeError("a bug in verification")


def test_any_exception_before_the_counter_is_spent_goes_through_the_limiter():
    flow = Flow(trusted=BrokenTrust({b"ops": KEY}))
    during, later = _flood(flow, _command("quarantine.force", {"component": "fan"}, 1))
    assert during == [("audit", "unverified", "command", "t", "refused", "internal-error")] * REFUSALS_PER_WINDOW
    assert later == [("audit", "unverified", "command", "t", "refused", "rate-limited"),
                     ("audit", "unverified", "command", "t", "refused", "internal-error")]
    assert flow.signals_reasons[-2] == "rate-limited: %d more messages refused unaudited" % (60 - REFUSALS_PER_WINDOW)
    assert [level for level, _ in flow.lines].count("error") == REFUSALS_PER_WINDOW + 1
    assert (flow.applied, flow.refused) == (0, 61)


def _sized(size):
    """A good Mac0 command of exactly ``size`` bytes (its note fills it)."""
    def make(n):
        return _command("quarantine.force", {"component": "fan", "note": "x" * n}, 1)

    base = len(make(60000)) - 60000
    message = make(size - base)
    assert len(message) == size
    return message


def test_a_command_past_the_size_bound_is_refused_before_it_is_parsed():
    flow = Flow()
    flow.on_message("t", _sized(op.MAX_COMMAND_BYTES + 1))  # MAC and all good, one byte too many
    assert flow.events == [("audit", "unverified", "command", "t", "refused", "too-large")]
    assert flow.signals_reasons[-1] == "too-large: %d bytes; operator messages are at most %d" % (
        op.MAX_COMMAND_BYTES + 1, op.MAX_COMMAND_BYTES)
    flow.on_message("t", _sized(op.MAX_COMMAND_BYTES))
    assert flow.events[-2:] == [("audit", "ops", "quarantine.force", "fan", "applied", "x" * 197 + "..."),
                                ("applied", 1)]  # the note, cut to one line
    # Too large is refused whatever the bytes are, and the refusals are limited.
    flow = Flow()
    during, later = _flood(flow, b"\x00" * (op.MAX_COMMAND_BYTES + 1))
    assert during == [("audit", "unverified", "command", "t", "refused", "too-large")] * REFUSALS_PER_WINDOW
    assert [event[5] for event in later] == ["rate-limited", "too-large"]


def test_unverified_refusals_are_rate_limited():
    flow = Flow()
    for i in range(REFUSALS_PER_WINDOW + 5):
        flow.on_message("t", b"junk %d" % i)
    assert len(flow.events) == REFUSALS_PER_WINDOW and flow.refused == REFUSALS_PER_WINDOW + 5


def test_refusal_limiter_windows():
    limiter = RefusalLimiter(limit=2, window_ms=100)
    assert [limiter.allow(t) for t in (0, 1, 2, 3)] == [(True, 0), (True, 0), (False, 0), (False, 0)]
    assert limiter.allow(100) == (True, 2)


def _ed25519_verifier(signature, message):  # what keys/operators.load_trusted gives a gateway
    return False


def test_only_a_device_with_a_public_key_operator_takes_its_models_topic():
    # A board's operators sign under its own secret: a Mac0 on the model's
    # topic could be checked by one device only, so a board listens on its own.
    assert Flow().topics() == ("ea/v1/unit-17/cmd",)
    gateway = Flow(trusted={b"ops": KEY, b"fleet": _ed25519_verifier})
    assert gateway.topics() == ("ea/v1/unit-17/cmd", "ea/v1/model/EA-TEST-1/cmd")
    assert gateway.lines == []


def test_a_model_that_is_no_topic_level_is_not_subscribed_and_logged():
    flow = Flow(model="EA TEST/1", trusted={b"fleet": _ed25519_verifier})
    assert flow.topics() == ("ea/v1/unit-17/cmd",)
    level, text = flow.lines[0]
    assert level == "warning"
    assert text.startswith("board model 'EA TEST/1' cannot be an MQTT topic level"), text
    assert "fix [board] model in the board file" in text


def test_signed_bignums_are_refused_not_raised():
    # Counters and times are CBOR uints (at most 2**64 - 1), even from a
    # trusted operator; a refused command's bignum argument is no audit target.
    flow = Flow()
    for counter in (2 ** 64, 10 ** 5000):
        flow.on_message("t", _command("quarantine.force", {"component": "fan"}, counter))
    for field in (op.O_ISSUED, op.O_EXPIRES, None):
        body = {op.O_VERSION: 1, op.O_TYPE: "command", op.O_TARGET: "unit-17", op.O_ISSUED: NOW,
                op.O_EXPIRES: NOW + 60000, op.O_NAME: "alert.ack", op.O_ARGS: {"alert": 10 ** 5000}, op.O_COUNTER: 1}
        if field is not None:
            body[field] = 10 ** 5000
        flow.on_message("t", cose.mac0(cbor.dumps(body), b"ops", KEY))
    assert [event[5] for event in flow.events] == ["malformed"] * 4 + ["bad-command"]
    assert [event[2:4] for event in flow.events] == [("quarantine.force", "fan")] * 2 + [("command", "t")] * 2 + [
        ("alert.ack", "t")]
    assert flow.refused == 5 and not [line for line in flow.lines if line[0] == "error"]


def test_hostile_signed_names_and_argument_keys_are_refused_not_raised():
    # From a trusted operator, but nonsense: a name that is a list, a map in
    # a tag (unhashable), bytes; argument names that are not text.
    flow = Flow()
    for counter, (name, args) in enumerate(((["quarantine.force"], {"component": "fan"}),
                                            (cbor.Tag(7, {"a": 1}), {"component": "fan"}),
                                            (b"quarantine.force", {"component": "fan"}),
                                            ("quarantine.force", {b"component": "fan"}),
                                            ("config.update", {"patch": {b"sensors": {}}})), 1):
        body = {op.O_VERSION: 1, op.O_TYPE: "command", op.O_TARGET: "unit-17", op.O_ISSUED: NOW,
                op.O_EXPIRES: NOW + 60000, op.O_NAME: name, op.O_ARGS: args, op.O_COUNTER: counter}
        flow.on_message("t", cose.mac0(cbor.dumps(body), b"ops", KEY))
    assert [event[5] for event in flow.events] == ["bad-command"] * 5
    assert flow.refused == 5 and not [line for line in flow.lines if line[0] == "error"]


def test_control_characters_never_reach_an_audit_or_a_log_line_raw():
    flow = Flow()
    flow.on_message("t", _command("quarantine.force", {"component": "fan", "note": "ok\nFORGED LINE\x1b[2J\u202e"}, 1))
    assert flow.signals_reasons[-1] == "ok\\x0aFORGED LINE\\x1b[2J\\u202e"
    flow.on_message("t", cose.mac0(b"\xa0", "evil\r\nFORGED\u0085".encode(), b"x" * 32))  # an unknown kid
    for _, line in flow.lines:
        assert not [ch for ch in line if ch < " " or "\x7f" <= ch < "\xa0"], line
    assert "evil\\r\\nFORGED" in flow.lines[-1][1]
