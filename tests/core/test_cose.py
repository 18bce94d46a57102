"""COSE envelopes and HMAC-SHA256: structure, tamper detection, limits.
Interop with pycose and real Ed25519 is in tests/test_cose_interop.py."""

import hashlib

from support import raises

from edge_agent.core import cbor, cose
from edge_agent.core.hmac_sha256 import equal, hmac_sha256

KEY = bytes(range(32))
PAYLOAD = cbor.dumps({0: 1, 1: 1, 2: "unit-17", 3: 42})


def test_hmac_rfc4231_vectors():
    # Test cases 1, 2 and 6 (key longer than the block) of RFC 4231.
    assert hmac_sha256(b"\x0b" * 20, b"Hi There").hex() == (
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
    assert hmac_sha256(b"Jefe", b"what do ya want for nothing?").hex() == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    assert hmac_sha256(b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First").hex() == (
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")


def test_equal():
    assert equal(b"abc", b"abc")
    assert not equal(b"abc", b"abd")
    assert not equal(b"abc", b"ab")


def test_mac0_round_trip():
    message = cose.mac0(PAYLOAD, b"unit-17", KEY)
    assert cbor.loads(message).tag == cose.TAG_MAC0
    envelope = cose.parse(message)
    assert envelope.kid == b"unit-17"
    assert envelope.verify_mac0(KEY) == PAYLOAD


def test_mac0_every_flipped_byte_is_rejected():
    message = cose.mac0(PAYLOAD, b"unit-17", KEY)
    for i in range(len(message)):
        tampered = bytearray(message)
        tampered[i] ^= 0x01
        try:
            cose.parse(bytes(tampered)).verify_mac0(KEY)
        except cose.COSEError:
            continue
        except ValueError:
            continue
        raise AssertionError("flipping byte %d went unnoticed" % i)


def test_mac0_wrong_key_and_weak_key():
    message = cose.mac0(PAYLOAD, b"unit-17", KEY)
    err = raises(cose.COSEError, cose.parse(message).verify_mac0, bytes(32))
    assert err.reason == "bad-mac"
    err = raises(cose.COSEError, cose.mac0, PAYLOAD, b"k", b"short")
    assert err.reason == "weak-key"


def _fake_signer(data):
    # Stands in for Ed25519 here only to exercise the message structure on
    # both interpreters; real signatures are tested against pycose.
    return hashlib.sha256(data).digest() * 2


def _fake_verify(signature, data):
    return signature == _fake_signer(data)


def test_sign1_structure_and_verification_path():
    message = cose.sign1(PAYLOAD, b"unit-17", _fake_signer)
    envelope = cose.parse(message)
    assert (envelope.tag, envelope.alg, envelope.kid) == (cose.TAG_SIGN1, cose.ALG_EDDSA, b"unit-17")
    assert envelope.verify_sign1(_fake_verify) == PAYLOAD
    tampered = cbor.loads(message)
    tampered.value[2] = PAYLOAD + b"\x00"
    err = raises(cose.COSEError, cose.parse(cbor.dumps(tampered)).verify_sign1, _fake_verify)
    assert err.reason == "bad-signature"


def test_kid_in_unprotected_header_accepted():
    # Other implementations may put the kid there (RFC 9052 allows it).
    protected = cbor.dumps({1: 5})
    structure = cbor.dumps(["MAC0", protected, b"", PAYLOAD])
    message = cbor.dumps(cbor.Tag(17, [protected, {4: b"other"}, PAYLOAD, hmac_sha256(KEY, structure)]))
    envelope = cose.parse(message)
    assert envelope.kid == b"other" and envelope.verify_mac0(KEY) == PAYLOAD


def test_algorithm_confusion_rejected():
    mac_message = cose.mac0(PAYLOAD, b"unit-17", KEY)
    err = raises(cose.COSEError, cose.parse(mac_message).verify_sign1, _fake_verify)
    assert err.reason == "wrong-algorithm"
    sign_message = cose.sign1(PAYLOAD, b"unit-17", _fake_signer)
    err = raises(cose.COSEError, cose.parse(sign_message).verify_mac0, KEY)
    assert err.reason == "wrong-algorithm"


def test_signer_returning_wrong_size_is_caught():
    err = raises(cose.COSEError, cose.sign1, PAYLOAD, b"k", lambda data: b"short")
    assert err.reason == "bad-signer"


def test_malformed_messages():
    good = cbor.loads(cose.mac0(PAYLOAD, b"unit-17", KEY))
    cases = [
        b"",
        b"\xff",
        cbor.dumps([1, 2, 3, 4]),  # untagged
        cbor.dumps(cbor.Tag(99, [])),  # other tag
        cbor.dumps(cbor.Tag(17, [b"", {}, PAYLOAD])),  # 3 items
        cbor.dumps(cbor.Tag(17, [{}, {}, PAYLOAD, b"x" * 32])),  # protected not bstr
        cbor.dumps(cbor.Tag(17, [cbor.dumps({1: 5}), {}, PAYLOAD, good.value[3]])),  # no kid
        cbor.dumps(cbor.Tag(17, [good.value[0], {4: b"k"}, None, good.value[3]])),  # detached payload
        cbor.dumps(cbor.Tag(17, [good.value[0], {4: b"k"}, PAYLOAD, b"x" * 31])),  # short tag
        cbor.dumps(cbor.Tag(17, [b"\xff", {4: b"k"}, PAYLOAD, b"x" * 32])),  # protected not CBOR
        cbor.dumps(cbor.Tag(17, [cbor.dumps([1]), {4: b"k"}, PAYLOAD, b"x" * 32])),  # protected not a map
    ]
    for data in cases:
        err = raises(cose.COSEError, cose.parse, data)
        assert err.reason == "malformed", data


def test_bundles_round_trip_and_refuse_mixtures():
    from edge_agent.core import bundle
    from edge_agent.core import signals as sg

    def signal(device, seq, kind=sg.KIND_TELEMETRY):
        return sg.Signal(kind, 3, 1000 + seq, {0: []}, device, seq).encode()

    records = [signal("d", s) for s in (1, 2, 3)]
    payload = bundle.encode(records)
    assert payload == cbor.dumps([cbor.loads(r) for r in records])  # canonical array, no re-encoding
    assert [s.seq for s in bundle.decode(payload)] == [1, 2, 3]
    assert [s.seq for s in bundle.decode(records[0])] == [1]  # a lone signal is a bundle of one
    for bad in (bundle.encode([signal("d", 1), signal("e", 2)]),
                bundle.encode([signal("d", 1), signal("d", 2, sg.KIND_ALERT)]),
                cbor.dumps([]), cbor.dumps([1]), b"\x9f"):
        raises(sg.SignalError, bundle.decode, bad)
    raises(ValueError, bundle.encode, [])


def test_bundle_decode_gives_each_signal_as_signed_and_its_body_bytes():
    from edge_agent.core import bundle
    from edge_agent.core import signals as sg

    made = [sg.Signal(sg.KIND_TELEMETRY, 3, 1000 + seq, {0: [[1000, "t", 20.5 + seq, 0]]}, "d", seq)
            for seq in (1, 2, 300)]
    encoded = [s.encode() for s in made]
    for payload, expected in ((bundle.encode(encoded), encoded), (encoded[0], encoded[:1])):
        records = []
        signals = bundle.decode(payload, records)
        assert [bytes(r) for r in records] == expected
        # The body's bytes are the rest of the record: no encoding again.
        assert [sg.body_bytes(s, r) for s, r in zip(signals, records)] == [cbor.dumps(s.body) for s in signals]
    # A record whose envelope is not encoded canonically (a non-shortest
    # seq here) gives None: the receiver encodes the body itself then.
    odd = b"\xa7\x00\x01\x01\x02\x02\x61d\x03\x18\x01\x04\x19\x03\xe9\x05\x03\x06\xa0"
    signal = sg.decode(odd)
    assert signal.seq == 1 and sg.body_bytes(signal, odd) is None


def test_peek_kind_agrees_with_decode():
    from edge_agent.core import bundle
    from edge_agent.core import signals as sg

    for kind in sg.KIND_NAMES:
        record = sg.Signal(kind, 2, 5, {0: "x"}, "dev", 9).encode()
        assert bundle.peek_kind(record) == kind == sg.decode(record).kind


def _headers_case(protected_map, unprotected=None, tag=17):
    size = cose.HMAC_SIZE if tag == cose.TAG_MAC0 else cose.ED25519_SIGNATURE_SIZE
    return cbor.dumps(cbor.Tag(tag, [cbor.dumps(protected_map), unprotected or {}, PAYLOAD, b"x" * size]))


def test_hostile_header_values_are_malformed_and_never_formatted():
    # Issue 17 item 1: an alg of 5,000 digits made verify_sign1's message
    # (%r) raise ValueError, which crashed the receiver. parse() now refuses
    # every header value of the wrong type or size, and no message quotes one.
    huge = 10 ** 5000
    cases = [
        {1: huge, 4: b"unit-17"},  # a bignum alg
        {1: -huge, 4: b"unit-17"},
        {1: cose.MAX_ALG + 1, 4: b"unit-17"},
        {1: -cose.MAX_ALG - 1, 4: b"unit-17"},
        {1: "EdDSA", 4: b"unit-17"},  # a text alg (RFC 9052 allows it; nothing here uses one)
        {1: True, 4: b"unit-17"},
        {1: [5], 4: b"unit-17"},
        {1: 5, 4: "unit-17"},  # kid as text
        {1: 5, 4: huge},
        {1: 5, 4: b""},
        {1: 5, 4: b"k" * (cose.MAX_KID + 1)},
    ]
    for headers in cases:
        for tag in (cose.TAG_MAC0, cose.TAG_SIGN1):
            err = raises(cose.COSEError, cose.parse, _headers_case(headers, tag=tag))
            assert err.reason == "malformed", headers
            assert len(str(err)) < 120, str(err)
    # The unprotected bucket is checked too, and a label may not be in both.
    for protected, unprotected in (({1: 5}, {4: b"k" * (cose.MAX_KID + 1)}), ({4: b"k"}, {1: huge}),
                                   ({1: 5, 4: b"k"}, {4: b"k"}), ({1: 5, 4: b"k"}, {1: 5})):
        err = raises(cose.COSEError, cose.parse, _headers_case(protected, unprotected))
        assert err.reason == "malformed", (protected, unprotected)
    # Small values that are simply not ours still parse, and fail verification
    # with a message that names only the tag and the (small) alg.
    envelope = cose.parse(_headers_case({1: -7, 4: b"k" * cose.MAX_KID}, tag=cose.TAG_SIGN1))
    err = raises(cose.COSEError, envelope.verify_sign1, _fake_verify)
    assert err.reason == "wrong-algorithm" and str(err) == "expected COSE_Sign1 with EdDSA, got COSE_Sign1 with alg -7"
    err = raises(cose.COSEError, envelope.verify_mac0, KEY)
    assert err.reason == "wrong-algorithm" and "alg -7" in str(err)


def test_an_alg_outside_the_protected_header_is_not_trusted():
    # Only the protected header is covered by the MAC: an alg in the
    # unprotected one (small, so it parses) is never taken as the algorithm.
    message = cose.mac0(PAYLOAD, b"unit-17", KEY)
    protected = cbor.dumps({cose.HEADER_KID: b"unit-17"})
    structure = cbor.dumps(["MAC0", protected, b"", PAYLOAD])
    moved = cbor.dumps(cbor.Tag(17, [protected, {1: 5}, PAYLOAD, hmac_sha256(KEY, structure)]))
    envelope = cose.parse(moved)
    assert envelope.alg is None and cose.parse(message).alg == cose.ALG_HMAC_256
    err = raises(cose.COSEError, envelope.verify_mac0, KEY)
    assert err.reason == "wrong-algorithm" and str(err).endswith("got COSE_Mac0 with no alg")


def test_verification_failures_do_not_quote_the_kid():
    kid = b"[/x]\x1b[2J" + b"k" * 100
    err = raises(cose.COSEError, cose.parse(cose.mac0(PAYLOAD, kid, KEY)).verify_mac0, bytes(32))
    assert err.reason == "bad-mac" and "k" * 10 not in str(err) and "\x1b" not in str(err)
    err = raises(cose.COSEError, cose.parse(cose.sign1(PAYLOAD, kid, _fake_signer)).verify_sign1, lambda s, d: False)
    assert err.reason == "bad-signature" and "\x1b" not in str(err)


def test_messages_are_the_canonical_cbor_of_their_structure_at_every_head_size():
    # mac0 and sign1 join their pieces instead of encoding the structure
    # (the payload is copied once, into a block of the final size): the
    # bytes must be what encoding it would give, at each length where the
    # CBOR head of the payload, the kid or the structure changes size.
    kid = b"k"
    for size in (0, 23, 24, 255, 256, 65535, 65536):
        payload = bytes(i % 251 for i in range(size))
        for context, message in (("MAC0", cose.mac0(payload, kid, KEY)),
                                 ("Signature1", cose.sign1(payload, kid, _fake_signer))):
            envelope = cose.parse(message)
            authenticator = envelope.authenticator
            assert message == cbor.dumps(cbor.Tag(envelope.tag, [envelope.protected, {}, payload, authenticator]))
            structure = cbor.dumps([context, envelope.protected, b"", payload])
            if context == "MAC0":
                assert authenticator == hmac_sha256(KEY, structure)
                assert envelope.verify_mac0(KEY) == payload
            else:
                assert authenticator == _fake_signer(structure)
        kid = kid * 3 if len(kid) < 81 else kid  # 1 to 81 bytes: the kid's head changes size too
    # A bytearray or a memoryview payload gives the same message as bytes.
    assert cose.mac0(bytearray(PAYLOAD), b"unit-17", KEY) == cose.mac0(memoryview(PAYLOAD), b"unit-17", KEY) == cose.mac0(
        PAYLOAD, b"unit-17", KEY)


def test_mac0_pieces_join_to_mac0_of_the_joined_payload():
    # The board's uplink seals a bundle as pieces and sends them unjoined.
    from edge_agent.core import bundle

    records = [PAYLOAD, b"", bytes(range(200)), PAYLOAD * 3]
    pieces = bundle.encode_pieces(records)
    assert b"".join(pieces) == bundle.encode(records)
    for payload in (pieces, (PAYLOAD,), PAYLOAD, ()):
        sealed = cose.mac0_pieces(payload, b"unit-17", KEY)
        assert type(sealed) is tuple
        joined = b"".join(payload) if type(payload) is tuple else payload
        assert b"".join(sealed) == cose.mac0(joined, b"unit-17", KEY)
        assert cose.parse(b"".join(sealed)).verify_mac0(KEY) == joined
    assert raises(cose.COSEError, cose.mac0_pieces, (PAYLOAD,), b"unit-17", b"short").reason == "weak-key"
