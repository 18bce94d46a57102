"""HMAC-SHA256 (RFC 2104) for both interpreters.

MicroPython has hashlib.sha256 but no hmac module, so the core carries the
six lines itself; tests check it against CPython's hmac with hypothesis.
"""

import hashlib

BLOCK_SIZE = 64
DIGEST_SIZE = 32

_IPAD = bytes(0x36 for _ in range(BLOCK_SIZE))
_OPAD = bytes(0x5C for _ in range(BLOCK_SIZE))


def _xor(data, pad):
    return bytes(a ^ b for a, b in zip(data, pad))


def hmac_sha256(key, message):
    return hmac_sha256_parts(key, (message,))


def hmac_sha256_parts(key, parts):
    """The HMAC of the concatenation of ``parts``, without making it."""
    if len(key) > BLOCK_SIZE:
        key = hashlib.sha256(key).digest()
    key = bytes(key) + bytes(BLOCK_SIZE - len(key))
    inner = hashlib.sha256(_xor(key, _IPAD))
    for part in parts:
        inner.update(part)
    outer = hashlib.sha256(_xor(key, _OPAD))
    outer.update(inner.digest())
    return outer.digest()


def equal(a, b):
    """Compare two MACs in time independent of where they differ."""
    if len(a) != len(b):
        return False
    diff = 0
    for x, y in zip(a, b):
        diff |= x ^ y
    return diff == 0
