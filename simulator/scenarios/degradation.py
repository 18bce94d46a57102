"""The degradation corpus: generated sensor streams that wear out (or do not)
through the real core (Device, health engine, predictor, triage) on a
virtual clock, as simulator/scenarios/health.py does; the prediction
benchmark (bench/bench_prediction.py) and tests/simulator/test_degradation.py
run it.

Degradation runs (``degradation_runs()``, 32): four shapes, each under two
noise levels, two daily cycles and two seeds:

- ``linear``: a bearing's temperature, 50 degC, rising steadily from day 10
  toward a 90 degC limit;
- ``exponential``: a bearing's vibration (mm/s RMS), 2.0 with a load cycle,
  its excess growing exponentially (wear feeds wear) toward 7.1 mm/s (the
  ISO 10816 zone C/D boundary for a medium machine);
- ``knee``: flat for weeks, then a steep straight rise (a seal starts to
  leak);
- ``step``: a step up (a repair that left a misalignment), then a slow drift.

Healthy runs (``healthy_runs()``, 20, a year each): daily cycles, load sags
toward a lower limit (a 24 V supply, limit 21.6 V), and maintenance spikes
that reach within a few percent of the limit for half an hour, a few times
a year; no wear.

Every run also feeds the same good readings to a *peer* predictor (by
default bench/peer_predict.py: the linear predictor before issue 18), so one
pass gives both sides' figures.
"""

import math
import random

from edge_agent.core import board as bd
from edge_agent.core import signals as sg
from simulator.scenarios.health import DAY_MS, T0, Scenario, SensorModel

PERIOD_MS = 600000  # a reading every 10 minutes: a year is 52,560 readings


class Run:
    """One corpus run: a sensor model's recipe, its limit and how long."""

    def __init__(self, name, shape, seed, level, limit, direction, days, cycle, noise, weather=0.0, spikes=(),
                 valid_range=(-50.0, 200.0), unit="degC"):
        self.name = name
        self.shape = shape
        self.seed = seed
        self.level = level
        self.limit = limit
        self.direction = direction
        self.days = days
        self.cycle = cycle
        self.noise = noise
        self.weather = weather
        self.spikes = spikes  # ((day, value, minutes), ...)
        self.valid_range = valid_range
        self.unit = unit

    def model(self):
        m = SensorModel("s", PERIOD_MS, self.level, cycle=self.cycle, noise=self.noise, weather=self.weather,
                        seed=self.seed)
        for day, value, minutes in self.spikes:
            start = T0 + int(day * DAY_MS)
            m.fail("rail", start, start + minutes * 60000, value)
        return m

    def board(self, horizon_days=7, history_days=14):
        predict = {self.direction: self.limit, "horizon_days": horizon_days, "history_days": history_days}
        return bd.board_from_dict({
            "schema": 1,
            "board": {"name": "corpus", "model": "EA-CORPUS"},
            "buses": {"uart0": {"port": "/dev/null"}},
            "components": {"part": {"part": "P-1"}},
            "sensors": {"s": {"bus": "uart0", "component": "part", "unit": self.unit,
                              "valid_range": list(self.valid_range), "period_ms": PERIOD_MS, "predict": predict}},
        }, "corpus")


class _Tap:
    """Wraps a SensorModel: records the first reading over the limit and
    feeds every good reading to the peer predictor too."""

    def __init__(self, model, run, peer):
        self.model = model
        self.id = model.id
        self.period_ms = model.period_ms
        self.power_output = ""
        self.run = run
        self.peer = peer
        self.crossing_ms = None
        self.peer_changes = []  # (time_ms, "raise"/"clear", forecast)

    def sample(self, t_ms):
        reading = self.model.sample(t_ms)
        if reading is None or reading.value is None:
            return reading
        v = reading.value
        over = v > self.run.limit if self.run.direction == "above" else v < self.run.limit
        if over and self.crossing_ms is None:
            self.crossing_ms = t_ms
        if self.peer is not None:
            change = self.peer.add(t_ms, v)
            if change:
                self.peer_changes.append((t_ms, change, self.peer.last))
        return reading


class Outcome:
    """What one predictor did on one run."""

    def __init__(self, run, crossing_ms, raises):
        self.run = run
        self.crossing_ms = crossing_ms  # first reading over the limit, or None
        self.raises = raises  # [(time_ms, crossing_ms, early_ms, late_ms)] of every raise

    def first_raise(self):
        """The first raise before the crossing (or the first at all)."""
        return self.raises[0] if self.raises else None

    def lead_days(self):
        """Days from the first raise to the first reading over the limit
        (0 when no raise came before the crossing)."""
        first = self.first_raise()
        if self.crossing_ms is None or first is None or first[0] > self.crossing_ms:
            return 0.0
        return (self.crossing_ms - first[0]) / DAY_MS

    def covered(self):
        """Whether the first raise's [earliest, latest] holds the crossing."""
        first = self.first_raise()
        if first is None or self.crossing_ms is None or first[0] > self.crossing_ms:
            return False
        return first[2] <= self.crossing_ms <= first[3]

    def false_alarms(self):
        """Raises before any reading crossed (all of them on a healthy run)."""
        return len([r for r in self.raises if self.crossing_ms is None or r[0] < self.crossing_ms])


def run(spec, peer_factory=None, horizon_days=7, history_days=14, after_days=1.0):
    """Run one corpus entry through a Device. Returns (ours, peer) Outcomes
    (peer None without a factory). A degradation run stops ``after_days``
    after its first crossing."""
    board = spec.board(horizon_days, history_days)
    peer = None
    if peer_factory is not None:
        peer = peer_factory(spec.limit, spec.direction, horizon_days * DAY_MS, history_days)
    tap = _Tap(spec.model(), spec, peer)
    scenario = Scenario(board, [tap], device_id="corpus", telemetry_interval_ms=3600000)
    end = T0 + spec.days * DAY_MS
    t = T0
    while t < end:
        t = min(end, t + 5 * DAY_MS)
        scenario.run_until(t)
        scenario.signals = [s for s in scenario.signals if s.kind == sg.KIND_ALERT]  # keep the memory flat
        if tap.crossing_ms is not None and t >= tap.crossing_ms + after_days * DAY_MS:
            break
    ours = []
    for alert in scenario.alerts(sg.C_PREDICTED, active=True):
        p = alert.body[sg.A_PREDICTION]
        ours.append((alert.time_ms, p[sg.P_CROSSING], p[sg.P_EARLIEST], p[sg.P_LATEST]))
    theirs = None
    if peer is not None:
        theirs = Outcome(spec, tap.crossing_ms, [(t, f.crossing_ms, f.early_ms, f.late_ms)
                                                 for t, change, f in tap.peer_changes if change == "raise"])
    return Outcome(spec, tap.crossing_ms, ours), theirs


# -- the corpus ------------------------------------------------------------------

NOISES = ((0.4, "low noise"), (1.0, "high noise"))  # in degC; vibration uses a tenth
CYCLES = ((2.0, "small cycle"), (6.0, "large cycle"))
SEEDS = (1, 2)


def _linear(start, per_day, base):
    def level(day):
        return base + (per_day * (day - start) if day > start else 0.0)
    return level


def _exponential(start, amp, rate, base):
    def level(day):
        return base + (amp * (math.exp(rate * (day - start)) - 1.0) if day > start else 0.0)
    return level


def _step(at, size, per_day, base):
    def level(day):
        return base + ((size + per_day * (day - at)) if day > at else 0.0)
    return level


def degradation_runs(seeds=SEEDS):
    """>= 30 runs: 4 shapes x 2 noises x 2 cycles x len(seeds)."""
    runs = []
    for noise, noise_name in NOISES:
        for cycle, cycle_name in CYCLES:
            for seed in seeds:
                rng = random.Random(seed * 1000 + int(noise * 10) + int(cycle))
                tag = "%s, %s, seed %d" % (noise_name, cycle_name, seed)
                # Linear: 0.6-0.9 degC/day from day 10: crosses ~day 45-70.
                runs.append(Run("linear, " + tag, "linear", seed, _linear(10.0, rng.uniform(0.6, 0.9), 50.0),
                                90.0, "above", 120, cycle, noise))
                # Exponential vibration: excess doubles every ~7-10 days.
                runs.append(Run("exponential, " + tag, "exponential", seed,
                                _exponential(5.0, 0.05, rng.uniform(0.07, 0.1), 2.0), 7.1, "above", 120,
                                cycle * 0.05, noise * 0.1, valid_range=(0.0, 50.0), unit="mm/s"))
                # Knee: flat 30-40 days, then 1.2-1.8 degC/day.
                knee = _linear(rng.uniform(30.0, 40.0), rng.uniform(1.2, 1.8), 50.0)
                runs.append(Run("knee, " + tag, "knee", seed, knee, 90.0, "above", 120, cycle, noise))
                # Step then drift: +8 degC on day 20, then 0.5-0.7 degC/day.
                runs.append(Run("step, " + tag, "step", seed, _step(20.0, 8.0, rng.uniform(0.5, 0.7), 50.0),
                                90.0, "above", 120, cycle, noise))
    return runs


def healthy_runs(count=20, days=365):
    """A year each, no wear: half bearing temperatures under an upper limit
    (daily cycle, weather, maintenance spikes to within 3 degC of 90), half
    24 V supplies under a lower limit (load sags toward 21.6 V)."""
    runs = []
    for i in range(count):
        seed = 500 + i
        rng = random.Random(seed)
        spikes = tuple((rng.uniform(20, days - 5), 0.0, rng.choice((20, 30, 60))) for _ in range(4))
        if i % 2 == 0:
            level = 60.0 + rng.uniform(-5.0, 5.0)
            spikes = tuple((d, 90.0 - rng.uniform(1.0, 3.0), m) for d, _, m in spikes)
            runs.append(Run("healthy bearing %d" % i, "healthy", seed, level, 90.0, "above", days,
                            rng.choice((2.0, 6.0)), rng.choice((0.4, 1.0)), weather=0.1, spikes=spikes))
        else:
            def level(day, r=random.Random(seed + 1), sags={}):
                # Load sags: one 3-hour sag of 0.8-1.5 V on most days.
                d = int(day)
                if d not in sags:
                    sags.clear()
                    sags[d] = (r.uniform(0.3, 0.8), r.uniform(0.8, 1.5) if r.random() < 0.7 else 0.0)
                at, depth = sags[d]
                return 24.0 - (depth if at <= day - d < at + 0.125 else 0.0)
            spikes = tuple((d, 21.6 + rng.uniform(0.1, 0.3), m) for d, _, m in spikes)
            runs.append(Run("healthy supply %d" % i, "healthy", seed, level, 21.6, "below", days,
                            rng.choice((0.1, 0.3)), rng.choice((0.03, 0.08)), spikes=spikes,
                            valid_range=(0.0, 30.0), unit="V"))
    return runs


def slice_of_corpus():
    """A small slice for the fast CPython test: one run per shape and one
    healthy run of 120 days."""
    picked = {}
    for r in degradation_runs(seeds=(1,)):
        picked.setdefault(r.shape, r)
    return [picked[s] for s in ("linear", "exponential", "knee", "step")], healthy_runs(count=2, days=120)
