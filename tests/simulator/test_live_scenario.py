"""Live mode (`edge-agent sim run --live`): a scenario file on real time with
real processes and real faults. One fast live scenario, live_faults.toml
(~25 s): line noise, bit flips and truncated frames written into the pty,
a coolant probe failing high, a partition, packet loss and a reset through
the fault proxy in front of the TLS mosquitto, a SIGKILL power cut of the
agent, and the agent's store filesystem (a tmpfs) filled to the last byte.
The receiver must have every signal. Plus the CLI's contract around it."""

import os
import subprocess
import sys

import pytest

from simulator.scenarios import spec as sc
from simulator.scenarios import expect as scenario_expect
from simulator.scenarios.live import run as scenario_live
from simulator import ROOT

LIVE_FAULTS = os.path.join(sc.LIBRARY, "live_faults.toml")

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def live_result():
    return scenario_live.run(sc.load(LIVE_FAULTS))


def test_live_faults_scenario_passes_with_nothing_lost(live_result):
    failed = ["%s: %s" % (o.name, o.evidence) for o in live_result.outcomes if not o.passed]
    assert not failed, "\n".join(failed + live_result.notes)
    delivered = [o for o in live_result.outcomes if o.kind == "delivered"][0]
    assert "0 missing" in delivered.evidence
    assert live_result.receiver_lost == []
    assert not live_result.rejections


def test_the_faults_were_really_applied(live_result):
    r = live_result
    notes = "\n".join(r.notes)
    # the serial line: the board's counters
    assert "garbage_bytes 200" in notes
    assert "flipped 0," not in notes or "truncated 0" not in notes, notes
    # the network: the proxy saw a reset and reconnections (reset, power cut)
    assert "resets 1" in notes and "connections " in notes
    assert int(notes.split("connections ")[1].split(",")[0]) >= 3, notes
    assert [round((b - a) / 1000.0) for a, b in r.link_down] == [3]
    # the power cut: a second boot, announced by a birth signal
    assert len(r.power_off) == 1 and len(r.boots) >= 2
    # the disk: really full (or, without mount rights, said so)
    assert "0 bytes free" in notes or "disk_full not applied" in notes, notes
    assert r.readings_count > 100 and r.messages > 5


def test_a_live_expectation_can_fail(live_result):
    """The same evidence judged against an expectation it does not meet."""
    spec = sc.from_dict({
        "scenario": {"name": "x", "board": os.path.join(ROOT, "boards", "demo-gateway.toml"), "duration": "23s"},
        "expect": [{"kind": "state", "component": "cabinet_fan", "state": "quarantined"},
                   {"kind": "alert", "condition": "stuck", "sensor": "fan_speed"}],
    })
    outcomes = scenario_expect.evaluate(spec, live_result)
    assert [o.passed for o in outcomes] == [False, False]
    assert "never entered quarantined" in outcomes[0].evidence


def _sim_run(*args):
    return subprocess.run([sys.executable, "-m", "edge_agent", "sim", "run", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)


def test_a_virtual_run_skips_a_scenario_that_needs_live_mode():
    done = _sim_run(LIVE_FAULTS)
    assert done.returncode == 0, done.stderr
    assert "skipped" in done.stdout and "live-only faults" in done.stdout
    assert "faults[0] garbage" in done.stdout and "--live" in done.stdout


def test_speed_needs_live_and_bad_live_faults_exit_2(tmp_path):
    assert _sim_run("--speed", "10", LIVE_FAULTS).returncode == 2
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[scenario]\nname = "x"\nboard = "%s"\nduration = "10s"\n[live]\nspeed = 0\nturbo = true\n'
        '[[faults]]\nkind = "garbage"\nat = "1s"\nbus = "uart9"\n'
        '[[faults]]\nkind = "packet_loss"\nat = "1s"\nrate = 1.5\n'
        '[[expect]]\nkind = "delivered"\n' % os.path.join(ROOT, "boards", "demo-gateway.toml"))
    done = _sim_run("--live", str(bad))
    assert done.returncode == 2
    for text in ("live.turbo: unknown key", "live.speed", "faults[0].bus", "uart9", "use one of: uart0",
                 "faults[1].rate"):
        assert text in done.stderr, (text, done.stderr)


def test_an_inline_board_cannot_run_live_and_says_how_to_fix(tmp_path):
    inline = tmp_path / "inline.toml"
    inline.write_text(
        '[scenario]\nname = "inline"\nduration = "5s"\n[hardware]\nschema = 1\n'
        '[hardware.board]\nname = "x"\nmodel = "X"\n[hardware.buses.uart0]\nport = "/dev/null"\nbaud = 9600\n'
        'protocol = "line"\n[hardware.components.c]\npart = "1"\n[hardware.sensors.s]\nbus = "uart0"\n'
        'component = "c"\nunit = "V"\nvalid_range = [0, 10]\nperiod_ms = 1000\n[[expect]]\nkind = "delivered"\n')
    done = _sim_run("--live", str(inline))
    assert done.returncode == 2
    assert "needs a board file" in done.stderr and "scenario.board" in done.stderr


def test_the_library_has_a_scenario_for_every_live_fault():
    kinds = set()
    for path in sc.library():
        kinds.update(f.kind for spec in sc.load_runs(path) for f in spec.faults)
    assert set(sc.LIVE_FAULTS) <= kinds, set(sc.LIVE_FAULTS) - kinds
