"""Serial decoders by protocol: the board file's ``[buses.ID] protocol`` key.

Adding a protocol is one module plus one branch in protocol() and a name in NAMES. The module
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

Events are frames.py's ``Frame``, ``BadFrame`` and ``WriteResult`` (the
outcome of a queued write; modbus_master makes them); device.py turns them
into readings and counters. They live in frames.py, which every decoder
imports, so a protocol module never imports this registry (no circle).

A protocol's module is imported when a board first uses it, not with this
module: on a board every imported function costs heap (MicroPython), and a
board that speaks only the line protocol would pay ~19 KiB for Modbus and
NMEA (measured on the 64-bit unix port, bench/firmware_imports.py).
"""

from edge_agent.core import frames as fr


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


NAMES = ("line", "modbus", "nmea")  # dicts are unordered on MicroPython: messages list these


def protocol(name):
    """The module for protocol ``name`` (imported now if it is not yet);
    KeyError if there is none."""
    if name == "line":
        return _Line
    if name == "modbus":
        from edge_agent.core import modbus_master

        return modbus_master
    if name == "nmea":
        from edge_agent.core import nmea

        return nmea
    raise KeyError(name)


def create(bus, sensors):
    """A decoder for ``bus`` (a board Bus) reading ``sensors`` (its Sensors)."""
    return protocol(bus.protocol).Decoder(bus, sensors)
