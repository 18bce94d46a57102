"""Property tests (hypothesis) for the Modbus codec and master and the NMEA
decoder: arbitrary bytes never raise anything but our own error type,
memory stays bounded, valid frames are recovered from noise, corruption is
never accepted, and our CRC agrees with pymodbus's independent one."""

import struct

from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pymodbus.framer.rtu import FramerRTU

from edge_agent.core import frames as fr
from edge_agent.core import modbus as mb
from edge_agent.core import modbus_master as mm
from edge_agent.core import nmea

requests = st.one_of(
    st.builds(mb.read_request, st.integers(1, 247), st.sampled_from((3, 4)), st.integers(0, 1000), st.integers(1, 20)),
    st.builds(mb.read_request, st.integers(1, 247), st.sampled_from((1, 2)), st.integers(0, 1000), st.integers(1, 40)),
    st.builds(mb.write_request, st.integers(1, 247), st.integers(0, 1000), st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=4)),
)


@st.composite
def request_and_reply(draw):
    """A request and a valid reply to it, built from the spec's layout."""
    request = draw(requests)
    f = request.function
    if draw(st.integers(0, 9)) == 0:
        return request, mb.with_crc(bytes((request.slave, f | 0x80, draw(st.integers(1, 11)))))
    if f in mb.WRITE_FUNCTIONS:
        return request, mb.with_crc(request.adu[:6])
    size = request.reply_length - 5
    data = draw(st.binary(min_size=size, max_size=size))
    return request, mb.with_crc(bytes((request.slave, f, size)) + data)


def _valid_candidate_in(buffer, request, below):
    # Independent check: does any position before ``below`` start a valid reply?
    for i in range(min(below, len(buffer))):
        for length in (request.reply_length, mb.EXCEPTION_LENGTH):
            try:
                mb.parse_reply(request, bytes(buffer[i : i + length]))
                return True
            except mb.BadReply:
                pass
    return False


@given(st.binary(max_size=64))
def test_crc_matches_pymodbus(data):
    theirs = FramerRTU.compute_CRC(data)  # pymodbus returns the wire bytes read big-endian
    assert mb.crc16(data) == ((theirs & 0xFF) << 8) | (theirs >> 8)


@given(requests, st.binary(max_size=300))
def test_random_bytes_raise_only_our_error(request, data):
    try:
        reply = mb.parse_reply(request, data)
    except mb.ModbusError:
        return
    assert isinstance(reply, (mb.Reply, mb.ExceptionReply))


@given(requests, st.binary(max_size=300))
def test_find_reply_never_raises_and_stays_in_bounds(request, data):
    start, end = mb.find_reply(data, request)
    assert 0 <= start <= len(data)
    if end is not None:
        mb.parse_reply(request, data[start:end])  # what it found is valid


@given(request_and_reply(), st.binary(max_size=40), st.binary(max_size=10), st.integers(1, 8))
def test_reply_in_noise_is_recovered_however_chunked(pair, noise, trailer, chunk):
    request, reply = pair
    stream = noise + reply + trailer
    assume(not _valid_candidate_in(stream, request, len(noise)))
    master = mm.ModbusMaster([], 115200)
    master.write(1, 0, [0])  # any job: then swap in the request under test
    master.poll(0)
    master._job.request = request
    events = []
    for i in range(0, len(stream), chunk):
        events.extend(master.feed(stream[i : i + chunk], 1))
    assert master.state == mm.IDLE
    assert master.stats["replies"] == 1
    assert master.stats["garbage_bytes"] + master.stats["unexpected_bytes"] == len(noise) + len(trailer)


@given(request_and_reply(), st.data())
def test_single_byte_corruption_is_never_accepted(pair, data):
    request, reply = pair
    index = data.draw(st.integers(0, len(reply) - 1))
    flip = data.draw(st.integers(1, 255))
    corrupted = bytearray(reply)
    corrupted[index] ^= flip
    start, end = mb.find_reply(corrupted, request)
    assert end is None


@settings(max_examples=50)
@given(st.lists(st.binary(max_size=80), max_size=20))
def test_master_survives_any_input(chunks):
    point = mm.Point("temp", mm.Source(1, 3, 0, "float32", "big", 1.0, 0.0), 10)
    master = mm.ModbusMaster([point], 115200, timeout_ms=20)
    now = 0
    for chunk in chunks:
        events, send, deadline = master.poll(now)
        for event in master.feed(chunk, now + 1) + events:
            assert isinstance(event, (fr.Frame, fr.BadFrame))
        assert len(master._rx) <= mm.MAX_BUFFER
        now = (deadline or now) + 1


@given(st.integers(-0x8000, 0x7FFF), st.integers(-0x80000000, 0x7FFFFFFF), st.floats(width=32, allow_nan=False),
       st.sampled_from(mb.WORD_ORDERS))
def test_values_round_trip_against_struct(i16, i32, f32, order):
    assert mb.decode_value(list(struct.unpack(">H", struct.pack(">h", i16))), "int16") == i16
    words = list(struct.unpack(">HH", struct.pack(">i", i32)))
    if order == "little":
        words.reverse()
    assert mb.decode_value(words, "int32", order) == i32
    assert mb.decode_value(mb.encode_value(f32, "float32", order), "float32", order) == f32


@given(st.binary(max_size=300))
def test_nmea_random_bytes_never_raise(data):
    decoder = nmea.SentenceDecoder()
    for item in decoder.feed(data) + decoder.flush():
        assert isinstance(item, (nmea.Sentence, fr.BadFrame))
    assert len(decoder._buffer) <= nmea.MAX_SENTENCE


fields = st.text(alphabet="0123456789.ABCDEFGNSEW-", max_size=8)


@given(st.binary(max_size=60), st.lists(fields, min_size=1, max_size=12), st.sampled_from(("GPGGA", "GNRMC", "GPVTG")))
def test_nmea_sentence_in_noise_is_recovered(noise, body, address):
    line = nmea.sentence([address] + body)
    assume(len(line) <= nmea.MAX_SENTENCE)
    decoder = nmea.SentenceDecoder()
    items = decoder.feed(noise + b"\r\n" + line)
    sentences = [i for i in items if isinstance(i, nmea.Sentence)]
    assert sentences and sentences[-1].type == address[2:] and sentences[-1].fields == body
