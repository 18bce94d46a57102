"""The receiver's telemetry shortcut (receiver/quick_telemetry.py) decides
as the core's path does (bundle.decode, signals.body_bytes), with
hypothesis: whenever it answers, the core accepts the same bytes with the
same signals and body bytes; where the core refuses, it stands aside. And
it does answer for telemetry as devices write it, or it would save nothing.
"""

import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from byte_damage import damaged
from test_cbor_fast_paths import _same

from edge_agent.core import bundle, cbor
from edge_agent.core import signals as sg
from edge_agent.receiver import quick_telemetry

DEVICE = "pump-7"
T0 = 1767225600000


def core_path(payload):
    """(signals, body bytes) as the core reads ``payload``, or None."""
    records = []
    try:
        signals = bundle.decode(payload, records)
    except (sg.SignalError, ValueError):
        return None
    return signals, [sg.body_bytes(signal, record) for signal, record in zip(signals, records)]


def assert_agrees(payload):
    """The shortcut answers only as the core does; returns its answer."""
    quick = quick_telemetry.open_payload(payload)
    if quick is None:
        return None
    core = core_path(payload)
    assert core is not None, "the shortcut accepted what the core refuses: %s" % payload.hex()
    (quick_signals, quick_bodies), (core_signals, core_bodies) = quick, core
    assert len(quick_signals) == len(core_signals)
    for mine, theirs in zip(quick_signals, core_signals):
        assert (mine.kind, mine.priority, mine.time_ms, mine.device, mine.seq) == \
            (theirs.kind, theirs.priority, theirs.time_ms, theirs.device, theirs.seq)
        assert _same(mine.body, theirs.body)
    assert quick_bodies == core_bodies
    return quick


# Every encoding a reading's parts may take, canonical or not: a value of
# each float width, null, ints of every head size (shortest or not).
def _uint_heads(value, major=0):
    heads = [(24, ">B", 0x100), (25, ">H", 0x10000), (26, ">I", 0x100000000), (27, ">Q", 0x10000000000000000)]
    out = [bytes((major | value,))] if value < 24 else []
    out += [bytes((major | info,)) + struct.pack(fmt, value) for info, fmt, limit in heads if value < limit]
    return out


@st.composite
def encoded_uint(draw, max_value=2**64 - 1):
    value = draw(st.integers(0, max_value))
    return value, draw(st.sampled_from(_uint_heads(value)))


@st.composite
def encoded_value(draw):
    choice = draw(st.integers(0, 5))
    if choice == 0:
        return None, b"\xf6"
    if choice == 1:
        value = draw(st.floats(width=64))
        return value, b"\xfb" + struct.pack(">d", value)
    if choice == 2:
        value = draw(st.floats(width=32))
        return value, b"\xfa" + struct.pack(">f", value)
    if choice == 3:
        value = draw(st.floats(width=16))
        return value, b"\xf9" + struct.pack(">e", value)
    if choice == 4:
        return draw(encoded_uint())
    value, head = draw(encoded_uint())
    return -1 - value, bytes((head[0] | 0x20,)) + head[1:]


sensor_names = st.text(st.characters(max_codepoint=0x7F), max_size=23) | st.text(min_size=1, max_size=30)


@st.composite
def encoded_row(draw):
    time_bytes, quality_bytes = draw(encoded_uint())[1], draw(encoded_uint())[1]
    sensor = draw(sensor_names)
    value, value_bytes = draw(encoded_value())
    return b"\x84" + time_bytes + cbor.dumps(sensor) + value_bytes + quality_bytes


@st.composite
def telemetry_signal(draw, seq):
    rows = draw(st.lists(encoded_row(), max_size=6))
    body = b"\xa1\x00" + cbor._head(4, len(rows)) + b"".join(rows)
    head = cbor.dumps({sg.K_VERSION: sg.VERSION, sg.K_KIND: sg.KIND_TELEMETRY, sg.K_DEVICE: DEVICE,
                       sg.K_SEQ: seq, sg.K_TIME: draw(st.integers(0, 2**64 - 1)),
                       sg.K_PRIORITY: draw(st.integers(0, sg.PRIORITY_LOW)), sg.K_BODY: None})[:-1]
    return head + body


@st.composite
def telemetry_payload(draw):
    count = draw(st.integers(1, 4))
    first = draw(st.integers(0, 2**40))
    records = [draw(telemetry_signal(first + i)) for i in range(count)]
    if count == 1 and draw(st.booleans()):
        return records[0]  # a signal alone, not in a bundle
    return bundle.encode(records)


@settings(max_examples=400, deadline=None)
@given(telemetry_payload())
def test_the_shortcut_agrees_with_the_core_on_telemetry_of_every_encoding(payload):
    assert_agrees(payload)


@settings(max_examples=400, deadline=None)
@given(telemetry_payload(), st.data())
def test_the_shortcut_agrees_with_the_core_on_damaged_telemetry(payload, data):
    assert_agrees(damaged(payload, data))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_the_shortcut_agrees_with_the_core_on_any_bytes(payload):
    assert_agrees(payload)
    assert_agrees(bytes.fromhex("a70001010202") + payload)  # a telemetry envelope's start, then anything
    assert_agrees(_device_signal(1, [])[:-1] + payload)  # up to the readings' array head, then anything


def _device_signal(seq, rows):
    return sg.Signal(sg.KIND_TELEMETRY, sg.PRIORITY_LOW, T0 + seq, {sg.T_READINGS: rows}, DEVICE, seq).encode()


def test_it_answers_for_telemetry_as_devices_write_it():
    """Rows as the Device writes them (doubles, null for a fault, small
    ints), alone and in bundles: the shortcut takes them all, so the
    receiver decodes no reading."""
    rows = [[T0 + i, "s%02d" % (i % 32), round(20.0 + i * 0.37, 2), 0] for i in range(100)]
    rows += [[T0 + 100, "fan_rpm", None, 3], [T0 + 101, "count", 7, 0], [T0 + 102, "t", -40.5, 1]]
    single = _device_signal(1, rows)
    assert assert_agrees(single) is not None
    bundled = bundle.encode([_device_signal(seq, rows) for seq in range(2, 10)])
    signals, bodies = assert_agrees(bundled)
    assert [s.seq for s in signals] == list(range(2, 10))
    assert all(isinstance(body, bytes) for body in bodies)
    assert signals[0].body[sg.T_READINGS][:1] == [rows[0]]  # decoded when asked


def test_it_stands_aside_for_what_it_does_not_know():
    """Other kinds, other body keys, a non-ASCII sensor name, a bundle of
    two devices, a non-canonical envelope, a name that is not UTF-8, more
    rows declared than the bytes hold: the core's path decides."""
    row = [T0, "s01", 1.5, 0]
    alert = sg.Signal(sg.KIND_ALERT, 1, T0, {sg.A_TEXT: "hot"}, DEVICE, 1).encode()
    extra_key = sg.Signal(sg.KIND_TELEMETRY, 3, T0, {sg.T_READINGS: [row], 1: "x"}, DEVICE, 1).encode()
    accented = _device_signal(1, [[T0, "température", 1.5, 0]])
    other = sg.Signal(sg.KIND_TELEMETRY, 3, T0, {sg.T_READINGS: [row]}, "pump-8", 2).encode()
    long_seq = _device_signal(5, [row]).replace(b"\x03\x05", b"\x03\x18\x05")  # seq 5 in two bytes
    for payload in (alert, extra_key, accented, long_seq):
        assert quick_telemetry.open_payload(payload) is None
        assert core_path(payload) is not None  # yet valid: the core takes it
    two_devices = bundle.encode([_device_signal(1, [row]), other])
    not_utf8 = _device_signal(1, [row]).replace(b"cs01", b"cs\xff1")
    empty = _device_signal(1, [])  # its body ends with 80, an empty array
    huge = [empty[:-1] + bytes.fromhex(head) for head in ("9b0000010000000000", "9bffffffffffffffff", "9a7fffffff")]
    for payload in [two_devices, not_utf8] + huge:
        assert quick_telemetry.open_payload(payload) is None
        assert core_path(payload) is None  # and the core refuses it, with its reason


def test_a_quick_signal_body_can_be_replaced_as_any_signal_body():
    (signal,), _ = quick_telemetry.open_payload(_device_signal(1, [[T0, "s01", 1.5, 0]]))
    signal.body = None  # as the simulator does once a signal is delivered
    assert signal.body is None and signal.raw_body is None
    signal.body = {sg.T_READINGS: []}
    assert signal.body == {sg.T_READINGS: []}
