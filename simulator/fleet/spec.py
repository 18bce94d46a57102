"""Fleet files: a scenario (board, physics, faults) for many devices at once,
plus a [fleet] table and fleet expectations; validated once, every problem
reported with file, key and fix. docs/fleet.md documents every key.

    [scenario]                 # as in a scenario file; duration is wall time
    name = "50 devices: broker restart and a common fan fault"
    duration = "30s"
    [hardware] / board = ...   # the board every device runs
    [sensors.ID]               # physics, as in a scenario
    [[faults]]                 # broker_down: the broker is stopped (all devices)
                               # sensor faults: only on the [fleet] faulty devices
    [fleet]
    count = 50
    models = ["EA-FLEET-1", "EA-FLEET-2"]
    faulty = 8
    faulty_model = "EA-FLEET-1"
    [fleet.receiver]
    k = 5
    [[expect]]
    kind = "delivered" | "incident" | "advisory" | "reconnected" | "storm"

The scenario half is validated by simulator/scenarios/spec.py itself (the same
board, physics and fault checks), so the two formats cannot drift.
"""

import os

from ..scenarios import spec as sc

FLEET_KEYS = ("count", "models", "faulty", "faulty_model", "fault_spread", "algorithm", "jitter", "id_prefix",
              "ramp", "receiver")
RECEIVER_KEYS = ("k", "fraction", "window")
ALGORITHMS = ("EdDSA", "HMAC256", "mixed")
EXPECT_KEYS = {
    "delivered": {"lost"},
    "incident": {"condition", "component", "model", "within"},
    "advisory": {"model", "within"},
    "reconnected": {"within"},
    "storm": {"max_peak", "min_peak"},
}
# Sensor faults a fleet applies to its faulty devices; device faults it
# applies to the fleet (broker_down stops the one broker everyone uses).
FLEET_DEVICE_FAULTS = ("broker_down",)
MAX_DEVICES = 5000


class FleetSpec:
    def __init__(self, path, scenario):
        self.path = path
        self.scenario = scenario  # a scenario.Spec: board, physics, faults
        self.count = 0
        self.models = []
        self.faulty = 0
        self.faulty_model = None
        self.fault_spread_ms = 0
        self.algorithm = "EdDSA"
        self.jitter = True
        self.id_prefix = "fleet-"
        self.ramp_ms = 0
        self.receiver_k = 3
        self.receiver_fraction = 0.1
        self.receiver_window_ms = 600000
        self.expects = []

    @property
    def name(self):
        return self.scenario.name

    @property
    def duration_ms(self):
        return self.scenario.duration_ms

    @property
    def board(self):
        return self.scenario.board

    def outages(self):
        """[(start_ms, end_ms or None)] when the broker is down, from the start."""
        return [(f.at_ms, f.end_ms) for f in self.scenario.faults if f.kind in FLEET_DEVICE_FAULTS]

    def device_ids(self):
        width = max(3, len(str(self.count)))
        return ["%s%0*d" % (self.id_prefix, width, i + 1) for i in range(self.count)]

    def model_of(self, index):
        return self.models[index % len(self.models)]

    def faulty_ids(self):
        """The devices the sensor faults hit: the first ``faulty`` of the faulty model."""
        ids = [d for i, d in enumerate(self.device_ids()) if self.model_of(i) == self.faulty_model]
        return ids[: self.faulty]

    def algorithm_of(self, index):
        if self.algorithm == "mixed":
            return "HMAC256" if index % 4 == 3 else "EdDSA"  # a quarter are small boards
        return self.algorithm


def load(path):
    path = str(path)
    return from_dict(sc.read_toml(path, "fleet", "fleet files are simulator/scenarios/fleet/*.toml"), path)


def from_dict(data, path="<fleet>"):
    problems = []
    fleet = data.get("fleet")
    expects = data.get("expect", [])
    # The scenario half: scenarios/spec.py checks board, physics and faults. It
    # wants an expectation of its own kinds; the fleet's are checked here.
    half = dict((k, v) for k, v in data.items() if k not in ("fleet", "expect"))
    half["expect"] = [{"kind": "delivered"}]
    scenario = None
    try:
        scenario = sc.from_dict(half, path)
    except sc.ScenarioError as exc:
        problems.extend(exc.problems)
    c = sc._Check()
    spec = FleetSpec(path, scenario)
    if fleet is None or not isinstance(fleet, dict):
        c.problem("fleet", "missing table" if fleet is None else "must be a table",
                  "add a [fleet] table with count = <devices>")
        fleet = {}
    c.unknown(fleet, FLEET_KEYS, "fleet")
    spec.count = c.integer(fleet, "count", "fleet", required=True, default=0, low=1) or 0
    if spec.count > MAX_DEVICES:
        c.problem("fleet.count", "%d devices is more than %d" % (spec.count, MAX_DEVICES), "split the fleet")
    board_model = scenario.board.model if scenario is not None and scenario.board is not None else None
    models = fleet.get("models")
    if models is None:
        spec.models = [board_model or "EA-FLEET"]
    elif not isinstance(models, list) or not models or not all(isinstance(m, str) and m for m in models):
        c.problem("fleet.models", "must be a list of model names", 'write e.g. models = ["EA-FLEET-1"]')
        spec.models = ["EA-FLEET"]
    else:
        spec.models = models
    spec.faulty = c.integer(fleet, "faulty", "fleet", default=0, low=0)
    spec.faulty_model = c.text(fleet, "faulty_model", "fleet", default=spec.models[0])
    if spec.faulty_model not in spec.models:
        c.problem("fleet.faulty_model", "%r is not one of the fleet's models" % spec.faulty_model,
                  "use one of: %s" % ", ".join(spec.models))
    elif spec.count:
        of_model = sum(1 for i in range(spec.count) if spec.model_of(i) == spec.faulty_model)
        if spec.faulty > of_model:
            c.problem("fleet.faulty", "%d faulty devices but only %d of model %s" % (spec.faulty, of_model,
                                                                                  spec.faulty_model),
                      "lower faulty or raise count")
    spec.fault_spread_ms = c.duration(fleet, "fault_spread", "fleet", default=0)
    spec.algorithm = c.text(fleet, "algorithm", "fleet", default="EdDSA", choices=ALGORITHMS)
    spec.jitter = c.boolean(fleet, "jitter", "fleet", default=True)
    spec.id_prefix = c.text(fleet, "id_prefix", "fleet", default="fleet-")
    spec.ramp_ms = c.duration(fleet, "ramp", "fleet", default=0)
    receiver = c.table(fleet, "receiver", "fleet.receiver")
    c.unknown(receiver, RECEIVER_KEYS, "fleet.receiver")
    spec.receiver_k = c.integer(receiver, "k", "fleet.receiver", default=3, low=1)
    spec.receiver_fraction = c.number(receiver, "fraction", "fleet.receiver", default=0.1, low=0.0, high=1.0)
    spec.receiver_window_ms = c.duration(receiver, "window", "fleet.receiver", default=600000, minimum=1000)
    if scenario is not None:
        for fault in scenario.faults:
            if not fault.sensors and fault.kind not in FLEET_DEVICE_FAULTS:
                c.problem(fault.key + ".kind", "%s is not a fleet fault" % fault.kind,
                          "a fleet takes broker_down and sensor faults (on the faulty devices)")
            if fault.sensors and not spec.faulty:
                c.problem(fault.key, "a sensor fault but no faulty devices", "set [fleet] faulty = <K>")
    if not isinstance(expects, list) or not all(isinstance(e, dict) for e in expects):
        c.problem("expect", "must be an array of tables", "write each as [[expect]]")
        expects = []
    if not expects:
        c.problem("expect", "no expectations", "add at least one [[expect]] table: a fleet run must be able to fail")
    for index, table in enumerate(expects):
        key = "expect[%d]" % index
        kind = c.text(table, "kind", key, required=True, choices=tuple(sorted(EXPECT_KEYS)))
        if kind is None:
            continue
        c.unknown(table, {"kind", "name"} | EXPECT_KEYS[kind], key)
        args = {"within": c.duration(table, "within", key)}
        if kind == "delivered":
            args["lost"] = c.integer(table, "lost", key, default=0)
        elif kind in ("incident", "advisory"):
            args["model"] = c.text(table, "model", key, default=spec.faulty_model)
            if args["model"] not in spec.models:
                c.problem(key + ".model", "%r is not one of the fleet's models" % args["model"],
                          "use one of: %s" % ", ".join(spec.models))
            if kind == "incident":
                args["condition"] = c.text(table, "condition", key, default=None)
                args["component"] = c.text(table, "component", key, default=None)
        elif kind == "storm":
            args["max_peak"] = c.integer(table, "max_peak", key, default=None, low=1)
            args["min_peak"] = c.integer(table, "min_peak", key, default=None, low=1)
            if args["max_peak"] is None and args["min_peak"] is None:
                c.problem(key, "no bound", "add max_peak = <connects/s> (or min_peak)")
        if kind in ("reconnected", "storm") and scenario is not None and not spec.outages():
            c.problem(key + ".kind", "%s needs a broker outage" % kind, 'add [[faults]] kind = "broker_down"')
        name = c.text(table, "name", key, default=None) or _default_name(kind, args)
        spec.expects.append(sc.ExpectSpec(key, kind, name, args))
    problems.extend(c.problems)
    if problems:
        raise sc.ScenarioError(path, problems)
    return spec


def _default_name(kind, a):
    within = " within %s" % sc.format_duration(a["within"]) if a.get("within") is not None else ""
    if kind == "delivered":
        return "delivered: every signal verified and stored, at most %d lost" % a["lost"]
    if kind == "incident":
        what = " ".join(x for x in (a.get("condition"), a.get("component")) if x) or "a fault"
        return "fleet incident for %s on model %s%s" % (what, a["model"], within)
    if kind == "advisory":
        return "advisory applied by every %s device, by no other%s" % (a["model"], within)
    if kind == "reconnected":
        return "every device reconnected after the outage%s" % within
    bounds = []
    if a.get("max_peak") is not None:
        bounds.append("at most %d" % a["max_peak"])
    if a.get("min_peak") is not None:
        bounds.append("at least %d" % a["min_peak"])
    return "reconnect storm peak %s connects/s" % " and ".join(bounds)


# Fleet files live in their own folder: `edge-agent sim run simulator/
# scenarios/*.toml` (make scenarios) and scenario.library() take every
# .toml beside them as a single-device scenario.
LIBRARY = os.path.join(sc.LIBRARY, "fleet")


def library():
    return sc.toml_files(LIBRARY)
