"""The receiver's device registry, and opening a sealed signal against it.

devices.toml (one block per device, as `edge-agent keys registry-entry`
prints it):

    [devices.demo-001]
    algorithm = "EdDSA"
    public_key = "<64 hex digits>"
    model = "EA-DEMO-1"            # optional: fleet advisories target models

    [devices.esp-3]
    algorithm = "HMAC256"
    secret = "<hex>"               # a shared secret: keep this file 0600

``open_signal`` is the whole verification path: COSE parse, key lookup by
kid, signature or MAC check, signal decode, and the binding checks that
stop one device speaking for another (kid == signal device == topic
device). Every failure is a Rejection with a short stable reason.
"""

import os
import stat
import tomllib

from edge_agent.core import bundle, cose
from edge_agent.core import signals as sg
from edge_agent.keys.identity import EDDSA, HMAC256, ed25519_verifier_from_hex
from edge_agent.receiver import ed25519, quick_cose, quick_telemetry
from edge_agent.receiver.printable import short, text

# A rejection's detail is kept in the database and logged: bounded.
MAX_DETAIL = 300


class RegistryError(ValueError):
    """The registry file is unusable (message names file, device and fix)."""


class Rejection(ValueError):
    """A message that must not be accepted. ``reason`` is one of: malformed,
    unknown-device, wrong-algorithm, bad-signature, bad-mac, bad-signal,
    device-mismatch, topic-mismatch, unsupported-version (the receiver adds
    its own: bad-status, internal-error). ``detail`` may quote the message,
    so it is escaped and bounded here (printable.text)."""

    def __init__(self, reason, detail):
        detail = text(detail, MAX_DETAIL)
        super().__init__("%s: %s" % (reason, detail))
        self.reason = reason
        self.detail = detail


class Device:
    __slots__ = ("device_id", "algorithm", "model", "verify", "secret")

    def __init__(self, device_id, algorithm, model, verify=None, secret=None):
        self.device_id = device_id
        self.algorithm = algorithm
        self.model = model
        self.verify = verify
        self.secret = secret


class Registry:
    def __init__(self, devices=None):
        self.devices = devices or {}

    @classmethod
    def load(cls, path):
        try:
            with open(path, "rb") as f:
                text = f.read().decode()
        except FileNotFoundError:
            raise RegistryError("%s: not found; create it from `edge-agent keys registry-entry DIR` output" % path) from None
        except UnicodeError:
            raise RegistryError("%s: not UTF-8 text" % path) from None
        registry = cls()
        has_secret = registry.add_entries(text, path)
        if has_secret and os.stat(path).st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise RegistryError("%s holds HMAC secrets but is readable by group or others; run `chmod 600 %s`" % (path, path))
        return registry

    def add_entries(self, text, source="<registry>"):
        """Add the devices of a devices.toml text (as `keys registry-entry`
        prints it). Returns True if any entry holds a secret."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RegistryError("%s: not valid TOML (%s)" % (source, exc)) from None
        entries = data.get("devices", {})
        if not isinstance(entries, dict):
            raise RegistryError("%s: [devices] must be a table of devices" % source)
        devices = {}
        problems = []
        has_secret = False
        for device_id, entry in sorted(entries.items()):
            try:
                devices[device_id] = _device(device_id, entry)
                has_secret = has_secret or devices[device_id].secret is not None
            except RegistryError as exc:
                problems.append("devices.%s: %s" % (device_id, exc))
        if problems:
            raise RegistryError("%s:\n  %s" % (source, "\n  ".join(problems)))
        self.devices.update(devices)
        return has_secret

    def open_signal(self, data, topic=None):
        """Verify and decode a message holding one signal; return it."""
        signals = self.open_signals(data, topic)
        if len(signals) != 1:
            raise Rejection("bad-signal", "expected one signal, got a bundle of %d" % len(signals))
        return signals[0]

    def open_signals(self, data, topic=None, bodies=None):
        """Verify and decode one message (a signal or a bundle); return its
        signals or raise Rejection. ``bodies``, a list, receives each
        signal's body as the bytes that were signed (signals.body_bytes), or
        None for a signal whose envelope was not encoded canonically."""
        try:
            envelope = quick_cose.parse(data)
        except cose.COSEError as exc:
            raise Rejection("malformed", str(exc)) from None
        try:
            kid = envelope.kid.decode()
        except UnicodeError:
            raise Rejection("unknown-device", "kid is not UTF-8") from None
        device = self.devices.get(kid)
        if device is None:
            raise Rejection("unknown-device", "no device '%s' in the registry" % short(kid))
        try:
            if device.algorithm == EDDSA:
                payload = envelope.verify_sign1(device.verify)
            else:
                payload = envelope.verify_mac0(device.secret)
        except cose.COSEError as exc:
            raise Rejection(exc.reason, str(exc)) from None
        signals, found_bodies = read_signals(payload)
        first = signals[0]  # a bundle holds one device and one kind
        if first.device != kid:
            raise Rejection("device-mismatch", "signed by %s but claims device %s" % (short(kid), short(first.device)))
        if topic is not None:
            expected = sg.topic(first.device, first.kind)
            if topic != expected:
                raise Rejection("topic-mismatch", "arrived on %s, belongs on %s" % (short(topic), expected))
        if bodies is not None:
            bodies.extend(found_bodies)
        return signals


def read_signals(payload):
    """The signals of a verified payload and each one's body as the bytes
    that were signed (None for a signal whose envelope was not encoded
    canonically), or Rejection. Telemetry in the shape devices write it
    takes the receiver's shortcut (quick_telemetry: checked, its readings
    not decoded); anything else the core's path."""
    quick = quick_telemetry.open_payload(payload)
    if quick is not None:
        return quick
    records = []
    try:
        signals = bundle.decode(payload, records)
    except sg.SignalError as exc:
        reason = "unsupported-version" if "version" in str(exc) else "bad-signal"
        raise Rejection(reason, str(exc)) from None
    except ValueError as exc:
        # core/signals.py formats some fields with %d: an integer of
        # thousands of digits raises ValueError there, not SignalError.
        raise Rejection("bad-signal", "a field cannot be read (%s)" % type(exc).__name__) from None
    if len(records) != len(signals):
        return signals, [None] * len(signals)  # an indefinite-length bundle: no spans
    return signals, [sg.body_bytes(signal, record) for signal, record in zip(signals, records)]


def _device(device_id, entry):
    if sg.check_device_id(device_id):
        raise RegistryError(sg.check_device_id(device_id))
    if not isinstance(entry, dict):
        raise RegistryError("must be a table")
    algorithm = entry.get("algorithm")
    model = entry.get("model")
    if algorithm == EDDSA:
        return Device(device_id, algorithm, model, verify=ed25519_verifier_from_hex(
            entry.get("public_key"), RegistryError, make=ed25519.verifier))
    if algorithm == HMAC256:
        try:
            secret = bytes.fromhex(entry.get("secret", ""))
        except ValueError:
            secret = b""
        if len(secret) < cose.MIN_HMAC_KEY:
            raise RegistryError("secret must be at least %d bytes of hex" % cose.MIN_HMAC_KEY)
        return Device(device_id, algorithm, model, secret=secret)
    raise RegistryError('algorithm must be "EdDSA" or "HMAC256", not %r' % (algorithm,))
