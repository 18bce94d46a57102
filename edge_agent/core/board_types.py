"""The board's data classes, apart from their validation (board.py,
board_health.py), which re-export them.

A device validates its compiled board once at start; afterwards only these
classes are needed. Keeping them in their own module lets the firmware
drop the validators from memory after loading the board (firmware/config.py):
a class keeps its whole module alive (its methods hold the module's
globals), so classes defined in board.py would keep every check function
in the heap (~23 KiB on the 64-bit unix port, bench/firmware_imports.py).
"""


# The health attributes every Component carries, and their defaults (what a
# board without health keys gets).
COMPONENT_ATTRS = (
    "supply",
    "quarantine",
    "power_output",
    "duty",
    "duty_period_ms",
    "confirm_n",
    "confirm_m",
    "release_after",
    "probe_after_ms",
    "max_probes",
    "degraded_mode",
    "quarantine_write",
)


def component_defaults():
    return {
        "supply": "",
        "quarantine": ("ignore",),
        "power_output": "",
        "duty": 0.5,
        "duty_period_ms": 60000,
        "confirm_n": 3,
        "confirm_m": 5,
        "release_after": 10,
        "probe_after_ms": 300000,
        "max_probes": 3,
        "degraded_mode": "",
        "quarantine_write": None,
    }


class Output:
    """A GPIO output line the agent drives (a power enable, a heater)."""

    __slots__ = ("id", "chip", "line", "active_low")

    def __init__(self, id, chip, line, active_low):
        self.id = id
        self.chip = chip
        self.line = line
        self.active_low = active_low


class Mode:
    """A declared degraded mode: what an essential component's failure does
    instead of a quarantine (a text for people, outputs to switch off)."""

    __slots__ = ("id", "text", "cut")

    def __init__(self, id, text, cut):
        self.id = id
        self.text = text
        self.cut = cut


class HealthSettings:
    """Board-wide triage settings. Why these defaults:

    - storm_min 3: two parts failing together happens by chance; three on
      one rail or bus within a minute is a shared cause far more often.
    - storm_window_s 60: failures from one cause arrive within the debounce
      time of each other (a few sample periods), well inside a minute.
    - storm_hold_s 0: an alert is never delayed unless the board opts in.
      With 0 the first storm_min - 1 alerts of a storm go out before the
      root cause is known; a few seconds of hold turn them into one.
    - dedupe_s 3600: a condition that flaps is one page per hour with a
      count, not one per flap.
    - rate_burst 5, rate_per_hour 6: a component may page five times at
      once, then once every ten minutes; critical alerts are never limited.
    - dropout_periods 3: a sensor that declares no dropout rule of its own
      is a lost link after three sample periods of silence (at least
      DEFAULT_DROPOUT_MIN_MS): one missed poll is a hiccup, three are not.
    """

    __slots__ = ("storm_min", "storm_window_ms", "storm_hold_ms", "dedupe_ms", "rate_burst", "rate_per_hour",
                 "dropout_periods")

    def __init__(self, storm_min=3, storm_window_ms=60000, storm_hold_ms=0, dedupe_ms=3600000, rate_burst=5, rate_per_hour=6,
                 dropout_periods=3):
        self.dropout_periods = dropout_periods
        self.storm_min = storm_min
        self.storm_window_ms = storm_window_ms
        self.storm_hold_ms = storm_hold_ms
        self.dedupe_ms = dedupe_ms
        self.rate_burst = rate_burst
        self.rate_per_hour = rate_per_hour


# Rule kinds whose declaration cross_check() names in its messages.
CROSS_CHECKED = ("disagree", "dropout")
# The shortest silence the board-wide default dropout (HealthSettings
# dropout_periods) calls a lost link, however fast the sensor: a Modbus
# poll that times out and is retried, or a serial line that stalls for a
# few seconds, is not an outage.
DEFAULT_DROPOUT_MIN_MS = 30000


class RuleSpec:
    """One declared rule. ``params`` holds the kind's keys (numbers in the
    sensor's unit, durations in ms).

    A board holds a few hundred of these on a 32-sensor ESP32, where every
    instance attribute is a slot in the instance's own table (MicroPython
    ignores ``__slots__``): fields at their usual value stay on the class,
    and the declaring key (a string per rule) is kept only for the kinds
    whose cross-checks name it."""

    severity = None  # None: critical on an essential component, else warning
    action = ""  # "": the engine's default text for the kind
    health = True  # counts toward the component's state
    key = ""  # where it was declared, for messages

    def __init__(self, kind, severity, action, health, params, key):
        self.kind = kind
        self.params = params
        if severity is not None:
            self.severity = severity
        if action:
            self.action = action
        if not health:
            self.health = False
        if kind in CROSS_CHECKED:
            self.key = key

    def __repr__(self):
        return "RuleSpec(%s %r)" % (self.kind, self.params)


class PredictSpec:
    __slots__ = ("above", "below", "horizon_ms", "history_days", "severity", "action")

    def __init__(self, above, below, horizon_ms, history_days, severity, action):
        self.above = above
        self.below = below
        self.horizon_ms = horizon_ms
        self.history_days = history_days
        self.severity = severity
        self.action = action


class RegisterWrite:
    """What ``write_register`` writes: ``values`` on quarantine, and
    ``release_values`` when the component is probed or released."""

    __slots__ = ("bus", "slave", "address", "values", "release_values")

    def __init__(self, bus, slave, address, values, release_values):
        self.bus = bus
        self.slave = slave
        self.address = address
        self.values = values
        self.release_values = release_values


class BoardError(ValueError):
    """A board definition is invalid. ``problems`` lists every Problem found."""

    def __init__(self, source, problems):
        self.source = source
        self.problems = problems
        lines = ["%s: %d problem%s" % (source, len(problems), "" if len(problems) == 1 else "s")]
        for problem in problems:
            lines.append("  " + problem.describe())
        super().__init__("\n".join(lines))


class Problem:
    __slots__ = ("key", "reason", "fix")

    def __init__(self, key, reason, fix):
        self.key = key
        self.reason = reason
        self.fix = fix

    def describe(self):
        return "%s: %s; %s" % (self.key or "(top level)", self.reason, self.fix)

    def __repr__(self):
        return "Problem(%r, %r, %r)" % (self.key, self.reason, self.fix)


class Bus:
    """``settings``: the protocol's bus settings (modbus_master.BusSettings),
    or None for protocols without any."""

    __slots__ = ("id", "port", "baud", "protocol", "settings")

    def __init__(self, id, port, baud, protocol, settings=None):
        self.id = id
        self.port = port
        self.baud = baud
        self.protocol = protocol
        self.settings = settings


class Component:
    """A part of the product. The health attributes (supply, quarantine,
    confirm_n/m, ...) are documented in board_health.py and docs/health.md."""

    __slots__ = ("id", "part", "essential", "description") + COMPONENT_ATTRS

    def __init__(self, id, part, essential, description, health=None):
        self.id = id
        self.part = part
        self.essential = essential
        self.description = description
        values = health or component_defaults()
        for name in COMPONENT_ATTRS:
            setattr(self, name, values[name])


class Sensor:
    __slots__ = ("id", "bus", "component", "unit", "low", "high", "period_ms", "redundant", "rules", "predict",
                 "source")

    def __init__(self, id, bus, component, unit, low, high, period_ms, redundant="", rules=(), predict=None,
                 source=None):
        self.id = id
        self.bus = bus
        self.component = component
        self.unit = unit
        self.low = low
        self.high = high
        self.period_ms = period_ms
        self.redundant = redundant  # sensor id that stands in when this one is switched out
        self.rules = rules  # RuleSpecs declared in the board file
        self.predict = predict  # PredictSpec or None
        # Where the bus's protocol finds the value ([sensors.ID.modbus] ->
        # modbus_master.Source, [sensors.ID.nmea] -> nmea.Source); None
        # on a line-protocol bus, whose frames name the sensor.
        self.source = source


class Board:
    __slots__ = ("name", "model", "buses", "components", "sensors", "source", "outputs", "modes", "health")

    def __init__(self, name, model, buses, components, sensors, source, outputs=None, modes=None, health=None):
        self.name = name
        self.model = model
        self.buses = buses
        self.components = components
        self.sensors = sensors
        self.source = source
        self.outputs = outputs or {}
        self.modes = modes or {}
        self.health = health or HealthSettings()

    def sensors_of(self, component_id):
        return sorted(s.id for s in self.sensors.values() if s.component == component_id)

    def sensors_on(self, bus_id):
        return [s for s in self.sensors.values() if s.bus == bus_id]
