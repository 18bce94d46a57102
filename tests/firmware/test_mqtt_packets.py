"""firmware/mqtt_packets.py: the broker-to-client decoder against packets
built here straight from the MQTT 3.1.1 spec, fed in arbitrary chunks, and
against arbitrary bytes (ProtocolError or nothing, never another
exception); the client-side encoders parsed back field by field."""

import os
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "firmware"))

import mqtt_packets as mp  # noqa: E402
import mqtt_stream  # noqa: E402 (tests/: the captured-stream splitter the other tests use)

# --- an independent encoder for what brokers send (spec section 3) ----------


def length_bytes(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def packet(first, body):
    return bytes([first]) + length_bytes(len(body)) + body


def u16(n):
    return n.to_bytes(2, "big")


def build(item):
    kind = item[0]
    if kind == "connack":
        return packet(0x20, bytes([item[1], item[2]]))
    if kind == "publish":
        _, topic, payload, qos, retain, dup, pid = item
        t = topic.encode()
        return packet(0x30 | (dup << 3) | (qos << 1) | retain, u16(len(t)) + t + (u16(pid) if qos else b"") + payload)
    if kind == "puback":
        return packet(0x40, u16(item[1]))
    if kind == "suback":
        return packet(0x90, u16(item[1]) + bytes(item[2]))
    if kind == "unsuback":
        return packet(0xB0, u16(item[1]))
    return packet(0xD0, b"")


def as_tuple(decoded):
    kind, a, b = decoded
    if kind == mp.PUBLISH:
        return ("publish", a.topic, a.payload, a.qos, int(a.retain), int(a.dup), a.pid)
    if kind == mp.CONNACK:
        return ("connack", a, b)
    if kind == mp.SUBACK:
        return ("suback", a, list(b))
    return ({mp.PUBACK: "puback", mp.UNSUBACK: "unsuback", mp.PINGRESP: "pingresp"}[kind],) + (
        (a,) if a is not None else ())


pids = st.integers(1, 65535)
topics = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00+#"), min_size=1,
                 max_size=40)


@st.composite
def publishes(draw):
    qos = draw(st.sampled_from([0, 1]))
    return ("publish", draw(topics), draw(st.binary(max_size=300)), qos, draw(st.sampled_from([0, 1])),
            draw(st.sampled_from([0, 1])) if qos else 0, draw(pids) if qos else 0)


server_packets = st.one_of(
    st.tuples(st.just("connack"), st.sampled_from([0, 1]), st.integers(0, 5)),
    publishes(),
    st.tuples(st.just("puback"), pids),
    st.tuples(st.just("suback"), pids, st.lists(st.sampled_from([0, 1, 2, 0x80]), min_size=1, max_size=4)),
    st.tuples(st.just("unsuback"), pids),
    st.just(("pingresp",)),
)


def decode_all(decoder, data, chunks):
    """Feed ``data`` in pieces of the given sizes, taking packets as they complete."""
    out = []
    at = 0
    sizes = iter(chunks)
    while at < len(data):
        size = next(sizes, 64) or 1
        piece = data[at:at + size]
        taken = decoder.feed(piece)
        at += taken
        while True:
            got = decoder.next_packet()
            if got is None:
                break
            out.append(got)
    return out


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(server_packets, max_size=12), st.lists(st.integers(1, 50), max_size=100))
def test_any_split_of_a_valid_stream_decodes_to_the_same_packets(items, chunks):
    stream = b"".join(build(item) for item in items)
    decoder = mp.Decoder(max_packet=512)
    assert [as_tuple(p) for p in decode_all(decoder, stream, chunks)] == [tuple(i) for i in items]
    assert decoder.buffered() == 0


@settings(max_examples=500)
@given(st.binary(max_size=600), st.lists(st.integers(1, 64), max_size=50))
def test_arbitrary_bytes_raise_protocol_error_or_wait_never_anything_else(junk, chunks):
    decoder = mp.Decoder(max_packet=256)
    try:
        decode_all(decoder, junk, chunks)
    except mp.ProtocolError as exc:
        assert str(exc)
    assert decoder.buffered() <= 256 + 5


@given(server_packets, st.binary(min_size=1, max_size=40))
def test_a_packet_followed_by_junk_decodes_then_errors_or_waits(item, junk):
    decoder = mp.Decoder(max_packet=512)
    decoder.feed(build(item) + junk)
    assert as_tuple(decoder.next_packet()) == tuple(item)
    try:
        while decoder.next_packet() is not None:
            pass
    except mp.ProtocolError:
        pass


@given(st.integers(0, mp.MAX_REMAINING))
def test_remaining_length_round_trips(n):
    buf = bytearray(5)
    end = mp.put_length(buf, 0, n)
    assert bytes(buf[:end]) == length_bytes(n)


def test_a_fifth_length_byte_is_an_error_before_more_bytes_arrive():
    decoder = mp.Decoder()
    decoder.feed(b"\x30\xff\xff\xff\xff")
    with pytest.raises(mp.ProtocolError, match="remaining length longer than 4 bytes"):
        decoder.next_packet()


def test_an_oversized_packet_is_refused_from_its_header_alone():
    """Bounded memory: the error comes before the body is buffered."""
    decoder = mp.Decoder(max_packet=100)
    decoder.feed(b"\x30" + length_bytes(101))
    with pytest.raises(mp.PacketTooLarge, match="PUBLISH of 101 bytes exceeds the client's 100-byte"):
        decoder.next_packet()


def test_byte_by_byte_feeding_of_the_largest_packet_fits_the_buffer():
    body = u16(1) + b"t" + b"x" * 97
    decoder = mp.Decoder(max_packet=100)
    stream = packet(0x30, body) * 3
    out = decode_all(decoder, stream, [1] * len(stream))
    assert [m[1].payload for m in out] == [b"x" * 97] * 3


@pytest.mark.parametrize("data, message", [
    (b"\x21\x02\x00\x00", "CONNACK with reserved flags 0x1"),
    (b"\x20\x02\x02\x00", "CONNACK with reserved acknowledge flags 0x02"),
    (b"\x40\x02\x00\x00", "PUBACK with packet id 0"),
    (b"\x40\x03\x00\x01\x00", "PUBACK with remaining length 3"),
    (b"\x90\x03\x00\x01\x03", "SUBACK with return code 0x03"),
    (b"\x90\x02\x00\x01", "SUBACK with flags 0x0 and length 2"),
    (b"\xd0\x01\x00", "PINGRESP with remaining length 1"),
    (b"\x36\x03\x00\x01t", "PUBLISH with QoS 3"),
    (b"\x34\x05\x00\x01t\x00\x01", "PUBLISH with QoS 2"),
    (b"\x32\x05\x00\x01t\x00\x00", "PUBLISH with packet id 0"),
    (b"\x30\x02\x00\x00", "PUBLISH with an empty topic"),
    (b"\x30\x01\x00", "no room for its topic length"),
    (b"\x10\x00", "unexpected CONNECT packet"),
    (b"\x00\x00", "unexpected reserved(0) packet"),
    (b"\xc0\x00", "unexpected PINGREQ packet"),
    (b"\xe0\x00", "unexpected DISCONNECT packet"),
    (b"\x50\x02\x00\x01", "unexpected PUBREC packet"),
])
def test_malformed_broker_packets_name_the_rule(data, message):
    decoder = mp.Decoder()
    decoder.feed(data)
    with pytest.raises(mp.ProtocolError, match=message.replace("(", r"\(").replace(")", r"\)")):
        decoder.next_packet()


# --- client-side encoders, parsed back --------------------------------------


def parse(data):
    """(first byte, body) of one whole packet."""
    found = mqtt_stream.packets(data)
    assert len(found) == 1, found
    kind, flags, body = found[0]
    return kind << 4 | flags, body


def fields(body, count):
    out = []
    for _ in range(count):
        size = int.from_bytes(body[:2], "big")
        out.append(body[2:2 + size])
        body = body[2 + size:]
    return out, body


def test_connect_carries_will_credentials_and_flags():
    will = mp.Will("ea/v1/d/status", b"offline", qos=1, retain=True)
    first, body = parse(mp.encode_connect("dev-1", 30, clean_session=False, username="u", password=b"p", will=will))
    assert first == 0x10
    assert body[:7] == b"\x00\x04MQTT\x04"
    assert body[7] == 0x80 | 0x40 | 0x20 | 0x08 | 0x04  # user, password, will retain, will QoS 1, will
    assert int.from_bytes(body[8:10], "big") == 30
    values, rest = fields(body[10:], 5)
    assert values == [b"dev-1", b"ea/v1/d/status", b"offline", b"u", b"p"] and rest == b""


def test_connect_minimal_is_clean_session_only():
    first, body = parse(mp.encode_connect("d", 60))
    assert body[7] == 0x02 and fields(body[10:], 1) == ([b"d"], b"")


@given(topics, st.binary(max_size=1000), st.sampled_from([0, 1]), st.booleans(), st.booleans(), pids)
def test_publish_header_and_payload_parse_back(topic, payload, qos, retain, dup, pid):
    buf = bytearray(1100 + 4 * len(topic))
    end = mp.publish_header_into(buf, topic.encode(), len(payload), qos, retain, dup, pid)
    first, body = parse(bytes(buf[:end]) + payload)
    assert first == 0x30 | (dup << 3) | (qos << 1) | retain
    (t,), rest = fields(body, 1)
    assert t.decode() == topic
    if qos:
        assert int.from_bytes(rest[:2], "big") == pid
        rest = rest[2:]
    assert rest == payload


def test_subscribe_and_puback():
    first, body = parse(mp.encode_subscribe(7, "ea/v1/d/cmd", 1))
    assert first == 0x82 and body == b"\x00\x07\x00\x0bea/v1/d/cmd\x01"
    first, body = parse(mp.encode_unsubscribe(8, "a/#"))
    assert first == 0xA2 and body == b"\x00\x08\x00\x03a/#"
    buf = bytearray(4)
    mp.puback_into(buf, 0x1234)
    assert bytes(buf) == b"\x40\x02\x12\x34"


@pytest.mark.parametrize("call, error", [
    (lambda: mp.check_topic_name("a/+/b"), ValueError),
    (lambda: mp.check_topic_name("a/#"), ValueError),
    (lambda: mp.check_topic_name(""), ValueError),
    (lambda: mp.check_topic_name(b"a"), TypeError),
    (lambda: mp.check_topic_filter("a/b#"), ValueError),
    (lambda: mp.check_topic_filter("a/#/b"), ValueError),
    (lambda: mp.check_topic_filter("a+/b"), ValueError),
    (lambda: mp.check_qos(2), ValueError),
    (lambda: mp.encode_connect("d", 60, username=None, password=b"p"), ValueError),
    (lambda: mp.encode_connect("", 60, clean_session=False), ValueError),
    (lambda: mp.encode_connect("d", 70000), ValueError),
    (lambda: mp.Will("a/+", b"x"), ValueError),
    (lambda: mp.Will("a", 5), TypeError),
])
def test_misuse_is_a_value_or_type_error(call, error):
    with pytest.raises(error):
        call()


def test_good_filters_pass():
    for topic in ("a", "a/b", "+", "#", "a/+/c", "a/#", "+/+/#", "ea/v1/dev-1/cmd"):
        mp.check_topic_filter(topic)


def test_connack_refusals_say_what_to_do():
    assert "check the device's MQTT credentials" in str(mp.ConnectRefused(4))
    assert mp.ConnectRefused(5).code == 5
