"""NMEA 0183 sentences (GPS receivers and marine instruments): a decoder.

A sentence is one ASCII line (NMEA 0183 v4.10; gpsd's "NMEA 0183 Revealed"
documents the fields)::

    $GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\\r\\n
     ^^^^^ address: talker GP (GPS; GN multi-system, GL GLONASS, ...) + type GGA
                                                                    ^^ XOR of every byte between '$' and '*'

Theory of operation: the same two-state machine as the line protocol
(frames.py): HUNT drops bytes until ``$``; FRAME collects until ``\\n``; a
``$`` inside a frame restarts it; more than MAX_SENTENCE bytes abandons it.
Bad input becomes a ``BadFrame`` (reasons as frames.py's), never an
exception. A good sentence yields one ``Frame`` per board sensor mapped to
one of its fields, for any talker: a board says ``sentence = "GGA"``, and
``$GPGGA`` and ``$GNGGA`` both feed it.

Fields are named for the common sentences (FIELDS), or given by their
1-based position after the address for any other sentence (the field must
then be a decimal number). Latitude and longitude become signed decimal
degrees (south and west negative). A position without a fix (GGA fix
quality 0, RMC status V, VTG mode N) becomes a sensor error ``no-fix``;
an empty field yields nothing (the dropout rule notices a sensor that
never reads). On an ESP32 floats are single precision: 7 digits, about
1 m of latitude, which a consumer GPS does not beat anyway.

The checksum is an XOR: weaker than our line protocol's CRC-16 (two
flipped bits in the same position of two bytes cancel). Mandatory here:
a sentence without one is rejected.
"""

from edge_agent.core import frames as fr

NAME = "nmea"
MAX_SENTENCE = 82  # the standard's limit, '$' to '\n' inclusive
DEFAULT_BAUD = 4800  # NMEA 0183's standard rate (many receivers run 9600 or faster)

NO_FIX = "no-fix"

# Field name -> (position after the address, kind). Kinds: "lat"/"lon" take
# the hemisphere from the next field; "num" is a decimal number.
FIELDS = {
    "GGA": {"latitude": (2, "lat"), "longitude": (4, "lon"), "fix_quality": (6, "num"), "satellites": (7, "num"),
            "hdop": (8, "num"), "altitude": (9, "num"), "geoid_separation": (11, "num")},
    "RMC": {"latitude": (3, "lat"), "longitude": (5, "lon"), "speed_knots": (7, "num"), "course": (8, "num"),
            "magnetic_variation": (10, "num")},
    "VTG": {"course": (1, "num"), "speed_knots": (5, "num"), "speed_kmh": (7, "num")},
}
# Fields that mean something without a fix (the rest report no-fix).
_WITHOUT_FIX = ("fix_quality", "satellites")
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_HEX = b"0123456789ABCDEFabcdef"


def checksum(body):
    """XOR of the bytes between '$' and '*'."""
    value = 0
    for byte in body:
        value ^= byte
    return value


def sentence(fields):
    """A sentence from its fields (address first), checksum and CRLF added:
    for tests and the simulator."""
    body = ",".join(fields).encode()
    return b"$" + body + ("*%02X" % checksum(body)).encode() + b"\r\n"


def _number(text):
    # The line protocol's strict decimal check (no nan, inf, spaces, _).
    return fr._parse_number(text)


def _degrees(text, hemisphere, kind):
    # ddmm.mmmm (latitude) or dddmm.mmmm (longitude)
    point = text.find(".")
    if point < 0:
        point = len(text)
    width = 2 if kind == "lat" else 3
    if point != width + 2:
        return None
    degrees = _number(text[:width])
    minutes = _number(text[width:])
    if degrees is None or minutes is None or minutes >= 60 or text[0] in "+-":
        return None
    value = degrees + minutes / 60
    if value > (90 if kind == "lat" else 180):
        return None
    good = ("N", "S") if kind == "lat" else ("E", "W")
    if hemisphere not in good:
        return None
    return -value if hemisphere in ("S", "W") else value


class Sentence:
    """A checked sentence: ``type`` (e.g. "GGA"), ``talker``, ``fields``
    (strings, address excluded)."""

    __slots__ = ("talker", "type", "fields")

    def __init__(self, talker, type_name, fields):
        self.talker = talker
        self.type = type_name
        self.fields = fields

    def __repr__(self):
        return "Sentence(%s%s %r)" % (self.talker, self.type, self.fields)


def parse_sentence(line):
    """One sentence from '$' to before '\\n' (a '\\r' allowed at the end):
    a Sentence or a BadFrame."""
    raw = line
    if line[-1:] == b"\r":
        line = line[:-1]
    for byte in line:
        if byte < 0x20 or byte > 0x7E:
            return fr.BadFrame(fr.NOT_ASCII, raw, "byte 0x%02x" % byte)
    star = line.rfind(b"*")
    if star < 0:
        return fr.BadFrame(fr.NO_CHECKSUM, raw, "no '*' before the line end")
    body = line[1:star]
    declared = line[star + 1 :]
    if len(declared) != 2 or declared[0] not in _HEX or declared[1] not in _HEX:
        return fr.BadFrame(fr.BAD_SYNTAX, raw, "checksum %r is not 2 hex digits" % bytes(declared))
    if int(declared, 16) != checksum(body):
        return fr.BadFrame(fr.BAD_CHECKSUM, raw, "declared %s, computed %02X" % (bytes(declared).decode(), checksum(body)))
    parts = body.decode().split(",")
    address = parts[0]
    if address[:1] == "P" and 1 < len(address) and all(ch in _UPPER for ch in address):
        # Proprietary ($PGRME: P, maker GRM, type E): valid, and receivers
        # send them unasked, so they are returned (and ignored unless a
        # board maps the type), never counted as bad.
        return Sentence("P", address[1:], parts[1:])
    if len(address) != 5 or any(ch not in _UPPER for ch in address):
        return fr.BadFrame(fr.UNKNOWN_TYPE, raw, "address %r is not a talker and a 3-letter type" % address)
    return Sentence(address[:2], address[2:], parts[1:])


def field_value(parsed, name_or_index):
    """The value of one field: (True, number), (False, error code), or None
    when the field is empty or absent."""
    fields = parsed.fields
    if isinstance(name_or_index, int):
        position, kind = name_or_index, "num"
    else:
        position, kind = FIELDS[parsed.type][name_or_index]
        if name_or_index not in _WITHOUT_FIX and not _has_fix(parsed):
            return False, NO_FIX
    if position > len(fields) or not fields[position - 1]:
        return None
    text = fields[position - 1]
    if kind == "num":
        value = _number(text)
    else:
        hemisphere = fields[position] if position < len(fields) else ""
        value = _degrees(text, hemisphere, kind)
    if value is None:
        return False, "bad-field"
    return True, value


def _has_fix(parsed):
    fields = parsed.fields
    if parsed.type == "GGA":
        return len(fields) > 5 and fields[5] not in ("", "0")
    if parsed.type == "RMC":
        return len(fields) > 1 and fields[1] == "A"
    if parsed.type == "VTG":
        return len(fields) < 9 or fields[8] != "N"  # mode indicator since NMEA 2.3
    return True


class SentenceDecoder:
    """Bytes to Sentence and BadFrame events (the module doc's machine)."""

    def __init__(self):
        self._framing = False
        self._buffer = bytearray()
        self._garbage = bytearray()
        self._garbage_count = 0

    def feed(self, data):
        events = []
        for byte in data:
            if byte == 0x24:  # '$'
                if self._framing:
                    events.append(fr.BadFrame(fr.TRUNCATED, bytes(self._buffer), "sentence cut short by '$'"))
                self._flush_garbage(events)
                self._framing = True
                self._buffer = bytearray(b"$")
            elif self._framing:
                if byte == 0x0A:
                    events.append(parse_sentence(bytes(self._buffer)))
                    self._framing = False
                    self._buffer = bytearray()
                elif len(self._buffer) >= MAX_SENTENCE:
                    events.append(fr.BadFrame(fr.OVERLONG, bytes(self._buffer),
                                              "no line end within %d bytes" % MAX_SENTENCE))
                    self._framing = False
                    self._buffer = bytearray()
                else:
                    self._buffer.append(byte)
            elif byte not in (0x0A, 0x0D, 0x20):
                self._garbage_count += 1
                if len(self._garbage) < MAX_SENTENCE:
                    self._garbage.append(byte)
        return events

    def flush(self):
        events = []
        if self._framing:
            events.append(fr.BadFrame(fr.TRUNCATED, bytes(self._buffer), "input ended inside a sentence"))
            self._framing = False
            self._buffer = bytearray()
        self._flush_garbage(events)
        return events

    def _flush_garbage(self, events):
        if self._garbage_count:
            events.append(fr.BadFrame(fr.GARBAGE, bytes(self._garbage), "%d bytes outside a sentence" % self._garbage_count))
            self._garbage = bytearray()
            self._garbage_count = 0


# -- the decoder interface (decoders.py) and board keys ----------------------

BUS_KEYS = ()
SENSOR_KEYS = ("sentence", "field")


class Source:
    """Which field of which sentence a sensor reads ([sensors.ID.nmea])."""

    __slots__ = ("sentence", "field")

    def __init__(self, sentence_type, field):
        self.sentence = sentence_type
        self.field = field


def check_bus(check, entry, key):
    return None


def check_sensor(check, table, key):
    check.unknown_keys(table, SENSOR_KEYS, key)
    sentence_type = check.text(table, "sentence", key)
    if sentence_type is not None and (len(sentence_type) != 3 or any(ch not in _UPPER for ch in sentence_type)):
        check.problem(key + ".sentence", "%r is not a 3-letter sentence type" % sentence_type,
                      "write the type without the talker: \"GGA\" for $GPGGA")
        sentence_type = None
    field = table.get("field")
    if field is None:
        check.problem(key + ".field", "missing", "add field = \"<name>\" or field = <position after the address>")
    elif isinstance(field, int) and not isinstance(field, bool):
        if not 1 <= field <= 40:
            check.problem(key + ".field", "position %d is outside 1..40" % field, "count fields after the address from 1")
            field = None
    elif isinstance(field, str):
        known = FIELDS.get(sentence_type) if sentence_type else None
        if sentence_type is not None and known is None:
            check.problem(key + ".field", "no field names for %s sentences" % sentence_type,
                          "give the position instead (field = 9), or use one of: %s" % ", ".join(sorted(FIELDS)))
            field = None
        elif known is not None and field not in known:
            check.problem(key + ".field", "%s has no field %r" % (sentence_type, field),
                          "use one of: %s" % ", ".join(sorted(known)))
            field = None
    else:
        check.problem(key + ".field", "must be a name or a position, not %r" % (field,), "write field = \"altitude\"")
        field = None
    return Source(sentence_type, field)


class Decoder:
    """The decoders.py interface: sentences to readings for a bus's sensors."""

    writes = False

    def __init__(self, bus, sensors):
        self._sentences = SentenceDecoder()
        self._map = {}  # sentence type -> [(sensor id, field)]
        for sensor in sorted(sensors, key=lambda s: s.id):
            self._map.setdefault(sensor.source.sentence, []).append((sensor.id, sensor.source.field))
        self.ignored = 0  # good sentences no sensor reads

    def feed(self, data, now_ms):
        events = []
        for item in self._sentences.feed(data):
            if isinstance(item, fr.BadFrame):
                events.append(item)
                continue
            wanted = self._map.get(item.type)
            if not wanted:
                self.ignored += 1
                continue
            for sensor_id, field in wanted:
                result = field_value(item, field)
                if result is None:
                    continue
                ok, value = result
                events.append(fr.Frame(fr.READING if ok else fr.SENSOR_ERROR, sensor_id, value))
        return events

    def poll(self, now_ms):
        return [], None, None

    def flush(self, now_ms):
        return self._sentences.flush()
