"""GPIO for the firmware: outputs the core drives (quarantine cuts a
component's power) and inputs read as sensors (a door switch).

Pins are duck-typed: anything with ``value()`` / ``value(v)``, so the ESP32
passes ``machine.Pin`` and the unix port a ``machine.PinBase`` subclass
(firmware/unix_hw.py). Nothing here creates a pin.
"""

import asyncio

from edge_agent.core import reading as rd


class PinOutputs:
    """Applies the core's SetOutput to ``pins`` ({output id: pin}). A line
    is logically on unless the core holds it off; ``active_low`` (from the
    board) inverts the physical level."""

    def __init__(self, pins):
        self.pins = pins
        self.state = {}
        for output_id in pins:
            self.state[output_id] = True

    def apply(self, action):
        pin = self.pins.get(action.output)
        if pin is None:
            raise KeyError("no pin for output %r (pins: %s); map it with `firmware compile-board --output`"
                           % (action.output, ", ".join(sorted(self.pins))))
        pin.value(1 if action.on != action.active_low else 0)
        self.state[action.output] = action.on

    def close(self):
        pass


class PinInput:
    """Reads a switch on ``pin`` every ``period_ms`` as sensor ``sensor_id``
    (value 1.0 closed/high, 0.0 open/low; ``invert`` for a pull-up switch
    wired to ground). Every sample is a reading, so the health rules see a
    steady input too (a stuck door contact is a rule like any other)."""

    def __init__(self, device, sensor_id, pin, clock, dispatch, period_ms=500, invert=False):
        if sensor_id not in device.board.sensors:
            raise KeyError("input pin for sensor %r: no such sensor on board %s" % (sensor_id, device.board.name))
        self.device = device
        self.sensor_id = sensor_id
        self.pin = pin
        self.clock = clock
        self.dispatch = dispatch
        self.period_ms = period_ms
        self.invert = invert
        self.samples = 0

    def sample(self):
        level = 1 if self.pin.value() else 0
        if self.invert:
            level = 1 - level
        now = self.clock()
        self.samples += 1
        self.dispatch(self.device.ingest(rd.Reading(now, self.sensor_id, float(level)), now))

    async def run(self):
        while True:
            self.sample()
            await asyncio.sleep(self.period_ms / 1000)
