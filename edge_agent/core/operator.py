"""Operator-signed messages: technician tokens and downlink commands.

Both are COSE messages (cose.py) whose payload is a CBOR map with small
integer keys (docs/wire-format.md, docs/schema.cddl):

    0: version   uint   OPERATOR_VERSION
    1: type      tstr   "token" or "command" (a token is never a command)
    2: target    tstr   device id, or "model:<model>" (commands only)
    3: issued    uint   ms since epoch
    4: expires   uint   ms since epoch; refused after it
    5: subject   tstr   token: the technician's name
    6: scopes    [tstr] token: what the holder may do (SCOPES)
    7: name      tstr   command: COMMANDS below
    8: args      map    command: its arguments (tstr keys)
    9: counter   uint   command: monotonic per (operator, target) stream

The key id (protected header, so covered by the signature) is the
operator's name. Two envelopes are accepted, chosen by what ``trusted``
holds for that kid:

- a callable ``verify(signature, to_be_signed)``: COSE_Sign1 with Ed25519,
  the operator's own key (gateways; on CPython see operator_keys.py).
  ``verify`` may return False or raise to refuse; anything else accepts.
- bytes: COSE_Mac0 with HMAC-SHA256 under that key. This is how an ESP32
  (no Ed25519 in MicroPython) checks commands: the key is the device's own
  secret, which the operator side already holds in its device registry.
  A Mac0 command proves "made by someone holding this device's secret"
  (the operator backend), not which operator: docs/security.md.

Verification order: size (MAX_COMMAND_BYTES), envelope, trusted kid,
signature, payload shape, type, binding (device/model), time, counter.
Nothing is decoded from a payload before its signature is checked. Every
refusal is a Rejection with a stable short ``reason``; the device turns it
into an audit signal.
Pure logic, no clock: callers pass now_ms.
"""

from edge_agent.core import cbor, cose
from edge_agent.core import component as cs

OPERATOR_VERSION = 1

O_VERSION = 0
O_TYPE = 1
O_TARGET = 2
O_ISSUED = 3
O_EXPIRES = 4
O_SUBJECT = 5
O_SCOPES = 6
O_NAME = 7
O_ARGS = 8
O_COUNTER = 9

TYPE_TOKEN = "token"
TYPE_COMMAND = "command"
MODEL_PREFIX = "model:"

# Scopes a token may grant. Every token has "read": it opens `log`, `config
# show` and the private parts of the read-only commands (who did what); the
# others gate privileged console commands (docs/console.md).
SCOPES = ("read", "ack", "override", "config", "selftest")

# Command name -> {arg: type check name}. Unknown names and missing or
# mistyped args are refused as "bad-command" before anything is applied.
COMMANDS = {
    "quarantine.force": {"component": "text"},
    "quarantine.release": {"component": "text"},
    "alert.ack": {"alert": "text"},
    "config.update": {"patch": "patch"},
    "advisory": {"text": "text"},
    "replay": {"ranges": "own", "request": "own"},
}
OPTIONAL_ARGS = {
    "advisory": {"id": "text", "severity": "text", "patch": "patch"},
    "config.update": {"note": "text"},
    "quarantine.force": {"note": "text"},
    "quarantine.release": {"note": "text"},
    "alert.ack": {"note": "text"},
}
ADVISORY_SEVERITIES = ("info", "warning", "critical")
# Commands whose args are checked by their own handler once the command is
# verified (repair.py for `replay`): a refusal then names the operator, is
# always audited and spends the counter (reasons bad-args, too-large), as
# the repair protocol asks (docs/wire-format.md). check_command checks only
# that such args are a map.
OWN_ARGS = ("replay",)

# Operator scopes (the trusted-operators file's `scopes = [...]`, a board's
# provisioned `--operator NAME:replay`): command name -> the scope it needs.
# An operator listed without scopes may send every command but these (what
# operators could always do); one with scopes, only the commands its scopes
# name. A receiver's key asking devices for lost signals needs nothing else.
SCOPED_COMMANDS = {"replay": "replay"}
OPERATOR_SCOPES = ("replay",)
# Board tables a remote config patch may change (config_patch.py applies
# it): not the schema, nor the board's name and model (advisories target
# the model: a patch must not move a device into another fleet).
PATCHABLE = ("buses", "outputs", "modes", "health", "components", "sensors")

# Tolerated clock difference between operator and device for "issued":
# a gateway's NTP-set clock is seldom more than seconds off, a board's
# RTC can drift minutes.
CLOCK_SKEW_MS = 5 * 60 * 1000
# A technician token longer-lived than this is refused whoever signed it:
# a leaked token must die on its own.
MAX_TOKEN_TTL_MS = 7 * 24 * 3600 * 1000
MAX_NAME = 64
# The largest operator message (the COSE bytes, token or command) a device
# reads; a larger one is refused as "too-large" before it is parsed. The
# largest legitimate command is a config.update whose patch restates every
# patchable table of the board: 3.8 KB for the largest shipped board
# (boards/pump-station.toml: 17 sensors, 16 components, 2 buses, 3
# outputs), ~220 bytes per sensor and component; 64 KiB holds such a patch
# for a board ~17 times that size (~290 sensors) and is the gateway's
# bundle bound too. Boards never get that far: their MQTT client takes
# packets of 2 KiB (firmware/uplink.py MAX_PACKET). docs/wire-format.md.
MAX_COMMAND_BYTES = 64 * 1024
MAX_UINT = 0xFFFFFFFFFFFFFFFF
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-."


class Rejection(ValueError):
    """A token or command that must not be accepted. ``reason`` is one of:
    too-large, malformed, unsupported-version, unknown-operator,
    wrong-algorithm, bad-signature, wrong-type, bad-command, bad-scope,
    wrong-device, wrong-model, expired, not-yet-valid, too-long-lived,
    replay, stale-counter, wrong-scope. ``detail`` is a sentence for people.
    ``operator`` is the claimed kid (unauthenticated unless the signature
    was checked)."""

    def __init__(self, reason, detail, operator=None):
        super().__init__("%s: %s" % (reason, detail))
        self.reason = reason
        self.detail = detail
        self.operator = operator
        # Set when the signature was good but the command is refused (a
        # replay, expired, another model): its name and args, for the audit.
        self.command_name = None
        self.command_args = None
        # Set when a token's signature was good but the token is refused
        # (expired, another device): who it names, for the audit.
        self.verified = False
        self.subject = None


class Refused(Exception):
    """An authentic command that cannot be applied. ``reason`` is stable
    (unknown-component, not-allowed, or the caller's own: no-config,
    unknown-alert, bad-command); ``detail`` is a sentence for people."""

    def __init__(self, reason, detail):
        super().__init__("%s: %s" % (reason, detail))
        self.reason = reason
        self.detail = detail


def check_name(name):
    """None if ``name`` is a usable operator or technician name, else why not."""
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
        return "a name must be 1-%d characters" % MAX_NAME
    for ch in name:
        if ch not in _NAME_CHARS:
            return "name %r has %r; use letters, digits, '_', '-' and '.'" % (name, ch)
    return None


class Token:
    __slots__ = ("subject", "scopes", "expires_ms", "issued_ms", "operator", "device")

    def __init__(self, subject, scopes, expires_ms, issued_ms, operator, device):
        self.subject = subject
        self.scopes = scopes
        self.expires_ms = expires_ms
        self.issued_ms = issued_ms
        self.operator = operator
        self.device = device

    def allows(self, scope):
        return scope in self.scopes

    def __repr__(self):
        return "Token(%r by %r, scopes=%r, expires=%d)" % (self.subject, self.operator, self.scopes, self.expires_ms)


class Command:
    __slots__ = ("name", "args", "counter", "operator", "expires_ms", "issued_ms", "target")

    def __init__(self, name, args, counter, operator, expires_ms, issued_ms, target):
        self.name = name
        self.args = args
        self.counter = counter
        self.operator = operator
        self.expires_ms = expires_ms
        self.issued_ms = issued_ms
        self.target = target

    @property
    def stream(self):
        """The counter stream this command belongs to."""
        return stream_key(self.operator, self.target)

    def __repr__(self):
        return "Command(%s %r -> %s, #%d by %s)" % (self.name, self.args, self.target, self.counter, self.operator)


def stream_key(operator, target):
    return operator + " " + target


class Counters:
    """Last accepted counter per (operator, target) stream. The device keeps
    one and persists ``to_map()`` atomically after each accepted command,
    so a replay after a restart is refused too. Commands to the device
    and advisories to its model come from different streams."""

    def __init__(self, values=None):
        self.values = dict(values or {})

    def last(self, operator, target):
        return self.values.get(stream_key(operator, target), 0)

    def advance(self, command):
        self.values[command.stream] = command.counter

    def to_map(self):
        return dict(self.values)

    @classmethod
    def from_map(cls, data):
        if not isinstance(data, dict):
            raise ValueError("counters must be a map of stream -> uint")
        for key, value in data.items():
            if not isinstance(key, str) or not _is_uint(value):
                raise ValueError("counters must be a map of stream -> uint, got %r: %r" % (key, value))
        return cls(data)


def _is_uint(value):
    # A CBOR uint (major type 0): a bignum (tag 2) is no counter or time,
    # and CPython cannot even print one of more than 4300 digits.
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_UINT


is_uint = _is_uint


def _is_text_list(value):
    if not isinstance(value, list):
        return False
    for item in value:
        if not isinstance(item, str):
            return False
    return True


def _open(data, trusted):
    """Parse, find the kid in ``trusted``, check signature or MAC; return
    (operator name, payload map)."""
    if not isinstance(data, (bytes, bytearray)):
        raise Rejection("malformed", "expected COSE bytes, got %s" % type(data).__name__)
    if len(data) > MAX_COMMAND_BYTES:
        raise Rejection("too-large", "%d bytes; operator messages are at most %d" % (len(data), MAX_COMMAND_BYTES))
    try:
        envelope = cose.parse(bytes(data))
    except cose.COSEError as exc:
        raise Rejection("malformed", str(exc))
    try:
        operator = envelope.kid.decode()
    except UnicodeError:
        raise Rejection("unknown-operator", "the key id is not UTF-8 text")
    key = trusted.get(envelope.kid)
    if key is None:
        raise Rejection("unknown-operator", "operator %r is not in the trusted operators" % operator, operator)
    if isinstance(key, (bytes, bytearray)):
        if envelope.tag != cose.TAG_MAC0:
            raise Rejection("wrong-algorithm", "operator %r is trusted with an HMAC key here; expected COSE_Mac0"
                            % operator, operator)
        try:
            payload = envelope.verify_mac0(bytes(key))
        except cose.COSEError as exc:
            if exc.reason != "bad-mac":
                raise Rejection(exc.reason, str(exc), operator)
            raise Rejection("bad-signature", _forged("HMAC-SHA256 tag", operator), operator)
    else:
        if envelope.tag != cose.TAG_SIGN1:
            raise Rejection("wrong-algorithm", "operator %r signs with Ed25519 here; expected COSE_Sign1"
                            % operator, operator)
        try:
            payload = envelope.verify_sign1(lambda sig, msg: _accepts(key, sig, msg))
        except cose.COSEError as exc:
            if exc.reason != "bad-signature":
                raise Rejection(exc.reason, str(exc), operator)
            raise Rejection("bad-signature", _forged("Ed25519 signature", operator), operator)
    try:
        body = cbor.loads(payload)
    except cbor.CBORError as exc:
        raise Rejection("malformed", "signed payload is not CBOR: %s" % exc, operator)
    if not isinstance(body, dict):
        raise Rejection("malformed", "signed payload must be a map", operator)
    version = body.get(O_VERSION)
    if version != OPERATOR_VERSION:
        raise Rejection("unsupported-version", "operator message version %s (this build reads %d)"
                        % (_shown(version), OPERATOR_VERSION), operator)
    for key_id, label in ((O_ISSUED, "issued"), (O_EXPIRES, "expires")):
        if not _is_uint(body.get(key_id)):
            raise Rejection("malformed", "%s (key %d) must be an unsigned integer" % (label, key_id), operator)
    if not isinstance(body.get(O_TARGET), str):
        raise Rejection("malformed", "target (key %d) must be text" % O_TARGET, operator)
    return operator, body


def _forged(what, operator):
    return ("the %s does not verify with the key of operator %r: the text was changed, or another key signed it"
            % (what, operator))


def _accepts(verify, signature, message):
    try:
        return verify(signature, message) is not False
    except Exception:  # a verifier signals refusal by raising (cryptography's InvalidSignature)
        return False


def _check_time(body, now_ms, operator):
    issued = body[O_ISSUED]
    expires = body[O_EXPIRES]
    if expires <= issued:
        raise Rejection("malformed", "expires (%d) is not after issued (%d)" % (expires, issued), operator)
    if now_ms >= expires:
        raise Rejection("expired", "expired %s ago" % _duration(now_ms - expires), operator)
    if issued > now_ms + CLOCK_SKEW_MS:
        raise Rejection("not-yet-valid", "issued %s in the future (check the clocks)" % _duration(issued - now_ms),
                        operator)


def _duration(ms):
    seconds = ms // 1000
    if seconds < 120:
        return "%d s" % seconds
    if seconds < 7200:
        return "%d min" % (seconds // 60)
    return "%d h" % (seconds // 3600)


def _expect_type(body, wanted, operator):
    kind = body.get(O_TYPE)
    if not isinstance(kind, str) or kind != wanted:  # (bytes == str warns on MicroPython)
        raise Rejection("wrong-type", "expected a %s, got a %s message" % (wanted, _shown(kind)), operator)


def verify_token(data, trusted, device_id, now_ms):
    """Verify a technician token for this device; return a Token or raise
    Rejection."""
    operator, body = _open(data, trusted)
    try:
        return _token(body, device_id, now_ms, operator)
    except Rejection as exc:  # signed by a trusted operator, so who it names is known
        exc.verified = True
        subject = body.get(O_SUBJECT)
        exc.subject = subject if not check_name(subject) else None
        raise


def _token(body, device_id, now_ms, operator):
    _expect_type(body, TYPE_TOKEN, operator)
    subject = body.get(O_SUBJECT)
    if check_name(subject):
        raise Rejection("malformed", "subject: %s" % check_name(subject), operator)
    scopes = body.get(O_SCOPES)
    if not _is_text_list(scopes) or not scopes:
        raise Rejection("malformed", "scopes (key %d) must be a non-empty list of text" % O_SCOPES, operator)
    for scope in scopes:
        if scope not in SCOPES:
            raise Rejection("bad-scope", "unknown scope %s (known: %s)" % (_shown(scope), ", ".join(SCOPES)), operator)
    target = body[O_TARGET]
    if target != device_id:
        raise Rejection("wrong-device", "token is for device %s, this is %r" % (_shown(target), device_id), operator)
    _check_time(body, now_ms, operator)
    if body[O_EXPIRES] - body[O_ISSUED] > MAX_TOKEN_TTL_MS:
        raise Rejection("too-long-lived", "tokens may last at most %s" % _duration(MAX_TOKEN_TTL_MS), operator)
    return Token(subject, tuple(scopes), body[O_EXPIRES], body[O_ISSUED], operator, target)


def _check_patch(patch):
    if not isinstance(patch, dict) or not patch:
        return "a config patch must be a non-empty map"
    for key in patch:
        if not isinstance(key, str) or key not in PATCHABLE:
            return "a patch may change %s, not %s" % (", ".join(PATCHABLE), _shown(key))
    return None


def _shown(value):
    """A value from a message, for a refusal: itself if short text or a
    small integer, else its type (never a megabyte of text, nor an int
    CPython refuses to print)."""
    if isinstance(value, str) and len(value) <= 64:
        return repr(value)
    if isinstance(value, int) and not isinstance(value, bool) and -10 ** 12 < value < 10 ** 12:
        return "%d" % value
    return "a value of type %s" % type(value).__name__


shown = _shown


def check_command(name, args):
    """None if ``name`` and ``args`` form a known command, else why not.
    Used by both the signer (refuse to sign nonsense) and the verifier."""
    # Only text is looked up: a list is unhashable, and bytes compared with
    # text print a warning on MicroPython (a hostile message can carry either).
    required = COMMANDS.get(name) if isinstance(name, str) else None
    if required is None:
        return "unknown command %s (known: %s)" % (_shown(name), ", ".join(sorted(COMMANDS)))
    if not isinstance(args, dict):
        return "args must be a map"
    for arg in args:
        if not isinstance(arg, str):
            return "%s: argument names must be text, not %s" % (name, _shown(arg))
    if name in OWN_ARGS:
        return None
    optional = OPTIONAL_ARGS.get(name, {})
    for arg, kind in required.items():
        if arg not in args:
            return "%s needs argument %r" % (name, arg)
    for arg, value in args.items():
        kind = required.get(arg) or optional.get(arg)
        if kind is None:
            return "%s takes no argument %r" % (name, arg)
        if kind == "text" and not (isinstance(value, str) and value):
            return "%s: argument %r must be non-empty text" % (name, arg)
        if kind == "patch":
            problem = _check_patch(value)
            if problem:
                return "%s: argument %r: %s" % (name, arg, problem)
    if name == "advisory" and args.get("severity", "info") not in ADVISORY_SEVERITIES:
        return "advisory severity must be one of %s" % ", ".join(ADVISORY_SEVERITIES)
    return None


def apply_quarantine(device, command, now_ms):
    """Apply a verified quarantine.force/release to the core ``device``:
    (state before, state after, outputs to dispatch), or raise Refused."""
    who = "%s (downlink #%d)" % (command.operator, command.counter)
    return quarantine(device, command.args["component"], command.name == "quarantine.force", now_ms, who)


def quarantine(device, component, force, now_ms, who):
    """Force (``force`` True) or release ``component`` by hand for ``who``
    (a signed command, a console session): (state before, state after,
    outputs to dispatch), or raise Refused. The transition is checked
    first, so nothing is half-applied."""
    states = device.component_states()
    if component not in states:
        raise Refused("unknown-component", "no component %r (components: %s)"
                      % (component, ", ".join(sorted(states))))
    before = states[component]
    try:
        cs.next_state(before, cs.FORCE if force else cs.RELEASE)
    except cs.IllegalTransition as exc:
        raise Refused("not-allowed", str(exc))
    if force:
        outputs = device.force(component, now_ms, who=who)
    else:
        outputs = device.release(component, now_ms, who=who)
    return before, device.component_states()[component], outputs


def model_target(model):
    return MODEL_PREFIX + model


# Where commands travel (QoS 1). A device subscribes to both: its own
# topic, and its model's, where one signed advisory reaches every device
# of the model (each checks the target against its own model). The topic
# only routes: what binds a command to a device is its signed target.
COMMAND_TOPIC = "ea/v1/%s/cmd"
MODEL_COMMAND_TOPIC = "ea/v1/model/%s/cmd"


def command_topic(device_id):
    return COMMAND_TOPIC % device_id


def model_command_topic(model):
    return MODEL_COMMAND_TOPIC % model


def topic_for_target(target):
    """The topic a command for ``target`` is published on."""
    if target.startswith(MODEL_PREFIX):
        return model_command_topic(target[len(MODEL_PREFIX):])
    return command_topic(target)


def check_operator_scopes(scopes):
    """None if ``scopes`` (a trusted operator's, from a file) is a usable
    list of operator scopes, else why not."""
    if not _is_text_list(scopes) or not scopes:
        return "scopes must be a non-empty list of text (known: %s)" % ", ".join(OPERATOR_SCOPES)
    for scope in scopes:
        if scope not in OPERATOR_SCOPES:
            return "unknown scope %s (known: %s)" % (_shown(scope), ", ".join(OPERATOR_SCOPES))
    return None


def check_scope(operator, name, scopes):
    """Raise Rejection("wrong-scope") unless ``operator``, whose scopes are
    ``scopes`` (a tuple, or None: listed without scopes), may send command
    ``name``."""
    needed = SCOPED_COMMANDS.get(name)
    if scopes is None:
        if needed is None:
            return
        held = "the default (every command but %s)" % ", ".join(sorted(SCOPED_COMMANDS))
    else:
        if needed is not None and needed in scopes:
            return
        held = ", ".join(scopes)
    raise Rejection("wrong-scope", "%s may not send %s: its scopes are %s" % (operator, name, held), operator)


def verify_command(data, trusted, device_id, model, now_ms, last_counter, scopes=None):
    """Verify a downlink command for this device (or its ``model``); return a
    Command or raise Rejection. ``last_counter`` is the last accepted
    counter of the command's stream: an int, or a Counters (anything with
    ``last(operator, target)``). ``scopes``: {operator name: tuple of
    OPERATOR_SCOPES} for the operators listed with scopes (None or absent:
    the default, check_scope). The caller records the new counter
    (Counters.advance) only once the command is applied."""
    operator, body = _open(data, trusted)
    try:
        return _command(body, operator, device_id, model, now_ms, last_counter, (scopes or {}).get(operator))
    except Rejection as exc:
        if isinstance(body.get(O_TYPE), str) and body[O_TYPE] == TYPE_COMMAND and isinstance(body.get(O_NAME), str):
            exc.command_name = body[O_NAME]
            args = body.get(O_ARGS)
            if isinstance(args, dict) and all(isinstance(key, str) for key in args):
                exc.command_args = args
        raise


def _command(body, operator, device_id, model, now_ms, last_counter, scopes):
    _expect_type(body, TYPE_COMMAND, operator)
    name = body.get(O_NAME)
    args = body.get(O_ARGS, {})
    problem = check_command(name, args)
    if problem:
        raise Rejection("bad-command", problem, operator)
    check_scope(operator, name, scopes)
    counter = body.get(O_COUNTER)
    if not _is_uint(counter) or counter == 0:
        raise Rejection("malformed", "counter (key %d) must be an integer >= 1" % O_COUNTER, operator)
    target = body[O_TARGET]
    if target.startswith(MODEL_PREFIX):
        if model is None or target != model_target(model):
            raise Rejection("wrong-model", "command is for %s, this device is model %r" % (_shown(target), model), operator)
    elif target != device_id:
        raise Rejection("wrong-device", "command is for device %s, this is %r" % (_shown(target), device_id), operator)
    _check_time(body, now_ms, operator)
    last = last_counter if _is_uint(last_counter) else last_counter.last(operator, target)
    if counter == last:
        raise Rejection("replay", "counter %d was already used (a replayed command)" % counter, operator)
    if counter < last:
        raise Rejection("stale-counter", "counter %d is below the last accepted %d" % (counter, last), operator)
    return Command(name, args, counter, operator, body[O_EXPIRES], body[O_ISSUED], target)


def token_payload(device_id, subject, scopes, issued_ms, expires_ms):
    """The CBOR payload of a token (the signer wraps it in COSE)."""
    return cbor.dumps({
        O_VERSION: OPERATOR_VERSION, O_TYPE: TYPE_TOKEN, O_TARGET: device_id, O_ISSUED: issued_ms,
        O_EXPIRES: expires_ms, O_SUBJECT: subject, O_SCOPES: list(scopes),
    })


def command_payload(target, name, args, counter, issued_ms, expires_ms):
    """The CBOR payload of a command (the signer wraps it in COSE)."""
    return cbor.dumps({
        O_VERSION: OPERATOR_VERSION, O_TYPE: TYPE_COMMAND, O_TARGET: target, O_ISSUED: issued_ms,
        O_EXPIRES: expires_ms, O_NAME: name, O_ARGS: args, O_COUNTER: counter,
    })


def mac_command(key, operator, target, name, args, counter, issued_ms, expires_ms):
    """A COSE_Mac0 command under a device's secret (for HMAC boards)."""
    return cose.mac0(command_payload(target, name, args, counter, issued_ms, expires_ms), operator.encode(), key)


def mac_token(key, operator, device_id, subject, scopes, issued_ms, expires_ms):
    """A COSE_Mac0 technician token under a device's secret (HMAC boards)."""
    return cose.mac0(token_payload(device_id, subject, scopes, issued_ms, expires_ms), operator.encode(), key)


# Tokens travel as text (typed or pasted at the console: `login TOKEN`):
# unpadded base64url of the COSE bytes, no characters a terminal or shell
# treats specially. binascii exists on both interpreters.
def token_to_text(data):
    import binascii

    text = binascii.b2a_base64(data).decode().strip()
    return text.replace("+", "-").replace("/", "_").rstrip("=")


def token_from_text(text):
    """COSE bytes from token text; Rejection("malformed") if it is not
    base64url (whitespace around it is ignored)."""
    import binascii

    text = text.strip() if isinstance(text, str) else ""
    if not text:
        raise Rejection("malformed", "empty token; paste the text `edge-agent keys technician-token` printed")
    for ch in text:
        if ch not in _B64URL:
            raise Rejection("malformed", "token text has %r; expected base64url (letters, digits, '-', '_')" % ch)
    standard = text.replace("-", "+").replace("_", "/")
    try:
        return binascii.a2b_base64(standard + "=" * (-len(standard) % 4))
    except (ValueError, TypeError) as exc:
        raise Rejection("malformed", "token text is not base64url: %s" % exc)


_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
