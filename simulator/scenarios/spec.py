"""Scenario files: a board, its physics, faults on a timeline, and what must
happen; validated once, every problem reported with file, key and fix.

docs/simulator.md documents every key. The shape:

    [scenario]
    name = "stuck fan quarantined, released after repair"
    board = "boards/demo-gateway.toml"  # or an inline [hardware] table
    duration = "30m"                     # 500ms, 90s, 10m, 2h, 30d, 1h30m
    seed = 1
    fast = true                          # part of `make test`

    [device]                             # optional
    id = "sim-001"
    telemetry_interval = "60s"

    [store]                              # optional: the durable store's options
    max_bytes = 4194304

    [sensors.fan_speed]                  # physics (simulator/hardware/physics.py)
    process = "steady"
    level = 2400.0
    noise = 12.0

    [[faults]]
    kind = "stuck"
    sensor = "fan_speed"
    at = "10m"
    for = "90s"

    [[expect]]
    kind = "state"
    component = "cabinet_fan"
    state = "quarantined"
    after = "10m"
    within = "1m"

    [matrix]                             # optional: one file, several runs
    "sensors.fan_speed.noise" = [12.0, 30.0]     # a path into the file: its values
    wear = [{ "scenario.seed" = 1, "faults[0].at" = "10m" },   # a name: linked values
            { "scenario.seed" = 2, "faults[0].at" = "20m" }]

Running one is virtual.py (or live/run.py); judging it, expect.py; reports,
report.py; `edge-agent sim run` over many files, suite.py.
"""

import copy
import fnmatch
import itertools
import os
import re
import tomllib

from edge_agent.core import board as bd
from ..hardware import battery
from ..hardware import physics
from .. import ROOT

LIBRARY = os.path.dirname(os.path.abspath(__file__))  # the scenario files live beside this module

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_SCENARIO = 2

_UNITS = {"ms": 1, "s": 1000, "m": 60000, "h": 3600000, "d": 86400000}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")

# Fault kinds: the keys each takes besides kind/at (and what they mean is in
# docs/simulator.md). "for" ends the fault (a repair, the link back, the
# power back); without it the fault lasts to the end of the run.
DEVICE_FAULTS = {
    "broker_down": {"for"},
    "partition": {"for"},
    "power_cut": {"off"},
    "disk_full": {"for", "max_bytes"},
    "force": {"component", "who"},
    "release": {"component", "who"},
}
# Faults only live mode can apply (simulator/scenarios/live/faults.py): they need a
# real serial line or a real TCP connection. A virtual run skips a
# scenario that has one (docs/simulator.md, "Live mode").
# Every other fault runs both ways: the sensor faults (offset/step, drift
# to/over, ...) live in the physics, which live mode runs too, and a
# repeating fault (every) is unrolled here into plain occurrences.
LIVE_FAULTS = {
    "garbage": {"bus", "bytes"},
    "bit_flips": {"bus", "for", "rate"},
    "truncated": {"bus", "for", "rate"},
    "bus_disconnect": {"bus", "for"},
    "packet_loss": {"for", "rate"},
    "latency": {"for", "ms"},
    "throttle": {"for", "bytes_per_s"},
    "connection_reset": set(),
}
SENSOR_FAULT_KEYS = {
    "stuck": {"for"},
    "drift": {"for", "per_day", "from", "to", "over", "shape", "tau"},
    "offset": {"for", "by"},
    "step": {"for", "by"},
    "spike": {"size", "count"},
    "noise_burst": {"for", "sd"},
    "dropout": {"for"},
    "sensor_fault": {"for", "code"},
    "rail": {"for", "value"},
    "cooling_loss": {"for"},
}
EXPECT_KEYS = {
    "state": {"component", "state", "after", "within", "at_end", "every"},
    "output": {"output", "on", "after", "within", "at_end", "every"},
    "alert": {"condition", "component", "sensor", "after", "within", "active", "lead_before_threshold",
              "threshold", "min_count", "every"},
    "no_alert": {"condition", "component", "sensor", "after", "within", "every", "active"},
    "pages_at_most": {"count", "after", "within", "every"},
    "readings": {"sensor", "after", "within", "every"},
    "delivered": {"lost", "undelivered", "kinds", "alerts_first", "allow_reported_evictions"},
    "evictions": {"min_records", "spared_lanes"},
}
PROCESS_KEYS = {
    "steady": {"level", "cycle", "peak_hour", "noise", "weather", "quantum"},
    "coolant_loop": {"ambient", "ambient_swing", "peak_hour", "setpoint", "band", "load", "cooling", "tau_loss_min",
                     "initial", "noise", "quantum"},
    "bearing": {"level", "cycle", "peak_hour", "noise", "weather", "quantum", "wear", "wear_start_day",
                "wear_per_day", "wear_scale"},
    "battery": set(battery.KEYS) | {"noise", "quantum"},
}
STATES = ("ok", "suspect", "failed", "quarantined", "probing", "degraded", "service", "forced")
KIND_NAMES = ("alert", "telemetry", "state", "audit", "birth", "death", "evictions")
# A repeating fault (every = "7d") is unrolled into its occurrences; more
# than this is a typo (every = "1s" over 90 days), not a scenario.
MAX_OCCURRENCES = 10000
# A [matrix] making more runs than this is a typo, not a corpus.
MAX_RUNS = 1000
# One step of a matrix path: a key, or an element of an array of tables.
_PATH_STEP = re.compile(r"([A-Za-z0-9_-]+)(?:\[(\d+)\])?$")


class ScenarioError(ValueError):
    """A scenario file is invalid; ``problems`` lists every one (board.Problem)."""

    def __init__(self, source, problems):
        self.source = source
        self.problems = problems
        lines = ["%s: %d problem%s" % (source, len(problems), "" if len(problems) == 1 else "s")]
        lines.extend("  " + p.describe() for p in problems)
        super().__init__("\n".join(lines))


def parse_duration(text):
    """'90s' -> 90000; '1h30m' -> 5400000; None for anything else."""
    if not isinstance(text, str):
        return None
    text = text.strip()
    pos = 0
    total = 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        return None
    return int(round(total))


def format_duration(ms):
    """A short human time: 750 ms, 12.5 s, 3.2 min, 4.1 h, 8.9 days."""
    ms = float(ms)
    sign = "-" if ms < 0 else ""
    ms = abs(ms)
    if ms < 1000:
        return "%s%d ms" % (sign, ms)
    if ms < 120000:
        return "%s%.1f s" % (sign, ms / 1000)
    if ms < 2 * 3600000:
        return "%s%.1f min" % (sign, ms / 60000)
    if ms < 2 * 86400000:
        return "%s%.1f h" % (sign, ms / 3600000)
    return "%s%.1f days" % (sign, ms / 86400000)


def format_exact(ms):
    """A duration exactly, in the scenario files' own syntax: 6d23h16m48s,
    90s, 1m0.5s, -2h; "0s" for zero. format_duration rounds (6.97 days
    prints as 7.0 days); a verdict's evidence needs this one too."""
    ms = int(round(ms))
    sign = "-" if ms < 0 else ""
    ms = abs(ms)
    parts = []
    for unit, size in (("d", 86400000), ("h", 3600000), ("m", 60000)):
        if ms >= size:
            parts.append("%d%s" % (ms // size, unit))
            ms %= size
    if ms:
        parts.append(("%ds" % (ms // 1000)) if ms % 1000 == 0 else ("%.3f" % (ms / 1000.0)).rstrip("0") + "s")
    return sign + ("".join(parts) or "0s")


def exactly(ms):
    """format_duration, followed by the exact value when rounding hid it:
    "7.0 days (6d23h16m48s)", but "10.0 s" as it is."""
    short = format_duration(ms)
    if parse_duration(short.replace(" days", "d").replace(" min", "m").replace(" ms", "ms").replace(" s", "s")
                      .replace(" h", "h").lstrip("-")) == abs(int(round(ms))):
        return short
    return "%s (%s)" % (short, format_exact(ms))


class FaultSpec:
    def __init__(self, key, kind, at_ms, end_ms, sensors, args, occurrence=0):
        self.key = key  # "faults[2]"
        self.kind = kind
        self.at_ms = at_ms  # relative to the start
        self.end_ms = end_ms  # relative, or None: to the end
        self.sensors = sensors  # sensor faults: the sensors it hits
        self.args = args
        self.occurrence = occurrence  # a repeating fault (every): 0, 1, 2, ... in time order

    def describe(self):
        what = ", ".join(self.sensors) if self.sensors else self.args.get("component", "")
        span = ("for " + format_duration(self.end_ms - self.at_ms)) if self.end_ms is not None else ""
        return " ".join(p for p in (self.kind, what, "at " + format_duration(self.at_ms), span) if p)


class ExpectSpec:
    def __init__(self, key, kind, name, args):
        self.key = key
        self.kind = kind
        self.name = name
        self.args = args


class Spec:
    """A validated scenario."""

    def __init__(self, path):
        self.path = path
        self.stem = os.path.splitext(os.path.basename(path))[0]
        self.name = ""
        self.description = ""
        self.fast = False
        self.seed = 1
        self.duration_ms = 0
        self.board = None
        self.device_id = "sim-001"
        self.telemetry_interval_ms = 60000
        self.store_options = {}
        self.sensors = {}  # sensor id -> (process, params)
        self.faults = []
        self.expects = []
        self.speed = 1.0  # [live] speed: scenario seconds per wall second in live mode
        self.keepalive_ms = None  # [live] keepalive: the agent's MQTT keepalive in live mode
        self.shape = None  # [scenario] shape: what a corpus run shows ("linear", ..., "healthy")
        self.matrix = []  # a [matrix] run: the (path, value) pairs it set, in axis order

    def watched_sensors(self):
        """Sensors whose delivered readings a `readings` expectation judges:
        the run keeps their telemetry times (and no one else's)."""
        return set(e.args["sensor"] for e in self.expects if e.kind == "readings" and e.args.get("sensor"))

    def live_only(self):
        """The faults a virtual run cannot apply (they need live mode)."""
        return [f for f in self.faults if f.kind in LIVE_FAULTS and not f.occurrence]  # a repeating one once

    def models(self, seed, start_ms=physics.T0):
        """Fresh PhysicalSensors for every board sensor, faults applied."""
        import random

        rng = random.Random(seed)
        models = {}
        for sensor in sorted(self.board.sensors.values(), key=lambda s: s.id):
            sub_seed = rng.randrange(1 << 30)
            process, params = self.sensors.get(sensor.id) or default_physics(sensor)
            power = self.board.components[sensor.component].power_output
            models[sensor.id] = physics.PhysicalSensor(sensor.id, sensor.period_ms, process, params, sub_seed,
                                                       start_ms, power_output=power)
        for fault in self.faults:
            for sensor_id in fault.sensors:
                jitter = fault.args.get("jitter_ms", 0)
                start = start_ms + fault.at_ms
                if jitter:
                    start += rng.randrange(0, jitter + 1)
                end = start_ms + fault.end_ms if fault.end_ms is not None else None
                args = dict((k, v) for k, v in fault.args.items() if k != "jitter_ms")
                models[sensor_id].add_fault(fault.kind, start, end, **args)
        return models


def default_physics(sensor):
    """A healthy sensor: 45 % of its valid range, noise 0.4 % of the span
    (so stuck rules never fire on a working sensor)."""
    span = sensor.high - sensor.low
    return "steady", {"level": sensor.low + 0.45 * span, "noise": 0.004 * span}


# -- validation ----------------------------------------------------------------


class _Check:
    def __init__(self):
        self.problems = []

    def problem(self, key, reason, fix):
        self.problems.append(bd.Problem(key, reason, fix))

    def unknown(self, table, allowed, key):
        for name in sorted(table):
            if name not in allowed:
                self.problem("%s.%s" % (key, name) if key else name, "unknown key",
                             "remove it or use one of: %s" % ", ".join(sorted(allowed)))

    def duration(self, table, name, key, required=False, default=None, minimum=0):
        value = table.get(name)
        full = "%s.%s" % (key, name)
        if value is None:
            if required:
                self.problem(full, "missing", 'add %s = "10m" (units: ms, s, m, h, d)' % name)
            return default
        ms = parse_duration(value)
        if ms is None:
            self.problem(full, "%r is not a duration" % (value,), 'write e.g. "90s", "10m", "2h", "30d" or "1h30m"')
            return default
        if ms < minimum:
            self.problem(full, "must be at least %s" % format_duration(minimum), "choose a longer duration")
            return default
        return ms

    def text(self, table, name, key, required=False, default=None, choices=None):
        value = table.get(name)
        full = "%s.%s" % (key, name)
        if value is None:
            if required:
                self.problem(full, "missing", 'add %s = "..."%s' % (
                    name, " (one of: %s)" % ", ".join(choices) if choices else ""))
            return default
        if not isinstance(value, str) or not value:
            self.problem(full, "must be a non-empty string, not %r" % (value,), "quote it")
            return default
        if choices and value not in choices:
            self.problem(full, "%r is not one of %s" % (value, ", ".join(choices)), "use one of those")
            return default
        return value

    def number(self, table, name, key, required=False, default=None, low=None, high=None):
        value = table.get(name)
        full = "%s.%s" % (key, name)
        if value is None:
            if required:
                self.problem(full, "missing", "add %s = <number>" % name)
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            self.problem(full, "must be a number, not %r" % (value,), "write e.g. %s = 1.5" % name)
            return default
        if low is not None and value < low:
            bound = "at least %s" % low if high is None else "between %s and %s" % (low, high)
            self.problem(full, "%r is too small: must be %s" % (value, bound), "choose a value in range")
            return default
        if high is not None and value > high:
            bound = "at most %s" % high if low is None else "between %s and %s" % (low, high)
            self.problem(full, "%r is too large: must be %s" % (value, bound), "choose a value in range")
            return default
        return value

    def integer(self, table, name, key, required=False, default=None, low=0):
        value = table.get(name)
        full = "%s.%s" % (key, name)
        if value is None:
            if required:
                self.problem(full, "missing", "add %s = <whole number>" % name)
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(full, "must be a whole number, not %r" % (value,), "write e.g. %s = 3" % name)
            return default
        if value < low:
            self.problem(full, "must be at least %d" % low, "choose a larger number")
            return default
        return value

    def boolean(self, table, name, key, default=False):
        value = table.get(name, default)
        if not isinstance(value, bool):
            self.problem("%s.%s" % (key, name), "must be true or false, not %r" % (value,), "write true or false")
            return default
        return value

    def table(self, parent, name, key, required=False):
        value = parent.get(name)
        if value is None:
            if required:
                self.problem(key, "missing table", "add a [%s] table" % key)
            return {}
        if not isinstance(value, dict):
            self.problem(key, "must be a table, not %s" % type(value).__name__, "write it as [%s]" % key)
            return {}
        return value

    def array_of_tables(self, parent, name):
        value = parent.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.problem(name, "must be an array of tables", "write each one as [[%s]]" % name)
            return []
        return value


def load(path):
    """The validated Spec in ``path``; raises ScenarioError listing every
    problem. A file with a [matrix] of several runs needs load_runs."""
    runs = load_runs(path)
    if len(runs) != 1:
        raise ScenarioError(str(path), [bd.Problem("matrix", "makes %d runs, not one" % len(runs),
                                                   "load it with spec.load_runs (edge-agent sim run does)")])
    return runs[0]


def load_runs(path):
    """Every run of the file at ``path``: one Spec, or one per combination
    of its [matrix] (runs_from_dict); raises ScenarioError listing every problem."""
    path = str(path)
    return runs_from_dict(read_toml(path, "scenario", "the library is in %s" % os.path.relpath(LIBRARY)), path)


def read_toml(path, what, where):
    """The TOML table in the file at ``path`` (a ``what`` file, kept
    ``where``); raises ScenarioError saying what is wrong with it."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ScenarioError(path, [bd.Problem("", "file not found", "check the path; " + where)]) from None
    except IsADirectoryError:
        raise ScenarioError(path, [bd.Problem("", "is a directory", "name a .toml %s file" % what)]) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ScenarioError(path, [bd.Problem("", "not valid TOML: %s" % exc, "fix the syntax at the line shown")]) from None


# -- [matrix]: one file, several runs --------------------------------------------


def runs_from_dict(data, path="<scenario>"):
    """The runs of a scenario's TOML table: [from_dict(data)] without a
    [matrix]; with one, a Spec per combination of its axes (every value of
    the first axis with every value of the second, ...). An axis is a path
    into the file with a list of values (``"sensors.s.noise" = [0.4, 1.0]``),
    or a name with a list of tables of path = value set together (``wear =
    [{"scenario.seed" = 1, "faults[0].per_day" = 0.6}, ...]``, or
    [[matrix.wear]] tables). A path goes through tables the file has to a
    key, set or not; each run's name gets the values it set, and its stem
    (JUnit, report files) its number: ``linear-3``."""
    if "matrix" not in data:
        return [from_dict(data, path)]
    c = _Check()
    base = dict((k, v) for k, v in data.items() if k != "matrix")
    axes = _matrix_axes(c, data["matrix"], base)
    if c.problems:
        try:
            from_dict(base, path)  # the rest of the file's problems, in the same report
        except ScenarioError as exc:
            c.problems.extend(exc.problems)
        raise ScenarioError(path, c.problems)
    labels = _matrix_labels(axes)
    combos = list(itertools.product(*[choices for _, choices in axes]))
    specs = []
    seen = {}  # (key, reason, fix) -> [run numbers], in first-seen order
    for number, combo in enumerate(combos, 1):
        run = copy.deepcopy(base)
        assigned = []
        for choice in combo:
            for text, steps, value in choice:
                _matrix_set(run, steps, value)
                assigned.append((text, value))
        try:
            spec = from_dict(run, path)
        except ScenarioError as exc:
            for p in exc.problems:
                seen.setdefault((p.key, p.reason, p.fix), []).append((number, assigned))
            continue
        spec.matrix = assigned
        spec.name = "%s (%s)" % (spec.name, _matrix_describe(assigned, labels))
        spec.stem = "%s-%d" % (spec.stem, number)
        specs.append(spec)
    if seen:
        problems = []
        for (key, reason, fix), runs in seen.items():
            notes = ["the matrix sets it"] if key in labels else []
            if len(runs) < len(combos):
                number, assigned = runs[0]
                notes.append("in %d of the %d matrix runs; the first, run %d: %s" % (
                    len(runs), len(combos), number, _matrix_describe(assigned, labels)))
            problems.append(bd.Problem(key, reason + (" (%s)" % "; ".join(notes) if notes else ""), fix))
        raise ScenarioError(path, problems)
    return specs


def _matrix_axes(c, matrix, data):
    """[(axis name, [choice, ...])]: a choice is [(path text, steps, value)]."""
    if not isinstance(matrix, dict):
        c.problem("matrix", "must be a table, not %s" % type(matrix).__name__,
                  'write it as [matrix] with lines like "sensors.ID.noise" = [0.4, 1.0]')
        return []
    if not matrix:
        c.problem("matrix", "is empty", 'add an axis, e.g. "scenario.seed" = [1, 2], or remove [matrix]')
        return []
    axes = []
    owner = {}  # path text -> the axis that sets it
    for name, values in matrix.items():
        is_path = "." in name or "[" in name
        key = ('matrix."%s"' if is_path else "matrix.%s") % name
        if not isinstance(values, list) or not values:
            c.problem(key, "must be a non-empty list, not %r" % (values,),
                      'write one value per run: "%s" = [a, b]' % name if is_path else
                      'write one table of path = value per run: %s = [{ "scenario.seed" = 1 }, '
                      '{ "scenario.seed" = 2 }]' % name)
            continue
        choices = []
        if is_path:
            steps = _matrix_path(c, key, name, data)
            for i, value in enumerate(values):
                if isinstance(value, dict):
                    c.problem("%s[%d]" % (key, i), "a path's values are plain values, not tables",
                              'write the values themselves, or name the axis (wear = [{ "%s" = ... }]) '
                              "to set several paths together" % name)
            choices = [[(name, steps, value)] for value in values]
            paths = [name]
        else:
            paths = []
            for i, row in enumerate(values):
                if not isinstance(row, dict) or not row:
                    c.problem("%s[%d]" % (key, i), "must be a table of path = value, not %r" % (row,),
                              'write e.g. { "scenario.seed" = 1, "faults[0].per_day" = 0.6 } (or make the axis '
                              'a path: "scenario.seed" = [1, 2])')
                    continue
                choice = []
                for text, value in row.items():
                    steps = _matrix_path(c, "%s[%d].\"%s\"" % (key, i, text), text, data)
                    if steps is None:
                        continue  # _matrix_path said why
                    choice.append((text, steps, value))
                    if text not in paths:
                        paths.append(text)
                choices.append(choice)
        for text in paths:
            if text in owner and owner[text] != name:
                c.problem(key, "sets %s, which axis %r sets too" % (text, owner[text]),
                          "vary each path in one axis only (a named axis sets several together)")
            owner.setdefault(text, name)
        axes.append((name, choices))
    if not c.problems:
        count = 1
        for _, choices in axes:
            count *= len(choices)
        if count > MAX_RUNS:
            c.problem("matrix", "makes %d runs (at most %d)" % (count, MAX_RUNS), "use fewer values or axes")
    return axes


def _matrix_path(c, key, text, data):
    """The steps of a path ("faults[0].per_day" -> [("faults", 0), ("per_day",
    None)]) after checking it leads through the file's tables to a key
    (which the file need not set: validation judges the key); None if not."""
    parts = text.split(".")
    steps = []
    for part in parts:
        m = _PATH_STEP.match(part)
        if not m:
            c.problem(key, "%r is not a path into the scenario" % text,
                      'write keys joined by dots, arrays of tables indexed from 0: "sensors.ID.noise", '
                      '"faults[0].per_day", "scenario.seed"')
            return None
        steps.append((m.group(1), int(m.group(2)) if m.group(2) is not None else None))
    if len(steps) < 2 or steps[-1][1] is not None:
        c.problem(key, "%r does not name one value" % text,
                  'end the path at a key inside a table: "scenario.seed", "faults[0].at"')
        return None
    if steps[0][0] == "matrix":
        c.problem(key, "a matrix cannot vary itself", "name a path outside [matrix]")
        return None
    node = data
    where = ""
    for number, (name, index) in enumerate(steps):
        if number == len(steps) - 1 and isinstance(node, dict):
            break  # the value itself may be new to the file (scenario.seed): validation judges it
        if isinstance(node, dict) and name not in node and index is not None:
            c.problem(key, "the file has 0 [[%s]] tables: no %s[%d]" % (where + name, where + name, index),
                      "add [[%s]] tables (indexed from 0) or fix the path" % (where + name))
            return None
        if not isinstance(node, dict) or name not in node:
            have = ", ".join(sorted(node)) if isinstance(node, dict) else ""
            c.problem(key, "the file has no %s%s" % (where + name, " (%s has: %s)" % (where[:-1], have)
                                                    if have and where else ""),
                      "fix the path (it goes through the file's tables to a key), or add [%s] to the file" % (
                          ".".join(part.split("[")[0] for part in parts[:-1])))
            return None
        node = node[name]
        where += name
        if index is not None:
            count = len(node) if isinstance(node, list) else 0
            if index >= count:
                c.problem(key, "the file has %d [[%s]] table%s: no %s[%d]" % (
                    count, where, "" if count == 1 else "s", where, index), "index them from 0, or add [[%s]] "
                          "tables" % where)
                return None
            node = node[index]
            where += "[%d]" % index
        where += "."
    return steps


def _matrix_set(data, steps, value):
    node = data
    for name, index in steps[:-1]:
        node = node[name] if index is None else node[name][index]
    node[steps[-1][0]] = copy.deepcopy(value)


def _matrix_labels(axes):
    """How a run's name shows each path: its last key ("noise"), or the
    whole path when two paths end in the same key."""
    texts = []
    for _, choices in axes:
        for choice in choices:
            texts.extend(text for text, _, _ in choice if text not in texts)
    last = [t.split(".")[-1] for t in texts]
    return dict((t, t if last.count(l) > 1 else l) for t, l in zip(texts, last))


def _matrix_describe(assigned, labels):
    return ", ".join("%s %s" % (labels[text], _matrix_value(value)) for text, value in assigned)


def _matrix_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return repr(value)


def from_dict(data, path="<scenario>"):
    c = _Check()
    spec = Spec(path)
    c.unknown(data, ("scenario", "device", "store", "hardware", "sensors", "faults", "expect", "live"), "")
    head = c.table(data, "scenario", "scenario", required=True)
    c.unknown(head, ("name", "description", "board", "duration", "seed", "fast", "shape"), "scenario")
    spec.name = c.text(head, "name", "scenario", required=True, default=spec.stem)
    spec.description = c.text(head, "description", "scenario", default="")
    spec.duration_ms = c.duration(head, "duration", "scenario", required=True, default=0, minimum=1000)
    spec.seed = c.integer(head, "seed", "scenario", default=1)
    spec.fast = c.boolean(head, "fast", "scenario")
    spec.shape = c.text(head, "shape", "scenario")
    _load_board(c, spec, head, data, path)

    device = c.table(data, "device", "device")
    c.unknown(device, ("id", "telemetry_interval"), "device")
    spec.device_id = c.text(device, "id", "device", default="sim-001")
    spec.telemetry_interval_ms = c.duration(device, "telemetry_interval", "device", default=60000, minimum=100)

    store = c.table(data, "store", "store")
    c.unknown(store, ("max_bytes", "segment_bytes", "sync_every", "sync_ms"), "store")
    for name in ("max_bytes", "segment_bytes", "sync_every"):
        value = c.integer(store, name, "store", low=1)
        if value is not None:
            spec.store_options[name] = value
    sync_ms = c.duration(store, "sync_ms", "store")
    if sync_ms is not None:
        spec.store_options["sync_ms"] = sync_ms

    live = c.table(data, "live", "live")
    c.unknown(live, ("speed", "keepalive"), "live")
    speed = c.number(live, "speed", "live", default=1.0, low=0.01, high=100000)
    spec.speed = float(speed) if speed else 1.0
    spec.keepalive_ms = c.duration(live, "keepalive", "live", minimum=1000)

    board = spec.board
    sensors = c.table(data, "sensors", "sensors")
    for sensor_id in sorted(sensors):
        key = "sensors.%s" % sensor_id
        table = c.table(sensors, sensor_id, key)
        if board is not None and sensor_id not in board.sensors:
            c.problem(key, "no sensor %r on board %s" % (sensor_id, board.name),
                      "use one of: %s" % ", ".join(sorted(board.sensors)))
            continue
        process = c.text(table, "process", key, default="steady", choices=physics.PROCESSES)
        if process is None:
            continue
        c.unknown(table, {"process"} | PROCESS_KEYS[process], key)
        params = {}
        for name in sorted(PROCESS_KEYS[process]):
            if name == "wear":
                params[name] = c.text(table, name, key, default="linear", choices=("linear", "exponential"))
            elif name in table:
                value = c.number(table, name, key,
                                 low=0.0 if name in ("noise", "weather", "quantum", "tau_loss_min", "band",
                                                     "peak_hour") else None,
                                 high=24.0 if name == "peak_hour" else None)
                if value is not None:
                    params[name] = float(value)
        if process != "coolant_loop" and "level" not in params and board is not None:
            params["level"] = default_physics(board.sensors[sensor_id])[1]["level"]
        if params.get("tau_loss_min") == 0:
            c.problem(key + ".tau_loss_min", "must be above 0", "write the loop's cooling time constant in minutes, e.g. 60")
        spec.sensors[sensor_id] = (process, params)

    for index, table in enumerate(c.array_of_tables(data, "faults")):
        fault = _fault(c, spec, table, "faults[%d]" % index)
        if fault is not None:
            spec.faults.extend(_repeat(c, spec, table, fault))
    expects = c.array_of_tables(data, "expect")
    if not expects:
        c.problem("expect", "no expectations", "add at least one [[expect]] table: a scenario must be able to fail")
    for index, table in enumerate(expects):
        expect = _expect(c, spec, table, "expect[%d]" % index)
        if expect is not None:
            spec.expects.append(expect)
    if c.problems:
        raise ScenarioError(path, c.problems)
    return spec


def _load_board(c, spec, head, data, path):
    from edge_agent.boardfile import load_board

    board_path = head.get("board")
    inline = data.get("hardware")
    if board_path is not None and inline is not None:
        c.problem("scenario.board", "both a board file and an inline [hardware] board",
                  "keep one: board = \"boards/x.toml\" or the [hardware] table")
        return
    if inline is not None:
        if not isinstance(inline, dict):
            c.problem("hardware", "must be a table", "write the board as [hardware], [hardware.board], ...")
            return
        try:
            spec.board = bd.board_from_dict(inline, "%s [hardware]" % path)
        except bd.BoardError as exc:
            for p in exc.problems:
                c.problem("hardware." + p.key if p.key else "hardware", p.reason, p.fix)
        return
    if board_path is None:
        c.problem("scenario.board", "missing", 'add board = "boards/demo-gateway.toml" or an inline [hardware] board')
        return
    if not isinstance(board_path, str):
        c.problem("scenario.board", "must be a path string", "quote it")
        return
    candidates = [os.path.join(os.path.dirname(os.path.abspath(path)), board_path), os.path.join(ROOT, board_path)]
    found = [p for p in candidates if os.path.isfile(p)]
    if not found:
        c.problem("scenario.board", "no board file %r (looked beside the scenario and in %s)" % (board_path, ROOT),
                  "check the path; the boards are in boards/")
        return
    try:
        spec.board = load_board(found[0])
    except bd.BoardError as exc:
        for p in exc.problems:
            c.problem("scenario.board (%s) %s" % (board_path, p.key), p.reason, p.fix)


def _repeat(c, spec, table, fault):
    """The occurrences of ``fault``: itself, or with every = "7d" one copy
    every 7 days from ``at`` while it starts before the end of the run."""
    key = fault.key
    every = c.duration(table, "every", key, minimum=1)
    if every is None:
        return [fault]
    if fault.kind in ("force", "release"):
        c.problem(key + ".every", "%s cannot repeat (an operator's act happens once)" % fault.kind,
                  "write one [[faults]] table per act")
        return [fault]
    length = None
    if fault.end_ms is not None:
        length = fault.end_ms - fault.at_ms
    elif fault.kind == "power_cut":
        length = fault.args.get("off_ms") or 0
    elif "for" in _fault_keys(fault.kind):
        c.problem(key + ".every", "a repeating %s needs for (without it the first one lasts to the end)" % fault.kind,
                  'add for = "30s" (how long each occurrence lasts)')
        return [fault]
    if length is not None and length >= every:
        c.problem(key + ".every", "every %s is not longer than each occurrence (%s): they would overlap" % (
            format_duration(every), format_duration(length)), "make every longer than for (or off)")
        return [fault]
    count = 0 if not spec.duration_ms else (spec.duration_ms - fault.at_ms + every - 1) // every
    if count > MAX_OCCURRENCES:
        c.problem(key + ".every", "every %s repeats the fault %d times in %s (at most %d)" % (
            format_duration(every), count, format_duration(spec.duration_ms), MAX_OCCURRENCES),
                  "choose a longer period")
        return [fault]
    out = []
    for k in range(max(count, 1)):
        shift = k * every
        end = fault.end_ms + shift if fault.end_ms is not None else None
        out.append(FaultSpec(key, fault.kind, fault.at_ms + shift, end, fault.sensors, fault.args, occurrence=k))
    return out


def _fault_keys(kind):
    return DEVICE_FAULTS.get(kind) or SENSOR_FAULT_KEYS.get(kind) or LIVE_FAULTS.get(kind) or set()


def _fault(c, spec, table, key):
    kind = c.text(table, "kind", key, required=True,
                  choices=tuple(sorted(DEVICE_FAULTS)) + tuple(sorted(SENSOR_FAULT_KEYS)) + tuple(sorted(LIVE_FAULTS)))
    if kind is None:
        return None
    board = spec.board
    at = c.duration(table, "at", key, required=True, default=0)
    if at is not None and spec.duration_ms and at >= spec.duration_ms:
        c.problem(key + ".at", "at %s is not before the end of the run (%s)" % (
            format_duration(at), format_duration(spec.duration_ms)), "move it earlier or lengthen scenario.duration")
    args = {}
    sensors = []
    end = None
    if kind in LIVE_FAULTS:
        _live_fault(c, spec, table, key, kind, args)
        length = c.duration(table, "for", key, minimum=1) if "for" in LIVE_FAULTS[kind] else None
        end = at + length if length is not None and at is not None else None
    elif kind in DEVICE_FAULTS:
        allowed = DEVICE_FAULTS[kind]
        c.unknown(table, {"kind", "at", "every"} | allowed, key)
        if "for" in allowed:
            length = c.duration(table, "for", key, minimum=1)
            end = at + length if length is not None and at is not None else None
        if kind == "power_cut":
            args["off_ms"] = c.duration(table, "off", key, default=0)
        if kind == "disk_full":
            args["max_bytes"] = c.integer(table, "max_bytes", key, default=None, low=1024)
        if kind in ("force", "release"):
            component = c.text(table, "component", key, required=True)
            if component and board is not None and component not in board.components:
                c.problem(key + ".component", "no component %r on board %s" % (component, board.name),
                          "use one of: %s" % ", ".join(sorted(board.components)))
            args["component"] = component
            args["who"] = c.text(table, "who", key, default="scenario")
    else:
        allowed = SENSOR_FAULT_KEYS[kind]
        c.unknown(table, {"kind", "at", "every", "sensor", "sensors", "jitter"} | allowed, key)
        patterns = []
        if "sensor" in table and "sensors" in table:
            c.problem(key, "both sensor and sensors", "keep one")
        elif "sensors" in table:
            value = table["sensors"]
            if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
                c.problem(key + ".sensors", "must be a list of sensor ids or patterns", 'write e.g. sensors = ["zone_*"]')
            else:
                patterns = value
        else:
            one = c.text(table, "sensor", key, required=True)
            patterns = [one] if one else []
        if board is not None:
            for pattern in patterns:
                hits = sorted(fnmatch.filter(board.sensors, pattern))
                if not hits:
                    c.problem(key + ".sensor", "no sensor matches %r on board %s" % (pattern, board.name),
                              "use one of: %s" % ", ".join(sorted(board.sensors)))
                sensors.extend(h for h in hits if h not in sensors)
        if "for" in allowed:
            length = c.duration(table, "for", key, minimum=1)
            end = at + length if length is not None and at is not None else None
        jitter = c.duration(table, "jitter", key, default=0)
        if jitter:
            args["jitter_ms"] = jitter
        if kind == "drift":
            _drift_args(c, table, key, args)
        elif kind in ("offset", "step"):
            args["by"] = c.number(table, "by", key, required=True, default=0.0)
        elif kind == "spike":
            args["size"] = c.number(table, "size", key, required=True, default=0.0)
            args["count"] = c.integer(table, "count", key, default=1, low=1)
        elif kind == "noise_burst":
            args["sd"] = c.number(table, "sd", key, required=True, default=0.0, low=0.0)
        elif kind == "sensor_fault":
            args["code"] = c.text(table, "code", key, default="open")
        elif kind == "rail":
            args["value"] = c.number(table, "value", key, required=True, default=0.0)
        elif kind == "cooling_loss":
            for sensor_id in sensors:
                if spec.sensors.get(sensor_id, ("steady",))[0] != "coolant_loop":
                    c.problem(key + ".sensor", "%s is not a coolant_loop: cooling_loss needs one" % sensor_id,
                              'give [sensors.%s] process = "coolant_loop"' % sensor_id)
    if at is None:
        return None
    return FaultSpec(key, kind, at, end, sensors, args)


def _drift_args(c, table, key, args):
    """drift: per_day (a straight line, unbounded), or from/to over a
    duration, linear or exponential (then holding ``to``)."""
    if "per_day" in table:
        for name in ("from", "to", "over", "shape", "tau"):
            if name in table:
                c.problem("%s.%s" % (key, name), "per_day drifts without end: %s belongs to the from/to form" % name,
                          "keep per_day, or drop it and write to = <amount> and over = \"30d\"")
        args["per_day"] = c.number(table, "per_day", key, default=0.0)
        return
    if "to" not in table and "over" not in table:
        c.problem(key + ".per_day", "missing: a drift needs per_day, or to and over",
                  'add per_day = 0.5, or to = 20.0 and over = "30d" (shape = "exponential" for wear)')
        return
    args["to"] = c.number(table, "to", key, required=True, default=0.0)
    args["from"] = c.number(table, "from", key, default=0.0)
    args["over_ms"] = c.duration(table, "over", key, required=True, default=1, minimum=1)
    args["shape"] = c.text(table, "shape", key, default="linear", choices=("linear", "exponential"))
    tau = c.duration(table, "tau", key, minimum=1)
    if tau is not None:
        if args["shape"] != "exponential":
            c.problem(key + ".tau", "only an exponential drift has a time constant", 'add shape = "exponential" or drop tau')
        elif args["over_ms"] / tau > 50:
            c.problem(key + ".tau", "over / tau is %.0f: the curve is flat until the last moment" % (
                args["over_ms"] / tau), "choose tau at least over / 50")
        args["tau_ms"] = tau


def _live_fault(c, spec, table, key, kind, args):
    c.unknown(table, {"kind", "at", "every"} | LIVE_FAULTS[kind], key)
    if "bus" in LIVE_FAULTS[kind]:
        buses = spec.board.buses if spec.board is not None else {}
        line = sorted(b for b in buses if buses[b].protocol == "line")
        want = line if kind != "bus_disconnect" else sorted(buses)
        bus = c.text(table, "bus", key, default=want[0] if want else None)
        if spec.board is not None and bus not in want:
            c.problem(key + ".bus", "%s needs a %sbus of board %s, not %r" % (
                kind, "line-protocol " if kind != "bus_disconnect" else "", spec.board.name, bus),
                "use one of: %s" % (", ".join(want) or "(none: the board has no such bus)"))
        args["bus"] = bus
    if kind == "garbage":
        args["bytes"] = c.integer(table, "bytes", key, default=64, low=1)
    elif kind in ("bit_flips", "truncated"):
        args["rate"] = c.number(table, "rate", key, default=0.2, low=0.0, high=1.0)
    elif kind == "packet_loss":
        args["rate"] = c.number(table, "rate", key, required=True, default=0.0, low=0.0, high=0.9)
    elif kind == "latency":
        args["ms"] = c.integer(table, "ms", key, required=True, default=0, low=0)
    elif kind == "throttle":
        args["bytes_per_s"] = c.integer(table, "bytes_per_s", key, required=True, default=1, low=1)


def _expect(c, spec, table, key):
    kind = c.text(table, "kind", key, required=True, choices=tuple(sorted(EXPECT_KEYS)))
    if kind is None:
        return None
    c.unknown(table, {"kind", "name"} | EXPECT_KEYS[kind], key)
    board = spec.board
    args = {}
    args["after"] = c.duration(table, "after", key, default=0)
    args["within"] = c.duration(table, "within", key)
    if "every" in EXPECT_KEYS[kind]:
        # A repeating window (for a repeating fault): judged once per
        # occurrence, from after while it starts before the end; all must pass.
        args["every"] = c.duration(table, "every", key, minimum=1)
        if args["every"] is not None:
            if args["within"] is None:
                c.problem(key + ".every", "a repeating window needs within (else the first one runs to the end)",
                          'add within = "1m" (each window\'s length)')
            elif args["within"] >= args["every"]:
                c.problem(key + ".every", "every %s is not longer than within (%s): the windows would overlap" % (
                    format_duration(args["every"]), format_duration(args["within"])), "make every longer than within")
            elif table.get("at_end"):
                c.problem(key + ".every", "an at_end expectation has no window to repeat", "drop every (or at_end)")
            elif table.get("lead_before_threshold") is not None:
                c.problem(key + ".every", "lead_before_threshold judges the first alert only", "drop every")
            elif spec.duration_ms and args["after"] is not None and \
                    (spec.duration_ms - args["after"]) // args["every"] > MAX_OCCURRENCES:
                c.problem(key + ".every", "more than %d windows" % MAX_OCCURRENCES, "choose a longer period")
    if "at_end" in EXPECT_KEYS[kind]:
        args["at_end"] = c.boolean(table, "at_end", key)
        if args["at_end"] and "within" in table:
            c.problem(key + ".within", "with at_end = true there is no window", "drop within (or at_end)")

    def ref(name, pool, what, required):
        value = c.text(table, name, key, required=required)
        if value and board is not None and value not in pool:
            c.problem("%s.%s" % (key, name), "no %s %r on board %s" % (what, value, board.name),
                      "use one of: %s" % ", ".join(sorted(pool)))
        return value

    pools = (board.components, board.sensors, board.outputs) if board is not None else ({}, {}, {})
    if kind == "state":
        args["component"] = ref("component", pools[0], "component", True)
        args["state"] = c.text(table, "state", key, required=True, choices=STATES)
    elif kind == "output":
        args["output"] = ref("output", pools[2], "output", True)
        args["on"] = c.boolean(table, "on", key, default=False)
    elif kind in ("alert", "no_alert"):
        args["condition"] = c.text(table, "condition", key, required=(kind == "alert"))
        args["component"] = ref("component", pools[0], "component", False)
        args["sensor"] = ref("sensor", pools[1], "sensor", False)
        args["active"] = c.boolean(table, "active", key, default=True)
        if kind == "alert":
            args["min_count"] = c.integer(table, "min_count", key, default=1, low=1)
            args["lead_ms"] = c.duration(table, "lead_before_threshold", key)
            args["threshold"] = c.number(table, "threshold", key)
            if args["lead_ms"] is not None:
                sensor = board.sensors.get(args["sensor"]) if board is not None and args["sensor"] else None
                if not args["sensor"]:
                    c.problem(key + ".sensor", "lead_before_threshold needs the sensor whose crossing counts",
                              'add sensor = "..."')
                elif sensor is not None and args["threshold"] is None:
                    predict = getattr(sensor, "predict", None)
                    limit = None
                    if predict is not None:
                        limit = getattr(predict, "above", None)
                        if limit is None:
                            limit = getattr(predict, "below", None)
                    if limit is None:
                        c.problem(key + ".threshold", "sensor %s has no [predict] limit to default to" % sensor.id,
                                  "add threshold = <the level whose crossing counts>")
                    args["threshold"] = limit
    elif kind == "pages_at_most":
        args["count"] = c.integer(table, "count", key, required=True, default=0)
    elif kind == "readings":
        args["sensor"] = ref("sensor", pools[1], "sensor", True)
    elif kind == "delivered":
        args["lost"] = c.integer(table, "lost", key, default=0)
        args["undelivered"] = c.integer(table, "undelivered", key, default=0)
        args["alerts_first"] = c.boolean(table, "alerts_first", key, default=True)
        args["allow_reported_evictions"] = c.boolean(table, "allow_reported_evictions", key, default=False)
        kinds = table.get("kinds")
        if kinds is not None and (not isinstance(kinds, list) or not all(k in KIND_NAMES for k in kinds)):
            c.problem(key + ".kinds", "must be a list of signal kinds", "use some of: %s" % ", ".join(KIND_NAMES))
            kinds = None
        args["kinds"] = kinds
    elif kind == "evictions":
        args["min_records"] = c.integer(table, "min_records", key, default=1, low=1)
        spared = table.get("spared_lanes", [0, 1])
        if not isinstance(spared, list) or not all(isinstance(v, int) and 0 <= v <= 3 for v in spared):
            c.problem(key + ".spared_lanes", "must be a list of lanes 0-3", "write e.g. spared_lanes = [0, 1]")
            spared = [0, 1]
        args["spared_lanes"] = spared
    name = c.text(table, "name", key, default=None) or _default_name(kind, args)
    return ExpectSpec(key, kind, name, args)


def _default_name(kind, a):
    if kind == "state":
        return "%s %s %s" % (a["component"], "ends" if a.get("at_end") else "becomes", a["state"])
    if kind == "output":
        return "output %s %s" % (a["output"], "on" if a["on"] else "off")
    if kind == "alert":
        what = " ".join(x for x in (a["condition"], a.get("component") or "", a.get("sensor") or "") if x)
        if a.get("lead_ms") is not None:
            return "alert %s at least %s before the threshold" % (what, format_duration(a["lead_ms"]))
        return "alert %s %s" % (what, "raised" if a.get("active", True) else "cleared")
    if kind == "no_alert" and not a.get("active", True):
        return "no alert %s cleared" % " ".join(x for x in (a.get("condition") or "any", a.get("component") or "",
                                                          a.get("sensor") or "") if x)
    if kind == "no_alert":
        return "no alert %s" % " ".join(x for x in (a.get("condition") or "any", a.get("component") or "",
                                                    a.get("sensor") or "") if x)
    if kind == "pages_at_most":
        return "at most %d page%s" % (a["count"], "" if a["count"] == 1 else "s")
    if kind == "readings":
        return "readings of %s arrive" % a["sensor"]
    if kind == "delivered":
        if a.get("kinds"):
            return "delivered: every %s arrives" % ", ".join(a["kinds"])
        if a.get("allow_reported_evictions"):
            return "delivered: nothing missing but what the device reported evicted"
        return "delivered: %d lost at the receiver" % a["lost"]
    return "evictions reported, lanes %s spared" % a["spared_lanes"]


def toml_files(folder):
    """The .toml files in ``folder`` (not below it), sorted."""
    return sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".toml"))


def library(fast_only=False):
    """Paths of the scenario library, sorted; only those with a ``fast =
    true`` run if asked. The folders beside them (corpus/, fleet/) are not
    in it: the prediction bench takes corpus/, `edge-agent sim fleet` fleet/."""
    paths = toml_files(LIBRARY)
    if fast_only:
        paths = [p for p in paths if any(run.fast for run in load_runs(p))]
    return paths


# The degradation corpus (docs/simulator.md, "The corpus"): wear and healthy
# runs, each file saying its shape; bench/bench_prediction.py runs them all.
CORPUS = os.path.join(LIBRARY, "corpus")


def corpus():
    """Paths of the corpus files, sorted."""
    return toml_files(CORPUS)
