"""Serial line protocol: parsed whole, byte by byte, with junk around it."""

from support import raises

from edge_agent.core import frames as fr


def test_crc_check_value():
    assert fr.crc16_ccitt(b"123456789") == 0x29B1
    assert fr.crc16_ccitt(b"") == 0xFFFF


def test_encode_known_frame():
    frame = fr.encode_frame(fr.READING, "coolant_temp", 21.5)
    body = b"R,coolant_temp,21.5"
    assert frame == b"$" + body + b"*" + ("%04X" % fr.crc16_ccitt(body)).encode() + b"\r\n"


def test_round_trip_whole_and_byte_by_byte():
    stream = (
        fr.encode_frame(fr.READING, "a", 1)
        + fr.encode_frame(fr.READING, "b_2", -0.25)
        + fr.encode_frame(fr.SENSOR_ERROR, "c", "open")
        + fr.encode_frame(fr.READING, "d", 1e-7)
    )
    expected = [
        fr.Frame(fr.READING, "a", 1.0),
        fr.Frame(fr.READING, "b_2", -0.25),
        fr.Frame(fr.SENSOR_ERROR, "c", "open"),
        fr.Frame(fr.READING, "d", 1e-7),
    ]
    assert fr.FrameDecoder().feed(stream) == expected
    decoder = fr.FrameDecoder()
    events = []
    for i in range(len(stream)):
        events.extend(decoder.feed(stream[i : i + 1]))
    assert events == expected


def test_lf_only_line_end_accepted():
    frame = fr.encode_frame(fr.READING, "a", 3).replace(b"\r\n", b"\n")
    assert fr.FrameDecoder().feed(frame) == [fr.Frame(fr.READING, "a", 3.0)]


def _reasons(events):
    return [e.reason if isinstance(e, fr.BadFrame) else e for e in events]


def test_bad_checksum():
    good = fr.encode_frame(fr.READING, "a", 1)
    bad = good.replace(b"R,a,1", b"R,a,2")
    events = fr.FrameDecoder().feed(bad)
    assert _reasons(events) == [fr.BAD_CHECKSUM]
    assert "computed" in events[0].describe()


def test_garbage_then_frame_recovered():
    frame = fr.encode_frame(fr.READING, "a", 7)
    events = fr.FrameDecoder().feed(b"\x00\xffnoise" + frame)
    assert _reasons(events) == [fr.GARBAGE, fr.Frame(fr.READING, "a", 7.0)]
    assert "7 bytes" in events[0].detail


def test_truncated_frame_then_frame_recovered():
    frame = fr.encode_frame(fr.READING, "a", 7)
    events = fr.FrameDecoder().feed(frame[:6] + frame)
    assert _reasons(events) == [fr.TRUNCATED, fr.Frame(fr.READING, "a", 7.0)]


def test_overlong_line_bounded():
    decoder = fr.FrameDecoder()
    events = decoder.feed(b"$" + b"x" * 500)
    assert _reasons(events) == [fr.OVERLONG]
    assert len(decoder._buffer) == 0
    frame = fr.encode_frame(fr.READING, "a", 1)
    assert _reasons(decoder.feed(frame)) == [fr.GARBAGE, fr.Frame(fr.READING, "a", 1.0)]


def _framed(body):
    return b"$" + body + b"*" + ("%04X" % fr.crc16_ccitt(body)).encode() + b"\n"


def test_field_level_rejections():
    cases = [
        (b"R,a", fr.BAD_SYNTAX),
        (b"R,a,1,2", fr.BAD_SYNTAX),
        (b"X,a,1", fr.UNKNOWN_TYPE),
        (b"R,A,1", fr.BAD_SENSOR_ID),
        (b"R,,1", fr.BAD_SENSOR_ID),
        (b"R," + b"a" * 33 + b",1", fr.BAD_SENSOR_ID),
        (b"R,a,nan", fr.BAD_VALUE),
        (b"R,a,inf", fr.BAD_VALUE),
        (b"R,a,1e999", fr.BAD_VALUE),
        (b"R,a,1_0", fr.BAD_VALUE),
        (b"R,a, 1", fr.BAD_VALUE),
        (b"R,a,", fr.BAD_VALUE),
        (b"R,a,--1", fr.BAD_VALUE),
        (b"E,a,", fr.BAD_VALUE),
        (b"E,a,OPEN", fr.BAD_VALUE),
    ]
    for body, reason in cases:
        events = fr.FrameDecoder().feed(_framed(body))
        assert _reasons(events) == [reason], "%r: %r" % (body, events)


def test_checksum_syntax():
    for tail in (b"*12\n", b"*12345\n", b"* 1A2\n", b"*+1A2\n", b"*GGGG\n"):
        events = fr.FrameDecoder().feed(b"$R,a,1" + tail)
        assert _reasons(events) == [fr.BAD_SYNTAX], tail
    assert _reasons(fr.FrameDecoder().feed(b"$R,a,1\n")) == [fr.NO_CHECKSUM]


def test_lower_case_checksum_accepted():
    body = b"R,a,1"
    frame = b"$" + body + b"*" + ("%04x" % fr.crc16_ccitt(body)).encode() + b"\n"
    assert fr.FrameDecoder().feed(frame) == [fr.Frame(fr.READING, "a", 1.0)]


def test_non_ascii_rejected():
    events = fr.FrameDecoder().feed(b"$R,a,\xc3\xa91*0000\n")
    assert _reasons(events) == [fr.NOT_ASCII]


def test_flush_reports_pending():
    decoder = fr.FrameDecoder()
    assert _reasons(decoder.feed(b"zz$R,a")) == [fr.GARBAGE]
    assert _reasons(decoder.flush()) == [fr.TRUNCATED]


def test_flush_order_and_reset():
    decoder = fr.FrameDecoder()
    decoder.feed(b"zz")
    assert _reasons(decoder.flush()) == [fr.GARBAGE]
    decoder.feed(b"$R,a")
    assert _reasons(decoder.flush()) == [fr.TRUNCATED]
    assert decoder.flush() == []


def test_whitespace_between_frames_is_not_garbage():
    frame = fr.encode_frame(fr.READING, "a", 1)
    assert _reasons(fr.FrameDecoder().feed(b"\r\n \n" + frame + b"\r\n")) == [fr.Frame(fr.READING, "a", 1.0)]


def test_encoder_refuses_what_decoder_rejects():
    raises(fr.FrameError, fr.encode_frame, fr.READING, "Bad", 1)
    raises(fr.FrameError, fr.encode_frame, fr.READING, "a", float("nan"))
    raises(fr.FrameError, fr.encode_frame, fr.READING, "a", float("inf"))
    raises(fr.FrameError, fr.encode_frame, "Q", "a", 1)
    raises(fr.FrameError, fr.encode_frame, fr.SENSOR_ERROR, "a", "Bad Code")


def test_the_module_docstring_example_is_a_real_frame():
    # frames.py shows a frame as an example; its CRC must be the real one.
    # (Read from the source: the MicroPython port keeps no docstrings.)
    with open(fr.__file__) as f:
        source = f.read()
    example = source[source.index("$R,"):].split("\\\\r\\\\n", 1)[0]
    assert example.startswith("$R,coolant_temp,21.5*")
    assert fr.encode_frame(fr.READING, "coolant_temp", 21.5) == example.encode() + b"\r\n"
    assert fr.parse_frame(example.encode()) == fr.Frame(fr.READING, "coolant_temp", 21.5)
