"""The health engine inside today's agent, on real parts: a stuck fan on the
virtual sensor board is quarantined, the state change reaches a subscriber
signed, and the agent (which does not drive GPIO yet: integration pending)
logs the power cut instead of failing on it."""

import pytest

from edge_agent.core import signals as sg
from simulator.fixtures.processes import Child, edge_agent_argv

from conftest import BOARD, REGISTRY

pytestmark = pytest.mark.integration


def _opened(messages, kind):
    """Verify and decode every message on ea/v1/<dev>/<kind> (the uplink may
    bundle several signals into one message)."""
    return [s for t, p in messages if t.endswith("/" + kind) for s in REGISTRY.open_signals(p, t)]


def _states(messages):
    return _opened(messages, "state")


def test_stuck_fan_is_quarantined_by_the_running_agent(broker, start_agent, subscribe):
    sim = Child("sim", edge_agent_argv("sim", "sensors", "--board", BOARD, "--seed", "5"), stdin=True, relay=False)
    try:
        pty_path = sim.wait_for("pty ", 10).split(" ", 1)[1]
        agent = start_agent(broker.port, "e2e-health", pty_path)
        agent.child.wait_for("connected to broker", 20)
        messages = subscribe(
            broker.port,
            ["ea/v1/e2e-health/state", "ea/v1/e2e-health/alert"],
            lambda ms: any(s.body[sg.S_TO] == "quarantined" for s in _states(ms)),
            timeout_s=40,
            action=lambda: sim.send("fail fan_speed stuck"),
        )
        agent.child.wait_for("gpio fan_power (/dev/gpiochip0 line 17) -> off: cabinet_fan quarantined", 10)
    finally:
        sim.stop()
    states = [(s.body[sg.S_FROM], s.body[sg.S_TO]) for s in _states(messages)]
    assert ("failed", "quarantined") in states
    quarantined = [s for s in _states(messages) if s.body[sg.S_TO] == "quarantined"][0]
    assert quarantined.body[sg.S_COMPONENT] == "cabinet_fan"
    assert quarantined.body[sg.S_ACTIONS] == ["cut_power fan_power"]
    assert "fan_speed stuck at" in quarantined.body[sg.S_REASON]
    stuck = _opened(messages, "alert")
    assert any(a.body[sg.A_CONDITION] == "stuck" and a.body[sg.A_PART] == "F-220" for a in stuck)
    assert agent.child.process.poll() is None  # still running
