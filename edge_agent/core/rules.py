"""Rules that turn readings into alerts.

One rule so far, the valid-range threshold: a sensor reading outside its
board-declared valid range, or a sensor reporting its own fault, raises an
alert. Alerts are edge-triggered: one when a condition begins and one (with
active = false) when it clears, never one per reading, so a stuck-high
sensor sampled every second does not page anyone sixty times a minute.
The health engine (rules with hysteresis, debouncing, component states)
grows from here.
"""

from edge_agent.core import reading as rd
from edge_agent.core import signals as sg

OUT_OF_RANGE = "out_of_range"
SENSOR_FAULT = "sensor_fault"


class RangeRule:
    """Watches one sensor against its valid range (from the board)."""

    def __init__(self, sensor, component):
        self.sensor = sensor
        self.component = component
        self.condition = None  # the active condition, or None when healthy
        self.since_ms = None

    def evaluate(self, reading):
        """Return an alert Signal when the condition changes, else None."""
        if reading.quality == rd.FAULT:
            condition = SENSOR_FAULT
        elif not self.sensor.low <= reading.value <= self.sensor.high:
            condition = OUT_OF_RANGE
        else:
            condition = None
        if condition == self.condition:
            return None
        if self.condition is not None:
            # The old condition clears first; a direct switch between two
            # conditions (fault -> out of range) raises the new one next time.
            cleared = self._alert(reading, self.condition, False)
            self.condition = None
            self.since_ms = None
            return cleared
        self.condition = condition
        self.since_ms = reading.time_ms
        return self._alert(reading, condition, True)

    def _alert(self, reading, condition, active):
        sensor = self.sensor
        component = self.component
        essential = component is not None and component.essential
        severity = "critical" if essential else "warning"
        where = sensor.id
        if component is not None:
            where += " on " + component.id
            if component.part:
                where += " (part %s)" % component.part
        limits = "%s to %s %s" % (_num(sensor.low), _num(sensor.high), sensor.unit)
        if not active:
            text = "%s back within %s" % (where, limits)
        elif condition == SENSOR_FAULT:
            text = "%s reports fault %r" % (where, reading.code)
        else:
            text = "%s reads %s %s, outside its valid range %s" % (where, _num(reading.value), sensor.unit, limits)
        action = "inspect sensor %s and its wiring" % sensor.id
        if component is not None and component.part:
            action += "; if it persists, book service for part %s" % component.part
        body = {
            sg.A_CONDITION: condition,
            sg.A_COMPONENT: component.id if component is not None else "",
            sg.A_SENSOR: sensor.id,
            sg.A_VALUE: reading.value,
            sg.A_LIMITS: [sensor.low, sensor.high],
            sg.A_SEVERITY: severity,
            sg.A_TEXT: text,
            sg.A_ACTION: action if active else "",
            sg.A_PART: component.part if component is not None else "",
            sg.A_SINCE: self.since_ms if self.since_ms is not None else reading.time_ms,
            sg.A_ACTIVE: active,
            sg.A_UNIT: sensor.unit,
        }
        if active:
            priority = sg.PRIORITY_CRITICAL if essential else sg.PRIORITY_HIGH
        else:
            priority = sg.PRIORITY_NORMAL
        return sg.Signal(sg.KIND_ALERT, priority, reading.time_ms, body)


def _num(value):
    if value == int(value) and abs(value) < 1e15:
        return "%d" % int(value)
    return "%g" % value
