"""COSE (RFC 9052) envelopes for signals and commands, on both platforms.

Two message types, both carrying one signal's CBOR bytes as payload:

- COSE_Sign1 (tag 18) with EdDSA / Ed25519 (alg -8), for gateways. The core
  builds the exact bytes to be signed (Sig_structure) and the message
  around the signature; the signature itself comes from an injected
  ``signer(bytes) -> bytes`` and is checked by an injected
  ``verify(signature, bytes) -> bool`` (the cryptography package on the
  Pi). Ed25519 is too slow in pure Python for a board anyway.
- COSE_Mac0 (tag 17) with HMAC 256/256 (alg 5), for small boards: all in
  the core (hmac_sha256.py).

Both put the algorithm (label 1) and the key id (``kid``, label 4) in the
protected header, so the kid is covered by the signature too (a kid in the
unprotected header could be swapped in transit). The kid is the device id's
UTF-8 bytes: the receiver finds the key by it, and then requires the
signal's own device field to match, so a valid key cannot speak for
another device. On parse a kid in the unprotected header is accepted too
(RFC 9052 allows either), for messages from other implementations.

    COSE_Sign1 = #6.18([protected: bstr .cbor {1: -8, 4: kid}, {}, payload: bstr, signature: bstr])
    COSE_Mac0  = #6.17([protected: bstr .cbor {1: 5, 4: kid},  {}, payload: bstr, tag: bstr])

Interoperability with pycose (an independent implementation) is tested in
tests/test_cose_interop.py.
"""

from edge_agent.core import cbor
from edge_agent.core.hmac_sha256 import equal, hmac_sha256_parts

TAG_SIGN1 = 18
TAG_MAC0 = 17
ALG_EDDSA = -8
ALG_HMAC_256 = 5
HEADER_ALG = 1
HEADER_KID = 4

ED25519_SIGNATURE_SIZE = 64
HMAC_SIZE = 32
MIN_HMAC_KEY = 16  # RFC 2104: shorter keys weaken the MAC; we require 16+ bytes
# Header values parse() accepts. Registered COSE algorithms are integers
# within +-65536 (RFC 9053, the IANA registry); a text or bignum "alg" is
# refused, so no caller ever formats or compares a hostile value. Our kids
# are device and operator ids (at most 64 characters); 128 bytes leaves room
# for other implementations' key ids (thumbprints, UUIDs).
MAX_ALG = 65536
MAX_KID = 128


class COSEError(ValueError):
    """A COSE message is malformed, or fails verification (the message says
    which); for verification failures ``reason`` is a short stable code."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason


# The two contexts' CBOR text strings, as cbor.dumps writes them.
_CONTEXTS = {"Signature1": b"\x6aSignature1", "MAC0": b"\x64MAC0"}


def _pieces(payload):
    """``payload`` (bytes, or a tuple of bytes pieces: the payload is their
    concatenation) as (pieces, length)."""
    if type(payload) is not tuple:
        return (payload,), len(payload)
    size = 0
    for piece in payload:
        size += len(piece)
    return payload, size


def _structure(context, protected, payload, external_aad):
    """The Sig_structure / MAC_structure, CBOR [context, protected,
    external_aad, payload], as pieces whose concatenation is its encoding:
    the payload (bytes or a tuple of pieces) is not copied into it (a
    board's heap is short of room for a second copy of each message, and
    of blocks that size)."""
    pieces, size = _pieces(payload)
    parts = [b"\x84", _CONTEXTS[context], cbor._head(2, len(protected)), protected,
             cbor._head(2, len(external_aad)), external_aad, cbor._head(2, size)]
    parts.extend(pieces)
    return parts


def _message(tag, protected, payload, authenticator):
    """The pieces of cbor.dumps(Tag(tag, [protected, {}, payload,
    authenticator])): joined, in one allocation of the final size (dumps
    would grow a buffer through the payload and copy it once more)."""
    pieces, size = _pieces(payload)
    parts = [cbor._head(6, tag), b"\x84", cbor._head(2, len(protected)), protected, b"\xa0", cbor._head(2, size)]
    parts.extend(pieces)
    parts.append(cbor._head(2, len(authenticator)))
    parts.append(authenticator)
    return parts


def _payload_bytes(payload):
    # bytes.join takes bytes only on MicroPython: a bytearray or a view is copied once here.
    return payload if type(payload) is bytes else bytes(payload)


def sign1(payload, kid, signer, external_aad=b""):
    """A tagged COSE_Sign1 around ``payload`` signed by ``signer``."""
    payload = _payload_bytes(payload)
    protected = cbor.dumps({HEADER_ALG: ALG_EDDSA, HEADER_KID: kid})
    signature = signer(b"".join(_structure("Signature1", protected, payload, external_aad)))
    if len(signature) != ED25519_SIGNATURE_SIZE:
        raise COSEError("bad-signer", "the signer returned %d bytes, Ed25519 signatures are 64" % len(signature))
    return b"".join(_message(TAG_SIGN1, protected, payload, signature))


def mac0(payload, kid, key, external_aad=b""):
    """A tagged COSE_Mac0 around ``payload`` with HMAC-SHA256 under ``key``."""
    return b"".join(mac0_pieces(_payload_bytes(payload), kid, key, external_aad))


def mac0_pieces(payload, kid, key, external_aad=b""):
    """mac0() as a tuple of bytes pieces whose concatenation is the message;
    ``payload`` is bytes or a tuple of bytes pieces. Nothing is joined: a
    board sends the pieces one after another (firmware/uplink.py), so
    neither the payload nor the message needs one block of its size."""
    if len(key) < MIN_HMAC_KEY:
        raise COSEError("weak-key", "HMAC keys must be at least %d bytes, got %d" % (MIN_HMAC_KEY, len(key)))
    protected = cbor.dumps({HEADER_ALG: ALG_HMAC_256, HEADER_KID: kid})
    tag = hmac_sha256_parts(key, _structure("MAC0", protected, payload, external_aad))
    return tuple(_message(TAG_MAC0, protected, payload, tag))


class Envelope:
    """A parsed, not yet verified COSE message."""

    __slots__ = ("tag", "alg", "kid", "payload", "protected", "authenticator")

    def __init__(self, tag, alg, kid, payload, protected, authenticator):
        self.tag = tag
        self.alg = alg
        self.kid = kid
        self.payload = payload
        self.protected = protected
        self.authenticator = authenticator

    def verify_sign1(self, verify, external_aad=b""):
        """Check the signature with ``verify(signature, to_be_signed) -> bool``."""
        if self.tag != TAG_SIGN1 or self.alg != ALG_EDDSA:
            raise COSEError("wrong-algorithm", "expected COSE_Sign1 with EdDSA, got %s" % self._what())
        to_be_signed = b"".join(_structure("Signature1", self.protected, self.payload, external_aad))
        if not verify(self.authenticator, to_be_signed):
            raise COSEError("bad-signature", "Ed25519 signature does not verify for this kid")
        return self.payload

    def verify_mac0(self, key, external_aad=b""):
        if self.tag != TAG_MAC0 or self.alg != ALG_HMAC_256:
            raise COSEError("wrong-algorithm", "expected COSE_Mac0 with HMAC 256/256, got %s" % self._what())
        to_be_maced = _structure("MAC0", self.protected, self.payload, external_aad)
        if not equal(hmac_sha256_parts(key, to_be_maced), self.authenticator):
            raise COSEError("bad-mac", "HMAC-SHA256 tag does not verify for this kid")
        return self.payload

    def _what(self):
        # parse() let only tags 17/18 and a small integer alg (or none) through.
        name = "COSE_Sign1" if self.tag == TAG_SIGN1 else "COSE_Mac0"
        return "%s with %s" % (name, "no alg" if self.alg is None else "alg %d" % self.alg)


def parse(data):
    """Parse a tagged COSE_Sign1 or COSE_Mac0 without verifying it. Raises
    COSEError (reason "malformed") for anything else, whatever the bytes."""
    try:
        item = cbor.loads(data)
    except cbor.CBORError as exc:
        raise COSEError("malformed", "not CBOR: %s" % exc)
    if not isinstance(item, cbor.Tag) or item.tag not in (TAG_SIGN1, TAG_MAC0):
        raise COSEError("malformed", "not a tagged COSE_Sign1 (18) or COSE_Mac0 (17) message")
    parts = item.value
    if not isinstance(parts, list) or len(parts) != 4:
        raise COSEError("malformed", "a COSE message is an array of 4 items")
    protected, unprotected, payload, authenticator = parts
    if not isinstance(protected, bytes) or not isinstance(unprotected, dict):
        raise COSEError("malformed", "protected header must be a byte string and unprotected a map")
    if not isinstance(payload, bytes) or not isinstance(authenticator, bytes):
        raise COSEError("malformed", "payload and signature/tag must be byte strings (detached payloads are not used)")
    try:
        headers = cbor.loads(protected) if protected else {}
    except cbor.CBORError as exc:
        raise COSEError("malformed", "protected header is not CBOR: %s" % exc)
    if not isinstance(headers, dict):
        raise COSEError("malformed", "protected header must encode a map")
    for label in headers:
        if label in unprotected:
            # RFC 9052 section 3: a label must not be in both buckets.
            raise COSEError("malformed", "a header label is in both the protected and the unprotected header")
    alg = headers.get(HEADER_ALG, unprotected.get(HEADER_ALG))
    if alg is not None and (not isinstance(alg, int) or isinstance(alg, bool) or not -MAX_ALG <= alg <= MAX_ALG):
        raise COSEError("malformed", "alg (header 1) must be an integer within +-%d" % MAX_ALG)
    if HEADER_ALG not in headers:
        alg = None  # an alg outside the protected header is not authenticated: never trust it
    kid = headers.get(HEADER_KID, unprotected.get(HEADER_KID))
    if not isinstance(kid, bytes):
        raise COSEError("malformed", "missing key id (header 4), or not a byte string")
    if not 0 < len(kid) <= MAX_KID:
        raise COSEError("malformed", "key id (header 4) must be 1-%d bytes, got %d" % (MAX_KID, len(kid)))
    expected_size = ED25519_SIGNATURE_SIZE if item.tag == TAG_SIGN1 else HMAC_SIZE
    if len(authenticator) != expected_size:
        raise COSEError("malformed", "%s is %d bytes, expected %d" % (
            "signature" if item.tag == TAG_SIGN1 else "MAC tag", len(authenticator), expected_size))
    return Envelope(item.tag, alg, kid, payload, protected, authenticator)
