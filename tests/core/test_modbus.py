"""Modbus RTU codec: CRC vectors, request bytes, reply parsing, value types.
Runs under pytest and MicroPython (tests/mp_run.py)."""

from support import raises

from edge_agent.core import modbus as mb


def test_crc_vectors_from_the_specifications():
    # MODBUS over Serial Line V1.02, 6.2.2: the CRC of 02 07 is 0x1241,
    # sent low byte first.
    assert mb.crc16(bytes((0x02, 0x07))) == 0x1241
    assert mb.with_crc(bytes((0x02, 0x07))) == bytes((0x02, 0x07, 0x41, 0x12))
    # The CRC catalogue's check value for CRC-16/MODBUS.
    assert mb.crc16(b"123456789") == 0x4B37
    # A complete frame checks to 0 (the receiver's test).
    assert mb.crc16(bytes.fromhex("01030000000AC5CD")) == 0


def test_read_request_bytes():
    # The application protocol spec's example: holding registers 108..110
    # (address 0x006B), slave 1.
    request = mb.read_request(1, mb.READ_HOLDING_REGISTERS, 0x6B, 3)
    assert request.adu == bytes.fromhex("0103006B00037417")
    assert request.reply_length == 11
    assert mb.read_request(1, mb.READ_COILS, 0x13, 19).reply_length == 5 + 3
    assert mb.read_request(1, mb.READ_INPUT_REGISTERS, 8, 1).adu[:6] == bytes.fromhex("010400080001")


def test_write_request_bytes():
    single = mb.write_request(17, 1, [3])
    assert single.function == mb.WRITE_SINGLE_REGISTER
    assert single.adu[:6] == bytes.fromhex("110600010003")
    multiple = mb.write_request(17, 1, [0x000A, 0x0102])
    assert multiple.function == mb.WRITE_MULTIPLE_REGISTERS
    assert multiple.adu[:11] == bytes.fromhex("1110000100020400 0A0102".replace(" ", ""))
    assert mb.crc16(multiple.adu) == 0


def test_bad_requests_raise_request_error():
    raises(mb.RequestError, mb.read_request, 0, 3, 0, 1)  # broadcast: no reply to wait for
    raises(mb.RequestError, mb.read_request, 248, 3, 0, 1)
    raises(mb.RequestError, mb.read_request, 1, 5, 0, 1)
    raises(mb.RequestError, mb.read_request, 1, 3, 0, 126)
    raises(mb.RequestError, mb.read_request, 1, 1, 0, 2001)
    raises(mb.RequestError, mb.read_request, 1, 3, 65535, 2)
    raises(mb.RequestError, mb.read_request, 1, 3, True, 1)
    raises(mb.RequestError, mb.write_request, 1, 0, [])
    raises(mb.RequestError, mb.write_request, 1, 0, [65536])
    raises(mb.RequestError, mb.write_request, 1, 0, [0] * 124)
    assert isinstance(raises(mb.ModbusError, mb.read_request, 1, 3, -1, 1), ValueError)


def test_parse_register_reply():
    request = mb.read_request(1, 3, 0x6B, 3)
    reply = mb.parse_reply(request, mb.with_crc(bytes.fromhex("010306022B00000064")))
    assert isinstance(reply, mb.Reply)
    assert reply.values == [0x022B, 0, 0x64]


def test_parse_bit_reply():
    # The spec's coil example: 19 coils from 20, status CD 6B 05.
    request = mb.read_request(1, mb.READ_COILS, 19, 19)
    reply = mb.parse_reply(request, mb.with_crc(bytes.fromhex("0101 03CD6B05".replace(" ", ""))))
    assert reply.values == [1, 0, 1, 1, 0, 0, 1, 1, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0, 1]


def test_parse_exception_and_write_replies():
    request = mb.read_request(1, 3, 0, 1)
    reply = mb.parse_reply(request, mb.with_crc(bytes((1, 0x83, 2))))
    assert isinstance(reply, mb.ExceptionReply)
    assert reply.code == 2 and reply.name == "illegal-data-address"
    assert mb.ExceptionReply(42).name == "exception-42"
    write = mb.write_request(1, 4, [7, 8])
    assert mb.parse_reply(write, mb.with_crc(bytes.fromhex("011000040002"))).values is None
    raises(mb.BadReply, mb.parse_reply, write, mb.with_crc(bytes.fromhex("011000050002")))


def test_parse_rejects_bad_replies_with_bad_reply():
    request = mb.read_request(1, 3, 0, 2)
    good = mb.with_crc(bytes.fromhex("0103040001000A"))
    assert mb.parse_reply(request, good).values == [1, 10]
    cases = [
        good[:-1] + bytes((good[-1] ^ 1,)),  # CRC
        mb.with_crc(bytes.fromhex("0203040001000A")),  # another slave
        mb.with_crc(bytes.fromhex("0104040001000A")),  # another function
        mb.with_crc(bytes.fromhex("010302000A")),  # too short for 2 registers
        mb.with_crc(bytes.fromhex("0103050001000A")),  # byte count disagrees
        mb.with_crc(bytes.fromhex("01830201")),  # exception reply too long
        b"\x01\x03",
        b"",
    ]
    for frame in cases:
        exc = raises(mb.BadReply, mb.parse_reply, request, frame)
        assert isinstance(exc, mb.ModbusError)


def test_find_reply_in_noise_and_pieces():
    request = mb.read_request(5, 4, 0, 1)
    reply = mb.with_crc(bytes.fromhex("05040200FA"))
    noise = bytes.fromhex("FF0504990005") + mb.with_crc(bytes.fromhex("0504020001"))[:-1]
    buffer = noise + reply + b"\x00"
    start, end = mb.find_reply(buffer, request)
    assert buffer[start:end] == reply
    # Byte by byte: undecided until the reply is whole; never a wrong frame.
    for n in range(len(noise + reply)):
        start, end = mb.find_reply(noise + reply[: n - len(noise)] if n >= len(noise) else noise[:n], request)
        assert end is None
    # Nothing that could start a reply: everything may be dropped.
    assert mb.find_reply(b"\x00\x01\x02", request) == (3, None)
    assert mb.find_reply(b"\x00\x05", request) == (1, None)


def test_decode_types_and_word_order():
    assert mb.decode_value([0xFFFF], "int16") == -1
    assert mb.decode_value([0xFFFF], "uint16") == 65535
    assert mb.decode_value([0x0001, 0x0002], "uint32") == 0x10002
    assert mb.decode_value([0x0002, 0x0001], "uint32", "little") == 0x10002
    assert mb.decode_value([0xFFFF, 0xFFFE], "int32") == -2
    assert mb.decode_value([0x4148, 0x0000], "float32") == 12.5
    assert mb.decode_value([0x0000, 0x4148], "float32", "little") == 12.5
    assert mb.decode_value([1], "bool") == 1
    raises(mb.RequestError, mb.decode_value, [0, 0], "int64")
    raises(mb.RequestError, mb.decode_value, [0, 0], "int32", "middle")


def test_encode_is_the_inverse_of_decode():
    cases = [(-1, "int16"), (65535, "uint16"), (-123456, "int32"), (4000000000, "uint32"), (-2.5, "float32")]
    for value, type_name in cases:
        for order in mb.WORD_ORDERS:
            words = mb.encode_value(value, type_name, order)
            assert len(words) == mb.TYPE_REGISTERS[type_name]
            assert mb.decode_value(words, type_name, order) == value
    raises(mb.RequestError, mb.encode_value, 40000, "int16")
    raises(mb.RequestError, mb.encode_value, 1.5, "int32")
    raises(mb.RequestError, mb.encode_value, 1, "bool")
