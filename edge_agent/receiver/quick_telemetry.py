"""The receiver's shortcut through telemetry: a verified payload's signals
checked without building their readings.

Telemetry is nearly all of what a fleet sends, and decoding every reading
into Python objects (the core's codec, bundle.decode) was most of the
receiver's time, although the receiver keeps each body as the bytes the
device signed and never looks inside a reading. Here a payload of the
shape devices write (a signal, or a bundle of them, each a canonical v1
envelope of kind telemetry whose body is ``{0: [[time, sensor, value,
quality], ...]}``) is checked against that shape with a regular expression,
which runs in C; the envelope's fields are read by hand.

It decides nothing the core would decide otherwise: the shape admits only
CBOR the core's codec reads (no tags, no maps inside readings, ASCII
sensor names), and what the core would check on it is checked here the
same way (signals.from_map's fields, bundle.decode's one device and kind,
signals.body_bytes's canonical envelope). Anything else, or anything in
doubt, gives None, and the core's path decides as before
(tests/receiver/test_quick_telemetry.py holds the two to the same answers
with hypothesis). A body is decoded by the core's codec when something
asks for it (QuickSignal.body): the receiver itself never does for
telemetry.

CPython only, like the rest of the receiver.
"""

import re

from edge_agent.core import bundle, cbor
from edge_agent.core import signals as sg

_UINT = rb"(?:[\x00-\x17]|\x18.|\x19..|\x1a.{4}|\x1b.{8})"
_NINT = rb"(?:[\x20-\x37]|\x38.|\x39..|\x3a.{4}|\x3b.{8})"
_ASCII_TEXT = rb"(?:" + rb"|".join(rb"\x%02x[\x00-\x7f]{%d}" % (0x60 + n, n) for n in range(24)) + rb")"
_VALUE = rb"(?:\xfb.{8}|\xfa.{4}|\xf9..|\xf6|" + _UINT + rb"|" + _NINT + rb")"
# One reading: [time, sensor, value or null, quality].
_ROW = rb"\x84" + _UINT + _ASCII_TEXT + _VALUE + _UINT

_ENVELOPE_START = bytes((0xA7, sg.K_VERSION, sg.VERSION, sg.K_KIND, sg.KIND_TELEMETRY, sg.K_DEVICE))
_BODY_START = bytes((0xA1, sg.T_READINGS))  # a map of one entry, the readings

MIN_ROW_BYTES = 5  # 84, a one-byte time, an empty name, a one-byte value and quality
_rows_patterns = {}  # row count -> compiled (?:ROW){count}
MAX_PATTERNS = 256


def _rows(count):
    pattern = _rows_patterns.get(count)
    if pattern is None:
        if len(_rows_patterns) >= MAX_PATTERNS:
            _rows_patterns.clear()
        pattern = _rows_patterns[count] = re.compile(rb"(?:%s){%d}" % (_ROW, count), re.DOTALL)
    return pattern


class QuickSignal(sg.Signal):
    """A telemetry signal whose body stays bytes until it is asked for."""

    __slots__ = ("raw_body", "_decoded")

    def __init__(self, priority, time_ms, raw_body, device, seq):
        # Signal.__init__ would assign body, a property here.
        self.kind = sg.KIND_TELEMETRY
        self.priority = priority
        self.time_ms = time_ms
        self.device = device
        self.seq = seq
        self.raw_body = raw_body
        self._decoded = _UNDECODED

    @property
    def body(self):
        if self._decoded is _UNDECODED:
            self._decoded = cbor.loads(self.raw_body)
        return self._decoded

    @body.setter
    def body(self, value):
        # As on any Signal (the simulator drops bodies it has delivered).
        self._decoded = value
        self.raw_body = None


_UNDECODED = object()


def open_payload(payload):
    """([QuickSignal], [body bytes]) of a verified payload of telemetry in
    the shape devices write it, or None for anything else."""
    if not payload:
        return None
    first = payload[0]
    if first == 0xA7:
        found = _signal(payload, 0)
        if found is None or found[0] != len(payload):
            return None
        return [found[1]], [found[1].raw_body]
    count, pos = _head(payload, 0, 0x80)
    if count is None or not 0 < count <= bundle.MAX_BUNDLE_SIGNALS:
        return None
    signals = []
    for _ in range(count):
        found = _signal(payload, pos)
        if found is None:
            return None
        pos, signal = found
        if signals and signal.device != signals[0].device:
            return None  # the core's path says which
        signals.append(signal)
    if pos != len(payload):
        return None
    return signals, [signal.raw_body for signal in signals]


_devices = {}  # device id bytes -> str, checked (a fleet's worth)
MAX_DEVICES = 100000


def _signal(payload, pos):
    """(end, QuickSignal) of the canonical telemetry envelope at ``pos``,
    or None."""
    if payload[pos:pos + 6] != _ENVELOPE_START:
        return None
    length, pos = _head(payload, pos + 6, 0x60, canonical=True)
    if length is None:
        return None
    raw = payload[pos:pos + length]
    if len(raw) != length:
        return None
    device = _devices.get(raw)
    if device is None:
        try:
            device = raw.decode("ascii")
        except UnicodeError:
            return None
        if sg.check_device_id(device) is not None:
            return None
        if len(_devices) < MAX_DEVICES:
            _devices[raw] = device
    pos += length
    fields = []
    for key in (sg.K_SEQ, sg.K_TIME, sg.K_PRIORITY):
        if pos >= len(payload) or payload[pos] != key:
            return None
        value, after = _head(payload, pos + 1, 0x00, canonical=True)
        if value is None:
            return None
        fields.append(value)
        pos = after
    seq, time_ms, priority = fields
    if priority > sg.PRIORITY_LOW or payload[pos:pos + 1] != bytes((sg.K_BODY,)):
        return None
    body_start = pos + 1
    if payload[body_start:body_start + 2] != _BODY_START:
        return None
    count, pos = _head(payload, body_start + 2, 0x80)
    if count is None or count > (len(payload) - pos) // MIN_ROW_BYTES:
        return None  # more rows than the bytes could hold (and no pattern for a huge count)
    matched = _rows(count).match(payload, pos)
    if matched is None:
        return None
    end = matched.end()
    return end, QuickSignal(priority, time_ms, payload[body_start:end], device, seq)


def _head(data, pos, major_bits, canonical=False):
    """(argument, position after the head) of a definite head of major type
    ``major_bits`` at ``pos``, else (None, pos); ``canonical``: only the
    shortest head for its argument (as Signal.encode writes envelopes)."""
    try:
        value, after = sg.head_at(data, pos, major_bits)
    except IndexError:  # cut short
        return None, pos
    if value is None or (canonical and after - pos != _SHORTEST_HEAD[_size_class(value)]):
        return None, pos
    return value, after


_SHORTEST_HEAD = (1, 2, 3, 5, 9)  # bytes of the canonical head, by _size_class


def _size_class(value):
    return 0 if value < 24 else 1 if value < 0x100 else 2 if value < 0x10000 else 3 if value < 0x100000000 else 4
