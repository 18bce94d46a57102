"""The device's identity on the firmware: COSE_Mac0 with HMAC-SHA256.

Boards share a secret with the receiver (edge_agent/keys/identity.py's HMAC256
identities; the registry holds the same secret) because Ed25519 in pure
Python is far too slow for a board. The MAC is the core's hand-written
HMAC-SHA256 (edge_agent/core/hmac_sha256.py) over hashlib.sha256.
"""

from edge_agent.core import cose


class HmacIdentity:
    def __init__(self, device_id, secret):
        if len(secret) < cose.MIN_HMAC_KEY:
            raise ValueError("HMAC secret under %d bytes" % cose.MIN_HMAC_KEY)
        self.device_id = device_id
        self.kid = device_id.encode()
        self._secret = secret

    def __repr__(self):  # never show the secret
        return "HmacIdentity(%r)" % self.device_id

    def seal(self, payload):
        """``payload`` (a signal's bytes, or a bundle's pieces: a tuple) in a
        COSE_Mac0 envelope, as a tuple of pieces the MQTT client sends one
        after another (cose.mac0_pieces): never one block of its size."""
        return cose.mac0_pieces(payload, self.kid, self._secret)


def trusted_operators(names, secret):
    """The core's ``trusted`` map for an HMAC board: each operator's kid ->
    the device secret (COSE_Mac0; operator.py explains what that proves)."""
    trusted = {}
    for name in names:
        trusted[name.encode()] = secret
    return trusted
