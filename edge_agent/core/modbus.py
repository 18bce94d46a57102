"""Modbus RTU codec: CRC-16/MODBUS, request frames, reply parsing, value types.

Pure functions, no state and no I/O; the poll scheduler that uses them is
``modbus_master.py``. References: "MODBUS Application Protocol Specification
V1.1b3" (function codes, exception codes) and "MODBUS over Serial Line
V1.02" (RTU framing, CRC, timing), both from modbus.org.

An RTU frame (ADU) is ``slave | function | data | crc_lo | crc_hi``:

    request  read   01 03 00 6B 00 03 74 17      slave 1, holding registers 107.., 3 of them
    reply    read   01 03 06 02 2B 00 00 00 64 05 7A
    reply    error  01 83 02 C0 F1               exception 2: illegal data address

RTU has no length field and no start marker: a frame is delimited by
silence on the line. A master knows what it asked, so it knows how long the
reply must be; ``find_reply`` uses that to pick the reply out of a buffer
that may also hold noise or a stale reply, byte by byte: a candidate must
start with the right slave and function, have the expected length, a good
CRC and a consistent byte count or echo. The chance that noise passes all
of that is about 2**-16 times the (small) chance it starts with the right
two bytes.

Errors: ``ModbusError`` is the base. ``RequestError`` means the caller asked
for a request Modbus cannot express (a programming or board error);
``BadReply`` means the bytes from the wire are not a valid reply. Parsing
never raises anything else, whatever the bytes (tests/test_modbus_properties.py).
"""

import struct

READ_COILS = 1
READ_DISCRETE_INPUTS = 2
READ_HOLDING_REGISTERS = 3
READ_INPUT_REGISTERS = 4
WRITE_SINGLE_REGISTER = 6
WRITE_MULTIPLE_REGISTERS = 16

READ_FUNCTIONS = (READ_COILS, READ_DISCRETE_INPUTS, READ_HOLDING_REGISTERS, READ_INPUT_REGISTERS)
BIT_FUNCTIONS = (READ_COILS, READ_DISCRETE_INPUTS)
WRITE_FUNCTIONS = (WRITE_SINGLE_REGISTER, WRITE_MULTIPLE_REGISTERS)

# Limits from the application protocol spec (a PDU is at most 253 bytes).
MAX_READ_REGISTERS = 125
MAX_READ_BITS = 2000
MAX_WRITE_REGISTERS = 123
MAX_ADU = 256
FIRST_SLAVE = 1  # 0 is broadcast: no reply, so never polled
LAST_SLAVE = 247  # 248-255 are reserved

EXCEPTION_LENGTH = 5  # slave, function | 0x80, code, crc

# Exception codes as the error codes readings carry (a-z, 0-9, _ and -,
# like the line protocol's). Unlisted codes become "exception-N".
EXCEPTION_NAMES = {
    1: "illegal-function",
    2: "illegal-data-address",
    3: "illegal-data-value",
    4: "server-device-failure",
    5: "acknowledge",
    6: "server-device-busy",
    8: "memory-parity-error",
    10: "gateway-path-unavailable",
    11: "gateway-target-failed",
}

# Value types a board file can declare, with their size in registers.
# Coils and discrete inputs are "bool" (one bit).
TYPE_REGISTERS = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "bool": 1}
REGISTER_TYPES = ("int16", "uint16", "int32", "uint32", "float32")
# Word order of 32-bit values. Modbus itself only defines big-endian bytes
# within a register; devices disagree on the order of the two registers.
# "big": the high word first (ABCD, most devices); "little": low word
# first (CDAB, e.g. many energy meters).
WORD_ORDERS = ("big", "little")


class ModbusError(ValueError):
    """Base of every Modbus error."""


class RequestError(ModbusError):
    """The caller asked for a request or value Modbus cannot express."""


class BadReply(ModbusError):
    """Bytes from the wire are not a valid reply to the request."""


def _make_table():
    # CRC-16/MODBUS is reflected (poly 0x8005 reversed: 0xA001), init 0xFFFF.
    table = []
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return table


# A table costs 256 small ints (~2 KB on a 32-bit ESP32) and makes the CRC
# about 8x faster than bit by bit, which matters at 115200 baud.
_CRC_TABLE = _make_table()


def crc16(data, crc=0xFFFF):
    """CRC-16/MODBUS. Check value: crc16(b"123456789") == 0x4B37. The CRC
    goes on the wire low byte first; the CRC of a whole valid frame,
    CRC bytes included, is 0."""
    table = _CRC_TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def with_crc(pdu):
    crc = crc16(pdu)
    return bytes(pdu) + bytes((crc & 0xFF, crc >> 8))


class Request:
    """One request: its bytes (``adu``) and what its reply must look like."""

    __slots__ = ("slave", "function", "address", "count", "values", "adu", "reply_length")

    def __init__(self, slave, function, address, count, values, adu, reply_length):
        self.slave = slave
        self.function = function
        self.address = address
        self.count = count
        self.values = values
        self.adu = adu
        self.reply_length = reply_length

    def describe(self):
        return "slave %d function %d address %d count %d" % (self.slave, self.function, self.address, self.count)

    def __repr__(self):
        return "Request(%s)" % self.describe()


def _check_int(name, value, low, high):
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise RequestError("%s must be an integer %d..%d, not %r" % (name, low, high, value))


def read_request(slave, function, address, count):
    """A read of ``count`` registers (functions 3, 4) or bits (1, 2)."""
    _check_int("slave", slave, FIRST_SLAVE, LAST_SLAVE)
    if function not in READ_FUNCTIONS:
        raise RequestError("read function must be one of %s, not %r" % (READ_FUNCTIONS, function))
    _check_int("address", address, 0, 0xFFFF)
    if function in BIT_FUNCTIONS:
        _check_int("count", count, 1, MAX_READ_BITS)
        reply = 5 + (count + 7) // 8
    else:
        _check_int("count", count, 1, MAX_READ_REGISTERS)
        reply = 5 + 2 * count
    if address + count > 0x10000:
        raise RequestError("address %d + count %d runs past register 65535" % (address, count))
    pdu = bytes((slave, function, address >> 8, address & 0xFF, count >> 8, count & 0xFF))
    return Request(slave, function, address, count, None, with_crc(pdu), reply)


def write_request(slave, address, values):
    """Write holding registers: function 6 for one value, 16 for several.
    ``values`` are register contents 0..65535 (use encode_value for types)."""
    _check_int("slave", slave, FIRST_SLAVE, LAST_SLAVE)
    _check_int("address", address, 0, 0xFFFF)
    values = list(values)
    if not 1 <= len(values) <= MAX_WRITE_REGISTERS:
        raise RequestError("write 1..%d registers, not %d" % (MAX_WRITE_REGISTERS, len(values)))
    for value in values:
        _check_int("register value", value, 0, 0xFFFF)
    if address + len(values) > 0x10000:
        raise RequestError("address %d + %d registers runs past register 65535" % (address, len(values)))
    if len(values) == 1:
        pdu = bytes((slave, WRITE_SINGLE_REGISTER, address >> 8, address & 0xFF, values[0] >> 8, values[0] & 0xFF))
        return Request(slave, WRITE_SINGLE_REGISTER, address, 1, values, with_crc(pdu), 8)
    count = len(values)
    pdu = bytearray((slave, WRITE_MULTIPLE_REGISTERS, address >> 8, address & 0xFF, count >> 8, count & 0xFF, 2 * count))
    for value in values:
        pdu.append(value >> 8)
        pdu.append(value & 0xFF)
    return Request(slave, WRITE_MULTIPLE_REGISTERS, address, count, values, with_crc(pdu), 8)


class Reply:
    """A normal reply: ``values`` are registers (ints) or bits (0/1) for a
    read, None for a write (the slave echoed the request)."""

    __slots__ = ("values",)

    def __init__(self, values):
        self.values = values

    def __repr__(self):
        return "Reply(%r)" % (self.values,)


class ExceptionReply:
    """The slave refused: ``code`` is the Modbus exception code."""

    __slots__ = ("code",)

    def __init__(self, code):
        self.code = code

    @property
    def name(self):
        return EXCEPTION_NAMES.get(self.code, "exception-%d" % self.code)

    def __repr__(self):
        return "ExceptionReply(%d %s)" % (self.code, self.name)


def parse_reply(request, frame):
    """Parse ``frame`` (one whole ADU) as the reply to ``request``. Returns
    a Reply or an ExceptionReply; raises BadReply for anything else."""
    n = len(frame)
    if n < EXCEPTION_LENGTH:
        raise BadReply("%d bytes is shorter than any reply" % n)
    if crc16(frame) != 0:
        raise BadReply("CRC mismatch")
    if frame[0] != request.slave:
        raise BadReply("reply from slave %d, asked slave %d" % (frame[0], request.slave))
    function = frame[1]
    if function == request.function | 0x80:
        if n != EXCEPTION_LENGTH:
            raise BadReply("exception reply of %d bytes, expected %d" % (n, EXCEPTION_LENGTH))
        return ExceptionReply(frame[2])
    if function != request.function:
        raise BadReply("function %d in reply to function %d" % (function, request.function))
    if n != request.reply_length:
        raise BadReply("%d bytes, expected %d" % (n, request.reply_length))
    if function in WRITE_FUNCTIONS:
        # The reply echoes address and value (06) or address and count (16).
        if frame[2:6] != request.adu[2:6]:
            raise BadReply("write reply does not echo the request")
        return Reply(None)
    byte_count = frame[2]
    if byte_count != n - 5:
        raise BadReply("byte count %d, but %d data bytes" % (byte_count, n - 5))
    if function in BIT_FUNCTIONS:
        bits = []
        for i in range(request.count):
            bits.append((frame[3 + i // 8] >> (i % 8)) & 1)
        return Reply(bits)
    registers = []
    for i in range(request.count):
        registers.append((frame[3 + 2 * i] << 8) | frame[4 + 2 * i])
    return Reply(registers)


def find_reply(buffer, request):
    """Look for the reply to ``request`` in ``buffer`` (bytes received since
    the request went out). Returns ``(start, end)``:

    - ``end`` is not None: ``buffer[start:end]`` is a valid reply (parse it
      with parse_reply); the ``start`` bytes before it are noise;
    - ``end`` is None: no reply yet; the ``start`` bytes before ``start``
      can never be part of one and may be dropped, the rest may still
      complete one.
    """
    slave = request.slave
    normal = request.function
    error = request.function | 0x80
    n = len(buffer)
    for i in range(n):
        if buffer[i] != slave:
            continue
        if i + 1 == n:
            return i, None
        function = buffer[i + 1]
        if function == normal:
            length = request.reply_length
        elif function == error:
            length = EXCEPTION_LENGTH
        else:
            continue
        if n - i < length:
            # A candidate that is not complete yet. A complete reply further
            # on would make this one complete too (it is longer or equal),
            # so nothing after it can be decided before it.
            return i, None
        try:
            parse_reply(request, bytes(buffer[i : i + length]))
        except BadReply:
            continue
        return i, i + length
    return n, None


def decode_value(words, type_name, word_order="big"):
    """The number in ``words`` (register contents, or one bit for "bool")
    as a raw value before scaling. float32 may be nan or inf: the caller
    decides what a non-finite value means."""
    if type_name == "bool":
        return 1 if words[0] else 0
    if type_name == "int16":
        value = words[0]
        return value - 0x10000 if value & 0x8000 else value
    if type_name == "uint16":
        return words[0]
    if type_name not in ("int32", "uint32", "float32"):
        raise RequestError("unknown type %r; use one of %s" % (type_name, ", ".join(sorted(TYPE_REGISTERS))))
    if word_order == "big":
        high, low = words[0], words[1]
    elif word_order == "little":
        high, low = words[1], words[0]
    else:
        raise RequestError("word order must be 'big' or 'little', not %r" % (word_order,))
    raw = (high << 16) | low
    if type_name == "uint32":
        return raw
    if type_name == "int32":
        return raw - 0x100000000 if raw & 0x80000000 else raw
    return struct.unpack(">f", bytes((high >> 8, high & 0xFF, low >> 8, low & 0xFF)))[0]


def encode_value(value, type_name, word_order="big"):
    """Registers holding ``value`` (a raw, unscaled number) as ``type_name``:
    the inverse of decode_value, for writes and for tests."""
    if type_name in ("int16", "uint16", "int32", "uint32"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise RequestError("%s needs an integer, not %r" % (type_name, value))
        low, high = {"int16": (-0x8000, 0x7FFF), "uint16": (0, 0xFFFF),
                     "int32": (-0x80000000, 0x7FFFFFFF), "uint32": (0, 0xFFFFFFFF)}[type_name]
        if not low <= value <= high:
            raise RequestError("%r is outside %s's range %d..%d" % (value, type_name, low, high))
        if type_name in ("int16", "uint16"):
            return [value & 0xFFFF]
        raw = value & 0xFFFFFFFF
    elif type_name == "float32":
        packed = struct.pack(">f", value)
        raw = (packed[0] << 24) | (packed[1] << 16) | (packed[2] << 8) | packed[3]
    else:
        raise RequestError("cannot encode type %r; use one of %s" % (type_name, ", ".join(REGISTER_TYPES)))
    words = [raw >> 16, raw & 0xFFFF]
    if word_order == "little":
        words.reverse()
    elif word_order != "big":
        raise RequestError("word order must be 'big' or 'little', not %r" % (word_order,))
    return words
