"""Our COSE envelopes against pycose (an independent implementation) with
real Ed25519 (cryptography), and our HMAC against CPython's hmac."""

import hashlib
import hmac

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from pycose.algorithms import EdDSA, HMAC256
from pycose.headers import KID, Algorithm
from pycose.keys import OKPKey, SymmetricKey
from pycose.keys.curves import Ed25519
from pycose.keys.keyparam import OKPKpCurve, OKPKpD, OKPKpX
from pycose.messages import CoseMessage, Mac0Message, Sign1Message

from edge_agent.core import cose
from edge_agent.core.hmac_sha256 import hmac_sha256
from cryptography.hazmat.primitives import serialization

PRIVATE = Ed25519PrivateKey.generate()
RAW_PRIVATE = PRIVATE.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                    serialization.NoEncryption())
RAW_PUBLIC = PRIVATE.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
PYCOSE_KEY = OKPKey.from_dict({OKPKpCurve: Ed25519, OKPKpX: RAW_PUBLIC, OKPKpD: RAW_PRIVATE})
SECRET = bytes(range(32))
PYCOSE_SECRET = SymmetricKey(k=SECRET)


def _verify(signature, data):
    try:
        PRIVATE.public_key().verify(signature, data)
        return True
    except InvalidSignature:
        return False


payloads = st.binary(max_size=300)


@given(payloads)
def test_pycose_verifies_our_sign1(payload):
    message = CoseMessage.decode(cose.sign1(payload, b"unit-17", PRIVATE.sign))
    assert isinstance(message, Sign1Message)
    message.key = PYCOSE_KEY
    assert message.verify_signature()
    assert message.payload == payload
    assert message.get_attr(KID) == b"unit-17"


@given(payloads)
def test_we_verify_pycose_sign1(payload):
    message = Sign1Message(phdr={Algorithm: EdDSA}, uhdr={KID: b"unit-17"}, payload=payload)
    message.key = PYCOSE_KEY
    envelope = cose.parse(message.encode(tag=True))
    assert envelope.kid == b"unit-17"
    assert envelope.verify_sign1(_verify) == payload


@given(payloads)
def test_pycose_verifies_our_mac0(payload):
    message = CoseMessage.decode(cose.mac0(payload, b"esp-3", SECRET))
    assert isinstance(message, Mac0Message)
    message.key = PYCOSE_SECRET
    assert message.verify_tag()


@given(payloads)
def test_we_verify_pycose_mac0(payload):
    message = Mac0Message(phdr={Algorithm: HMAC256}, uhdr={KID: b"esp-3"}, payload=payload)
    message.key = PYCOSE_SECRET
    assert cose.parse(message.encode(tag=True)).verify_mac0(SECRET) == payload


@given(st.binary(max_size=200), st.binary(max_size=300))
def test_hmac_matches_cpython(key, message):
    assert hmac_sha256(key, message) == hmac.new(key, message, hashlib.sha256).digest()


def test_signature_from_another_key_rejected():
    other = Ed25519PrivateKey.generate()
    envelope = cose.parse(cose.sign1(b"payload", b"unit-17", other.sign))
    try:
        envelope.verify_sign1(_verify)
    except cose.COSEError as exc:
        assert exc.reason == "bad-signature"
    else:
        raise AssertionError("a signature by another key verified")


@given(st.binary(max_size=200))
def test_random_bytes_only_raise_cose_errors(data):
    try:
        cose.parse(data)
    except cose.COSEError:
        pass
