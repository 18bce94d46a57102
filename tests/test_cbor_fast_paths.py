"""The CBOR codec's shortcuts agree with its general paths, with hypothesis
(CPython only; tests/core/test_cbor.py has fixed cases for MicroPython too).

- loads_spans (a bundle's signals as their own bytes) decodes as loads, and
  fails as loads, whatever the bytes.
"""

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.core import cbor

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
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
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
