"""Ed25519 verification for the receiver, with libsodium (PyNaCl).

A receiver verifies every message it stores, and for a single alert the
signature check was the largest part of its time. libsodium's
verification takes about half the CPU of OpenSSL's through cryptography
here (54 against 102 us a signature on the 2-core VM; docs/receiver.md),
and it is stricter, not looser: it also refuses small-order public keys
and non-canonical points, which no honest device sends. Devices,
gateways and the command path keep cryptography (keys/identity.py).
"""

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey


def verifier(public_key_raw):
    """A ``verify(signature, data) -> bool`` for the core's COSE
    verification (cose.Envelope.verify_sign1), for a raw 32-byte key."""
    key = VerifyKey(bytes(public_key_raw))

    def verify(signature, data):
        try:
            key.verify(data, signature)
            return True
        except BadSignatureError:
            return False

    return verify
