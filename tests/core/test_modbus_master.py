"""The Modbus poll scheduler on a virtual clock: periods, gaps, timeouts,
retries, exceptions, writes. Replies are byte strings built as the spec
lays them out. Runs under pytest and MicroPython."""

from support import raises

from edge_agent.core import frames as fr
from edge_agent.core import modbus as mb
from edge_agent.core import modbus_master as mm


def _point(sensor, slave=1, function=3, address=0, type_name="uint16", period_ms=1000, scale=1.0, offset=0.0,
           word_order="big"):
    return mm.Point(sensor, mm.Source(slave, function, address, type_name, word_order, scale, offset), period_ms)


def _reply(slave, function, payload):
    return mb.with_crc(bytes((slave, function, len(payload))) + payload)


def _readings(events):
    return [(e.sensor, e.value) for e in events if isinstance(e, fr.Frame) and e.kind == fr.READING]


def _bad(events, reason):
    return [e for e in events if isinstance(e, fr.BadFrame) and e.reason == reason]


def test_gap_follows_the_spec():
    # 3.5 characters of 11 bits at 9600 baud = 4.01 ms; fixed 1.75 ms above 19200.
    assert mm.char_us(9600, "even") == 1146
    assert mm.gap_us(9600, "even") == 4011
    assert mm.gap_us(115200) == 1750
    assert mm.ModbusMaster([], 9600).gap_ms == 5 + 1
    assert mm.ModbusMaster([], 115200).gap_ms == 2 + 1


def test_poll_scales_and_schedules_by_period():
    fast = _point("temp", slave=1, function=4, address=0, type_name="int16", period_ms=100, scale=0.1)
    slow = _point("power", slave=2, address=12, type_name="float32", period_ms=1000, word_order="little")
    master = mm.ModbusMaster([fast, slow], 115200, parity="none", timeout_ms=50)
    events, send, deadline = master.poll(0)
    assert send == mb.read_request(1, 4, 0, 1).adu and events == []
    assert deadline == 0 + 2 + 50  # 8 + 7 bytes at 115200: 1.3 ms, rounded up
    # Nothing else goes out while a reply is awaited.
    assert master.poll(10)[1] is None
    events = master.feed(_reply(1, 4, bytes((0xFF, 0x38))), 12)  # -200 -> -20.0
    assert _readings(events) == [("temp", -20.0)]
    # The line must stay quiet for the gap before the next request.
    events, send, deadline = master.poll(13)
    assert send is None and deadline == 12 + master.gap_ms
    events, send, deadline = master.poll(15)
    assert send == mb.read_request(2, 3, 12, 2).adu
    words = mb.encode_value(1234.5, "float32", "little")
    master.feed(_reply(2, 3, bytes((words[0] >> 8, words[0] & 0xFF, words[1] >> 8, words[1] & 0xFF))), 16)
    # Next: temp again at 100 (its period), not before.
    events, send, deadline = master.poll(20)
    assert send is None and deadline == 100
    assert master.poll(100)[1] == fast.request.adu
    assert master.stats["requests"] == 3 and master.stats["replies"] == 2


def test_silent_slave_retries_then_drops_out_without_hanging_the_bus():
    silent = _point("dead", slave=9, period_ms=1000)
    alive = _point("alive", slave=1, period_ms=1000)
    master = mm.ModbusMaster([silent, alive], 115200, parity="none", timeout_ms=50, retries=2)
    now = 0
    sent = []
    events_seen = []
    while now < 400 and len(_readings(events_seen)) == 0:
        events, send, deadline = master.poll(now)
        events_seen.extend(events)
        if send is not None:
            sent.append(send[0])
            if send[0] == 1:
                events_seen.extend(master.feed(_reply(1, 3, b"\x00\x07"), now + 2))
                continue
        now = deadline
    # Three tries to slave 9 (one plus two retries), then slave 1 is served.
    assert sent == [9, 9, 9, 1]
    dropouts = _bad(events_seen, mm.NO_REPLY)
    assert len(dropouts) == 1 and "sensor dead" in dropouts[0].detail and "3 tries" in dropouts[0].detail
    assert _readings(events_seen) == [("alive", 7.0)]
    assert master.stats["retries"] == 2 and master.stats["no_reply"] == 1


def test_exception_reply_becomes_a_sensor_error():
    master = mm.ModbusMaster([_point("temp", address=999)], 19200, timeout_ms=100)
    master.poll(0)
    events = master.feed(mb.with_crc(bytes((1, 0x83, 2))), 5)
    assert [(e.kind, e.sensor, e.value) for e in events] == [(fr.SENSOR_ERROR, "temp", "illegal-data-address")]
    assert master.state == mm.IDLE and master.stats["exceptions"] == 1


def test_reply_in_pieces_with_noise_before_and_after():
    master = mm.ModbusMaster([_point("temp")], 115200, timeout_ms=100)
    master.poll(0)
    reply = _reply(1, 3, b"\x01\x02")
    data = b"\x00\xff\x01" + reply + b"\xee"
    events = []
    for i in range(len(data)):
        events.extend(master.feed(data[i : i + 1], 1))
    assert _readings(events) == [("temp", 258.0)]
    assert master.stats["garbage_bytes"] == 3
    # The trailing byte arrived after the reply: unexpected, reported.
    assert len(_bad(events, mm.UNEXPECTED)) == 1


def test_late_reply_after_timeout_is_unexpected_and_delays_the_next_request():
    master = mm.ModbusMaster([_point("temp", period_ms=10)], 115200, timeout_ms=20, retries=0)
    _, _, deadline = master.poll(0)
    events, send, _ = master.poll(deadline)
    assert len(_bad(events, mm.NO_REPLY)) == 1
    events = master.feed(_reply(1, 3, b"\x00\x01"), deadline + 1)
    assert len(_bad(events, mm.UNEXPECTED)) == 1 and _readings(events) == []
    events, send, due = master.poll(deadline + 2)
    assert send is None and due == deadline + 1 + master.gap_ms


def test_corrupted_reply_times_out_and_is_retried():
    master = mm.ModbusMaster([_point("temp")], 115200, timeout_ms=20, retries=1)
    _, first, deadline = master.poll(0)
    bad = bytearray(_reply(1, 3, b"\x00\x01"))
    bad[3] ^= 0x10
    # Whole and wrong: dropped as noise at once, the reply still awaited.
    assert len(_bad(master.feed(bytes(bad), 1), mm.GARBAGE)) == 1
    assert master.state == mm.AWAIT
    events, send, _ = master.poll(deadline)
    assert events == [] and send is None  # quiet first, then the retry
    events, send, _ = master.poll(deadline + master.gap_ms)
    assert send == first
    assert _readings(master.feed(_reply(1, 3, b"\x00\x01"), deadline + 5)) == [("temp", 1.0)]


def test_nan_float_is_a_sensor_error():
    master = mm.ModbusMaster([_point("flow", type_name="float32")], 115200)
    master.poll(0)
    events = master.feed(_reply(1, 3, b"\x7f\xc0\x00\x00"), 1)
    assert [(e.kind, e.value) for e in events] == [(fr.SENSOR_ERROR, "not-a-number")]


def test_writes_go_first_and_report():
    master = mm.ModbusMaster([_point("temp")], 115200, timeout_ms=20, retries=0)
    master.write(3, 100, [1, 2], tag="valve")
    _, send, _ = master.poll(0)
    assert send == mb.write_request(3, 100, [1, 2]).adu
    events = master.feed(mb.with_crc(bytes.fromhex("031000640002")), 1)
    assert len(events) == 1 and events[0].ok and events[0].tag == "valve"
    master.write(3, 100, [5], tag="again")
    _, send, deadline = master.poll(10)
    assert send[1] == mb.WRITE_SINGLE_REGISTER
    events, _, _ = master.poll(deadline)
    assert [(e.tag, e.ok) for e in events] == [("again", False)]
    master.write(3, 100, [5], tag="refused")
    _, send, _ = master.poll(deadline + 10)
    events = master.feed(mb.with_crc(bytes((3, 0x86, 4))), deadline + 11)
    assert not events[0].ok and "server-device-failure" in events[0].detail
    raises(mb.RequestError, master.write, 3, 0, [70000])


def test_port_closing_fails_the_request_in_flight():
    master = mm.ModbusMaster([_point("temp")], 115200)
    master.poll(0)
    events = master.flush(5)
    assert len(_bad(events, mm.NO_REPLY)) == 1 and master.state == mm.IDLE
    assert master.flush(6) == []


def test_illegal_transition_raises():
    master = mm.ModbusMaster([], 115200)
    exc = raises(mm.IllegalTransition, master._to, mm.REPLY)
    assert "not allowed in state idle" in str(exc)
    assert isinstance(exc, mb.ModbusError)


def test_nothing_to_poll_has_no_deadline():
    assert mm.ModbusMaster([], 115200).poll(0) == ([], None, None)
