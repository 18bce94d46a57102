"""The receiver reads COSE messages laid out as core/cose.py's sign1/mac0
write them by hand (receiver/quick_cose.py) and everything else with
cose.parse's general decoder; with hypothesis, the two agree: whatever the
shortcut accepts, cose.parse accepts as the same Envelope, and the shortcut
does take our own messages (else it would save nothing)."""

from hypothesis import given, settings
from hypothesis import strategies as st
from byte_damage import damaged

from edge_agent.core import cbor, cose
from edge_agent.receiver import quick_cose

FIELDS = ("tag", "alg", "kid", "payload", "protected", "authenticator")


def general(data):
    """cose.parse: the Envelope, or the COSEError."""
    try:
        return cose.parse(data)
    except cose.COSEError as exc:
        return exc


def assert_agrees(data):
    mine = quick_cose.parse_own_layout(data)
    if mine is None:
        return None
    theirs = general(data)
    assert isinstance(theirs, cose.Envelope), "the shortcut took what the general path refuses (%s): %s" % (
        theirs, bytes(data).hex())
    assert [getattr(mine, name) for name in FIELDS] == [getattr(theirs, name) for name in FIELDS]
    assert all(type(getattr(mine, name)) is bytes for name in FIELDS[2:])
    return mine


kids = st.binary(min_size=1, max_size=140)
payloads = st.binary(max_size=600)


def sign1(payload, kid):
    return cose.sign1(payload, kid, lambda to_be_signed: bytes(range(64)))


@st.composite
def own_messages(draw):
    payload, kid = draw(payloads), draw(kids)
    if draw(st.booleans()):
        return sign1(payload, kid)
    return cose.mac0(payload, kid, b"k" * 16)


@st.composite
def like_messages(draw):
    """Messages of the same shape from other encoders: other algorithms,
    kids in either header, long heads, other tags, sizes."""
    protected = draw(st.dictionaries(st.sampled_from([1, 4, 3]), st.integers(-30, 70000) | st.binary(max_size=140),
                                     max_size=3))
    unprotected = draw(st.dictionaries(st.sampled_from([1, 4]), st.binary(max_size=8), max_size=2))
    authenticator = draw(st.binary(min_size=30, max_size=66))
    tag = draw(st.sampled_from([17, 18, 16, 98]))
    return cbor.dumps(cbor.Tag(tag, [cbor.dumps(protected), unprotected, draw(payloads), authenticator]))


@settings(max_examples=500, deadline=None)
@given(own_messages())
def test_our_own_messages_take_the_shortcut_as_the_general_path_reads_them(data):
    kid = general(data).kid
    if len(kid) <= cose.MAX_KID:
        assert assert_agrees(data) is not None
    else:
        assert quick_cose.parse_own_layout(data) is None


@settings(max_examples=500, deadline=None)
@given(own_messages() | like_messages(), st.data())
def test_the_shortcut_agrees_with_the_general_path_on_damaged_and_foreign_messages(data, draw):
    assert_agrees(data)
    broken = damaged(data, draw, span=4)
    assert_agrees(broken)
    assert_agrees(bytearray(broken))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=100))
def test_the_shortcut_agrees_on_any_bytes(data):
    assert_agrees(data)
    assert_agrees(b"\xd2\x84" + data)


def test_every_single_byte_change_of_our_messages_agrees():
    """Exhaustively, for a short message of each kind: each byte replaced
    by every value, each prefix, and each byte value inserted anywhere."""
    for data in (sign1(b"\xa1\x00\x01", b"pump-7"), cose.mac0(b"\x01", b"esp-3", b"k" * 16)):
        assert assert_agrees(data) is not None
        for at in range(len(data)):
            assert_agrees(data[:at])
            for value in range(256):
                assert_agrees(data[:at] + bytes((value,)) + data[at + 1:])
                assert_agrees(data[:at] + bytes((value,)) + data[at:])
