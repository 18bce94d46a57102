"""Rules: readings in, conditions out (pure, time from the readings).

Every sensor has two implicit rules, valid range (``out_of_range``) and its
own fault report (``sensor_fault``), plus the rules its board file declares
(board_health.py validates them; docs/health.md explains each):

    threshold  above/below a limit, clears past ``clear`` (hysteresis)
    stuck      no change beyond ``epsilon`` for ``for_s``

and the kinds fewer boards declare, in rule_kinds.py (loaded only when a
board declares one): flatline, rate, jump, dropout, shift, disagree.

A rule is *active* while its condition holds. Conditions are edge-triggered:
the caller hears about a rule when it becomes active and when it clears,
never once per reading, so a stuck-high sensor sampled every second does not
page anyone sixty times a minute. ``health`` rules (all but threshold, by
default) also make the component's evaluation bad (component.py).
"""

import sys
from array import array

# Names for annotations only (mypyc, `make accelerate`): never imported at run
# time, so MicroPython, which ignores annotations, needs no typing module.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

from edge_agent.core import reading as rd
from edge_agent.core import signals as sg

# Final: constants to mypyc, not a module lookup per reading.
OUT_OF_RANGE: "Final" = "out_of_range"
SENSOR_FAULT: "Final" = "sensor_fault"

# How many recent readings a sensor keeps as evidence for alerts and state
# signals: enough to show a stuck or jumping value, small on a 32-sensor ESP32.
EVIDENCE: "Final" = 5

_FAULT: "Final" = rd.FAULT

# The evidence ring of a SensorWatch (times, values): unboxed arrays on
# MicroPython, the smaller on a 32-sensor board; lists on CPython, where an
# array's item write parses a format string each time (about 450
# instructions, twice a reading) and the reading's own objects are kept.
_RING_ARRAYS = sys.implementation.name == "micropython"


def _ring(typecode, zero):
    if _RING_ARRAYS:
        return array(typecode, [zero] * EVIDENCE)
    return [zero] * EVIDENCE


class Rule:
    """Base: ``judge`` a good reading (True while the condition holds).

    Memory: a 32-sensor board has a couple of hundred rules, nearly all
    inactive, and MicroPython gives every instance its own attribute table
    (``__slots__`` is ignored there), each attribute a 16-byte slot on the
    64-bit unix port. So what is usually at its default lives on the class
    (inactive, no detail, no running state) and on the board's spec (kind,
    health): a quiet rule is its spec and nothing else (stuck and jump also
    keep the one parameter every reading reads: about 1 KiB for a 32-sensor
    board, the price of a load instead of two lookups under mypyc).
    """

    spec: "Any" = None
    active = False
    since_ms: "Any" = None
    detail = ""
    clear_since: "Any" = None  # first reading past the clear level (clear_for_s)

    def __init__(self, spec):
        self.spec = spec

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def health(self) -> bool:
        return self.spec.health

    def judge(self, reading: "rd.Reading", watch: "SensorWatch") -> bool:
        raise NotImplementedError

    def reset(self):
        if self.active or self.since_ms is not None or self.detail:
            self.active = False
            self.since_ms = None
            self.detail = ""
        if self.clear_since is not None:
            self.clear_since = None


class _Implicit(Rule):
    """A rule every sensor has, not declared in the board file."""

    def __init__(self):
        pass

    @property
    def health(self) -> bool:
        return True


class RangeCheck(_Implicit):
    @property
    def kind(self) -> str:
        return OUT_OF_RANGE

    def judge(self, reading: "rd.Reading", watch: "SensorWatch") -> bool:
        sensor = watch.sensor
        if sensor.low <= reading.value <= sensor.high:
            return False
        self.detail = "reads %s %s, outside its valid range %s" % (num(reading.value), sensor.unit, watch.limits_text())
        return True


class FaultCheck(_Implicit):
    @property
    def kind(self) -> str:
        return SENSOR_FAULT

    def judge(self, reading: "rd.Reading", watch: "SensorWatch") -> bool:
        return False  # a good reading clears it; FAULT readings are handled by SensorWatch


class Threshold(Rule):
    def judge(self, reading: "rd.Reading", watch: "SensorWatch") -> bool:
        p = self.spec.params
        value = reading.value
        unit = watch.sensor.unit
        if p["above"] is not None:
            if value > p["above"] or (self.active and value > p["clear"]):
                self.detail = "reads %s %s, above its limit %s" % (num(value), unit, num(p["above"]))
                return True
            return False
        if value < p["below"] or (self.active and value < p["clear"]):
            self.detail = "reads %s %s, below its limit %s" % (num(value), unit, num(p["below"]))
            return True
        return False


class Stuck(Rule):
    anchor: "Any" = None
    anchor_ms = 0
    epsilon: "Any"  # the spec's, read by every reading: on the rule, one load under mypyc

    def __init__(self, spec: "Any") -> None:
        self.spec = spec  # as Rule's (mypyc's build fails on a call to Rule.__init__ here)
        self.epsilon = spec.params["epsilon"]

    def judge(self, reading: "rd.Reading", watch: "SensorWatch") -> bool:
        p = self.spec.params
        if self.anchor is None or abs(reading.value - self.anchor) > self.epsilon:
            self.anchor = reading.value
            self.anchor_ms = reading.time_ms
            return False
        held = reading.time_ms - self.anchor_ms
        if held < p["for_ms"]:
            return False
        self.detail = "stuck at %s %s: no change beyond %s for %d s" % (num(self.anchor), watch.sensor.unit, num(p["epsilon"]), held // 1000)
        return True

    def reset(self):
        Rule.reset(self)
        if self.anchor is not None:
            self.anchor = None


# Rule kinds a person's acknowledgement acts on (SensorWatch.acknowledge):
# a level shift takes the present level as its new baseline and clears.
ACKNOWLEDGED_KINDS = ("shift",)

# The kinds most boards declare; the others are in rule_kinds.py, which
# health.py imports only for a board that declares one (on a 32-bit board
# their classes are ~1.5 KiB of heap). Its RULE_CLASSES has every kind.
RULE_CLASSES = {
    "threshold": Threshold,
    "stuck": Stuck,
}


class Change:
    """A rule became active (``active`` True) or cleared."""

    __slots__ = ("rule", "active", "reading")

    def __init__(self, rule, active, reading):
        self.rule = rule
        self.active = active
        self.reading = reading


class SensorWatch:
    """All rules of one sensor, its last readings, and what changed.

    Per reading this is the hot path of the whole device (32 sensors at
    1 Hz on an ESP32), so it allocates nothing that outlives the reading:
    the evidence is a ring (on MicroPython times in an int64 ``array``,
    values in a float64 one; lists on CPython: ``_ring``), and rules that only ever clear on a good reading (the
    sensor's fault report, dropout) are not asked while they are inactive.
    Fields at their usual value are class attributes (see Rule).
    """

    dropout: "Any" = None  # the dropout rule, if declared
    rules: "tuple[Rule, ...]"
    judged: "tuple[Rule, ...]"
    ev_t: list  # the ring (_ring): lists on CPython, the only place mypyc's checks run
    ev_v: list
    ev_other: "dict | None" = None
    ev_count = 0  # readings recorded as evidence, ever (the ring's position)
    previous: "Any" = None  # last good Reading
    bad_rules = 0  # active health rules (the component's evaluation)

    def __init__(self, sensor, component, board, latest, start_ms=None, classes: "Any" = None):
        """``classes``: kind -> Rule class for the sensor's declared rules
        (default RULE_CLASSES; rule_kinds.RULE_CLASSES has every kind)."""
        self.sensor = sensor
        self.component = component
        rules: "list[Rule]" = [RangeCheck(), FaultCheck()]
        kinds: "Any" = RULE_CLASSES if classes is None else classes
        for spec in sensor.rules:
            rule = kinds[spec.kind](spec)
            rules.append(rule)
            if spec.kind == "dropout":
                self.dropout = rule
            elif spec.kind == "disagree":
                # The partner's last reading, fresh if within 3 of the
                # slower of the two sample periods.
                other = board.sensors.get(spec.params["with"])
                rule.latest = latest
                rule.partner_ms = max(other.period_ms if other else 0, sensor.period_ms)
        # The sensor's fault report and dropout only ever clear on a good
        # reading: while both are inactive they are not asked.
        self.rules = tuple(rules)  # fixed from here: a tuple is smaller than a list on MicroPython
        self.judged = tuple([r for r in rules if r.kind != SENSOR_FAULT and r is not self.dropout])
        # Evidence ring: times and values of the last EVIDENCE readings
        # (unboxed on MicroPython), at ev_count % EVIDENCE onwards. A value that is not a
        # float (None for a fault report, an int from a counter) is kept as
        # is in ev_other, {slot: value}, made on first use.
        self.ev_t = _ring("q", 0)
        self.ev_v = _ring("d", 0.0)
        self.last_ms = start_ms  # last reading of any quality (dropout)

    @property
    def evidence(self) -> list:
        """[[time_ms, sensor, value-or-null], ...], oldest first."""
        rows = []
        sid = self.sensor.id
        n = min(self.ev_count, EVIDENCE)
        i = (self.ev_count - n) % EVIDENCE
        other = self.ev_other
        for _ in range(n):
            if other is not None and i in other:
                rows.append([self.ev_t[i], sid, other[i]])
            else:
                rows.append([self.ev_t[i], sid, self.ev_v[i]])
            i = (i + 1) % EVIDENCE
        return rows

    def limits_text(self):
        s = self.sensor
        return "%s to %s %s" % (num(s.low), num(s.high), s.unit)

    def observe(self, reading: "rd.Reading") -> "Any":
        """Judge one reading; return the Changes (a list, or an empty tuple
        for the usual reading that changes nothing)."""
        t = reading.time_ms
        i = self.ev_count % EVIDENCE
        self.ev_t[i] = t
        value = reading.value
        if type(value) is float:
            self.ev_v[i] = value
            if self.ev_other is not None and i in self.ev_other:
                del self.ev_other[i]
        else:
            if self.ev_other is None:
                self.ev_other = {}
            self.ev_other[i] = value
        self.ev_count += 1
        self.last_ms = t
        if reading.quality == _FAULT:
            # A fault report says nothing about the value rules: they keep
            # their state until the next number arrives.
            changes: "Any" = []
            fault = self.rules[1]
            fault.detail = "reports fault %r" % (reading.code,)
            self._set(fault, True, reading, changes)
            if self.dropout is not None:
                self._set(self.dropout, False, reading, changes)
            return changes
        rules = self.judged
        if self.rules[1].active or (self.dropout is not None and self.dropout.active):
            rules = self.rules  # a clear to report, in rule order
        changes = ()
        for rule in rules:
            if rule.judge(reading, self) != rule.active:
                if rule.active and rule.spec is not None:
                    # Hysteresis in time: it clears only after clear_for_s
                    # of readings past its clear level.
                    clear_for = rule.spec.params.get("clear_for_ms", 0)
                    if clear_for:
                        if rule.clear_since is None:
                            rule.clear_since = t
                        if t - rule.clear_since < clear_for:
                            continue
                if not changes:
                    changes = []
                self._set(rule, not rule.active, reading, changes)
            elif rule.clear_since is not None:
                rule.clear_since = None
        self.previous = reading
        return changes

    def check_dropout(self, now_ms):
        """The timer's part: return Changes for the dropout rule."""
        changes = []
        if self.dropout is not None and self.last_ms is not None:
            self._set(self.dropout, self.dropout.due(now_ms, self.last_ms), None, changes)
        return changes

    def dropout_deadline(self):
        if self.dropout is None or self.last_ms is None or self.dropout.active:
            return None
        return self.last_ms + self.dropout.spec.params["for_ms"]

    def _set(self, rule: Rule, active: bool, reading: "Any", changes: "Any") -> None:
        if active == rule.active:
            return
        rule.active = active
        if rule.clear_since is not None:
            rule.clear_since = None
        if rule.health:
            self.bad_rules += 1 if active else -1
        if active:
            rule.since_ms = reading.time_ms if reading is not None else self.last_ms + rule.spec.params["for_ms"]
        # since_ms stays when it clears: the clear alert says when it began.
        changes.append(Change(rule, active, reading))

    def bad(self):
        return self.bad_rules > 0

    def acknowledge(self, kind, now_ms):
        """A person acknowledged this sensor's ``kind`` alert: a rule that
        can take its present level as the new normal (``shift``) does so and
        clears. Returns its Changes."""
        changes = []
        last = self.previous
        for rule in self.rules:
            if rule.active and rule.kind == kind and hasattr(rule, "accept") and last is not None:
                rule.accept(last.value, now_ms)
                self._set(rule, False, None, changes)
        return changes

    def active_rules(self):
        return [r for r in self.rules if r.active]

    def reset(self):
        """Forget everything judged so far (after a quarantine ends)."""
        for rule in self.rules:
            rule.reset()
        self.bad_rules = 0
        self.previous = None


def severity_of(rule, component):
    if rule.spec is not None and rule.spec.severity is not None:
        return rule.spec.severity
    return "critical" if component is not None and component.essential else "warning"


PRIORITY_OF_SEVERITY = {"critical": sg.PRIORITY_CRITICAL, "warning": sg.PRIORITY_HIGH, "info": sg.PRIORITY_NORMAL}


def where(sensor, component):
    text = sensor.id
    if component is not None:
        text += " on " + component.id
        if component.part:
            text += " (part %s)" % component.part
    return text


def link_of(sensor):
    """The link a sensor's readings come over: ``bus:<bus>`` and, for a
    Modbus or other addressed source, ``/slave:<n>``."""
    slave = getattr(sensor.source, "slave", None)
    if slave is None:
        return "bus:" + sensor.bus
    return "bus:%s/slave:%d" % (sensor.bus, slave)


class Link:
    """The sensors that share one link (a bus, or one Modbus slave on it)
    and have a dropout rule. Silence on a link is one ``link_lost``
    incident, not one per sensor: raised by the first of its sensors to go
    silent, cleared when the last silent one answers again. Its alert names
    what the board says is behind the link: the sensor when it is the only
    one there, else the component when all share one (sensor ""), else
    neither; a fixed identity, so raise and clear meet in triage.

    A sensor that falls silent while another on its link kept answering
    (a reading more than a sample period after its own last one) is not
    the link: that is its own incident, raised and cleared under its own
    name, so one dead sensor board cannot hide a later cable cut."""

    def __init__(self, name, watches):
        self.name = name
        self.watches = watches
        self.silent = []  # SensorWatch, in the order they went silent
        self.alone = []  # SensorWatch silent on a link that kept talking
        components = []
        for watch in watches:
            if watch.component not in components:
                components.append(watch.component)
        self.sensor = watches[0].sensor if len(watches) == 1 else None
        self.component = components[0] if len(components) == 1 else None

    def change(self, change, watch, now_ms):
        """A dropout Change of one of its sensors: the alert to propose, or
        None when the link's incident already covers it."""
        if watch in self.alone:
            if not change.active:
                self.alone.remove(watch)
                return rule_alert(change, watch, now_ms)
            return None
        if change.active:
            if watch in self.silent:
                return None
            if self.sensor is None and self._talking(watch):
                self.alone.append(watch)
                return rule_alert(change, watch, now_ms)
            self.silent.append(watch)
            if len(self.silent) > 1:
                return None
        else:
            if watch not in self.silent:
                return None
            self.silent.remove(watch)
            if self.silent:
                return None
        if self.sensor is not None:
            return rule_alert(change, watch, now_ms)  # one sensor: its own alert
        return self._alert(change, watch, now_ms)

    def _talking(self, watch):
        """Whether another sensor on the link answered after ``watch`` fell
        silent (more than its own sample period later)."""
        since = watch.last_ms
        for other in self.watches:
            if other is not watch and other.last_ms is not None and since is not None \
                    and other.last_ms > since + other.sensor.period_ms and other not in self.silent:
                return True
        return False

    def _alert(self, change, watch, now_ms):
        signal = rule_alert(change, watch, now_ms)
        body = signal.body
        component = self.component
        names = ", ".join([w.sensor.id for w in self.watches])
        place = "%s (sensors %s" % (self.name.replace("/", " "), names)
        if component is not None:
            place += " on " + component.id
        place += ")"
        if change.active:
            body[sg.A_TEXT] = "link lost on %s: %s %s" % (place, watch.sensor.id, change.rule.detail)
            spec = change.rule.spec
            if not (spec is not None and spec.action):
                body[sg.A_ACTION] = default_action("dropout", watch.sensor, component, shared=True)
        else:
            body[sg.A_TEXT] = "%s answers again: link back" % place
        body[sg.A_SENSOR] = ""
        body[sg.A_COMPONENT] = component.id if component is not None else ""
        body[sg.A_PART] = component.part if component is not None else ""
        if change.active:
            body[sg.A_AFFECTED] = [w.sensor.id for w in self.silent]
        return signal


def default_action(kind, sensor, component, shared=False):
    """The action an alert suggests when its rule names none; ``shared``:
    a lost link several sensors share (rules.Link), named by its bus."""
    if kind == "dropout":
        slave = getattr(sensor.source, "slave", None)
        if slave is not None:
            action = "check that slave %d on bus %s is powered, addressed and wired (A/B, termination)" % (slave, sensor.bus)
        elif shared:
            action = "check the cable and power of the sensors on bus %s" % sensor.bus
        else:
            action = "check the cable and power of sensor %s on bus %s" % (sensor.id, sensor.bus)
    elif kind == "threshold":
        action = "check the process %s measures" % sensor.id
    else:
        action = "inspect sensor %s and its wiring" % sensor.id
    if component is not None and component.part:
        action += "; if it persists, book service for part %s" % component.part
    return action


def rule_alert(change, watch, now_ms):
    """The alert Signal (unnumbered) for a rule Change."""
    rule = change.rule
    sensor = watch.sensor
    component = watch.component
    reading = change.reading
    severity = severity_of(rule, component)
    place = where(sensor, component)
    if change.active:
        text = "%s %s" % (place, rule.detail)
        action = rule.spec.action if rule.spec is not None and rule.spec.action else default_action(rule.kind, sensor, component)
        if rule.spec is not None and rule.spec.action and component is not None and component.part:
            action += " (part %s)" % component.part
        priority = PRIORITY_OF_SEVERITY[severity]
    else:
        if rule.kind == OUT_OF_RANGE:
            text = "%s back within %s" % (place, watch.limits_text())
        elif rule.kind == "dropout":
            text = "%s answers again on %s: link back" % (place, link_of(sensor).replace("/", " "))
        else:
            text = "%s: %s cleared" % (place, rule.kind.replace("_", " "))
        action = ""
        priority = sg.PRIORITY_NORMAL
    since = rule.since_ms if rule.since_ms is not None else now_ms
    condition = rule.kind
    if condition == "dropout":
        condition = sg.C_LINK_LOST
        if change.active:
            text = "%s: link lost on %s: %s" % (place, link_of(sensor).replace("/", " "), rule.detail)
    signal = sensor_alert(condition, sensor, component, reading.value if reading is not None else None,
                          severity, text, action, since, change.active, priority, now_ms)
    signal.body[sg.A_EVIDENCE] = watch.evidence
    if condition == sg.C_LINK_LOST:
        signal.body[sg.A_ELEMENT] = link_of(sensor)
    return signal


def sensor_alert(condition, sensor, component, value, severity, text, action, since_ms, active, priority, now_ms):
    """An alert Signal (unnumbered) about one sensor (and its component, or
    None): the body keys every sensor's alert carries, rule or prediction."""
    body = {
        sg.A_CONDITION: condition,
        sg.A_COMPONENT: component.id if component is not None else "",
        sg.A_SENSOR: sensor.id,
        sg.A_VALUE: value,
        sg.A_LIMITS: [sensor.low, sensor.high],
        sg.A_SEVERITY: severity,
        sg.A_TEXT: text,
        sg.A_ACTION: action,
        sg.A_PART: component.part if component is not None else "",
        sg.A_SINCE: since_ms,
        sg.A_ACTIVE: active,
        sg.A_UNIT: sensor.unit,
    }
    return sg.Signal(sg.KIND_ALERT, priority, now_ms, body)


def num(value):
    """A number for people: integers without a point, others to 4 digits."""
    if value != value or value in (float("inf"), float("-inf")):
        return "%g" % value
    if value == int(value) and abs(value) < 1e15:
        return "%d" % int(value)
    return "%.4g" % value
