"""Issue 18's scenario format: repeating faults, offset/step faults, drift
from/to over a duration (linear or exponential) on any process, the daily
cycle's phase, verdicts that print compared durations exactly, and a
[matrix] expanding one file into several runs."""

import math
import os

import pytest

from edge_agent.cli import main as cli
from simulator.hardware import physics
from simulator.scenarios import expect as scenario_expect
from simulator.scenarios import spec as sc
from simulator.scenarios import virtual as scenario_run
from simulator import ROOT

BOARD = os.path.join(ROOT, "boards", "demo-gateway.toml")
HEAD = '[scenario]\nname = "x"\nboard = "%s"\nduration = "%s"\n'
TAIL = '[[expect]]\nkind = "delivered"\n'


def _write(tmp_path, body, duration, name="s.toml"):
    path = tmp_path / name
    path.write_text(HEAD % (BOARD, duration) + body + TAIL)
    return str(path)


def _spec(tmp_path, body, duration="30m"):
    return sc.load(_write(tmp_path, body, duration))


def _bad(tmp_path, capsys, body, message, duration="30m"):
    path = tmp_path / "bad.toml"
    path.write_text(HEAD % (BOARD, duration) + body + TAIL)
    assert cli.main(["sim", "run", str(path)]) == sc.EXIT_BAD_SCENARIO
    err = capsys.readouterr().err
    assert str(path) in err and message in err, err


# -- repeating faults ---------------------------------------------------------


def test_every_repeats_a_fault_from_at_until_the_end(tmp_path):
    spec = _spec(tmp_path, '[[faults]]\nkind = "broker_down"\nat = "1m"\nfor = "30s"\nevery = "7m"\n')
    assert [(f.at_ms, f.end_ms, f.occurrence) for f in spec.faults] == [
        (60000 + k * 420000, 90000 + k * 420000, k) for k in range(5)]
    assert {f.key for f in spec.faults} == {"faults[0]"}


def test_a_repeating_link_loss_is_run_each_time(tmp_path):
    spec = _spec(tmp_path, '[[faults]]\nkind = "broker_down"\nat = "1m"\nfor = "30s"\nevery = "7m"\n')
    result = scenario_run.run(spec)
    assert result.link_down == [(physics.T0 + 60000 + k * 420000, physics.T0 + 90000 + k * 420000) for k in range(5)]
    assert result.passed


def test_a_repeating_sensor_fault_hits_each_window(tmp_path):
    spec = _spec(tmp_path, '[[faults]]\nkind = "dropout"\nsensor = "fan_speed"\nat = "1m"\nfor = "10s"\n'
                           'every = "10m"\n')
    model = spec.models(1)["fan_speed"]
    for k in range(3):
        start = physics.T0 + 60000 + k * 600000
        assert model.sample(start - 1000) is not None
        assert model.sample(start) is None and model.sample(start + 9999) is None
        assert model.sample(start + 10000) is not None


@pytest.mark.parametrize("body,message", [
    ('[[faults]]\nkind = "broker_down"\nat = "1m"\nevery = "7m"\n',
     "faults[0].every: a repeating broker_down needs for (without it the first one lasts to the end); add for ="),
    ('[[faults]]\nkind = "broker_down"\nat = "1m"\nfor = "7m"\nevery = "7m"\n',
     "faults[0].every: every 7.0 min is not longer than each occurrence (7.0 min): they would overlap; make every"),
    ('[[faults]]\nkind = "power_cut"\nat = "1m"\noff = "2m"\nevery = "1m"\n',
     "faults[0].every: every 60.0 s is not longer than each occurrence (2.0 min)"),
    ('[[faults]]\nkind = "spike"\nsensor = "fan_speed"\nsize = 5.0\nat = "1m"\nevery = "100ms"\n',
     "faults[0].every: every 100 ms repeats the fault 17400 times in 30.0 min (at most 10000); choose a longer"),
    ('[[faults]]\nkind = "force"\ncomponent = "cabinet_fan"\nat = "1m"\nevery = "5m"\n',
     "faults[0].every: force cannot repeat"),
    ('[[faults]]\nkind = "broker_down"\nat = "1m"\nfor = "10s"\nevery = "weekly"\n',
     "faults[0].every: 'weekly' is not a duration"),
])
def test_bad_every_names_file_key_and_fix(tmp_path, capsys, body, message):
    _bad(tmp_path, capsys, body, message)


# -- offset / step --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["offset", "step"])
def test_an_offset_adds_its_amount_while_active(tmp_path, kind):
    body = '[sensors.cabinet_temp]\nlevel = 30.0\n[[faults]]\nkind = "%s"\nsensor = "cabinet_temp"\nat = "10m"\n' \
           'for = "5m"\nby = 6.0\n' % kind
    plain = _spec(tmp_path, body.split("[[faults]]")[0]).models(1)["cabinet_temp"]
    shifted = _spec(tmp_path, body).models(1)["cabinet_temp"]
    period = plain.period_ms
    for k in range(0, 30 * 60000 // period, 7):
        tm = physics.T0 + k * period
        a, b = plain.sample(tm).value, shifted.sample(tm).value
        inside = physics.T0 + 600000 <= tm < physics.T0 + 900000
        assert b == pytest.approx(a + (6.0 if inside else 0.0), abs=0.002), (k, a, b)


def test_an_offset_needs_by(tmp_path, capsys):
    _bad(tmp_path, capsys, '[[faults]]\nkind = "offset"\nsensor = "cabinet_temp"\nat = "1m"\n',
         "faults[0].by: missing; add by = <number>")


# -- drift ------------------------------------------------------------------------


def test_drift_amount_linear_and_exponential():
    day = physics.DAY_MS
    lin = {"from": 0.0, "to": 20.0, "over_ms": 10 * day, "shape": "linear"}
    assert physics.drift_amount(lin, 0) == 0.0
    assert physics.drift_amount(lin, 5 * day) == pytest.approx(10.0)
    assert physics.drift_amount(lin, 10 * day) == 20.0
    assert physics.drift_amount(lin, 40 * day) == 20.0  # holds the target
    exp = {"from": 2.0, "to": 22.0, "over_ms": 10 * day, "shape": "exponential", "tau_ms": 2 * day}
    assert physics.drift_amount(exp, 0) == pytest.approx(2.0)
    assert physics.drift_amount(exp, 5 * day) == pytest.approx(2.0 + 20.0 * math.expm1(2.5) / math.expm1(5.0))
    assert physics.drift_amount(exp, 10 * day) == 22.0
    # the old form: per_day, unbounded
    assert physics.drift_amount({"per_day": 0.5}, 30 * day) == 15.0


@pytest.mark.parametrize("process", ["steady", "bearing", "coolant_loop"])
def test_a_drift_applies_to_any_process(tmp_path, process):
    extra = {"steady": "level = 30.0\n", "bearing": "level = 30.0\n", "coolant_loop": "setpoint = 30.0\n"}[process]
    base = '[sensors.cabinet_temp]\nprocess = "%s"\n%s' % (process, extra)
    fault = '[[faults]]\nkind = "drift"\nsensor = "cabinet_temp"\nat = "10m"\nto = 8.0\nover = "10m"\n' \
            'shape = "exponential"\ntau = "2m"\n'
    plain = _spec(tmp_path, base).models(1)["cabinet_temp"]
    drifted = _spec(tmp_path, base + fault).models(1)["cabinet_temp"]
    period = plain.period_ms
    for k in range(0, 30 * 60000 // period, 11):
        tm = physics.T0 + k * period
        a, b = plain.sample(tm).value, drifted.sample(tm).value
        added = physics.drift_amount(drifted.faults[0].args, tm - drifted.faults[0].start) if tm >= drifted.faults[0].start else 0.0
        assert b == pytest.approx(a + added, abs=0.002), (k, a, b)
    assert drifted.sample(physics.T0 + 25 * 60000).value - plain.sample(physics.T0 + 25 * 60000).value == \
        pytest.approx(8.0, abs=0.002)


@pytest.mark.parametrize("body,message", [
    ('kind = "drift"\nsensor = "cabinet_temp"\nat = "1m"\n', "faults[0].per_day: missing: a drift needs per_day, or to and over"),
    ('kind = "drift"\nsensor = "cabinet_temp"\nat = "1m"\nto = 5.0\n', "faults[0].over: missing"),
    ('kind = "drift"\nsensor = "cabinet_temp"\nat = "1m"\nper_day = 1.0\nto = 5.0\n',
     "faults[0].to: per_day drifts without end: to belongs to the from/to form"),
    ('kind = "drift"\nsensor = "cabinet_temp"\nat = "1m"\nto = 5.0\nover = "1m"\nshape = "cubic"\n',
     "faults[0].shape: 'cubic' is not one of linear, exponential"),
    ('kind = "drift"\nsensor = "cabinet_temp"\nat = "1m"\nto = 5.0\nover = "1m"\ntau = "10s"\n',
     "faults[0].tau: only an exponential drift has a time constant"),
    ('kind = "drift"\nsensor = "cabinet_temp"\nat = "1m"\nto = 5.0\nover = "10m"\nshape = "exponential"\ntau = "1s"\n',
     "faults[0].tau: over / tau is 600: the curve is flat until the last moment"),
])
def test_bad_drift_names_file_key_and_fix(tmp_path, capsys, body, message):
    _bad(tmp_path, capsys, "[[faults]]\n" + body, message)


# -- the daily cycle's phase ----------------------------------------------------------


def test_peak_hour_moves_the_daily_peak(tmp_path):
    for peak, expected_hour in ((None, 15), (3.0, 3), (21.5, 21.5)):
        line = "" if peak is None else "peak_hour = %s\n" % peak
        spec = _spec(tmp_path, '[sensors.cabinet_temp]\nlevel = 30.0\ncycle = 5.0\nnoise = 0.0\n' + line,
                     duration="2d")
        model = spec.models(1)["cabinet_temp"]
        step = 1800000  # every 30 min through day 1
        values = [(model.sample(physics.T0 + physics.DAY_MS + k * step).value, k) for k in range(48)]
        assert max(values)[1] * 0.5 == expected_hour
    assert physics.phase_of({}) == 0.375  # the default is the old constant, bit for bit


def test_a_peak_hour_outside_the_day_is_refused(tmp_path, capsys):
    _bad(tmp_path, capsys, '[sensors.cabinet_temp]\nlevel = 30.0\npeak_hour = 25.0\n',
         "sensors.cabinet_temp.peak_hour: 25.0 is too large: must be between 0.0 and 24.0")


# -- exact values in verdicts ------------------------------------------------------------


def test_format_exact_round_trips_and_exactly_only_adds_when_rounding_hid_something():
    lead = 6 * physics.DAY_MS + 23 * physics.HOUR_MS + 16 * 60000 + 48000  # 6.97 days
    assert sc.format_exact(lead) == "6d23h16m48s"
    assert sc.exactly(lead) == "7.0 days (6d23h16m48s)"
    assert sc.exactly(7 * physics.DAY_MS) == "7.0 days"
    assert sc.exactly(10000) == "10.0 s" and sc.exactly(10050) == "10.1 s (10.05s)"
    for ms in (0, 1, 999, 1500, 60500, 605000, lead, 90 * physics.DAY_MS + 1):
        assert sc.parse_duration(sc.format_exact(ms)) == ms


class _Alert:
    kind = 1
    priority = 2

    def __init__(self, time_ms):
        self.time_ms = time_ms
        self.body = {0: "predicted_failure", 2: "bearing_temp", 10: True}


def test_a_short_lead_prints_exactly_how_short(monkeypatch):
    spec = sc.load(os.path.join(sc.LIBRARY, "bearing_wear.toml"))
    expect = spec.expects[0]
    lead = 6 * physics.DAY_MS + 23 * physics.HOUR_MS + 16 * 60000 + 48000

    class Model:
        def first_crossing(self, above=None, below=None, end_ms=None):
            return physics.T0 + 40 * physics.DAY_MS

    class Result:
        pass

    result = Result()
    result.spec = spec
    result.models = {"bearing_temp": Model()}
    result.crossings = {}
    result.end_ms = physics.T0 + spec.duration_ms
    result.delivered = [_Alert(physics.T0 + 40 * physics.DAY_MS - lead)]
    ok, evidence = scenario_expect.check_alert(expect, result)
    assert not ok
    assert "7.0 days (6d23h16m48s) ahead (needed 7.0 days, 43m12s short)" in evidence, evidence
    result.delivered = [_Alert(physics.T0 + 40 * physics.DAY_MS - 7 * physics.DAY_MS)]
    ok, evidence = scenario_expect.check_alert(expect, result)
    assert ok and "7.0 days ahead (needed 7.0 days)" in evidence, evidence


def test_a_window_includes_its_end_and_says_so(tmp_path):
    # The stuck fan is quarantined at some exact time: a window ending at
    # exactly that time passes; one ending a millisecond earlier fails and
    # prints its bounds exactly.
    stuck = os.path.join(sc.LIBRARY, "stuck_fan.toml")
    spec = sc.load(stuck)
    result = scenario_run.run(spec)
    when = next(tm for tm, comp, _, to in result.transitions if comp == "cabinet_fan" and to == "quarantined")
    expect = sc.ExpectSpec("expect[9]", "state", "q", {"component": "cabinet_fan", "state": "quarantined",
                                                        "after": 600000, "within": when - physics.T0 - 600000})
    assert scenario_expect.check_state(expect, result)[0]
    expect.args["within"] -= 1
    ok, evidence = scenario_expect.check_state(expect, result)
    assert not ok and "both included" in evidence and sc.format_exact(when - physics.T0 - 1) in evidence, evidence


# -- the report's prediction marks ------------------------------------------------------------


def _short_wear(tmp_path):
    """bearing_wear.toml compressed: wear from day 0, 12 days, the limit
    crossed inside the run."""
    text = open(os.path.join(sc.LIBRARY, "bearing_wear.toml")).read()
    text = text.replace('duration = "75d"', 'duration = "12d"').replace("wear_start_day = 10.0", "wear_start_day = 0.0")
    text = text.replace("wear_per_day = 0.5", "wear_per_day = 4.0").replace('within = "20d"', 'within = "1d"')
    path = tmp_path / "wear.toml"
    path.write_text(text)
    return sc.load(str(path))


def test_the_report_marks_crossing_prediction_intervals_and_lead(tmp_path, monkeypatch):
    from simulator.scenarios import report as scenario_report

    spec = _short_wear(tmp_path)
    result = scenario_run.run(spec)
    cross, predictions, lead = scenario_report.prediction_marks(result, "bearing_temp", 90.0)
    alerts = [s for s in result.delivered if s.kind == 1 and s.body.get(0) == "predicted_failure" and s.body.get(10)]
    assert cross == result.crossings[("bearing_temp", 90.0, False)] and result.start_ms < cross < result.end_ms
    assert len(predictions) == len(alerts) >= 1
    assert predictions[0][0] == alerts[0].time_ms and lead == cross - alerts[0].time_ms
    for when, earliest, expected, latest in predictions:
        assert earliest <= expected and (latest is None or expected <= latest)
    drawn = []
    real = scenario_report._mark_prediction

    def spy(ax, result_, sid, limit, x):
        real(ax, result_, sid, limit, x)
        drawn.append(sorted(h.get_label() for h in ax.get_legend().legend_handles))
        drawn.append([t.get_text() for t in ax.texts if t.get_text()])

    monkeypatch.setattr(scenario_report, "_mark_prediction", spy)
    png = scenario_report.write_png(result, str(tmp_path / "wear.png"))
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert drawn[0] == ["expected crossing", "first reading past the limit", "prediction interval"]
    assert drawn[1] == ["lead %s" % sc.exactly(lead)]


def test_the_alert_legend_explains_hollow_markers(tmp_path, monkeypatch):
    import matplotlib.axes
    from simulator.scenarios import report as scenario_report

    labels = []
    real = matplotlib.axes.Axes.legend

    def spy(self, *args, **kwargs):
        labels.append([h.get_label() for h in kwargs.get("handles", [])])
        return real(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "legend", spy)
    result = scenario_run.run(sc.load(os.path.join(sc.LIBRARY, "stuck_fan.toml")))
    scenario_report.write_png(result, str(tmp_path / "fan.png"))
    assert any("cleared (hollow)" in ls and "raised" in ls for ls in labels), labels


# -- readings, every on expectations, no_alert active = false -------------------------------------

SILENCE = '''[[faults]]
kind = "dropout"
sensors = ["fan_speed", "cabinet_temp"]
at = "2m"
for = "30s"
every = "10m"

[[expect]]
kind = "readings"
sensor = "fan_speed"
after = "%s"
within = "%s"
every = "10m"
'''


def test_readings_are_judged_as_the_receiver_got_them_in_every_window(tmp_path):
    # fan_speed samples every 1 s: none arrive during a silence, some
    # within 5 s of its end (nothing quarantines a 30 s silence of a fan
    # with no dropout rule on this board).
    spec = _spec(tmp_path, SILENCE % ("2m30s", "5s"))
    result = scenario_run.run(spec)
    times = result.received_readings["fan_speed"]
    assert set(result.received_readings) == {"fan_speed"}  # only what an expectation watches
    assert not [tm for tm in times if physics.T0 + 120000 <= tm < physics.T0 + 150000]
    resumed, delivered = result.outcomes
    assert resumed.passed and resumed.evidence.startswith("all 3 windows (every 10.0 min) held; first: ")
    spec = _spec(tmp_path, SILENCE % ("2m1s", "20s"))
    result = scenario_run.run(spec)
    assert not result.outcomes[0].passed
    assert result.outcomes[0].evidence.startswith("3 of 3 windows (every 10.0 min) failed; first: no reading of "
                                                  "fan_speed arrived in [t+2.0 min, t+2.4 min] (t+2m1s to t+2m21s, "
                                                  "both included); the last before at t+119.0 s (t+1m59.003s), the next after at "
                                                  "t+2.5 min (t+2m30.003s)"), result.outcomes[0].evidence


def test_no_alert_can_forbid_a_clear(tmp_path):
    class Alert(_Alert):
        def __init__(self, time_ms, active):
            _Alert.__init__(self, time_ms)
            self.body = {0: "jump", 1: "cabinet", 10: active}

    class Result:
        start_ms = physics.T0
        end_ms = physics.T0 + physics.DAY_MS
        delivered = [Alert(physics.T0 + 60000, True), Alert(physics.T0 + 120000, False)]

    expect = sc.ExpectSpec("expect[0]", "no_alert", "n", {"condition": "jump", "active": False, "after": 90000,
                                                          "within": 60000})
    ok, evidence = scenario_expect.check_no_alert(expect, Result())
    assert not ok and evidence.startswith("1 cleared: t+2.0 min jump cabinet"), evidence
    expect.args["active"] = True
    assert scenario_expect.check_no_alert(expect, Result())[0]


@pytest.mark.parametrize("body,message", [
    ('[[expect]]\nkind = "readings"\nsensor = "fan_speed"\nafter = "1m"\nevery = "5m"\n',
     "expect[0].every: a repeating window needs within"),
    ('[[expect]]\nkind = "readings"\nsensor = "fan_speed"\nafter = "1m"\nwithin = "5m"\nevery = "5m"\n',
     "expect[0].every: every 5.0 min is not longer than within (5.0 min): the windows would overlap"),
    ('[[expect]]\nkind = "readings"\nsensor = "fan_sped"\n', "expect[0].sensor: no sensor 'fan_sped' on board"),
    ('[[expect]]\nkind = "readings"\n', "expect[0].sensor: missing"),
    ('[[expect]]\nkind = "delivered"\nevery = "5m"\n', "expect[0].every: unknown key"),
])
def test_bad_repeating_expectations_name_file_key_and_fix(tmp_path, capsys, body, message):
    _bad(tmp_path, capsys, body, message)


def test_a_repeating_live_only_fault_is_named_once_when_skipped(tmp_path):
    spec = _spec(tmp_path, '[[faults]]\nkind = "latency"\nms = 50\nat = "1m"\nfor = "10s"\nevery = "5m"\n')
    assert len(spec.faults) == 6 and [f.key for f in spec.live_only()] == ["faults[0]"]


# -- [matrix]: one file, several runs ---------------------------------------------

SENSOR = '[sensors.cabinet_temp]\nlevel = 30.0\nnoise = 0.2\n'
DRIFT = '[[faults]]\nkind = "drift"\nsensor = "cabinet_temp"\nat = "10m"\nper_day = 1.0\n'


def _runs(tmp_path, body, duration="30m"):
    return sc.load_runs(_write(tmp_path, body, duration, "m.toml"))


def test_a_matrix_runs_every_combination_of_its_axes_in_order(tmp_path):
    runs = _runs(tmp_path, SENSOR + DRIFT + '[matrix]\n"sensors.cabinet_temp.noise" = [0.2, 0.5]\n'
                 'unit = [{ "scenario.seed" = 1, "faults[0].per_day" = 1.5 }, '
                 '{ "scenario.seed" = 7, "faults[0].at" = "20m" }]\n')
    assert [r.name for r in runs] == ["x (noise 0.2, seed 1, per_day 1.5)", "x (noise 0.2, seed 7, at 20m)",
                                      "x (noise 0.5, seed 1, per_day 1.5)", "x (noise 0.5, seed 7, at 20m)"]
    assert [r.stem for r in runs] == ["m-1", "m-2", "m-3", "m-4"]
    assert [r.sensors["cabinet_temp"][1]["noise"] for r in runs] == [0.2, 0.2, 0.5, 0.5]
    assert [r.seed for r in runs] == [1, 7, 1, 7]
    # A linked table sets its paths together; what it does not set keeps the file's value.
    assert [(r.faults[0].at_ms, r.faults[0].args["per_day"]) for r in runs] == [
        (600000, 1.5), (1200000, 1.0), (600000, 1.5), (1200000, 1.0)]
    assert runs[1].matrix == [("sensors.cabinet_temp.noise", 0.2), ("scenario.seed", 7), ("faults[0].at", "20m")]
    # Runs do not share the file's tables: each got its own values.
    assert runs[0].sensors["cabinet_temp"] is not runs[2].sensors["cabinet_temp"]


def test_a_named_axis_may_be_written_as_an_array_of_tables_and_a_key_may_be_new(tmp_path):
    runs = _runs(tmp_path, SENSOR + DRIFT + '[matrix]\n"scenario.shape" = ["linear"]\n'
                 '[[matrix.unit]]\n"scenario.seed" = 3\n"sensors.cabinet_temp.cycle" = 2.0\n'
                 '[[matrix.unit]]\n"scenario.seed" = 4\n"sensors.cabinet_temp.cycle" = 4.0\n')
    assert [(r.seed, r.shape, r.sensors["cabinet_temp"][1]["cycle"]) for r in runs] == [
        (3, "linear", 2.0), (4, "linear", 4.0)]
    assert runs[0].name == "x (shape linear, seed 3, cycle 2.0)"


def test_two_paths_ending_in_the_same_key_are_named_in_full(tmp_path):
    runs = _runs(tmp_path, SENSOR + DRIFT + DRIFT + '[matrix]\n"faults[0].per_day" = [1.0]\n'
                 '"faults[1].per_day" = [2.0]\n"sensors.cabinet_temp.noise" = [0.3]\n')
    assert runs[0].name == "x (faults[0].per_day 1.0, faults[1].per_day 2.0, noise 0.3)"


def test_a_file_without_a_matrix_is_one_run_and_load_wants_one(tmp_path):
    runs = _runs(tmp_path, SENSOR)
    assert len(runs) == 1 and runs[0].stem == "m" and runs[0].matrix == [] and runs[0].name == "x"
    path = tmp_path / "two.toml"
    path.write_text(HEAD % (BOARD, "30m") + '[matrix]\n"scenario.seed" = [1, 2]\n' + TAIL)
    with pytest.raises(sc.ScenarioError, match="matrix: makes 2 runs, not one; load it with spec.load_runs"):
        sc.load(str(path))


def test_sim_run_runs_and_reports_every_run_of_a_matrix(tmp_path, capsys):
    path = tmp_path / "m.toml"
    path.write_text(HEAD % (BOARD, "2m") + '[matrix]\n"scenario.seed" = [1, 2, 3]\n' + TAIL)
    junit = str(tmp_path / "junit.xml")
    assert cli.main(["sim", "run", str(path), "--junit", junit]) == sc.EXIT_OK
    out = capsys.readouterr().out
    for seed in (1, 2, 3):
        assert "x (seed %d)" % seed in out
    assert "3 scenarios, 0 failed" in out
    import xml.etree.ElementTree as ET
    assert [s.get("name") for s in ET.parse(junit).getroot().findall("testsuite")] == ["m-1", "m-2", "m-3"]


@pytest.mark.parametrize("body,message", [
    ('[matrix]\n', "matrix: is empty; add an axis"),
    ('[matrix]\n"scenario.seed" = 3\n', 'matrix."scenario.seed": must be a non-empty list, not 3; write one value per run'),
    ('[matrix]\n"scenario.seed" = []\n', 'matrix."scenario.seed": must be a non-empty list, not []'),
    ('[matrix]\nunit = [1, 2]\n', "matrix.unit[0]: must be a table of path = value, not 1"),
    ('[matrix]\nunit = [{}]\n', "matrix.unit[0]: must be a table of path = value, not {}"),
    ('[matrix]\n"scenario..seed" = [1]\n', "'scenario..seed' is not a path into the scenario; write keys joined by dots"),
    ('[matrix]\n"faults[x].at" = ["1m"]\n', "'faults[x].at' is not a path into the scenario"),
    ('[matrix]\nunit = [{ seed = 1 }]\n', 'matrix.unit[0]."seed": \'seed\' does not name one value; end the path at a key'),
    ('[matrix]\n"faults[0]" = [1]\n', "matrix.\"faults[0]\": 'faults[0]' does not name one value"),
    ('[matrix]\n"matrix.x" = [1]\n', "a matrix cannot vary itself"),
    ('[matrix]\n"sensors.fan_speed.noise" = [1.0]\n',
     'matrix."sensors.fan_speed.noise": the file has no sensors; fix the path (it goes through the file\'s tables '
     'to a key), or add [sensors.fan_speed] to the file'),
    (SENSOR + '[matrix]\n"sensors.cabinet_tmp.noise" = [1.0]\n',
     "the file has no sensors.cabinet_tmp (sensors has: cabinet_temp)"),
    (DRIFT + '[matrix]\n"faults[1].at" = ["1m"]\n', "the file has 1 [[faults]] table: no faults[1]; index them from 0"),
    ('[matrix]\n"faults[0].at" = ["1m"]\n', "the file has 0 [[faults]] tables: no faults[0]; add [[faults]] tables (indexed from 0)"),
    ('[matrix]\n"scenario.name.x" = [1]\n', "the file has no scenario.name.x; fix the path"),
    ('[matrix]\n"scenario.seed.x" = [1]\n', "the file has no scenario.seed (scenario has: board, duration, name)"),
    ('[matrix]\n"scenario.seed" = [{ a = 1 }]\n',
     'matrix."scenario.seed"[0]: a path\'s values are plain values, not tables'),
    ('[matrix]\n"scenario.seed" = [1, 2]\nunit = [{ "scenario.seed" = 3 }]\n',
     "matrix.unit: sets scenario.seed, which axis 'scenario.seed' sets too; vary each path in one axis only"),
    ('[matrix]\n"scenario.seed" = %s\n"scenario.description" = %s\n' % (list(range(40)), ["d%d" % i for i in range(30)]),
     "matrix: makes 1200 runs (at most 1000); use fewer values or axes"),
])
def test_a_bad_matrix_names_file_key_and_fix(tmp_path, capsys, body, message):
    _bad(tmp_path, capsys, body, message)


def test_a_matrix_that_is_not_a_table_is_refused(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text("matrix = 3\n" + HEAD % (BOARD, "30m") + TAIL)
    assert cli.main(["sim", "run", str(path)]) == sc.EXIT_BAD_SCENARIO
    assert "matrix: must be a table, not int; write it as [matrix]" in capsys.readouterr().err


def test_a_value_bad_in_some_runs_says_in_how_many_and_which(tmp_path, capsys):
    _bad(tmp_path, capsys, SENSOR + DRIFT + '[matrix]\n"sensors.cabinet_temp.noise" = [0.2, -1.0]\n'
         '"faults[0].at" = ["1m", "2m", "1h"]\n',
         "faults[0].at: at 60.0 min is not before the end of the run (30.0 min) (the matrix sets it; in 2 of the 6 "
         "matrix runs; the first, run 3: noise 0.2, at 1h); move it earlier")
    _bad(tmp_path, capsys, SENSOR + '[matrix]\n"sensors.cabinet_temp.noise" = [0.2, -1.0]\n',
         "sensors.cabinet_temp.noise: -1.0 is too small: must be at least 0.0 (the matrix sets it; in 1 of the 2 matrix runs; the "
         "first, run 2: noise -1.0)")
    # A misspelt key the matrix adds is the usual unknown key, in every run.
    _bad(tmp_path, capsys, SENSOR + '[matrix]\n"sensors.cabinet_temp.nosie" = [0.2, 0.4]\n',
         "sensors.cabinet_temp.nosie: unknown key (the matrix sets it); remove it or use one of")
    # And the rest of the file's problems come with the matrix's.
    _bad(tmp_path, capsys, '[matrix]\n"scenario.seed" = []\n[[faults]]\nkind = "stuck"\nsensor = "nope"\nat = "1m"\n',
         "faults[0].sensor: no sensor matches 'nope'")


def test_a_corpus_run_says_its_shape(tmp_path, capsys):
    assert _spec(tmp_path, "").shape is None
    path = tmp_path / "s.toml"
    path.write_text((HEAD % (BOARD, "30m")).replace('name = "x"', 'name = "x"\nshape = "linear"') + TAIL)
    assert sc.load(str(path)).shape == "linear"
    path.write_text((HEAD % (BOARD, "30m")).replace('name = "x"', 'name = "x"\nshape = 3') + TAIL)
    assert cli.main(["sim", "run", str(path)]) == sc.EXIT_BAD_SCENARIO
    assert "scenario.shape: must be a non-empty string, not 3" in capsys.readouterr().err
