"""Serial decoders by protocol: the board file's ``[buses.ID] protocol`` key.

Adding a protocol is one module plus one line in PROTOCOLS. The module
provides (modbus_master.py and nmea.py are the examples):

- ``NAME``, the board-file value; ``DEFAULT_BAUD``, the baud when the board gives none;
- ``BUS_KEYS``: keys it adds to ``[buses.ID]``, and ``check_bus(check,
  entry, key)`` returning the bus's settings (or None);
- ``SENSOR_KEYS`` and ``check_sensor(check, table, key)``: the sensor's
  ``[sensors.ID.<NAME>]`` table (required for every sensor on such a bus)
  validated into a source spec; a module without ``check_sensor`` takes no
  such table (the line protocol names sensors in its frames);
- ``Decoder(bus, sensors)`` with ``feed(data, now_ms) -> events``,
  ``poll(now_ms) -> (events, bytes to send or None, deadline or None)``,
  ``flush(now_ms) -> events`` (the port closed), and ``writes``: whether
  the adapter must write what ``poll`` returns (request/response protocols).

Events are frames.py's ``Frame`` and ``BadFrame``, plus
modbus_master.WriteResult; device.py turns them into readings and counters.
"""

from edge_agent.core import frames as fr
from edge_agent.core import modbus_master
from edge_agent.core import nmea


class _Line:
    """Our own line protocol (frames.py): sensors name themselves in frames."""

    NAME = "line"
    DEFAULT_BAUD = 115200
    BUS_KEYS = ()

    @staticmethod
    def check_bus(check, entry, key):
        return None

    class Decoder:
        writes = False

        def __init__(self, bus, sensors):
            self._frames = fr.FrameDecoder()

        def feed(self, data, now_ms):
            return self._frames.feed(data)

        def poll(self, now_ms):
            return [], None, None

        def flush(self, now_ms):
            return self._frames.flush()


PROTOCOLS = {
    "line": _Line,
    "modbus": modbus_master,
    "nmea": nmea,
}
NAMES = ("line", "modbus", "nmea")  # dicts are unordered on MicroPython: messages list these


def protocol(name):
    """The module for protocol ``name``; KeyError if there is none."""
    return PROTOCOLS[name]


def create(bus, sensors):
    """A decoder for ``bus`` (a board Bus) reading ``sensors`` (its Sensors)."""
    return PROTOCOLS[bus.protocol].Decoder(bus, sensors)
