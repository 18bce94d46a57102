"""A small CBOR (RFC 8949) codec that runs on CPython and MicroPython.

MicroPython has no cbor2, and the device must build the same bytes as the
gateway, so the core carries its own codec.

Encoding is always deterministic ("canonical"): shortest integer heads, the
shortest float width that keeps the value exactly, definite lengths, and map
keys sorted length-first then bytewise (RFC 7049 section 3.9, the order
cbor2 uses for ``canonical=True``; output is byte-identical to
``cbor2.dumps(obj, canonical=True)``, which the tests check with hypothesis,
with one exception: a float 32768 <= |x| <= 65504 that half precision holds
exactly is written as a half float, as RFC 8949 prefers (its Appendix A
gives 65504.0 as f97bff), where cbor2 5.9's C encoder writes a single).
Sorting matters twice over: MicroPython dicts are not insertion-ordered, and
signatures need one byte string per value.

Decoding accepts any well-formed CBOR a peer may send (indefinite lengths,
any float width, tags) within limits that keep a small board safe: nesting
depth and a declared length never larger than the bytes actually present.

Python type   CBOR
-----------   ----
None          simple 22 (null)
bool          simple 20/21
int           major 0/1, tags 2/3 (bignum) beyond 64 bits
float         major 7, half/single/double
bytes         major 2 (bytearray and memoryview encode as bytes too)
str           major 3
list, tuple   major 4 (decoded as list; as tuple when used as a map key)
dict          major 5
Tag           major 6 (tags other than 2/3 decode to Tag)
Undefined     simple 23 (decodes to the UNDEFINED singleton)
"""

import struct

# Names for annotations only (mypyc, `make accelerate`): never imported at run
# time, so MicroPython, which ignores annotations, needs no typing module.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

# Nesting deeper than this is refused. MicroPython's C stack allows roughly
# 40-60 recursive Python calls on an ESP32; 32 levels leaves room for callers,
# and no signal we define nests deeper than 4.
MAX_DEPTH: "Final" = 32


class CBORError(ValueError):
    """Base of every error this codec raises (a ValueError: bad data)."""


class CBOREncodeError(CBORError):
    """The value cannot be represented (unsupported type, cycle, too deep)."""


class CBORDecodeError(CBORError):
    """The bytes are not well-formed CBOR, or exceed this decoder's limits."""


class CBORDecodeEOF(CBORDecodeError):
    """The bytes end before the item does (truncated input)."""


class Tag:
    """A tagged item the decoder does not interpret itself."""

    __slots__ = ("tag", "value")

    def __init__(self, tag, value):
        self.tag = tag
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Tag) and self.tag == other.tag and self.value == other.value

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash((self.tag, _hashable(self.value)))

    def __repr__(self):
        return "Tag(%d, %r)" % (self.tag, self.value)


class _Undefined:
    __slots__ = ()

    def __repr__(self):
        return "UNDEFINED"


UNDEFINED = _Undefined()

_UINT64_LIMIT = 1 << 64


def _head(major, n):
    """The initial byte(s) for major type ``major`` with argument ``n``."""
    mt = major << 5
    if n < 24:
        return bytes((mt | n,))
    if n < 0x100:
        return bytes((mt | 24, n))
    if n < 0x10000:
        return struct.pack(">BH", mt | 25, n)
    if n < 0x100000000:
        return struct.pack(">BI", mt | 26, n)
    return struct.pack(">BQ", mt | 27, n)


def _encode_int(value):
    if value >= 0:
        if value < 24:
            return bytes((value,))
        if value < 0x100:
            return bytes((24, value))
        if value < 0x100000000:
            return _pack(">BH", 25, value) if value < 0x10000 else _pack(">BI", 26, value)
        if value < _UINT64_LIMIT:
            return _pack(">BQ", 27, value)
        return b"\xc2" + _encode_bytes(_int_to_bytes(value))
    magnitude = -1 - value
    if magnitude < _UINT64_LIMIT:
        return _head(1, magnitude)
    return b"\xc3" + _encode_bytes(_int_to_bytes(magnitude))


def _int_to_bytes(n):
    length = 0
    probe = n
    while probe:
        probe >>= 8
        length += 1
    return n.to_bytes(length, "big")


def _encode_bytes(value):
    return _head(2, len(value)) + bytes(value)


def _encode_float(value):
    # The shortest of half, single, double that holds the value exactly.
    # Every half is also a single, so a value that fails single is a double.
    if value != value:  # NaN: the canonical quiet NaN, as cbor2 writes it
        return b"\xf9\x7e\x00"
    # A double with any of its 29 lowest mantissa bits set needs more than
    # a single's 24 significant bits (a reading like 20.137, nearly every
    # one): it is written as is, one pack and no round trip.
    double = _pack(">Bd", 0xFB, value)
    if double[8] or double[7] or double[6] or double[5] & 0x1F:
        return double
    try:
        single = _pack(">Bf", 0xFA, value)
    except (OverflowError, ValueError):
        return double
    # MicroPython saturates to inf instead of raising: the round trip
    # check catches that, and any lost precision.
    if _unpack_from(">f", single, 1)[0] != value:
        return double
    try:
        half = _pack(">Be", 0xF9, value)
        if _unpack_from(">e", half, 1)[0] == value:
            return half
    except (OverflowError, ValueError):
        pass
    return single


# Final: constants to mypyc (`make accelerate`), not a module lookup per row.
_pack: "Final" = struct.pack
_unpack: "Final" = struct.unpack
_unpack_from: "Final" = struct.unpack_from

# Telemetry rows, [time_ms, sensor, value, quality], are nearly all of a
# device's CBOR (and of a receiver's): both directions have a shortcut for
# them that gives the bytes and values of the general path. The sensor ids
# repeat, so their encoded and decoded forms are kept, up to this many.
MAX_CACHED_TEXTS = 256
# Off, every row takes the general paths (the tests compare the two).
ROW_SHORTCUTS = True
_row_heads: "Final[dict]" = {}  # sensor id (str) -> (struct format of a row with a double, the id's encoding, its length)
_byte_texts: dict = {}  # UTF-8 bytes -> str
# A row with an id of n bytes and a double, for unpack: [0x84, 0x1b] time
# [text head] id [0xfb] double quality; made on first use (a board's heap).
_ROW_FORMATS: list = [None] * 24


def _row_head(sensor):
    """How a row of ``sensor`` (a str) is packed, remembered for the next."""
    known = _row_heads.get(sensor)
    if known is None:
        raw = sensor.encode("utf-8")
        n = len(raw)
        encoded = (bytes((0x60 | n,)) if n < 24 else _head(3, n)) + raw
        # 0x84, 0x1b, time, the id, 0xfb, the double, the quality.
        known = (">BBQ%dsBdB" % len(encoded), encoded, len(encoded))
        if len(_row_heads) < MAX_CACHED_TEXTS:
            _row_heads[sensor] = known
    return known


def _sort_key(encoded_key):
    return (len(encoded_key), encoded_key)


def _encode(value: "Any", out: bytearray, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise CBOREncodeError("nesting deeper than %d levels" % MAX_DEPTH)
    # The common exact types first, by type (telemetry is lists of ints,
    # strings and floats: this path is most of a device's CBOR time);
    # subclasses and the rest go through the isinstance chain below.
    t = type(value)
    if t is str:
        raw = value.encode("utf-8")
        n = len(raw)
        if n < 24:
            out.append(0x60 | n)
        else:
            out.extend(_head(3, n))
        out.extend(raw)
        return
    if t is int:
        if 0 <= value < 24:
            out.append(value)
        else:
            out.extend(_encode_int(value))
        return
    if t is float:
        out.extend(_encode_float(value))
        return
    if t is list:
        n = len(value)
        if n < 24:
            out.append(0x80 | n)
        else:
            out.extend(_head(4, n))
        depth += 1
        if depth > MAX_DEPTH:
            for item in value:
                _encode(item, out, depth)  # raises
            return
        append = out.append
        extend = out.extend
        rows = ROW_SHORTCUTS and depth < MAX_DEPTH
        items: list = value  # a list: iterated as one under mypyc
        for item in items:
            # Scalars inline: one call per container instead of per item.
            t = type(item)
            if t is list and rows and len(item) == 4:
                # A telemetry row: [uint64 time, str, float or None, small uint].
                row_items: list = item
                time_ms = row_items[0]
                sensor = row_items[1]
                reading = row_items[2]
                quality = row_items[3]
                # Times from 2**32 to 2**62 - 1 (beyond, the general path,
                # the same bytes): compared as small ints under mypyc.
                if (type(time_ms) is int and 0x100000000 <= time_ms <= 0x3FFFFFFFFFFFFFFF and type(sensor) is str
                        and type(quality) is int and 0 <= quality < 24):
                    if type(reading) is float and reading == reading:  # a number (not NaN), compared unboxed
                        head: tuple = _row_heads.get(sensor) or _row_head(sensor)  # typed: indexed, not unpacked
                        size: int = head[2]
                        row: bytes = _pack(head[0], 0x84, 0x1B, time_ms, head[1], 0xFB, reading, quality)
                        # The double as is when single cannot hold it (see
                        # _encode_float: nearly every reading).
                        if row[size + 18] or row[size + 17] or row[size + 16] or row[size + 15] & 0x1F:
                            extend(row)
                        else:
                            extend(row[:size + 10])
                            extend(_encode_float(reading))
                            append(quality)
                        continue
                    if reading is None:
                        extend(_pack(">BBQ", 0x84, 0x1B, time_ms))
                        extend(_row_head(sensor)[1])
                        append(0xF6)
                        append(quality)
                        continue
                _encode(item, out, depth)
            elif t is int:
                if 0 <= item < 24:
                    append(item)
                else:
                    extend(_encode_int(item))
            elif t is float:
                extend(_encode_float(item))
            elif t is str:
                raw = item.encode("utf-8")
                n = len(raw)
                if n < 24:
                    append(0x60 | n)
                else:
                    extend(_head(3, n))
                extend(raw)
            else:
                _encode(item, out, depth)
        return
    # bool first: on CPython bool is an int subclass (on MicroPython it is not).
    if value is None:
        out.extend(b"\xf6")
    elif value is True:
        out.extend(b"\xf5")
    elif value is False:
        out.extend(b"\xf4")
    elif isinstance(value, int):
        out.extend(_encode_int(value))
    elif isinstance(value, float):
        out.extend(_encode_float(value))
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        out.extend(_head(3, len(raw)))
        out.extend(raw)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        out.extend(_encode_bytes(value))
    elif isinstance(value, (list, tuple)):
        out.extend(_head(4, len(value)))
        for item in value:
            _encode(item, out, depth + 1)
    elif isinstance(value, dict):
        pairs = []
        for key, item in value.items():
            key_parts = bytearray()
            _encode(key, key_parts, depth + 1)
            pairs.append((bytes(key_parts), item))
        pairs.sort(key=lambda pair: _sort_key(pair[0]))
        out.extend(_head(5, len(pairs)))
        previous = None
        for encoded_key, item in pairs:
            if encoded_key == previous:
                raise CBOREncodeError("two map keys encode to the same bytes")
            previous = encoded_key
            out.extend(encoded_key)
            _encode(item, out, depth + 1)
    elif isinstance(value, Tag):
        if not isinstance(value.tag, int) or value.tag < 0 or value.tag >= _UINT64_LIMIT:
            raise CBOREncodeError("tag number must be an unsigned 64-bit int")
        out.extend(_head(6, value.tag))
        _encode(value.value, out, depth + 1)
    elif value is UNDEFINED:
        out.extend(b"\xf7")
    else:
        raise CBOREncodeError("cannot encode a value of type %s" % type(value).__name__)


# Bytes of room ``dumps`` encodes into. CPython grows a bytearray
# geometrically, so 0 there (a new bytearray per call); MicroPython
# reallocates it to the exact new size at every append, and each move
# leaves a hole behind: a board sets this to its largest record
# (firmware/app.py), and dumps then encodes into one buffer of that size,
# made at its first call and kept (_reserved), so only the result is
# allocated, at its final size: a fragmented heap is asked for one block,
# not two (a 32-bit board's 80 KiB day failed on the reserve of each call).
DUMPS_RESERVE = 0
_reserved = None  # type: bytearray | None


def dumps(value):
    """Encode ``value`` as deterministic CBOR bytes."""
    # One bytearray grown in place: single-byte heads are appended as ints
    # (no bytes object each, no table of them), and no list of pieces.
    out = _buffer() if DUMPS_RESERVE else bytearray()  # no call on CPython's hot path
    _encode(value, out, 0)
    return bytes(out)


def dumps_transient(value):
    """dumps() without its copy where a board set DUMPS_RESERVE: a
    memoryview of the kept buffer, valid until the next encoding (the
    caller copies what it keeps and drops the view: the store's record is
    that copy, so an alert costs one block of its size, not two);
    elsewhere the bytes."""
    out = _buffer() if DUMPS_RESERVE else bytearray()
    _encode(value, out, 0)
    return memoryview(out) if out is _reserved else bytes(out)


def _buffer():
    """The kept bytearray to encode into (DUMPS_RESERVE set), emptied."""
    global _reserved
    out = _reserved
    if out is None:
        out = _reserved = bytearray(DUMPS_RESERVE)
    out[:] = b""  # empty, its room kept (encodings never nest)
    return out


def _hashable(value):
    if isinstance(value, list):
        return tuple(_hashable(item) for item in value)
    if isinstance(value, dict):
        raise CBORDecodeError("a map cannot be used as a map key")
    return value


def _half_to_float(bits):
    # struct's "e" exists on both interpreters, but spelling the conversion
    # out keeps NaN payloads and subnormals identical everywhere.
    sign = -1.0 if bits & 0x8000 else 1.0
    exponent = (bits >> 10) & 0x1F
    mantissa = bits & 0x3FF
    if exponent == 0:
        return sign * mantissa * 5.960464477539063e-08  # 2 ** -24
    if exponent == 31:
        return sign * float("inf") if mantissa == 0 else float("nan")
    return sign * (1 + mantissa / 1024.0) * (2.0 ** (exponent - 15))


class _Reader:
    __slots__ = ("data", "pos", "end")
    # Typed for mypyc (`make accelerate`); data is bytes or a memoryview.
    pos: int
    end: int

    def __init__(self, data):
        self.data = data
        self.pos = 0
        self.end = len(data)

    def take(self, n):
        start = self.pos
        stop = start + n
        if stop > self.end:
            raise CBORDecodeEOF(
                "need %d bytes at offset %d, only %d left" % (n, start, self.end - start)
            )
        self.pos = stop
        return self.data[start:stop]

    def byte(self):
        if self.pos >= self.end:
            raise CBORDecodeEOF("input ends at offset %d, inside an item" % self.pos)
        b = self.data[self.pos]
        self.pos += 1
        return b

    def argument(self, info):
        if info < 24:
            return info
        if info == 24:
            return self.byte()
        if info == 25:
            return struct.unpack(">H", self.take(2))[0]
        if info == 26:
            return struct.unpack(">I", self.take(4))[0]
        if info == 27:
            return struct.unpack(">Q", self.take(8))[0]
        raise CBORDecodeError(
            "reserved additional information %d at offset %d" % (info, self.pos - 1)
        )

    def item(self, depth: int) -> "Any":
        if depth > MAX_DEPTH:
            raise CBORDecodeError("nesting deeper than %d levels" % MAX_DEPTH)
        start = self.pos
        if start < self.end:
            # Fast paths for what signals are made of: integers, short text,
            # doubles and definite arrays (telemetry rows). Anything else, and
            # every error, takes the general path below.
            data = self.data
            initial = data[start]
            major = initial >> 5
            info = initial & 0x1F
            if info < 24:
                if major == 0:
                    self.pos = start + 1
                    return info
                if major == 3:
                    stop = start + 1 + info
                    if stop <= self.end:
                        self.pos = stop
                        return self.text(data[start + 1:stop], start)
                elif major == 4:
                    self.pos = start + 1
                    self.expect(info, start)
                    return self.short_array(info, depth + 1)
            elif major == 4 and info == 25 and start + 3 <= self.end:
                n = (data[start + 1] << 8) | data[start + 2]
                self.pos = start + 3
                self.expect(n, start)
                return self.short_array(n, depth + 1)
            elif major == 4 and info == 24 and start + 2 <= self.end:
                n = data[start + 1]
                self.pos = start + 2
                self.expect(n, start)
                return self.short_array(n, depth + 1)
            elif info == 27 and (major == 0 or major == 7) and start + 9 <= self.end:
                self.pos = start + 9
                return _unpack_from(">Q" if major == 0 else ">d", data, start + 1)[0]
        initial = self.byte()
        major = initial >> 5
        info = initial & 0x1F
        if major == 7:
            return self.simple(info, start)
        if info == 31:
            return self.indefinite(major, start, depth)
        n = self.argument(info)
        if major == 0:
            return n
        if major == 1:
            return -1 - n
        if major == 2:
            return bytes(self.take(n))
        if major == 3:
            return self.text(self.take(n), start)
        if major == 4:
            # Each element takes at least one byte: refuse impossible
            # lengths before allocating anything.
            self.expect(n, start)
            return [self.item(depth + 1) for _ in range(n)]
        if major == 5:
            self.expect(2 * n, start)
            result = {}
            for _ in range(n):
                key = _hashable(self.item(depth + 1))
                result[key] = self.item(depth + 1)
            return result
        # major 6: tag
        value = self.item(depth + 1)
        if n == 2 or n == 3:
            if not isinstance(value, bytes):
                raise CBORDecodeError("bignum tag %d at offset %d needs a byte string" % (n, start))
            magnitude = int.from_bytes(value, "big") if value else 0
            return magnitude if n == 2 else -1 - magnitude
        return Tag(n, value)

    def short_array(self, n: int, depth: int) -> list:
        """The items of a definite array; its scalars read inline."""
        if depth > MAX_DEPTH:
            return [self.item(depth) for _ in range(n)]  # raises
        data = self.data
        end = self.end
        rows = ROW_SHORTCUTS and depth < MAX_DEPTH
        result: list = []
        append = result.append
        pos = self.pos
        for _ in range(n):
            if pos < end:
                b = data[pos]
                if b == 0x84 and rows and pos + 10 < end and data[pos + 1] == 0x1B and 0x60 <= data[pos + 10] < 0x78:
                    # A telemetry row [uint64 time, short text, double, small
                    # uint] in one unpack; anything else takes the paths below.
                    size = data[pos + 10] - 0x60
                    stop = pos + 21 + size
                    if stop <= end and data[stop - 10] == 0xFB and data[stop - 1] < 24:
                        row_format = _ROW_FORMATS[size]
                        if row_format is None:
                            row_format = _ROW_FORMATS[size] = ">2xQx%dsxdB" % size
                        time_ms, raw, reading, quality = _unpack_from(row_format, data, pos)
                        sensor = _byte_texts.get(raw)
                        if sensor is None:
                            sensor = self.text(raw, pos + 10)
                            if len(_byte_texts) < MAX_CACHED_TEXTS:
                                _byte_texts[raw] = sensor
                        append([time_ms, sensor, reading, quality])
                        pos = stop
                        continue
                if b < 24:
                    pos += 1
                    append(b)
                    continue
                if 0x60 <= b < 0x78:
                    stop = pos + 1 + (b & 0x1F)
                    if stop <= end:
                        append(self.text(data[pos + 1:stop], pos))
                        pos = stop
                        continue
                elif (b == 0x1B or b == 0xFB) and pos + 9 <= end:
                    append(_unpack_from(">Q" if b == 0x1B else ">d", data, pos + 1)[0])
                    pos += 9
                    continue
                elif 0x80 <= b < 0x98:  # a short array (a telemetry row)
                    self.pos = pos + 1
                    self.expect(b & 0x1F, pos)
                    append(self.short_array(b & 0x1F, depth + 1))
                    pos = self.pos
                    continue
            self.pos = pos
            append(self.item(depth))
            pos = self.pos
        self.pos = pos
        return result

    def expect(self, count, start):
        if count > self.end - self.pos:
            raise CBORDecodeEOF(
                "item at offset %d declares %d entries, only %d bytes left"
                % (start, count, self.end - self.pos)
            )

    def text(self, raw, start):
        try:
            return str(raw, "utf-8")
        except UnicodeError:
            raise CBORDecodeError("invalid UTF-8 in text string at offset %d" % start)

    def indefinite(self, major, start, depth):
        if major == 2 or major == 3:
            chunks = []
            while self.peek_break():
                chunk_start = self.pos
                head = self.byte()
                if head >> 5 != major or head & 0x1F == 31:
                    raise CBORDecodeError(
                        "bad chunk in indefinite string at offset %d" % chunk_start
                    )
                chunks.append(bytes(self.take(self.argument(head & 0x1F))))
            joined = b"".join(chunks)
            return joined if major == 2 else self.text(joined, start)
        if major == 4:
            items = []
            while self.peek_break():
                items.append(self.item(depth + 1))
            return items
        if major == 5:
            result = {}
            while self.peek_break():
                key = _hashable(self.item(depth + 1))
                result[key] = self.item(depth + 1)
            return result
        raise CBORDecodeError("indefinite length not allowed for major type %d at offset %d" % (major, start))

    def peek_break(self):
        """True while the indefinite container goes on; consumes the break."""
        if self.pos >= self.end:
            raise CBORDecodeEOF("indefinite item not closed before end of input")
        if self.data[self.pos] == 0xFF:
            self.pos += 1
            return False
        return True

    def simple(self, info, start):
        if info == 20:
            return False
        if info == 21:
            return True
        if info == 22:
            return None
        if info == 23:
            return UNDEFINED
        if info == 25:
            return _half_to_float(struct.unpack(">H", self.take(2))[0])
        if info == 26:
            return struct.unpack(">f", self.take(4))[0]
        if info == 27:
            return struct.unpack(">d", self.take(8))[0]
        if info == 31:
            raise CBORDecodeError("unexpected break at offset %d" % start)
        raise CBORDecodeError("unsupported simple value %d at offset %d" % (info, start))


def loads(data):
    """Decode exactly one CBOR item; trailing bytes are an error."""
    # bytes are read as they are (indexing them is quicker than a view's,
    # and a slice is one copy either way); anything else through a view.
    reader = _Reader(data if type(data) is bytes or isinstance(data, memoryview) else memoryview(data))
    value = reader.item(0)
    if reader.pos != reader.end:
        raise CBORDecodeError(
            "%d trailing bytes after the item, at offset %d" % (reader.end - reader.pos, reader.pos)
        )
    return value


def loads_spans(data):
    """``loads(data)``, and where the item is a definite-length array, the
    (start, end) offsets of each of its elements in ``data`` (else []): a
    bundle's signals as the bytes that were signed, found without encoding
    them again. Raises what ``loads`` raises, whatever the bytes."""
    view = data if type(data) is bytes or isinstance(data, memoryview) else memoryview(data)
    if not len(view) or view[0] >> 5 != 4 or view[0] & 0x1F > 27:
        return loads(view), []
    reader = _Reader(view)
    spans = []
    try:
        n = reader.argument(reader.byte() & 0x1F)
        reader.expect(n, 0)
        value = []
        for _ in range(n):
            start = reader.pos
            value.append(reader.item(1))
            spans.append((start, reader.pos))
        if reader.pos != reader.end:
            raise CBORDecodeError("trailing bytes")
    except CBORError:
        # loads fails on the same bytes, with its own words.
        return loads(view), []
    return value, spans
