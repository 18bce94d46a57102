"""The degradation corpus: scenario files whose runs wear out, or do not,
each saying its shape (``[scenario] shape``: "linear", "exponential", ...,
or "healthy" for a run without wear). The project's are in
simulator/scenarios/corpus/ (spec.CORPUS; docs/simulator.md, "The
corpus"); anyone can write more, one [matrix] file expanding into many runs.

``load(paths)`` reads files (or folders of them) into CorpusRuns, refusing
what the prediction benchmark cannot measure with the same file/key/fix
problems as the rest of the format. ``run()`` plays one run through the
real pipeline on the virtual clock (virtual.py, as `edge-agent sim run`
does: the core Device with its health engine and predictor, the store,
signing, and the receiver, whose verified alerts are the ones judged) and
measures what the predictor did, feeding the same good readings to a peer
predictor (bench/peer_predict.py) in the same pass. bench/bench_prediction.py
runs the whole corpus; tests/simulator/test_degradation.py a slice.
"""

import copy
import os

from edge_agent.core import board as bd
from edge_agent.core import signals as sg
from ..hardware import physics
from . import spec as sc
from . import virtual

HEALTHY = "healthy"  # the shape of a run without wear: every alert in it is a false alarm
DAY_MS = physics.DAY_MS
T0 = physics.T0


class CorpusRun:
    """One run of a corpus file: its Spec and the predicted sensor it is about."""

    def __init__(self, spec, sensor):
        self.spec = spec
        self.name = spec.name
        self.shape = spec.shape
        self.sensor = sensor.id
        predict = sensor.predict
        self.direction = "above" if predict.above is not None else "below"
        self.limit = predict.above if predict.above is not None else predict.below
        self.horizon_ms = predict.horizon_ms
        self.history_days = predict.history_days
        self.days = spec.duration_ms / DAY_MS

    @property
    def healthy(self):
        return self.shape == HEALTHY


def files(paths):
    """The .toml files named by ``paths``: files as given, folders' .toml files sorted."""
    out = []
    for path in paths:
        if os.path.isdir(path):
            out.extend(sc.toml_files(path))
        else:
            out.append(path)
    return out


def load(paths=None):
    """CorpusRuns from files or folders (default: the project's corpus).
    Raises a list of ScenarioErrors (every bad file, each with every problem)."""
    runs = []
    errors = []
    for path in files(paths or [sc.CORPUS]):
        try:
            specs = sc.load_runs(path)
        except sc.ScenarioError as exc:
            errors.append(exc)
            continue
        problems = []
        for spec in specs:
            for p in _problems(spec):
                if p.describe() not in [q.describe() for q in problems]:
                    problems.append(p)
            if not problems:
                runs.append(CorpusRun(spec, _predicted(spec)[0]))
        if problems:
            errors.append(sc.ScenarioError(path, problems))
    if errors:
        raise CorpusError(errors)
    return runs


class CorpusError(ValueError):
    def __init__(self, errors):
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


def _predicted(spec):
    return [s for _, s in sorted(spec.board.sensors.items()) if s.predict is not None]


def _problems(spec):
    """What the bench needs of a run beyond a valid scenario: a shape, one
    predicted sensor, a virtual run, and the expectations that let `sim run`
    judge it alone (the lead on a wear run, no prediction on a healthy one)."""
    problems = []
    if not spec.shape:
        problems.append(bd.Problem("scenario.shape", "missing: the benchmark groups runs by it",
                                   'add shape = "linear" (or "exponential", "knee", "step", any word for a wear '
                                   'curve; "healthy" for a run without wear)'))
    predicted = _predicted(spec)
    if len(predicted) != 1:
        problems.append(bd.Problem("hardware.sensors", "%d sensors have a [predict] limit (%s); a corpus run needs "
                                   "exactly one" % (len(predicted), ", ".join(s.id for s in predicted) or "none"),
                                   "give the sensor whose wear the run is about a [predict] table, and only it"))
    if spec.live_only():
        problems.append(bd.Problem(spec.live_only()[0].key, "a live-only fault: the benchmark runs on the virtual clock",
                                   "drop it from a corpus file"))
    if problems or not spec.shape:
        return problems
    sensor = predicted[0].id
    if spec.shape == HEALTHY:
        if not [e for e in spec.expects if e.kind == "no_alert" and e.args.get("condition") == sg.C_PREDICTED
                and not e.args.get("after") and e.args.get("within") is None and e.args.get("active", True)]:
            problems.append(bd.Problem("expect", "a healthy run without a no_alert on predicted_failure for the "
                                       "whole run", 'add [[expect]] kind = "no_alert", condition = '
                                       '"predicted_failure" (so `edge-agent sim run` judges it alone)'))
    elif not [e for e in spec.expects if e.kind == "alert" and e.args.get("lead_ms") is not None
              and e.args.get("condition") == sg.C_PREDICTED and e.args.get("sensor") == sensor]:
        problems.append(bd.Problem("expect", "a %s run without a predicted_failure alert's lead_before_threshold "
                                   "on %s" % (spec.shape, sensor),
                                   'add [[expect]] kind = "alert", condition = "predicted_failure", sensor = "%s", '
                                   'lead_before_threshold = "7d" (so `edge-agent sim run` judges it alone)' % sensor))
    return problems


class Outcome:
    """What one predictor did on one run."""

    def __init__(self, run, crossing_ms, raises):
        self.run = run
        self.crossing_ms = crossing_ms  # first reading past the limit, or None
        self.raises = raises  # [(time_ms, crossing_ms, earliest_ms, latest_ms or None)] of every raise

    def first_raise(self):
        return self.raises[0] if self.raises else None

    def lead_days(self):
        """Days from the first raise to the first reading past the limit
        (0 when no raise came before it)."""
        first = self.first_raise()
        if self.crossing_ms is None or first is None or first[0] > self.crossing_ms:
            return 0.0
        return (self.crossing_ms - first[0]) / DAY_MS

    def covered(self):
        """Whether the first raise's [earliest, latest] holds the first
        reading past the limit (a latest of None: open-ended)."""
        first = self.first_raise()
        if first is None or self.crossing_ms is None or first[0] > self.crossing_ms:
            return False
        return first[2] <= self.crossing_ms and (first[3] is None or self.crossing_ms <= first[3])

    def false_alarms(self):
        """Raises before any reading crossed (all of them on a healthy run)."""
        return len([r for r in self.raises if self.crossing_ms is None or r[0] < self.crossing_ms])


def run(corpus_run, peer_factory=None, after_days=1.0, days=None):
    """Play one run; returns (ours, peer, result): Outcomes (peer None
    without a factory) and the virtual Result (its expectations judged on
    the run as played). The crossing is the first reading past the limit
    the device got. A wear run stops ``after_days`` after it (found first
    on a fresh model, as `lead_before_threshold` finds it: nothing after it
    counts); ``days`` cuts any run shorter (a test's slice)."""
    spec = copy.copy(corpus_run.spec)
    spec.duration_ms = spec.duration_ms if days is None else min(spec.duration_ms, int(days * DAY_MS))
    if not corpus_run.healthy:
        model = spec.models(spec.seed)[corpus_run.sensor]
        below = corpus_run.direction == "below"
        ahead = model.first_crossing(above=None if below else corpus_run.limit,
                                     below=corpus_run.limit if below else None, end_ms=T0 + spec.duration_ms)
        if ahead is not None:
            spec.duration_ms = min(spec.duration_ms, ahead - T0 + int(after_days * DAY_MS))
    result = virtual.run(spec, record=True)
    times, values = result.readings[corpus_run.sensor]
    crossing = None
    for t, v in zip(times, values):
        if v is not None and (v > corpus_run.limit if corpus_run.direction == "above" else v < corpus_run.limit):
            crossing = t
            break
    ours = []
    for s in result.delivered:
        b = s.body
        if s.kind == sg.KIND_ALERT and b.get(sg.A_CONDITION) == sg.C_PREDICTED and b.get(sg.A_ACTIVE) \
                and b.get(sg.A_SENSOR) == corpus_run.sensor:
            p = b[sg.A_PREDICTION]
            ours.append((s.time_ms, p[sg.P_CROSSING], p[sg.P_EARLIEST], p[sg.P_LATEST]))
    ours.sort(key=lambda r: r[0])  # in device time (a backlog drains alerts first, not in time order)
    peer = None
    if peer_factory is not None:
        predictor = peer_factory(corpus_run.limit, corpus_run.direction, corpus_run.horizon_ms,
                                 corpus_run.history_days)
        raises = []
        for t, v in zip(times, values):
            if v is not None and predictor.add(t, v) == "raise":
                f = predictor.last
                raises.append((t, f.crossing_ms, f.early_ms, f.late_ms))
        peer = Outcome(corpus_run, crossing, raises)
    return Outcome(corpus_run, crossing, ours), peer, result
