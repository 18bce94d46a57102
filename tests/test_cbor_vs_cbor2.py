"""Our CBOR codec against cbor2, the independent reference, with hypothesis.

- ours.dumps(x) is byte-identical to cbor2.dumps(x, canonical=True);
- cbor2 reads what we write, and we read what cbor2 writes, canonical or not,
  definite or indefinite;
- arbitrary bytes never make our decoder raise anything but CBORError.
"""

import math

import cbor2
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.core import cbor

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
keys = st.integers(min_value=-(2**70), max_value=2**70) | st.text(max_size=8) | st.binary(max_size=8)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(keys, children, max_size=5),
    max_leaves=25,
)


def _same(a, b):
    """Equality that treats -0.0 and 0.0 as different (CBOR does)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@given(values)
def test_encoding_is_byte_identical_to_cbor2_canonical(value):
    assert cbor.dumps(value) == cbor2.dumps(value, canonical=True)


@given(values)
def test_cbor2_reads_what_we_write(value):
    assert _same(cbor2.loads(cbor.dumps(value)), value)


@given(values, st.booleans())
def test_we_read_what_cbor2_writes(value, canonical):
    assert _same(cbor.loads(cbor2.dumps(value, canonical=canonical)), value)


@given(values)
def test_we_read_cbor2_indefinite_containers(value):
    encoded = cbor2.dumps(value, indefinite_containers=True)
    assert _same(cbor.loads(encoded), value)


@given(st.floats(allow_nan=False, width=16) | st.floats(allow_nan=False, width=32))
def test_narrow_floats_take_the_narrow_width(value):
    encoded = cbor.dumps(value)
    assert encoded == cbor2.dumps(value, canonical=True)
    assert len(encoded) <= 5


@given(st.tuples(st.integers(0, 2**64), st.integers(0, 2**64)))
def test_tag_round_trip(pair):
    tag = cbor.Tag(pair[0] % 2**64 if pair[0] not in (2, 3) else 100, pair[1])
    encoded = cbor.dumps(tag)
    assert encoded == cbor2.dumps(cbor2.CBORTag(tag.tag, tag.value), canonical=True)
    assert cbor.loads(encoded) == tag


@settings(max_examples=2000)
@given(st.binary(max_size=64))
def test_random_bytes_only_raise_cbor_errors(data):
    try:
        cbor.loads(data)
    except cbor.CBORError:
        pass


@given(values, st.data())
def test_corrupted_encodings_only_raise_cbor_errors(value, data):
    encoded = bytearray(cbor.dumps(value))
    if not encoded:
        return
    index = data.draw(st.integers(0, len(encoded) - 1))
    encoded[index] ^= data.draw(st.integers(1, 255))
    try:
        cbor.loads(bytes(encoded))
    except cbor.CBORError:
        pass
