"""Fleet mode end to end (simulator/fleet/run.py): 50 devices, each the real
agent composition (core Device, durable store, uplink with TLS, signed
downlink), in one process against a real mosquitto that is restarted under
them and the reference receiver process. The run's own expectations are
the assertions: every signal verified and stored (0 lost), every device
back after the restart, a fleet incident for the common fault, and the
signed advisory applied by every device of the model and by no other.

Plus what must fail: a fleet whose expectation does not hold exits 1, and a
bad fleet file exits 2 with every problem listed, before anything runs.
"""

import json
import os
import subprocess
import sys

import pytest

from simulator.fleet import spec as fleet_spec
from simulator.scenarios import spec as sc
from simulator import ROOT

FLEET_50 = os.path.join(ROOT, "simulator", "scenarios", "fleet", "fleet_50.toml")


def sim_fleet(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "edge_agent", "sim", "fleet", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_fleet_of_50_delivers_everything_escalates_and_advises(tmp_path):
    figures = tmp_path / "fleet.json"
    run = sim_fleet(FLEET_50, "--quiet", "--json", str(figures), "--workdir", str(tmp_path / "work"))
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(figures.read_text())
    assert result["devices"] == 50 and result["passed"]
    assert result["issued"] > 50 * 3 and result["stored"] == result["issued"] and result["lost"] == 0
    assert result["rejected"] == 0
    assert result["storm_back"] == 50
    assert result["storm_peak_broker"] >= 1 and sum(result["storm_per_second"]) >= 50
    assert result["incidents"] == 1
    assert result["advisory"]["EA-FLEET-1"]["applied"] == 25
    assert result["advisory"]["EA-FLEET-2"]["applied"] == 0
    assert "PASS advisory applied by every EA-FLEET-1 device" in run.stdout
    # The receiver's own report shows the incident from its database.
    report = subprocess.run([sys.executable, "-m", "edge_agent", "receiver", "report", "--db",
                             str(tmp_path / "work" / "receiver.sqlite"), "--fail-on-gaps"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, env=dict(os.environ, COLUMNS="200"))
    assert report.returncode == 0, report.stdout + report.stderr
    assert "fleet incidents" in report.stdout and "stuck on cabinet_fan" in report.stdout
    assert "25 of 25" in report.stdout


def test_a_fleet_whose_expectation_fails_exits_1(tmp_path):
    # Four devices, no faulty ones: an incident cannot happen, so the run must fail.
    text = open(FLEET_50).read()
    text = text.replace("count = 50", "count = 4").replace('duration = "24s"', 'duration = "4s"')
    text = text.replace("faulty = 8", "faulty = 0").replace('ramp = "2s"', 'ramp = "0s"')
    start = text.index('[[faults]]\nkind = "broker_down"')
    end = text.index("\n[fleet]\n") + 1
    text = text[:start] + text[end:]
    text = text[:text.index("[[expect]]")] + '[[expect]]\nkind = "delivered"\n\n[[expect]]\nkind = "incident"\n'
    path = tmp_path / "fleet_4.toml"
    path.write_text(text)
    run = sim_fleet(str(path), "--quiet", timeout=90)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "PASS delivered" in run.stdout
    assert "FAIL fleet incident" in run.stdout and "no such incident" in run.stdout
    assert "work directory kept" in run.stdout


def test_a_bad_fleet_file_exits_2_listing_every_problem(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(open(FLEET_50).read().replace("count = 50", "count = 0").replace(
        'faulty_model = "EA-FLEET-1"', 'faulty_model = "EA-NOPE"').replace(
        'kind = "advisory"', 'kind = "advisory"\nwhen = "now"'))
    run = sim_fleet(str(path), timeout=60)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "fleet.count: must be at least 1" in run.stderr
    assert "fleet.faulty_model: 'EA-NOPE' is not one of the fleet's models" in run.stderr
    assert "expect[3].when: unknown key" in run.stderr


def _fleet_dict():
    import tomllib

    with open(FLEET_50, "rb") as f:
        return tomllib.load(f)


def test_fleet_file_validation():
    spec = fleet_spec.load(FLEET_50)
    assert spec.count == 50 and spec.models == ["EA-FLEET-1", "EA-FLEET-2"]
    assert spec.faulty_ids() == ["fleet-%03d" % i for i in (1, 3, 5, 7, 9, 11, 13, 15)]
    assert spec.outages() == [(5000, 8000)]
    assert [spec.algorithm_of(i) for i in range(4)] == ["EdDSA", "EdDSA", "EdDSA", "HMAC256"]

    data = _fleet_dict()
    del data["fleet"]
    data["faults"].append({"kind": "power_cut", "at": "3s"})
    data["expect"] = [{"kind": "storm"}, {"kind": "bogus"}]
    with pytest.raises(sc.ScenarioError) as info:
        fleet_spec.from_dict(data, "x.toml")
    text = str(info.value)
    assert "fleet: missing table" in text
    assert "faults[2].kind: power_cut is not a fleet fault" in text
    assert "expect[0]: no bound" in text
    assert "expect[1].kind: 'bogus' is not one of" in text

    data = _fleet_dict()
    data["fleet"]["faulty"] = 40  # only 25 devices are EA-FLEET-1
    data["sensors"]["fan_speed"]["process"] = "warp"  # the scenario half's own checks still apply
    with pytest.raises(sc.ScenarioError) as info:
        fleet_spec.from_dict(data, "x.toml")
    assert "fleet.faulty: 40 faulty devices but only 25 of model EA-FLEET-1" in str(info.value)
    assert "sensors.fan_speed.process" in str(info.value)


def test_broker_log_connects_are_counted_per_second(tmp_path):
    from simulator.fleet.broker import FleetBroker, per_second

    broker = FleetBroker(str(tmp_path))
    os.makedirs(tmp_path, exist_ok=True)
    with open(broker.log_path, "w") as f:
        f.write("2026-01-01T00:00:01: New client connected from 127.0.0.1:1 as ea-fleet-001 (p2, c0, k30).\n"
                "2026-01-01T00:00:01: New client connected from 127.0.0.1:2 as ea-fleet-002 (p2, c0, k30).\n"
                "2026-01-01T00:00:01: New client connected from 127.0.0.1:3 as fleet-receiver (p5, c0, k5).\n"
                "2026-01-01T00:00:03: New client connected from 127.0.0.1:4 as ea-fleet-003 (p2, c0, k30).\n"
                "2026-01-01T00:00:03: Client ea-fleet-003 closed its connection.\n")
    connects = broker.connects("ea-fleet-")
    assert [c for _, c in connects] == ["ea-fleet-001", "ea-fleet-002", "ea-fleet-003"]
    counts = per_second([t for t, _ in connects])
    assert sorted(counts.values()) == [1, 2] and max(counts) - min(counts) == 2
    assert "max_connections -1" in broker._config() and "autosave_on_changes" not in broker._config()


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10, 10_000), st.floats(allow_nan=True),
                    st.text(max_size=6), st.sampled_from(["2s", "0s", "EA-FLEET-1", "EA-FLEET-2", "mixed", "1h30m"]),
                    st.lists(st.sampled_from(["EA-FLEET-1", "EA-X", "", 3]), max_size=3),
                    st.dictionaries(st.sampled_from(["k", "fraction", "window", "x"]),
                                    st.one_of(st.integers(-2, 50), st.floats(), st.text(max_size=4)), max_size=3))


@settings(max_examples=150, deadline=None)
@given(fleet=st.dictionaries(st.sampled_from(list(fleet_spec.FLEET_KEYS) + ["bogus"]), _VALUES, max_size=6),
       expects=st.lists(st.dictionaries(st.sampled_from(["kind", "within", "model", "lost", "max_peak", "name"]),
                                        st.one_of(_VALUES, st.sampled_from(sorted(fleet_spec.EXPECT_KEYS)))),
                        max_size=3))
def test_fleet_file_parser_takes_anything_and_only_says_what_is_wrong(fleet, expects):
    data = _fleet_dict()
    data["fleet"] = fleet
    data["expect"] = expects
    try:
        spec = fleet_spec.from_dict(data, "prop.toml")
    except sc.ScenarioError as exc:
        assert exc.problems and all(p.reason and p.fix for p in exc.problems)
        return
    assert 1 <= spec.count <= fleet_spec.MAX_DEVICES and spec.expects
    assert len(spec.faulty_ids()) == spec.faulty
