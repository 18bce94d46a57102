"""Scenario runs are tests: the fast part of the library (simulator/
scenarios/, `fast = true`) through the real pipeline on a virtual clock,
plus the runner's own contract: it can fail, it refuses bad files with
file/key/fix, it is deterministic, it is fast, its reports are valid.
`make scenarios` runs the whole library."""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from edge_agent.cli import main as cli
from simulator.hardware import physics
from simulator.scenarios import spec as sc
from simulator.scenarios import virtual as scenario_run
from simulator import ROOT

STUCK_FAN = os.path.join(sc.LIBRARY, "stuck_fan.toml")


def _ids(paths):
    return [os.path.basename(p)[:-5] for p in paths]


FAST = sc.library(fast_only=True)


def test_library_covers_every_fault_and_has_fast_ones():
    kinds = set()
    for path in sc.library():
        kinds.update(f.kind for spec in sc.load_runs(path) for f in spec.faults)
    assert {"stuck", "drift", "spike", "dropout", "sensor_fault", "cooling_loss", "broker_down", "power_cut",
            "disk_full"} <= kinds
    assert len(FAST) >= 5


@pytest.mark.parametrize("path", FAST, ids=_ids(FAST))
def test_fast_scenario_passes(path):
    for spec in sc.load_runs(path):  # a [matrix] file: each of its fast runs
        if not spec.fast:
            continue
        result = scenario_run.run(spec)
        failed = ["%s: %s" % (o.name, o.evidence) for o in result.outcomes if not o.passed]
        assert not failed, "\n".join(failed)
        assert result.readings_count > 0 and result.messages > 0


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _stuck_fan_with(tmp_path, extra):
    text = open(STUCK_FAN).read().replace('board = "boards/demo-gateway.toml"',
                                         'board = "%s"' % os.path.join(ROOT, "boards", "demo-gateway.toml"))
    return _write(tmp_path, "variant.toml", text + extra)


def test_a_wrong_expectation_fails_with_exit_1_and_says_why(tmp_path, capsys):
    # The fan is quarantined ~11 s after it sticks: demanding 5 s must fail,
    # and so must a page budget of zero.
    path = _stuck_fan_with(tmp_path, '\n[[expect]]\nkind = "state"\ncomponent = "cabinet_fan"\nstate = "quarantined"\n'
                                     'after = "10m"\nwithin = "5s"\n\n[[expect]]\nkind = "pages_at_most"\ncount = 0\n')
    junit = str(tmp_path / "junit.xml")
    assert cli.main(["sim", "run", path, "--junit", junit]) == sc.EXIT_FAILED
    out = capsys.readouterr().out
    assert "FAIL cabinet_fan becomes quarantined: cabinet_fan never entered quarantined in [t+10.0 min, t+10.1 min]" in out
    assert "quarantined at t+10.2 min" not in out.split("FAIL cabinet_fan")[1].split("\n")[0]
    assert "FAIL at most 0 pages: 1 page in the run (at most 0): t+10.2 min stuck cabinet_fan fan_speed" in out
    root = ET.parse(junit).getroot()
    suite = root.find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("9", "2")
    failures = [c for c in suite.iter("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failures] == ["cabinet_fan becomes quarantined", "at most 0 pages"]
    assert "expect[7]" in failures[0].find("failure").text


BAD = [
    ("unknown key", '[scenario]\nname = "x"\nboard = "boards/demo-gateway.toml"\nduration = "1m"\ncolour = "red"\n'
                    '[[expect]]\nkind = "delivered"\n',
     "scenario.colour: unknown key; remove it or use one of"),
    ("bad duration", '[scenario]\nname = "x"\nboard = "boards/demo-gateway.toml"\nduration = "ten minutes"\n'
                     '[[expect]]\nkind = "delivered"\n',
     "scenario.duration: 'ten minutes' is not a duration; write e.g. \"90s\""),
    ("unknown sensor", '[scenario]\nname = "x"\nboard = "boards/demo-gateway.toml"\nduration = "1m"\n'
                       '[[faults]]\nkind = "stuck"\nsensor = "fan_sped"\nat = "10s"\n[[expect]]\nkind = "delivered"\n',
     "faults[0].sensor: no sensor matches 'fan_sped' on board demo-gateway; use one of: cabinet_temp"),
    ("no expectations", '[scenario]\nname = "x"\nboard = "boards/demo-gateway.toml"\nduration = "1m"\n',
     "expect: no expectations; add at least one [[expect]] table"),
    ("fault after the end", '[scenario]\nname = "x"\nboard = "boards/demo-gateway.toml"\nduration = "1m"\n'
                            '[[faults]]\nkind = "broker_down"\nat = "2m"\n[[expect]]\nkind = "delivered"\n',
     "faults[0].at: at 2.0 min is not before the end of the run (60.0 s); move it earlier"),
    ("bad state", '[scenario]\nname = "x"\nboard = "boards/demo-gateway.toml"\nduration = "1m"\n'
                  '[[expect]]\nkind = "state"\ncomponent = "cabinet_fan"\nstate = "broken"\n',
     "expect[0].state: 'broken' is not one of ok, suspect"),
    ("bad inline board", '[scenario]\nname = "x"\nduration = "1m"\n[hardware]\nschema = 1\n'
                         '[[expect]]\nkind = "delivered"\n',
     "hardware.board: missing table"),
    ("not toml", '[scenario\n', "not valid TOML"),
]


@pytest.mark.parametrize("name,text,message", BAD, ids=[b[0] for b in BAD])
def test_a_bad_scenario_file_exits_2_naming_file_key_and_fix(tmp_path, capsys, name, text, message):
    path = _write(tmp_path, "bad.toml", text)
    assert cli.main(["sim", "run", path]) == sc.EXIT_BAD_SCENARIO
    err = capsys.readouterr().err
    assert path in err and message in err, err


def test_durations():
    assert sc.parse_duration("90s") == 90000
    assert sc.parse_duration("1h30m") == 5400000
    assert sc.parse_duration("30d") == 30 * physics.DAY_MS
    assert sc.parse_duration("500ms") == 500
    assert sc.parse_duration("1.5h") == 5400000
    for bad in ("", "10", "m", "10 m", "10x", "h1", 10):
        assert sc.parse_duration(bad) is None, bad


def _digest_in_subprocess(path, seed, hashseed, tmp_path):
    junit = str(tmp_path / ("j-%d-%s.xml" % (seed, hashseed)))
    env = dict(os.environ, PYTHONHASHSEED=str(hashseed))
    proc = subprocess.run([sys.executable, "-m", "edge_agent", "sim", "run", path, "--seed", str(seed), "--quiet",
                           "--junit", junit], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    props = ET.parse(junit).getroot().find("testsuite").find("properties")
    return dict((p.get("name"), p.get("value")) for p in props)["signal_log_sha256"]


def test_same_seed_same_signal_log_bytes_different_seed_different(tmp_path):
    # Two processes with different hash seeds: nothing may depend on set or
    # dict ordering of strings, on a clock or on os.urandom.
    path = os.path.join(sc.LIBRARY, "power_cut.toml")
    first = _digest_in_subprocess(path, 4, 1, tmp_path)
    again = _digest_in_subprocess(path, 4, 2, tmp_path)
    assert first == again and len(first) == 64
    spec = sc.load(path)
    assert scenario_run.run(spec, seed=4).digest == first  # and in this process
    assert scenario_run.run(spec, seed=5).digest != first


def test_thirty_simulated_days_run_in_well_under_a_minute():
    spec = sc.load(os.path.join(sc.LIBRARY, "healthy_daily_cycle.toml"))
    spec.duration_ms = 30 * physics.DAY_MS
    result = scenario_run.run(spec)
    print("30 simulated days in %.1f s wall: %.0f simulated s per wall s (%d readings, %d signals sealed, "
          "verified and stored)" % (result.wall_s, result.speed, result.readings_count, len(result.issued)))
    assert result.passed, [o.evidence for o in result.outcomes]
    assert result.wall_s < 30, result.wall_s
    assert len(result.issued) > 4000  # the work really happened: a telemetry signal every 10 min


def test_junit_and_png_reports(tmp_path, capsys):
    good = STUCK_FAN
    bad = _stuck_fan_with(tmp_path, '\n[[expect]]\nkind = "no_alert"\ncondition = "stuck"\n')
    junit = str(tmp_path / "out" / "junit.xml")
    png = str(tmp_path / "out" / "report.png")
    assert cli.main(["sim", "run", good, bad, "--junit", junit, "--report", png, "--quiet"]) == sc.EXIT_FAILED
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites" and (root.get("tests"), root.get("failures")) == ("15", "1")
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["stuck_fan", "variant"]
    assert [s.get("failures") for s in suites] == ["0", "1"]
    assert all(len(s.findall("testcase")) == int(s.get("tests")) for s in suites)
    for stem in ("stuck_fan", "variant"):
        path = str(tmp_path / "out" / ("report-%s.png" % stem))
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        assert 10000 < os.path.getsize(path) < 400000
    out = capsys.readouterr().out
    assert "FAIL no alert stuck: 1 raised: t+10.2 min stuck cabinet_fan fan_speed" in out
    assert "PASS" not in out  # --quiet: only failures, under the name of the run that failed
    assert out.count("stuck fan quarantined and released after repair") == 1
    assert out.index("stuck fan quarantined and released after repair") < out.index("FAIL no alert stuck")
    props = [dict((p.get("name"), p.get("value")) for p in s.find("properties")) for s in suites]
    assert [p["name"] for p in props] == ["stuck fan quarantined and released after repair"] * 2


def test_power_cut_really_loses_unsynced_data_and_the_receiver_calls_it_skipped():
    """The second cut in power_cut.toml falls right after a telemetry batch,
    inside the group-commit window: that batch is gone from the disk, and
    its seq lies in the range the receiver files as skipped at the restart
    (below the new birth), not lost."""
    result = scenario_run.run(sc.load(os.path.join(sc.LIBRARY, "power_cut.toml")))
    assert len(result.boots) == 3
    issued = set(seq for seq, _, _, _ in result.issued)
    never = sorted(issued - result.delivered_seqs)
    assert never, "the cut inside the commit window should lose the unsynced batch"
    assert not result.receiver_lost
    skipped = [seq for first, last in result.receiver_skipped for seq in range(first, last + 1)]
    assert set(never) <= set(skipped)
    assert result.passed
