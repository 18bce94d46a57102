"""command_flow: the verify -> save counter -> apply -> audit flow that the
gateway's downlink and the firmware's commands share (each adds its own
counter file and its own _apply); COSE_Mac0 commands, a real core Device."""

from support import copy_board

from edge_agent.core import board as bd
from edge_agent.core import device as dv
from edge_agent.core import operator as op
from edge_agent.core import signals as sg
from edge_agent.core.command_flow import REFUSALS_PER_WINDOW, CommandFlow, RefusalLimiter

KEY = b"k" * 32
NOW = 1800000000000


class Flow(CommandFlow):
    def __init__(self, model="EA-TEST-1", trusted=None):
        self.events = []
        self.lines = []
        device = dv.Device(bd.board_from_dict(copy_board(), "demo.toml"), "unit-17")
        super().__init__(device, model, trusted or {b"ops": KEY}, op.Counters(), lambda: NOW, self._dispatch,
                         lambda level, text: self.lines.append((level, text)))

    def _dispatch(self, outputs):
        for item in outputs:
            if isinstance(item, sg.Signal) and item.kind == sg.KIND_AUDIT:
                body = item.body
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
    flow = Flow()
    flow.on_message("t", _command("alert.ack", {"alert": "7"}, 1))
    assert flow.events[-1] == ("audit", "?", "command", "t", "refused", "internal-error")
    assert flow.lines[-1][0] == "error"


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
