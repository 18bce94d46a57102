"""Our CBOR codec against cbor2, the independent reference, with hypothesis.

- ours.dumps(x) is byte-identical to cbor2.dumps(x, canonical=True);
- cbor2 reads what we write, and we read what cbor2 writes, canonical or not,
  definite or indefinite;
- arbitrary bytes never make our decoder raise anything but CBORError.
"""

import math
import struct

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


def _half_only_in_rfc(value):
    """True if ``value`` holds a float 32768 <= |x| <= 65504 that half
    precision holds exactly: RFC 8949 writes those as half floats (Appendix
    A: 65504.0 is f97bff) but cbor2 5.9's C encoder writes single precision."""
    if isinstance(value, float):
        return 32768 <= abs(value) <= 65504 and struct.unpack(">e", struct.pack(">e", value))[0] == value
    if isinstance(value, list):
        return any(_half_only_in_rfc(v) for v in value)
    if isinstance(value, dict):
        return any(_half_only_in_rfc(k) or _half_only_in_rfc(v) for k, v in value.items())
    return False


@given(values)
def test_encoding_is_byte_identical_to_cbor2_canonical(value):
    if _half_only_in_rfc(value):
        return  # covered by test_rfc_half_floats_where_cbor2_writes_single
    assert cbor.dumps(value) == cbor2.dumps(value, canonical=True)


def test_rfc_half_floats_where_cbor2_writes_single():
    for value, encoded in ((32768.0, "f97800"), (65504.0, "f97bff"), (-49152.0, "f9fa00")):
        assert cbor.dumps(value).hex() == encoded
        assert len(cbor2.dumps(value, canonical=True)) == 5  # cbor2 5.9: single precision
        assert cbor2.loads(cbor.dumps(value)) == value


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
    if not _half_only_in_rfc(value):
        assert encoded == cbor2.dumps(value, canonical=True)
    assert len(encoded) <= 5
    assert cbor2.loads(encoded) == value


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
