"""Exactly once with the broker killed too (issue 20, with issue 21's gap
repair): a fleet of real devices (the agent's store with its replay window,
uplink with TLS, signed downlink serving `replay`) against a real stock-like
mosquitto (no persistence) killed with SIGKILL, three `edge-agent receiver
run` processes in one `--group` on one real PostgreSQL, each with the
repair key, one of them killed with SIGKILL and started again
(simulator/fleet/shared_run.py).

What the broker loses in its kill, and what it never hands back to a
`$share` session, the devices had been PUBACKed for: only repair brings it
back. After it every seq each device issued is stored once, no range is
pending or lost, and the fleet incident (a stuck fan on 8 devices of one
model) is raised once, its advisory sent once to each device of the model
and applied by every one of them."""

import os
import tomllib

import pytest

from simulator import ROOT
from simulator.fleet import spec as fleet_spec
from simulator.fleet.repair_run import stored_once
from simulator.fleet.run import summary_lines
from simulator.fleet.shared_run import SharedRepairRun

pytestmark = pytest.mark.integration

REPAIR_50 = os.path.join(ROOT, "simulator", "scenarios", "fleet", "repair_50.toml")
FAULTY = 8

# The stuck fan early, so the incident and its advisory come before the kills
# (an advisory the broker loses in its kill is not repaired: only signals are).
FAULT = """
[[faults]]
kind = "stuck"
sensor = "fan_speed"
at = "3s"

[fleet.receiver]
k = 5
fraction = 0.0
window = "2m"

[[expect]]
kind = "incident"
condition = "stuck"
component = "cabinet_fan"

[[expect]]
kind = "advisory"
"""


def _spec(duration, count):
    text = open(REPAIR_50).read().replace('duration = "40s"', 'duration = "%s"' % duration)
    text = text.replace("count = 50", "count = %d" % count).replace(
        'name = "fleet of 50', 'name = "fleet of %d, 3 receivers on PostgreSQL' % count)
    text = text.replace("faulty = 0", 'faulty = %d\nfaulty_model = "EA-FLEET-1"' % FAULTY)
    return fleet_spec.from_dict(tomllib.loads(text + FAULT), REPAIR_50)


def _check_exactly_once(run, result):
    evidence = "\n".join("%s %s: %s" % ("PASS" if ok else "FAIL", e.kind, text) for e, ok, text in result.outcomes)
    assert result.passed, evidence + "\nreceivers:\n" + result.receiver_tail
    assert run.exited == [], "%s (logs in %s)" % (run.exited, run.workdir)
    assert result.lost == 0 and result.stored == result.issued, result.missing_by_device
    assert stored_once(run.db_path) == []
    figures = result.repair
    assert figures["pending"] == 0 and figures["lost"] == 0, figures
    assert len(result.incidents) == 1, result.incidents
    incident = result.incidents[0]
    advised = result.advisory["EA-FLEET-1"]
    # What one receiver raises from these devices: every faulty one, of the model's fleet, at k = 5.
    assert incident[1:7] == ("EA-FLEET-1", "cabinet_fan", "stuck", FAULTY, advised["devices"], 5), incident
    # One advisory per device of the model (the fleet_advisories key), each applied: no second incident's.
    assert incident[8] == incident[9] == advised["devices"] == advised["applied"], (incident, advised)
    return figures


def _run(tmp_path, postgres_server, duration, count, events, **kwargs):
    run = SharedRepairRun(_spec(duration, count), events, postgres_server.create_database(),
                          group="share-%d" % os.getpid(), workdir=str(tmp_path / "work"), quiet=True, **kwargs)
    result = run.run()
    # Shown with -s (the figures of a run, for docs/receiver.md).
    figures = dict((name, value) for name, value in result.repair.items() if name != "ranges")
    print("\n".join(summary_lines(result)), "\n  repair:", figures,
          "\n  receiver kills %d, broker kills %d" % (run.receiver_kills, run.broker_kills))
    return run, result


def test_three_receivers_and_a_broker_killed_store_every_signal_once_after_repair(tmp_path, postgres_server):
    """Scaled: 30 devices, one receiver kill, one broker kill."""
    events = [("receiver_kill", 9000, 2000), ("broker_kill", 15000, 1000)]
    run, result = _run(tmp_path, postgres_server, "22s", 30, events)
    figures = _check_exactly_once(run, result)
    assert (run.receiver_kills, run.broker_kills) == (1, 1)
    assert figures["repaired"] > 0, figures  # the broker's kill lost signals the devices were PUBACKed for


@pytest.mark.torture
def test_two_hundred_devices_three_receivers_two_receiver_kills_and_a_broker_kill(tmp_path, postgres_server):
    events = [("receiver_kill", 12000, 3000), ("broker_kill", 20000, 1000), ("receiver_kill", 28000, 3000)]
    run, result = _run(tmp_path, postgres_server, "40s", 200, events, repair_wait_s=300)
    figures = _check_exactly_once(run, result)
    assert (run.receiver_kills, run.broker_kills) == (2, 1)
    assert figures["repaired"] > 0, figures
