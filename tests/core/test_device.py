"""The device pipeline: frames in, alerts and telemetry out, bad input counted."""

from support import copy_board, raises

from edge_agent.core import board as bd
from edge_agent.core import cbor
from edge_agent.core import device as dv
from edge_agent.core import frames as fr
from edge_agent.core import signals as sg


def _device(**kwargs):
    return dv.Device(bd.board_from_dict(copy_board(), "demo.toml"), "unit-17", **kwargs)


def _signals(outputs):
    return [o for o in outputs if isinstance(o, sg.Signal)]


def _alerts(outputs, condition=None):
    return [s for s in _signals(outputs) if s.kind == sg.KIND_ALERT and condition in (None, s.body[sg.A_CONDITION])]


def _notices(outputs):
    return [o for o in outputs if isinstance(o, dv.Notice)]


def test_out_of_range_raises_one_alert_then_clears():
    device = _device()
    out = device.feed("uart0", fr.encode_frame(fr.READING, "coolant_temp", 90), 1000)
    assert _signals(out) == []
    out = []
    for t in range(2000, 7000, 1000):
        out += device.feed("uart0", fr.encode_frame(fr.READING, "coolant_temp", 140), t)
    # Since the health engine: the out-of-range alert once, and (3 bad of 5
    # evaluations later) the essential loop's degraded-mode alert, plus the
    # state changes that record it.
    alerts = _alerts(out, "out_of_range")
    assert len(alerts) == 1, alerts
    assert [s.body[sg.A_CONDITION] for s in _alerts(out)] == ["out_of_range", "degraded"]
    assert [s.body[sg.S_TO] for s in _signals(out) if s.kind == sg.KIND_STATE] == ["suspect", "failed", "degraded"]
    alert = alerts[0]
    assert alert.kind == sg.KIND_ALERT
    assert alert.priority == sg.PRIORITY_CRITICAL  # coolant_loop is essential
    body = alert.body
    assert body[sg.A_CONDITION] == "out_of_range"
    assert body[sg.A_SENSOR] == "coolant_temp"
    assert body[sg.A_COMPONENT] == "coolant_loop"
    assert body[sg.A_PART] == "4711"
    assert body[sg.A_VALUE] == 140.0
    assert body[sg.A_SINCE] == 2000
    assert body[sg.A_ACTIVE] is True
    assert body[sg.A_SEVERITY] == "critical"
    assert "outside its valid range -20 to 110 degC" in body[sg.A_TEXT]
    assert "part 4711" in body[sg.A_ACTION]
    assert alert.device == "unit-17" and alert.seq == 1
    cleared = _signals(device.feed("uart0", fr.encode_frame(fr.READING, "coolant_temp", 50), 8000))
    assert len(cleared) == 1 and cleared[0].body[sg.A_ACTIVE] is False
    assert cleared[0].body[sg.A_SINCE] == 2000
    assert cleared[0].seq == 6  # after the alert, 3 state changes and the degraded alert


def test_non_essential_component_is_high_priority_warning():
    device = _device()
    out = _signals(device.feed("uart0", fr.encode_frame(fr.READING, "fan_rpm", 9000), 1))
    assert out[0].priority == sg.PRIORITY_HIGH
    assert out[0].body[sg.A_SEVERITY] == "warning"


def test_sensor_fault_frame_alerts():
    device = _device()
    out = _signals(device.feed("uart0", fr.encode_frame(fr.SENSOR_ERROR, "fan_rpm", "open"), 5))
    assert out[0].body[sg.A_CONDITION] == "sensor_fault"
    assert out[0].body[sg.A_VALUE] is None
    assert "fault 'open'" in out[0].body[sg.A_TEXT]


def test_telemetry_batched_by_deadline():
    device = _device(telemetry_interval_ms=5000)
    device.feed("uart0", fr.encode_frame(fr.READING, "fan_rpm", 1200), 1000)
    outputs, deadline = device.poll(1001)
    assert outputs == [] and deadline == 6000
    device.feed("uart0", fr.encode_frame(fr.READING, "fan_rpm", 1210), 3000)
    outputs, deadline = device.poll(6000)
    batch = _signals(outputs)
    assert len(batch) == 1 and deadline is None
    assert batch[0].kind == sg.KIND_TELEMETRY and batch[0].priority == sg.PRIORITY_LOW
    assert batch[0].body[sg.T_READINGS] == [[1000, "fan_rpm", 1200.0, 0], [3000, "fan_rpm", 1210.0, 0]]


def test_telemetry_batched_by_size():
    device = _device(telemetry_max_readings=3)
    out = []
    for t in range(3):
        out += _signals(device.feed("uart0", fr.encode_frame(fr.READING, "fan_rpm", 100 + t), t))
    assert len(out) == 1 and len(out[0].body[sg.T_READINGS]) == 3


def test_bad_frames_counted_not_fatal():
    device = _device()
    good = fr.encode_frame(fr.READING, "fan_rpm", 1)
    out = device.feed("uart0", b"\xff\xfe" + good.replace(b"R,fan_rpm,1", b"R,fan_rpm,2") + good, 1)
    notices = _notices(out)
    assert [n.code for n in notices] == ["bad-frame", "bad-frame"]
    assert notices[0].level == dv.WARNING
    assert device.stats["bad_frames"] == 2 and device.stats["readings"] == 1
    assert device.bad_by_reason == {"garbage": 1, "bad-checksum": 1}
    out = device.feed("uart0", b"\x00" + good, 2)
    assert _notices(out)[0].level == dv.INFO  # second garbage: summarised, not a warning


def test_unknown_sensor_reported_once_then_counted():
    device = _device()
    frame = fr.encode_frame(fr.READING, "oil_pressure", 3)
    first = _notices(device.feed("uart0", frame, 1))
    again = _notices(device.feed("uart0", frame, 2))
    assert len(first) == 1 and again == []
    assert "add [sensors.oil_pressure] to demo.toml" in first[0].text
    assert device.stats["unknown_sensor"] == 2


def test_unknown_sensor_reports_are_bounded():
    device = _device()
    notices = []
    for i in range(dv.MAX_REPORTED_UNKNOWN + 10):
        notices += _notices(device.feed("uart0", fr.encode_frame(fr.READING, "s%d" % i, 1), i))
    assert len(notices) == dv.MAX_REPORTED_UNKNOWN


def test_signals_encode_and_decode():
    device = _device()
    alert = _signals(device.feed("uart0", fr.encode_frame(fr.READING, "coolant_temp", 999), 1700000000000))[0]
    wire = alert.encode()
    back = sg.decode(wire)
    assert (back.kind, back.device, back.seq, back.time_ms, back.priority) == (
        sg.KIND_ALERT,
        "unit-17",
        1,
        1700000000000,
        sg.PRIORITY_CRITICAL,
    )
    assert back.body == alert.body
    assert sg.topic("unit-17", back.kind) == "ea/v1/unit-17/alert"


def test_decode_rejects_bad_envelopes():
    good = {0: 1, 1: 1, 2: "d", 3: 1, 4: 1, 5: 0, 6: {}}
    sg.decode(cbor.dumps(good))
    for data, words in ((b"\xff", "not CBOR"), (cbor.dumps([1]), "must be a CBOR map")):
        err = raises(sg.SignalError, sg.decode, data)
        assert words in str(err), str(err)
    for key, value, words in (
        (0, 2, "unsupported format version 2"),
        (1, 99, "unknown signal kind"),
        (2, "a/b", "device id"),
        (3, -1, "seq"),
        (5, 9, "priority"),
        (6, [], "body"),
    ):
        data = dict(good)
        data[key] = value
        err = raises(sg.SignalError, sg.decode, cbor.dumps(data))
        assert words in str(err), str(err)


def test_decode_never_prints_a_huge_value():
    # A 5,000-digit integer cannot even be formatted by CPython (ValueError,
    # not the promised SignalError); a long text would make a long message.
    good = {0: 1, 1: 1, 2: "d", 3: 1, 4: 1, 5: 0, 6: {}}
    for key, value in ((0, 10 ** 5000), (1, 10 ** 5000), (5, 10 ** 5000), (3, "x" * 100000), (4, b"y" * 100000)):
        data = dict(good)
        data[key] = value
        err = raises(sg.SignalError, sg.decode, cbor.dumps(data))
        assert len(str(err)) < 100, str(err)[:200]


def test_bad_device_id_refused():
    board = bd.board_from_dict(copy_board(), "demo.toml")
    raises(ValueError, dv.Device, board, "a/b")
    raises(ValueError, dv.Device, board, "")
    raises(KeyError, _device().feed, "uart9", b"", 0)


def test_sequencer_continues_from_given_start():
    device = dv.Device(bd.board_from_dict(copy_board(), "d"), "u", sequencer=dv.Sequencer(41))
    alert = _signals(device.feed("uart0", fr.encode_frame(fr.READING, "coolant_temp", 999), 1))[0]
    assert alert.seq == 41
