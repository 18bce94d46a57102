"""A reading: one sample of one sensor at one time."""

# Names for annotations only (mypyc, `make accelerate`): never imported at run
# time, so MicroPython, which ignores annotations, needs no typing module.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

# Quality of a reading. GOOD: the sensor delivered a number. FAULT: the
# sensor itself reported an error (value is None, ``code`` says which).
# Final: a constant to mypyc, not a module lookup per reading.
GOOD: "Final" = 0
FAULT: "Final" = 1
# SUBSTITUTED: only in telemetry. The sensor's component is quarantined with
# ``switch``, and the value is its redundant sensor's reading.
SUBSTITUTED: "Final" = 2


class Reading:
    # A good reading (the common case) carries three attributes: quality
    # and code default on the class. On MicroPython every instance
    # attribute is a slot in the instance's own table (``__slots__`` is
    # ignored there), and a device keeps each sensor's last reading.
    quality: int = 0  # GOOD (mypyc takes only a literal as a class default)
    code: "Any" = None

    def __init__(self, time_ms: int, sensor: str, value: "Any", quality: int = GOOD, code: "Any" = None) -> None:
        self.time_ms = time_ms
        self.sensor = sensor
        self.value = value
        if quality != GOOD:
            self.quality = quality
        if code is not None:
            self.code = code

    def __eq__(self, other):
        return (
            isinstance(other, Reading)
            and self.time_ms == other.time_ms
            and self.sensor == other.sensor
            and self.value == other.value
            and self.quality == other.quality
            and self.code == other.code
        )

    def __repr__(self):
        if self.quality == GOOD:
            return "Reading(%d, %r, %r)" % (self.time_ms, self.sensor, self.value)
        return "Reading(%d, %r, fault %r)" % (self.time_ms, self.sensor, self.code)
