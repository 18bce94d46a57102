"""CBOR codec: RFC 8949 Appendix A vectors, deterministic encoding, limits.

Runs under pytest and MicroPython (tests/mp_run.py). Round trips against
cbor2 with hypothesis are in tests/test_cbor_vs_cbor2.py (CPython only).
"""

from support import raises

from edge_agent.core import cbor

# (value, hex) from RFC 8949 Appendix A, in both directions.
VECTORS = [
    (0, "00"),
    (1, "01"),
    (10, "0a"),
    (23, "17"),
    (24, "1818"),
    (25, "1819"),
    (100, "1864"),
    (1000, "1903e8"),
    (1000000, "1a000f4240"),
    (1000000000000, "1b000000e8d4a51000"),
    (18446744073709551615, "1bffffffffffffffff"),
    (18446744073709551616, "c249010000000000000000"),
    (-18446744073709551616, "3bffffffffffffffff"),
    (-18446744073709551617, "c349010000000000000000"),
    (-1, "20"),
    (-10, "29"),
    (-100, "3863"),
    (-1000, "3903e7"),
    (0.0, "f90000"),
    (-0.0, "f98000"),
    (1.0, "f93c00"),
    (1.5, "f93e00"),
    (65504.0, "f97bff"),
    (100000.0, "fa47c35000"),
    (3.4028234663852886e38, "fa7f7fffff"),
    (-4.0, "f9c400"),
    (5.960464477539063e-08, "f90001"),
    (0.00006103515625, "f90400"),
    (-4.1, "fbc010666666666666"),
    (1.1, "fb3ff199999999999a"),
    (float("inf"), "f97c00"),
    (float("-inf"), "f9fc00"),
    (False, "f4"),
    (True, "f5"),
    (None, "f6"),
    (b"", "40"),
    (b"\x01\x02\x03\x04", "4401020304"),
    ("", "60"),
    ("a", "6161"),
    ("IETF", "6449455446"),
    ("\"\\", "62225c"),
    ("\u00fc", "62c3bc"),
    ("\u6c34", "63e6b0b4"),
    ([], "80"),
    ([1, 2, 3], "83010203"),
    ([1, [2, 3], [4, 5]], "8301820203820405"),
    ({}, "a0"),
    ({1: 2, 3: 4}, "a201020304"),
    ({"a": 1, "b": [2, 3]}, "a26161016162820203"),
    (["a", {"b": "c"}], "826161a161626163"),
]


def test_rfc8949_vectors_encode():
    for value, expected in VECTORS:
        got = cbor.dumps(value).hex()
        assert got == expected, "%r: %s != %s" % (value, got, expected)


def test_rfc8949_vectors_decode():
    for value, encoded in VECTORS:
        decoded = cbor.loads(bytes.fromhex(encoded))
        assert decoded == value, "%s: %r != %r" % (encoded, decoded, value)


def test_nan_round_trip():
    assert cbor.dumps(float("nan")) == b"\xf9\x7e\x00"
    for encoded in ("f97e00", "fa7fc00000", "fb7ff8000000000000"):
        value = cbor.loads(bytes.fromhex(encoded))
        assert value != value


def test_indefinite_lengths_decode():
    assert cbor.loads(bytes.fromhex("5f42010243030405ff")) == b"\x01\x02\x03\x04\x05"
    assert cbor.loads(bytes.fromhex("7f657374726561646d696e67ff")) == "streaming"
    assert cbor.loads(bytes.fromhex("9f018202039f0405ffff")) == [1, [2, 3], [4, 5]]
    assert cbor.loads(bytes.fromhex("bf61610161629f0203ffff")) == {"a": 1, "b": [2, 3]}


def test_map_keys_sorted_length_first():
    # cbor2's canonical order: shorter encoded key first, then bytewise.
    assert cbor.dumps({24: "x", -1: "y"}).hex() == "a220617918186178"
    assert cbor.dumps({"b": 1, "aa": 2, 100: 3, 1: 4}).hex() == "a4010418640361620162616102"


def test_tags():
    tagged = cbor.Tag(1, 1363896240)
    assert cbor.dumps(tagged).hex() == "c11a514b67b0"
    assert cbor.loads(bytes.fromhex("c11a514b67b0")) == tagged
    assert cbor.loads(bytes.fromhex("d82076687474703a2f2f7777772e6578616d706c652e636f6d")) == cbor.Tag(
        32, "http://www.example.com"
    )


def test_undefined_and_bytes_like():
    assert cbor.dumps(cbor.UNDEFINED) == b"\xf7"
    assert cbor.loads(b"\xf7") is cbor.UNDEFINED
    assert cbor.dumps(bytearray(b"ab")) == cbor.dumps(b"ab")
    assert cbor.dumps(memoryview(b"ab")) == cbor.dumps(b"ab")
    assert cbor.dumps((1, 2)) == cbor.dumps([1, 2])


def test_array_map_key_decodes_as_tuple():
    assert cbor.loads(bytes.fromhex("a1820102f5")) == {(1, 2): True}


def test_truncated_input_is_eof():
    whole = cbor.dumps({"readings": [1.5, "abc", b"xyz", [1, 2, {3: 4}]]})
    for cut in range(len(whole)):
        raises(cbor.CBORDecodeEOF, cbor.loads, whole[:cut])


def test_trailing_bytes_rejected():
    err = raises(cbor.CBORDecodeError, cbor.loads, b"\x01\x02")
    assert "trailing" in str(err)


def test_malformed_inputs_rejected():
    cases = [
        "1c",  # reserved additional info 28
        "ff",  # lone break
        "f818",  # one-byte simple value: unsupported
        "62c328",  # invalid UTF-8
        "5f01ff",  # non-string chunk in an indefinite byte string
        "c243010203" + "",  # fine: bignum; checked below as a control
    ]
    for encoded in cases[:-1]:
        raises(cbor.CBORDecodeError, cbor.loads, bytes.fromhex(encoded))
    assert cbor.loads(bytes.fromhex(cases[-1])) == 0x010203
    raises(cbor.CBORDecodeError, cbor.loads, bytes.fromhex("c201"))  # bignum of an int
    raises(cbor.CBORDecodeError, cbor.loads, bytes.fromhex("a1a0f5"))  # map as a map key


def test_huge_declared_lengths_refused_without_allocating():
    # A 5-byte message claiming 4 GiB of bytes or 4 billion array items.
    raises(cbor.CBORDecodeEOF, cbor.loads, bytes.fromhex("5affffffff"))
    raises(cbor.CBORDecodeEOF, cbor.loads, bytes.fromhex("9affffffff"))
    raises(cbor.CBORDecodeEOF, cbor.loads, bytes.fromhex("bbffffffffffffffff"))


def test_depth_limit_both_ways():
    deep = b"\x81" * (cbor.MAX_DEPTH + 1) + b"\x00"
    raises(cbor.CBORDecodeError, cbor.loads, deep)
    value = 0
    for _ in range(cbor.MAX_DEPTH + 1):
        value = [value]
    raises(cbor.CBOREncodeError, cbor.dumps, value)
    ok = b"\x81" * cbor.MAX_DEPTH + b"\x00"
    assert cbor.dumps(cbor.loads(ok)) == ok


def test_unsupported_type_rejected():
    err = raises(cbor.CBOREncodeError, cbor.dumps, {1: object()})
    assert "object" in str(err)


def test_errors_are_value_errors():
    assert issubclass(cbor.CBORDecodeEOF, cbor.CBORDecodeError)
    assert issubclass(cbor.CBORDecodeError, ValueError)
    assert issubclass(cbor.CBOREncodeError, ValueError)


def test_loads_spans_gives_each_array_element_as_its_bytes():
    items = [{0: 1, 1: "a"}, [1, 2.5, None], "text", 2 ** 70, cbor.Tag(40, b"x")]
    data = cbor.dumps(items)
    value, spans = cbor.loads_spans(data)
    assert value == cbor.loads(data) == items
    assert [cbor.loads(data[start:end]) for start, end in spans] == items
    assert spans[0][0] == 1 and spans[-1][1] == len(data)
    # Not a definite array: the value alone.
    assert cbor.loads_spans(cbor.dumps({1: 2})) == ({1: 2}, [])
    assert cbor.loads_spans(b"\x9f\x01\xff") == ([1], [])
    # Bad bytes: the same error as loads, in its own words.
    for bad in (b"\x82\x01", b"\x81\x01\x02", b"\x82\x01\x1c", b"\x81" * (cbor.MAX_DEPTH + 1) + b"\x00", b""):
        err = raises(cbor.CBORDecodeError, cbor.loads_spans, bad)
        assert str(err) == str(raises(cbor.CBORDecodeError, cbor.loads, bad))


def test_telemetry_rows_take_a_shortcut_with_the_same_bytes_and_values():
    rows = [[1767225600000 + i, "s%02d" % (i % 5), 20.0 + i / 7.0, i % 3] for i in range(40)]
    rows[3][2] = None
    rows[4][2] = 21.5  # a half float
    rows[5][1] = "\u00e9t\u00e9"
    rows[6][3] = 30  # not a small quality: the general way
    rows[7][0] = 12  # nor a 64-bit time
    body = {0: rows}
    fast = cbor.dumps(body)
    cbor.ROW_SHORTCUTS = False
    try:
        general = cbor.dumps(body)
        decoded = cbor.loads(fast)
    finally:
        cbor.ROW_SHORTCUTS = True
    assert fast == general
    assert cbor.loads(fast) == decoded == body
    # A row at the nesting limit is refused both ways, as in general.
    deep = rows[:2]
    for _ in range(cbor.MAX_DEPTH - 1):
        deep = [deep]
    raises(cbor.CBOREncodeError, cbor.dumps, deep)
    raises(cbor.CBORDecodeError, cbor.loads, b"\x81" * (cbor.MAX_DEPTH - 1) + cbor.dumps(rows[:2]))


def test_a_reserve_changes_no_encoding():
    # A board encodes into a reserved block, made once and kept
    # (firmware/app.py sets DUMPS_RESERVE): the bytes must be the same,
    # shorter or longer than it, and after a longer one (it grew) a short
    # one carries nothing of it.
    values = [0, b"", [], {"a": [1.5, None, "x" * 40]}, [[1767225600000 + i, "s%d" % i, i * 0.25, 0] for i in range(40)]]
    plain = [cbor.dumps(v) for v in values]
    saved = cbor.DUMPS_RESERVE
    try:
        cbor.DUMPS_RESERVE = 64
        cbor._reserved = None
        assert [cbor.dumps(v) for v in values] == plain
        assert len(plain[-1]) > 64 and type(cbor.dumps(values[-1])) is bytes
        kept = cbor._reserved
        assert [cbor.dumps(v) for v in reversed(values)] == plain[::-1]
        assert cbor._reserved is kept  # one buffer for every call
        # The transient encoding is a view of that buffer, good until the next.
        for value, encoded in zip(values, plain):
            view = cbor.dumps_transient(value)
            assert type(view) is memoryview and bytes(view) == encoded
            del view  # CPython refuses to empty a buffer a view still holds
    finally:
        cbor.DUMPS_RESERVE = saved
        cbor._reserved = None
    assert cbor.dumps_transient(values[3]) == plain[3]  # without a reserve: the bytes
