"""Key files, shared by the gateway, the receiver, the CLI and the tools:
identity.py (a device's id and signing key: Ed25519 or an HMAC secret),
operators.py (operator signing keys, the trusted-operators file devices
load, durations)."""
