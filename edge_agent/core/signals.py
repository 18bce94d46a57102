"""Signals: what leaves the device, and their CBOR envelope (wire format v1).

docs/wire-format.md documents every key; docs/schema.cddl is the schema the
tests validate against. Keys are small integers chosen once: never renumber
a key, only add new ones, and bump VERSION for an incompatible change.

Envelope (a CBOR map)::

    0: version   uint      format version (VERSION)
    1: kind      uint      KIND_* below
    2: device    tstr      device id
    3: seq       uint      per-device sequence number
    4: time      uint      device time of the event, ms since the Unix epoch
    5: priority  uint      PRIORITY_* below (0 is most urgent)
    6: body      map       kind-specific, keys below

The retained status message (topic ea/v1/<device>/status) is the small map
{0: version, 2: device, 7: online}, written by the device when it connects
(true) and by the broker's last will when the session dies (false).
"""

from edge_agent.core import cbor

VERSION = 1

K_VERSION = 0
K_KIND = 1
K_DEVICE = 2
K_SEQ = 3
K_TIME = 4
K_PRIORITY = 5
K_BODY = 6
K_ONLINE = 7  # only in the retained status message: bool

KIND_ALERT = 1
KIND_TELEMETRY = 2
KIND_STATE = 3
KIND_AUDIT = 4
KIND_BIRTH = 5
KIND_DEATH = 6
KIND_EVICTIONS = 7
KIND_REPAIR = 8

# The MQTT topic level for each kind: ea/v1/<device>/<name>.
KIND_NAMES = {
    KIND_ALERT: "alert",
    KIND_TELEMETRY: "telemetry",
    KIND_STATE: "state",
    KIND_AUDIT: "audit",
    KIND_BIRTH: "birth",
    KIND_DEATH: "death",
    KIND_EVICTIONS: "evictions",
    KIND_REPAIR: "repair",
}

PRIORITY_CRITICAL = 0
PRIORITY_HIGH = 1
PRIORITY_NORMAL = 2
PRIORITY_LOW = 3

# Alert body keys.
A_CONDITION = 0  # tstr: "out_of_range", "sensor_fault", ...
A_COMPONENT = 1  # tstr
A_SENSOR = 2  # tstr
A_VALUE = 3  # number or null (null when the sensor reported a fault)
A_LIMITS = 4  # [low, high] in the sensor's unit
A_SEVERITY = 5  # tstr: "critical" or "warning"
A_TEXT = 6  # tstr: one line a human can act on
A_ACTION = 7  # tstr: suggested action
A_PART = 8  # tstr: part number from the board file ("" if none)
A_SINCE = 9  # uint: ms since epoch when the condition began
A_ACTIVE = 10  # bool: true when raised, false when the condition cleared
A_UNIT = 11  # tstr

# Telemetry body keys.
T_READINGS = 0  # [[time_ms, sensor, value-or-null, quality], ...]

TOPIC_ROOT = "ea/v1"
MAX_DEVICE_ID = 64
_DEVICE_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-."


class SignalError(ValueError):
    """Bytes that are not a valid v1 signal (reason in the message)."""


def check_device_id(device_id):
    """Return None if ``device_id`` is usable (it becomes an MQTT topic level),
    else the reason it is not."""
    if not isinstance(device_id, str) or not 0 < len(device_id) <= MAX_DEVICE_ID:
        return "a device id must be 1-%d characters" % MAX_DEVICE_ID
    for ch in device_id:
        if ch not in _DEVICE_ID_CHARS:
            return "device id %r has %r; use letters, digits, '_', '-' and '.'" % (device_id, ch)
    return None


def topic(device_id, kind):
    return "%s/%s/%s" % (TOPIC_ROOT, device_id, KIND_NAMES[kind])


# The retained online/offline status (the broker's last will says offline
# when a session dies uncleanly): docs/wire-format.md.
def status_topic(device_id):
    return "%s/%s/status" % (TOPIC_ROOT, device_id)


def status_payload(device_id, online):
    return cbor.dumps({K_VERSION: VERSION, K_DEVICE: device_id, K_ONLINE: online})


class Signal:
    """One signal. ``seq`` is None until the sequencer numbers it."""

    __slots__ = ("kind", "priority", "time_ms", "body", "device", "seq")

    def __init__(self, kind, priority, time_ms, body, device=None, seq=None):
        self.kind = kind
        self.priority = priority
        self.time_ms = time_ms
        self.body = body
        self.device = device
        self.seq = seq

    @property
    def kind_name(self):
        return KIND_NAMES.get(self.kind, "kind-%d" % self.kind)

    def to_map(self):
        return {
            K_VERSION: VERSION,
            K_KIND: self.kind,
            K_DEVICE: self.device,
            K_SEQ: self.seq,
            K_TIME: self.time_ms,
            K_PRIORITY: self.priority,
            K_BODY: self.body,
        }

    def encode(self, transient=False):
        """The signal's CBOR bytes; ``transient``: cbor.dumps_transient's
        (on a board, a view valid until the next encoding, for a caller
        that copies it at once: the firmware's store append)."""
        if self.device is None or self.seq is None:
            raise SignalError("a signal needs a device id and a seq before it is encoded")
        return (cbor.dumps_transient if transient else cbor.dumps)(self.to_map())

    def __repr__(self):
        return "Signal(%s, prio=%d, seq=%r, t=%d, %r)" % (
            self.kind_name,
            self.priority,
            self.seq,
            self.time_ms,
            self.body,
        )


_ENVELOPE_HEAD = bytes((0xA7, K_VERSION, VERSION, K_KIND))  # a map of 7; version; the kind's key


def body_bytes(signal, record):
    """The bytes of ``signal``'s body inside ``record``, the signal's own
    bytes as received, or None. Found without encoding the body: when the
    record begins with the canonical encoding of the signal's envelope up
    to the body's key (a 7-entry map whose keys 0-5 hold these values, as
    Signal.encode writes it), the body (key 6, the last entry) is the rest.
    A record encoded otherwise (by another encoder) gives None."""
    # cbor.dumps of the map up to the body's key, built directly (the keys
    # 0-6 are one byte each, so canonical order is their order).
    uint = cbor._encode_int
    head = b"".join((_ENVELOPE_HEAD, uint(signal.kind), b"\x02", cbor.dumps(signal.device), b"\x03",
                     uint(signal.seq), b"\x04", uint(signal.time_ms), b"\x05", uint(signal.priority), b"\x06"))
    if len(record) > len(head) and bytes(record[:len(head)]) == head:
        return bytes(record[len(head):])
    return None


def _require_uint(envelope, key, name):
    value = envelope.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        # The type, not the value: a value from the wire may be megabytes long.
        raise SignalError("%s (key %d) must be an unsigned integer, got %s" % (name, key, type(value).__name__))
    return value


def _small(value):
    """An untrusted integer for a message: itself when short, else its size
    (CPython refuses to print an int of over 4300 digits)."""
    return "%d" % value if value < 10 ** 12 else "a %d-hex-digit number" % len("%x" % value)


def decode(data):
    """Parse and check a v1 envelope; return a Signal or raise SignalError.
    Never raises anything else, whatever the bytes."""
    try:
        envelope = cbor.loads(data)
    except cbor.CBORError as exc:
        raise SignalError("not CBOR: %s" % exc)
    return from_map(envelope)


def from_map(envelope):
    """Check an already-decoded v1 envelope (e.g. one item of a bundle) and
    return its Signal, or raise SignalError."""
    if not isinstance(envelope, dict):
        raise SignalError("a signal must be a CBOR map, got %s" % type(envelope).__name__)
    version = _require_uint(envelope, K_VERSION, "version")
    if version != VERSION:
        raise SignalError("unsupported format version %s (this build reads %d)" % (_small(version), VERSION))
    kind = _require_uint(envelope, K_KIND, "kind")
    if kind not in KIND_NAMES:
        raise SignalError("unknown signal kind %s" % _small(kind))
    device = envelope.get(K_DEVICE)
    reason = check_device_id(device)
    if reason:
        raise SignalError(reason)
    seq = _require_uint(envelope, K_SEQ, "seq")
    time_ms = _require_uint(envelope, K_TIME, "time")
    priority = _require_uint(envelope, K_PRIORITY, "priority")
    if priority > PRIORITY_LOW:
        raise SignalError("priority %s is outside 0..%d" % (_small(priority), PRIORITY_LOW))
    body = envelope.get(K_BODY)
    if not isinstance(body, dict):
        raise SignalError("body (key %d) must be a map" % K_BODY)
    return Signal(kind, priority, time_ms, body, device, seq)


# --- Health engine (issue 6): new keys only, grouped here ---------------------
# Alert body keys added by the health engine (all optional on the wire).
A_COUNT = 12  # uint: occurrences this alert stands for (dedupe folded count-1 repeats into it)
A_EVIDENCE = 13  # [[time_ms, sensor, value-or-null], ...]: the last readings behind it
A_PREDICTION = 14  # map, P_* keys: a predicted threshold crossing
A_ELEMENT = 15  # tstr: the shared element of a root-cause alert, "supply:rail_12v" or "bus:uart0"
A_AFFECTED = 16  # [tstr]: components a root-cause alert stands for
A_SUPPRESSED = 17  # uint: alerts of this component held back by triage since its last alert
A_STATE = 18  # tstr: the component's state when the alert was made

# Prediction map keys (inside A_PREDICTION).
P_CROSSING = 0  # uint: expected crossing, ms since epoch
P_EARLIEST = 1  # uint: earliest plausible crossing (fast end of the slope's interval)
P_LATEST = 2  # uint or null: latest plausible crossing (null: maybe never)
P_THRESHOLD = 3  # number: the level being approached
P_LEVEL = 4  # number: today's estimated level (trend plus typical daily peak)
P_SLOPE = 5  # number: trend, sensor unit per day
P_MODEL = 6  # tstr: the trend model chosen (linear, exponential, knee)

# State signal (kind 3) body keys: one per component state transition.
S_COMPONENT = 0  # tstr
S_FROM = 1  # tstr: state before
S_TO = 2  # tstr: state after
S_EVENT = 3  # tstr: what caused it (component.py's events)
S_REASON = 4  # tstr: one line for people
S_EVIDENCE = 5  # [[time_ms, sensor, value-or-null], ...]
S_ACTIONS = 6  # [tstr]: quarantine actions applied or undone, e.g. "cut_power fan_power"
S_PROBES = 7  # uint: failed probes so far

# Alert conditions raised by the health engine (besides the rule kinds).
C_QUARANTINED = "quarantined"
C_DEGRADED = "degraded"
C_NEEDS_SERVICE = "needs_service"
C_PREDICTED = "predicted_failure"
C_ROOT_CAUSE = "root_cause"
# A sensor, a Modbus slave or a bus stopped answering (its dropout rule):
# communication loss, not a failing part. A_ELEMENT names the link.
C_LINK_LOST = "link_lost"

# Birth body keys (kind 5): the first signal of every boot. Its seq is the
# first seq of the boot: the durable sequencer may skip unused numbers
# after a crash, and receivers count a missing range that ends right below
# a birth's seq as skipped at restart, not lost.
B_AGENT = 0  # tstr: agent name and version
B_MODEL = 1  # tstr: board model
B_BOARD = 2  # tstr: board name
B_FORMAT = 3  # uint: wire format version the device writes

# Evictions body keys (kind 7): what the full store gave up since the last
# evictions signal, so a receiver can tell a gap it sees from a loss nobody
# knew about. Sent at most every few seconds, coalesced.
V_LANES = 0  # [[lane (= priority), records, bytes], ...]
V_SINCE = 1  # uint: ms since epoch of the first eviction counted
V_OVERFLOW = 2  # bool: data as urgent as the incoming was dropped (the loud case)

# Audit body keys (kind 4): a privileged action, applied or refused. Sent
# with alert priority (1): the owner must hear about overrides at once.
U_WHO = 0  # tstr: the authenticated actor (technician token subject, operator key id)
U_ACTION = 1  # tstr: e.g. "quarantine.release", "config.apply"
U_TARGET = 2  # tstr: what it acted on (component id, config path, "")
U_BEFORE = 3  # any: state before (null if none)
U_AFTER = 4  # any: state after (null if refused)
U_RESULT = 5  # tstr: "applied" or "refused"
U_REASON = 6  # tstr: why refused, or the operator's note
U_CHANNEL = 7  # tstr: "console", "downlink"

# Repair body keys (kind 8): the device's answer to a signed `replay`
# command (repair.py, docs/wire-format.md). Every seq the request named is
# in exactly one of R_SENDING and R_GONE.
R_REQUEST = 0  # tstr: the receiver's id for the request, echoed
R_SENDING = 1  # [[first, last], ...]: held, republished unchanged after this signal
R_GONE = 2  # [[first, last, reason], ...]: reason "outside-window" or "not-held"


def seq_of(record):
    """The seq of a stored signal (``record``: its bytes as Signal.encode
    writes them, a canonical map whose keys 0-3 come first), read from its
    first bytes without decoding the rest: the replay window is scanned
    record by record (repair.py). None for bytes of any other shape."""
    try:
        # {0: 1, 1: kind (< 24), 2: device text, 3: seq, ...}
        if record[0] != 0xA7 or record[1] != 0 or record[2] != 1 or record[3] != 1 or record[4] > 23 \
                or record[5] != 2:
            return None
        length, pos = head_at(record, 6, 0x60)
        if length is None or record[pos + length] != 3:
            return None
        return head_at(record, pos + length + 1, 0)[0]
    except IndexError:
        return None


def head_at(data, pos, major_bits):
    """(argument, position after the head) of the CBOR head at ``pos`` if
    its major type is ``major_bits`` (0x00 uint, 0x60 text, 0x80 array), else
    (None, pos); IndexError where the bytes end first."""
    first = data[pos]
    if first & 0xE0 != major_bits:
        return None, pos
    info = first & 0x1F
    if info < 24:
        return info, pos + 1
    if info > 27:
        return None, pos
    size = 1 << (info - 24)
    value = 0
    for i in range(size):
        value = (value << 8) | data[pos + 1 + i]
    return value, pos + 1 + size
