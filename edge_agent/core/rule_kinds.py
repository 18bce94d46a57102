"""The rule kinds fewer boards declare (rules.py has the common ones, the
base class and the per-sensor engine; docs/health.md explains each kind):

    flatline   at a rail (valid_range ends or ``rails``, +- tolerance) for ``for_s``
    rate       changed faster than ``max_per_s`` between two readings
    jump       more than ``max_step`` away from its recent level (EWMA) and from
               the previous reading
    dropout    no reading at all for ``for_s`` (judged by the timer, ``due``)
    shift      the level moved by ``max_shift`` or more from its baseline and
               stays moved (two-sided CUSUM on the residuals)
    disagree   differs from the ``with`` sensor by more than ``max_diff`` for ``for_s``

A module of its own so that a board declaring none of them never loads
them (health.py imports it only then): every class is ~150-250 bytes of a
32-bit MicroPython heap. Compiled with rules.py by mypyc (`make accelerate`).
"""

# Names for annotations only (mypyc): never imported at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

from edge_agent.core import reading as rd
from edge_agent.core import rules
from edge_agent.core.rules import Rule, num

# Jump: weight of a new reading in the running level. 0.25 follows a real
# step within ~8 readings while one spike moves the level by only a quarter.
JUMP_ALPHA: "Final" = 0.25


class Flatline(Rule):
    rail_since: "Any" = None

    def judge(self, reading: "rd.Reading", watch: "rules.SensorWatch") -> bool:
        p = self.spec.params
        low, high = p["rails"] if p["rails"] is not None else (watch.sensor.low, watch.sensor.high)
        tol = p["tolerance"]
        value = reading.value
        if not (value <= low + tol or value >= high - tol):
            if self.rail_since is not None:
                self.rail_since = None
            return False
        if self.rail_since is None:
            self.rail_since = reading.time_ms
        held = reading.time_ms - self.rail_since
        if held < p["for_ms"]:
            return False
        self.detail = "flat at the rail %s %s for %d s" % (num(value), watch.sensor.unit, held // 1000)
        return True

    def reset(self):
        Rule.reset(self)
        if self.rail_since is not None:
            self.rail_since = None


class Rate(Rule):
    def judge(self, reading: "rd.Reading", watch: "rules.SensorWatch") -> bool:
        previous = watch.previous
        if previous is None or reading.time_ms <= previous.time_ms:
            return False
        per_s = abs(reading.value - previous.value) * 1000.0 / (reading.time_ms - previous.time_ms)
        if per_s <= self.spec.params["max_per_s"]:
            return False
        unit = watch.sensor.unit
        self.detail = "changed %s %s/s (from %s to %s), faster than the plausible %s %s/s" % (
            num(per_s), unit, num(previous.value), num(reading.value), num(self.spec.params["max_per_s"]), unit)
        return True


class Jump(Rule):
    level: "Any" = None
    max_step: "Any"  # the spec's, read by every reading: on the rule, one load under mypyc

    def __init__(self, spec: "Any") -> None:
        self.spec = spec  # as Stuck's
        self.max_step = spec.params["max_step"]

    def judge(self, reading: "rd.Reading", watch: "rules.SensorWatch") -> bool:
        value = reading.value
        if self.level is None:
            self.level = value
            return False
        level = self.level
        self.level = level + JUMP_ALPHA * (value - level)
        step = self.max_step
        # Away from both the recent level and the last reading: a steady
        # ramp lags the level (by 3 readings' change at alpha 0.25) but
        # moves little between readings, so it is not a jump.
        previous = watch.previous
        if abs(value - level) <= step or (previous is not None and abs(value - previous.value) <= step):
            return False
        self.detail = "jumped to %s %s from its recent level %s" % (num(value), watch.sensor.unit, num(level))
        return True

    def reset(self):
        Rule.reset(self)
        if self.level is not None:
            self.level = None


class LevelShift(Rule):
    """A change-point detector: two-sided CUSUM of the residuals against the
    sensor's baseline (an average over ``baseline_s``, frozen while a shift
    is active). Each reading adds ``residual - max_shift / 2`` to the upward
    sum (and the mirror to the downward one), the residual clipped to
    ``2 * max_shift`` and the sums floored at zero; a sum past
    ``4 * max_shift`` is a shift: a step of ``max_shift`` fires on its 9th
    reading, a step of twice that or more on its 3rd, while noise and a slow
    daily cycle (followed by the baseline) stay below it. A spike is a jump,
    not a shift: one reading adds at most 1.5 ``max_shift``, and the sum
    decays again on the next readings.

    Active until the level returns to within ``max_shift / 2`` of the
    baseline, or ``accept`` takes the new level as the baseline (the sensor
    was recalibrated, or a technician acknowledged the alert)."""

    base: "Any" = None
    base_ms = 0
    up = 0.0
    down = 0.0

    def judge(self, reading: "rd.Reading", watch: "rules.SensorWatch") -> bool:
        p = self.spec.params
        value = reading.value
        t = reading.time_ms
        if self.base is None:
            self.base = value
            self.base_ms = t
            return False
        residual = value - self.base
        slack = p["max_shift"] / 2.0
        if self.active:
            return abs(residual) > slack
        # One reading adds at most 1.5 max_shift: a spike alone never fires.
        clipped = max(-4 * slack, min(4 * slack, residual))
        self.up = max(0.0, self.up + clipped - slack)
        self.down = max(0.0, self.down - clipped - slack)
        if self.up > 4 * p["max_shift"] or self.down > 4 * p["max_shift"]:
            self.up = self.down = 0.0
            self.detail = "level moved %s %s from its baseline %s %s and stays there: an offset, not a spike" % (
                "up" if residual > 0 else "down", num(abs(residual)), num(self.base), watch.sensor.unit)
            return True
        gap = t - self.base_ms
        self.base_ms = t
        if gap > 0:
            self.base += min(1.0, float(gap) / p["baseline_ms"]) * residual
        return False

    def accept(self, value, t):
        """The new level is the baseline now (recalibrated, acknowledged)."""
        self.base = value
        self.base_ms = t
        self.up = self.down = 0.0

    def reset(self):
        Rule.reset(self)
        if self.base is not None:
            self.base = None
            self.up = self.down = 0.0


class Disagree(Rule):
    apart_since: "Any" = None
    latest: "Any" = None  # the engine's map of last readings, set by SensorWatch
    partner_ms = 0  # the slower sample period of the two

    def judge(self, reading: "rd.Reading", watch: "rules.SensorWatch") -> bool:
        p = self.spec.params
        other = self.latest.get(p["with"])
        # Compare only with a fresh good reading: a silent or faulty partner
        # is its own rule's business, not a disagreement.
        if other is None or other.quality != rd.GOOD or reading.time_ms - other.time_ms > 3 * self.partner_ms:
            if self.apart_since is not None:
                self.apart_since = None
            return False
        if abs(reading.value - other.value) <= p["max_diff"]:
            if self.apart_since is not None:
                self.apart_since = None
            return False
        if self.apart_since is None:
            self.apart_since = reading.time_ms
        if reading.time_ms - self.apart_since < p["for_ms"]:
            return False
        self.detail = "reads %s %s but %s reads %s: more than %s apart" % (
            num(reading.value), watch.sensor.unit, other.sensor, num(other.value), num(p["max_diff"]))
        return True

    def reset(self):
        Rule.reset(self)
        if self.apart_since is not None:
            self.apart_since = None


class Dropout(Rule):
    """Judged by the timer: ``due(now_ms)`` says whether it is active.

    Silence is a lost link (the sensor, its Modbus slave or its bus stopped
    answering), not evidence that the part is broken: it never counts
    toward the component's state (board_health refuses health = true), and
    the first reading clears it."""

    def judge(self, reading: "rd.Reading", watch: "rules.SensorWatch") -> bool:
        return False  # any reading clears a dropout

    def due(self, now_ms, last_ms):
        silent = now_ms - last_ms
        if silent < self.spec.params["for_ms"]:
            return False
        self.detail = "sent no reading for %d s" % (silent // 1000)
        return True


# Every kind, rules.py's included.
RULE_CLASSES = dict(rules.RULE_CLASSES)
RULE_CLASSES.update({
    "flatline": Flatline,
    "rate": Rate,
    "jump": Jump,
    "dropout": Dropout,
    "disagree": Disagree,
    "shift": LevelShift,
})
