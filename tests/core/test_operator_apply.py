"""apply_quarantine: the one place the gateway's downlink and the firmware's
commands turn a verified quarantine command into a health transition."""

from support import copy_board, raises

from edge_agent.core import board as bd
from edge_agent.core import device as dv
from edge_agent.core import operator as op


def _device():
    return dv.Device(bd.board_from_dict(copy_board(), "demo.toml"), "unit-17")


def _command(name, component, counter=1):
    return op.Command(name, {"component": component}, counter, "ops-team", 2000, 1000, "unit-17")


def test_force_then_release_returns_states_and_outputs():
    device = _device()
    before, after, outputs = op.apply_quarantine(device, _command("quarantine.force", "fan"), 1000)
    assert (before, after) == ("ok", "forced")
    assert outputs, "a forced component's actions and its state signal are outputs"
    assert "ops-team (downlink #1)" in repr(outputs)
    before, after, _ = op.apply_quarantine(device, _command("quarantine.release", "fan", 2), 2000)
    assert (before, after) == ("forced", "ok")


def test_unknown_component_refused_with_the_known_ones():
    exc = raises(op.Refused, op.apply_quarantine, _device(), _command("quarantine.force", "pump"), 1000)
    assert exc.reason == "unknown-component"
    assert "'pump'" in exc.detail and "fan" in exc.detail


def test_illegal_transition_refused_and_nothing_changes():
    device = _device()
    exc = raises(op.Refused, op.apply_quarantine, device, _command("quarantine.release", "fan"), 1000)
    assert exc.reason == "not-allowed"
    assert device.component_states()["fan"] == "ok"
