"""The CBOR codec's shortcuts agree with its general paths, with hypothesis
(CPython only; tests/core/test_cbor.py has fixed cases for MicroPython too).

- loads_spans (a bundle's signals as their own bytes) decodes as loads, and
  fails as loads, whatever the bytes;
- telemetry rows ([time, sensor, value, quality], nearly all of a device's
  CBOR) have a shortcut each way: with it (cbor.ROW_SHORTCUTS) and without
  it, the same bytes and the same values, or the same error, for rows of
  every shape and at every depth, and for any bytes; and the same as cbor2.
"""

import math

import cbor2

from hypothesis import given, settings
from hypothesis import strategies as st
from test_cbor_vs_cbor2 import _half_only_in_rfc

from edge_agent.core import cbor
from edge_agent.core import signals as sg

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
keys = st.integers(min_value=-(2**70), max_value=2**70) | st.text(max_size=8)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(keys, children, max_size=5)
    | st.builds(cbor.Tag, st.integers(4, 2**64 - 1), children),
    max_leaves=25,
)


def _same(a, b):
    """Equality that treats -0.0 and 0.0 as different and NaN as itself."""
    if isinstance(a, float) and isinstance(b, float):
        return (a == b and math.copysign(1, a) == math.copysign(1, b)) or (a != a and b != b)
    if isinstance(a, (list, tuple)) and type(a) is type(b):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        # Each item matched by _same, not by lookup: a key holding a NaN (a
        # tuple made from an array key) is never found in the other dict.
        return len(a) == len(b) and all(any(_same(ka, kb) and _same(va, vb) for kb, vb in b.items())
                                        for ka, va in a.items())
    if isinstance(a, cbor.Tag) and isinstance(b, cbor.Tag):
        return a.tag == b.tag and _same(a.value, b.value)
    return type(a) is type(b) and a == b


def _outcome(fn, data):
    try:
        return "ok", fn(data)
    except cbor.CBORError as exc:
        return type(exc).__name__, str(exc)


def _spans_agree(data):
    expected = _outcome(cbor.loads, data)
    got = _outcome(cbor.loads_spans, data)
    if expected[0] != "ok":
        assert got == expected
        return
    assert got[0] == "ok"
    value, spans = got[1]
    assert _same(value, expected[1])
    if spans:
        assert isinstance(value, list) and len(spans) == len(value)
        assert all(_same(cbor.loads(data[start:end]), item) for (start, end), item in zip(spans, value))


@given(st.lists(values, max_size=6))
def test_loads_spans_finds_each_element(items):
    _spans_agree(cbor.dumps(items))


@given(values)
def test_loads_spans_agrees_with_loads_on_any_value(value):
    _spans_agree(cbor.dumps(value))


@settings(max_examples=2000)
@given(st.binary(max_size=64).map(lambda b: b"\x83" + b))
def test_loads_spans_agrees_with_loads_on_any_bytes(data):
    _spans_agree(data)


@given(st.lists(values, min_size=1, max_size=6), st.data())
def test_loads_spans_agrees_with_loads_on_corrupted_arrays(items, data):
    encoded = bytearray(cbor.dumps(items))
    index = data.draw(st.integers(0, len(encoded) - 1))
    encoded[index] ^= data.draw(st.integers(1, 255))
    _spans_agree(bytes(encoded))


# --- telemetry rows -----------------------------------------------------------

times = st.one_of(st.integers(0, 2**64 + 5), st.integers(1767225600000, 1767225600000 + 10**10),
                  st.sampled_from([2**32 - 1, 2**32, 2**64 - 1, 2**64, -1]))
sensors = st.one_of(st.text(max_size=30), st.sampled_from(["s00", "fan_speed", "\u00e9t\u00e9", "", "x" * 23, "y" * 24]),
                    st.integers(-5, 5), st.binary(max_size=4), st.none())
readings = st.one_of(st.floats(), st.floats(width=32), st.floats(width=16), st.none(), st.integers(-2**70, 2**70),
                     st.booleans(), st.text(max_size=3), st.sampled_from([0.0, -0.0, 65504.0, 40000.0, 1e300, 0.1]))
qualities = st.one_of(st.integers(-3, 30), st.booleans(), st.none(), st.floats(width=16))
# Rows as a device makes them (the shortcut's case: a double needing all its
# bits, a time past 32 bits), and with any field of another shape.
doubles = st.integers(-10**12, 10**12).map(lambda i: i / 997.0)
telemetry = st.tuples(st.integers(2**32, 2**64 - 1), st.sampled_from(["s01", "s02", "fan_speed", "\u00e9"]),
                      st.one_of(doubles, doubles, doubles, st.none(), st.floats()), st.integers(0, 30)).map(list)
rows = st.one_of(telemetry, telemetry, st.tuples(times, sensors, readings, qualities).map(list))
row_lists = st.lists(st.one_of(rows, rows, values), max_size=30)


def general(fn, *args):
    """fn(*args) with the row shortcuts off: the general paths alone."""
    cbor.ROW_SHORTCUTS = False
    try:
        return fn(*args)
    finally:
        cbor.ROW_SHORTCUTS = True


def _encoded(value):
    try:
        return "ok", cbor.dumps(value)
    except cbor.CBORError as exc:
        return type(exc).__name__, str(exc)


def _nested(value, depth):
    for _ in range(depth):
        value = [value]
    return value


def _has_tag(value):
    if isinstance(value, cbor.Tag):
        return True
    if isinstance(value, list):
        return any(_has_tag(v) for v in value)
    if isinstance(value, dict):
        return any(_has_tag(v) for v in value.values())
    return False


@settings(max_examples=500)
@given(row_lists, st.integers(0, 3))
def test_rows_encode_as_the_general_path_and_cbor2(items, depth):
    value = _nested(items, depth)
    fast = _encoded(value)
    assert fast == general(_encoded, value)
    if fast[0] == "ok" and not _half_only_in_rfc(value) and not _has_tag(value):
        assert fast[1] == cbor2.dumps(value, canonical=True)


@settings(max_examples=500)
@given(row_lists, st.integers(0, 3))
def test_rows_decode_as_the_general_path_and_cbor2(items, depth):
    value = _nested(items, depth)
    try:
        data = cbor.dumps(value)
    except cbor.CBORError:
        return
    fast = _outcome(cbor.loads, data)
    assert fast[0] == "ok" and _same(fast[1], value)
    _agree(fast, general(_outcome, cbor.loads, data))
    if not _has_tag(value):
        assert _same(cbor2.loads(data), fast[1])


@given(st.lists(rows, min_size=1, max_size=3), st.integers(cbor.MAX_DEPTH - 3, cbor.MAX_DEPTH + 1))
def test_rows_near_the_depth_limit(items, depth):
    value = _nested(items, depth)
    assert _encoded(value) == general(_encoded, value)
    data = b"\x81" * depth + cbor.dumps(items)
    _agree(_outcome(cbor.loads, data), general(_outcome, cbor.loads, data))


@settings(max_examples=1000)
@given(st.lists(rows, min_size=1, max_size=4), st.data())
def test_corrupted_rows_decode_or_fail_as_the_general_path(items, data):
    encoded = bytearray(cbor.dumps(items))
    for _ in range(data.draw(st.integers(1, 3))):
        index = data.draw(st.integers(0, len(encoded) - 1))
        encoded[index] ^= data.draw(st.integers(1, 255))
    cut = data.draw(st.integers(0, len(encoded)))
    for raw in (bytes(encoded), bytes(encoded[:cut])):
        _agree(_outcome(cbor.loads, raw), general(_outcome, cbor.loads, raw))


def _agree(fast, slow):
    """Two _outcome()s: the same value, or the same error in the same words."""
    assert fast[0] == slow[0], (fast, slow)
    assert _same(fast[1], slow[1]) if fast[0] == "ok" else fast[1] == slow[1]


def test_a_telemetry_batch_takes_the_shortcut_both_ways():
    batch = [[1767225600000 + i, "s%02d" % (i % 32), 20.0 + i / 7.0, 0] for i in range(300)]
    batch[5][2] = None
    batch[6][2] = 21.5  # a half float: the value alone goes the general way
    batch[7][2] = float("nan")
    batch[8][1] = "\u00e9"
    data = cbor.dumps({0: batch})
    assert data == general(cbor.dumps, {0: batch}) == cbor2.dumps({0: batch}, canonical=True)
    assert _same(cbor.loads(data), {0: batch}) and _same(general(cbor.loads, data), {0: batch})


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**70), st.integers(0, 2**70), st.integers(0, 2**70), st.integers(0, 2**70),
       st.text(max_size=70), st.booleans())
def test_body_bytes_finds_the_body_as_the_encoded_envelope_would(kind, seq, time_ms, priority, device, canonical):
    """signals.body_bytes builds the envelope's head by hand: the same
    bytes as cbor.dumps of the map up to the body, whatever the values."""
    signal = sg.Signal(kind, priority, time_ms, {0: [1.5]}, device, seq)
    head = cbor.dumps({sg.K_VERSION: sg.VERSION, sg.K_KIND: kind, sg.K_DEVICE: device, sg.K_SEQ: seq,
                       sg.K_TIME: time_ms, sg.K_PRIORITY: priority, sg.K_BODY: None})[:-1]
    body = cbor.dumps(signal.body)
    record = head + body if canonical else head[:-1] + b"\x07" + body
    assert sg.body_bytes(signal, record) == (body if canonical else None)
