"""The edge-agent serial line protocol: encoder and a resynchronising decoder.

A frame is one ASCII line (docs/serial-protocol.md is the full spec)::

    $R,coolant_temp,21.5*4258\\r\\n
    ^ ^ ^            ^    ^
    | | sensor id    |    CRC-16/CCITT-FALSE of the bytes between '$' and '*',
    | type           value  as 4 upper-case hex digits
    start

Types: ``R`` a reading (sensor id, decimal value); ``E`` a sensor-reported
error (sensor id, error code such as ``open`` or ``short``).

Theory of operation. The decoder is sans-I/O: ``feed(bytes)`` returns the
events completed by those bytes, in order, and never raises. It has two
states. HUNT drops bytes until a ``$``; FRAME collects bytes until ``\\n``.
A ``$`` seen inside a frame restarts the frame there, because ``$`` never
occurs inside a valid frame: whatever noise precedes a valid frame, the
frame is recovered whole. A frame longer than MAX_FRAME is abandoned (back
to HUNT), which bounds memory at MAX_FRAME bytes whatever the line sends.

Bad input becomes a ``BadFrame`` event naming the reason, so the caller can
count and log it; it is never an exception.
"""

MAX_FRAME = 96  # bytes from '$' to '\n'; the longest valid frame is ~60
MAX_SENSOR_ID = 32

# Reasons a BadFrame carries (stable strings: counted, logged and documented).
GARBAGE = "garbage"  # bytes outside any frame
OVERLONG = "overlong"  # no '\n' within MAX_FRAME bytes of '$'
TRUNCATED = "truncated"  # a '$' arrived before the previous frame ended
NO_CHECKSUM = "no-checksum"
BAD_CHECKSUM = "bad-checksum"
NOT_ASCII = "not-ascii"
BAD_SYNTAX = "bad-syntax"
UNKNOWN_TYPE = "unknown-type"
BAD_SENSOR_ID = "bad-sensor-id"
BAD_VALUE = "bad-value"

READING = "R"
SENSOR_ERROR = "E"

_HUNT = 0
_FRAME = 1

_SENSOR_ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"
_NUMBER_CHARS = "0123456789+-.eE"
_ERROR_CODE_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-"
_HEX_DIGITS = b"0123456789ABCDEFabcdef"


class FrameError(ValueError):
    """The caller asked the encoder for a frame that cannot be valid."""


class Frame:
    """A valid frame: ``kind`` is READING (value is a float) or SENSOR_ERROR
    (value is the error code, a str)."""

    __slots__ = ("kind", "sensor", "value")

    def __init__(self, kind, sensor, value):
        self.kind = kind
        self.sensor = sensor
        self.value = value

    def __eq__(self, other):
        return (
            isinstance(other, Frame)
            and self.kind == other.kind
            and self.sensor == other.sensor
            and self.value == other.value
        )

    def __repr__(self):
        return "Frame(%r, %r, %r)" % (self.kind, self.sensor, self.value)


class BadFrame:
    """Input the decoder rejected: ``reason`` is one of the module's reason
    constants, ``raw`` the rejected bytes (at most MAX_FRAME of them)."""

    __slots__ = ("reason", "raw", "detail")

    def __init__(self, reason, raw, detail=""):
        self.reason = reason
        self.raw = raw
        self.detail = detail

    def __repr__(self):
        return "BadFrame(%r, %r, %r)" % (self.reason, self.raw, self.detail)

    def describe(self):
        text = self.reason
        if self.detail:
            text += ": " + self.detail
        return "%s (%d bytes: %r)" % (text, len(self.raw), bytes(self.raw[:40]))


class WriteResult:
    """How a queued write ended (request/response buses: modbus_master makes
    these): ``ok``, or ``detail`` says why not."""

    __slots__ = ("tag", "ok", "detail")

    def __init__(self, tag, ok, detail=""):
        self.tag = tag
        self.ok = ok
        self.detail = detail

    def __repr__(self):
        return "WriteResult(%r, %r, %r)" % (self.tag, self.ok, self.detail)


def crc16_ccitt(data, crc=0xFFFF):
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no xorout.
    Check value: crc16_ccitt(b"123456789") == 0x29B1."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            if crc & 0x8000:
                crc = ((crc << 1) ^ 0x1021) & 0xFFFF
            else:
                crc = (crc << 1) & 0xFFFF
    return crc


def _valid_sensor_id(text):
    if not 0 < len(text) <= MAX_SENSOR_ID:
        return False
    for ch in text:
        if ch not in _SENSOR_ID_CHARS:
            return False
    return True


def format_value(value):
    """Shortest decimal text for a reading value that parses back exactly
    enough for a sensor (repr on CPython; MicroPython's repr is also short)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    text = repr(float(value))
    if text in ("nan", "inf", "-inf"):
        raise FrameError("a reading value must be finite, not %s" % text)
    return text


def encode_frame(kind, sensor, value):
    """The bytes of one frame, '\\r\\n' terminated. Raises FrameError for a
    frame the decoder would reject (the encoder never writes a bad frame)."""
    if not _valid_sensor_id(sensor):
        raise FrameError(
            "sensor id %r must be 1-%d characters of a-z, 0-9 and _" % (sensor, MAX_SENSOR_ID)
        )
    if kind == READING:
        field = format_value(value)
    elif kind == SENSOR_ERROR:
        field = str(value)
        if not field or any(ch not in _ERROR_CODE_CHARS for ch in field):
            raise FrameError("error code %r must be a-z, 0-9, _ and -" % (field,))
    else:
        raise FrameError("frame type must be %r or %r, not %r" % (READING, SENSOR_ERROR, kind))
    body = ("%s,%s,%s" % (kind, sensor, field)).encode()
    frame = b"$" + body + b"*" + ("%04X" % crc16_ccitt(body)).encode() + b"\r\n"
    if len(frame) > MAX_FRAME:
        raise FrameError("frame would be %d bytes, the limit is %d" % (len(frame), MAX_FRAME))
    return frame


def _parse_number(text):
    # float() alone would accept "nan", "inf", "1_0" and spaces: check the
    # characters first so both interpreters accept exactly the same values.
    if not text or len(text) > 24:
        return None
    for ch in text:
        if ch not in _NUMBER_CHARS:
            return None
    try:
        value = float(text)
    except ValueError:
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return value


def parse_frame(line):
    """Parse one complete frame (bytes from '$' to before '\\n', an optional
    '\\r' allowed at the end). Returns a Frame or a BadFrame."""
    raw = line
    if line[-1:] == b"\r":
        line = line[:-1]
    for byte in line:
        if byte < 0x20 or byte > 0x7E:
            return BadFrame(NOT_ASCII, raw, "byte 0x%02x" % byte)
    star = line.rfind(b"*")
    if star < 0:
        return BadFrame(NO_CHECKSUM, raw, "no '*' before the line end")
    body = line[1:star]
    checksum = line[star + 1 :]
    if len(checksum) != 4 or any(ch not in _HEX_DIGITS for ch in checksum):
        return BadFrame(BAD_SYNTAX, raw, "checksum %r is not 4 hex digits" % bytes(checksum))
    declared = int(checksum, 16)
    actual = crc16_ccitt(body)
    if declared != actual:
        return BadFrame(BAD_CHECKSUM, raw, "declared %04X, computed %04X" % (declared, actual))
    fields = body.decode().split(",")
    if len(fields) != 3:
        return BadFrame(BAD_SYNTAX, raw, "expected 3 fields, got %d" % len(fields))
    kind, sensor, field = fields
    if kind not in (READING, SENSOR_ERROR):
        return BadFrame(UNKNOWN_TYPE, raw, "type %r" % kind)
    if not _valid_sensor_id(sensor):
        return BadFrame(BAD_SENSOR_ID, raw, "sensor id %r" % sensor)
    if kind == READING:
        value = _parse_number(field)
        if value is None:
            return BadFrame(BAD_VALUE, raw, "value %r is not a finite decimal number" % field)
        return Frame(kind, sensor, value)
    for ch in field:
        if ch not in _ERROR_CODE_CHARS:
            return BadFrame(BAD_VALUE, raw, "error code %r" % field)
    if not field:
        return BadFrame(BAD_VALUE, raw, "empty error code")
    return Frame(kind, sensor, field)


class FrameDecoder:
    """Turns a byte stream into Frame and BadFrame events (see module doc)."""

    def __init__(self):
        self._state = _HUNT
        self._buffer = bytearray()
        self._garbage = bytearray()  # a sample of the current garbage run
        self._garbage_count = 0

    def feed(self, data):
        """Consume ``data``; return the list of events it completed."""
        events = []
        for byte in data:
            if byte == 0x24:  # '$'
                if self._state == _FRAME:
                    events.append(BadFrame(TRUNCATED, bytes(self._buffer), "frame cut short by '$'"))
                self._flush_garbage(events)
                self._state = _FRAME
                self._buffer = bytearray(b"$")
            elif self._state == _FRAME:
                if byte == 0x0A:  # '\n' ends the frame
                    events.append(parse_frame(bytes(self._buffer)))
                    self._state = _HUNT
                    self._buffer = bytearray()
                elif len(self._buffer) >= MAX_FRAME:
                    events.append(
                        BadFrame(OVERLONG, bytes(self._buffer), "no line end within %d bytes" % MAX_FRAME)
                    )
                    self._state = _HUNT
                    self._buffer = bytearray()
                    self._count_garbage(byte)
                else:
                    self._buffer.append(byte)
            else:
                self._count_garbage(byte)
        return events

    def flush(self):
        """Events for what is pending (e.g. when the port closes): garbage
        seen so far and an unfinished frame, both as BadFrame."""
        events = []
        if self._state == _FRAME:
            events.append(BadFrame(TRUNCATED, bytes(self._buffer), "input ended inside a frame"))
            self._state = _HUNT
            self._buffer = bytearray()
        self._flush_garbage(events)
        return events

    def _count_garbage(self, byte):
        # Line ends and spaces between frames are tolerated, not garbage.
        if byte in (0x0A, 0x0D, 0x20):
            return
        self._garbage_count += 1
        if len(self._garbage) < MAX_FRAME:
            self._garbage.append(byte)

    def _flush_garbage(self, events):
        if self._garbage_count:
            events.append(
                BadFrame(GARBAGE, bytes(self._garbage), "%d bytes outside a frame" % self._garbage_count)
            )
            self._garbage = bytearray()
            self._garbage_count = 0
