"""MQTT 3.1.1 packets for the firmware's client: encode what a client sends,
decode what a broker sends. No I/O and no clock: bytes in, packets out.

Runs unchanged on MicroPython and CPython (the tests run it on both).

Decoding works in one buffer sized once (largest accepted packet + 5 header
bytes): the caller reads socket bytes straight into ``Decoder.space()`` and
calls ``advance(n)``, then takes packets with ``next_packet()``. A packet
larger than the buffer is a ``PacketTooLarge`` error rather than an unbounded
allocation: MQTT 3.1.1 has no way to tell the broker a maximum, so the device
refuses and closes.

What a broker may send a client, and nothing else, is accepted (spec section
2.2 and 3.x): CONNACK, PUBLISH (QoS 0/1; this client never subscribes at
QoS 2), PUBACK, SUBACK, UNSUBACK, PINGRESP, each with its fixed reserved
flags and exact length. Anything else is a ``ProtocolError`` naming the
packet and the rule; the client closes the connection on it.
"""

try:
    from micropython import const
except ImportError:  # CPython
    # An assignment, not a def: mypy wants a conditional def to repeat the
    # stub's generic signature exactly, which needs typing (not on MicroPython).
    const = lambda value: value  # noqa: E731


CONNECT = const(1)
CONNACK = const(2)
PUBLISH = const(3)
PUBACK = const(4)
PUBREC = const(5)
PUBREL = const(6)
PUBCOMP = const(7)
SUBSCRIBE = const(8)
SUBACK = const(9)
UNSUBSCRIBE = const(10)
UNSUBACK = const(11)
PINGREQ = const(12)
PINGRESP = const(13)
DISCONNECT = const(14)

NAMES = ("reserved(0)", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP", "SUBSCRIBE",
         "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "reserved(15)")

PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"
MAX_REMAINING = const(268435455)  # 4 length bytes of 7 bits (spec 2.2.3)
SUBACK_FAILURE = const(0x80)

# CONNACK return codes (spec 3.2.2.3), each with what to do about it.
REFUSALS = {
    1: "unacceptable protocol version: the broker does not speak MQTT 3.1.1",
    2: "identifier rejected: use a client id of 1-23 letters and digits, unique per device",
    3: "server unavailable: the broker is up but not accepting clients; retry later",
    4: "bad user name or password: check the device's MQTT credentials",
    5: "not authorized: the broker's ACL or certificate mapping refuses this client",
}


class MQTTError(Exception):
    """The broker or the link misbehaved (not a misuse of the API: that is a
    ValueError or TypeError)."""


class ProtocolError(MQTTError):
    """Bytes from the broker break MQTT 3.1.1; the connection is closed."""


class PacketTooLarge(ProtocolError):
    """The broker sent a packet larger than the client's receive buffer."""


class ConnectRefused(MQTTError):
    """The broker answered CONNECT with a non-zero return code."""

    def __init__(self, code):
        super().__init__("broker refused the connection (CONNACK code %d): %s"
                         % (code, REFUSALS.get(code, "unknown code, not MQTT 3.1.1")))
        self.code = code


class Message:
    """An application message: received from the broker or to publish."""

    def __init__(self, topic, payload, qos=0, retain=False, dup=False, pid=0):
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.dup = dup
        self.pid = pid

    def __repr__(self):
        return "Message(%r, %d bytes, qos=%d%s)" % (self.topic, len(self.payload), self.qos,
                                                    ", retain" if self.retain else "")


class Will:
    """The last will the broker publishes if the device drops off without a
    DISCONNECT (power cut, crash, dead network)."""

    def __init__(self, topic, payload, qos=0, retain=False):
        check_topic_name(topic)
        check_qos(qos)
        self.topic = topic
        self.payload = _bytes(payload, "will payload")
        self.qos = qos
        self.retain = bool(retain)


# --- validation of what the application asks to send -----------------------

def _bytes(value, what):
    if isinstance(value, str):
        value = value.encode()
    elif not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError("%s must be bytes or str, not %s" % (what, type(value).__name__))
    return value


def _utf8_field(value, what):
    data = _bytes(value, what)
    if len(data) > 65535:
        raise ValueError("%s is %d bytes; MQTT strings hold at most 65535" % (what, len(data)))
    return data


def check_qos(qos):
    if qos not in (0, 1):
        raise ValueError("qos %r: this client supports QoS 0 and 1" % (qos,))


def check_topic_name(topic):
    """A topic to publish to: not empty, no wildcards, no NUL (spec 4.7)."""
    if not isinstance(topic, str):
        raise TypeError("topic must be str, not %s" % type(topic).__name__)
    if not topic or "+" in topic or "#" in topic or "\x00" in topic:
        raise ValueError("topic %r: publish topics are non-empty, without '+', '#' or NUL" % (topic,))


def check_topic_filter(topic):
    """A subscription filter: '+' fills a whole level, '#' only the last one."""
    if not isinstance(topic, str):
        raise TypeError("topic filter must be str, not %s" % type(topic).__name__)
    if not topic or "\x00" in topic:
        raise ValueError("topic filter %r: must be non-empty, without NUL" % (topic,))
    levels = topic.split("/")
    for index, level in enumerate(levels):
        if ("+" in level and level != "+") or ("#" in level and (level != "#" or index != len(levels) - 1)):
            raise ValueError("topic filter %r: '+' must fill a whole level and '#' be the whole last level"
                             % (topic,))


# --- encoding ----------------------------------------------------------------

def put_length(buf, offset, length):
    """Write a remaining length (spec 2.2.3) at buf[offset:]; return the end."""
    while True:
        byte = length & 0x7F
        length >>= 7
        if length:
            buf[offset] = byte | 0x80
            offset += 1
        else:
            buf[offset] = byte
            return offset + 1


def _packet(first, body):
    header = bytearray(5)
    header[0] = first
    end = put_length(header, 1, len(body))
    return bytes(header[:end]) + body


def _field(data):
    return bytes((len(data) >> 8, len(data) & 0xFF)) + data


def encode_connect(client_id, keepalive_s, clean_session=True, username=None, password=None, will=None):
    """CONNECT (spec 3.1) as bytes."""
    cid = _utf8_field(client_id, "client id")
    if not cid and not clean_session:
        raise ValueError("an empty client id needs clean_session=True (spec 3.1.3.1)")
    if not 0 <= keepalive_s <= 65535:
        raise ValueError("keepalive %r s: must be 0..65535" % (keepalive_s,))
    if password is not None and username is None:
        raise ValueError("a password needs a user name in MQTT 3.1.1 (spec 3.1.2.9)")
    flags = 0x02 if clean_session else 0
    tail = _field(cid)
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
        tail += _field(_utf8_field(will.topic, "will topic")) + _field(_utf8_field(will.payload, "will payload"))
    if username is not None:
        flags |= 0x80
        tail += _field(_utf8_field(username, "user name"))
    if password is not None:
        flags |= 0x40
        tail += _field(_utf8_field(password, "password"))
    body = b"\x00\x04MQTT\x04" + bytes((flags, keepalive_s >> 8, keepalive_s & 0xFF)) + tail
    return _packet(CONNECT << 4, body)


def publish_header_into(buf, topic, payload_len, qos, retain=False, dup=False, pid=0):
    """Write a PUBLISH's fixed header, topic and packet id into ``buf`` (at
    least 9 + len(topic) bytes); the payload follows. Returns the length.
    ``topic`` is the UTF-8 bytes of a checked topic name."""
    remaining = 2 + len(topic) + (2 if qos else 0) + payload_len
    if remaining > MAX_REMAINING:
        raise ValueError("PUBLISH of %d bytes exceeds MQTT's 256 MB packet limit" % remaining)
    buf[0] = (PUBLISH << 4) | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    at = put_length(buf, 1, remaining)
    buf[at] = len(topic) >> 8
    buf[at + 1] = len(topic) & 0xFF
    at += 2
    buf[at:at + len(topic)] = topic
    at += len(topic)
    if qos:
        buf[at] = pid >> 8
        buf[at + 1] = pid & 0xFF
        at += 2
    return at


def puback_into(buf, pid):
    """PUBACK for ``pid`` in buf[0:4]."""
    buf[0] = PUBACK << 4
    buf[1] = 2
    buf[2] = pid >> 8
    buf[3] = pid & 0xFF


def encode_subscribe(pid, topic, qos):
    return _packet((SUBSCRIBE << 4) | 2, bytes((pid >> 8, pid & 0xFF)) + _field(_utf8_field(topic, "topic filter"))
                   + bytes((qos,)))


def encode_unsubscribe(pid, topic):
    return _packet((UNSUBSCRIBE << 4) | 2, bytes((pid >> 8, pid & 0xFF)) + _field(_utf8_field(topic, "topic filter")))


# --- decoding ----------------------------------------------------------------

def _u16(mv, at):
    return (mv[at] << 8) | mv[at + 1]


def _expect(name, flags, length, want_length):
    if flags:
        raise ProtocolError("%s with reserved flags 0x%x (must be 0, spec 2.2.2)" % (name, flags))
    if length != want_length:
        raise ProtocolError("%s with remaining length %d (must be %d)" % (name, length, want_length))


def _pid(mv, at, name):
    pid = _u16(mv, at)
    if pid == 0:
        raise ProtocolError("%s with packet id 0 (ids are 1..65535, spec 2.3.1)" % name)
    return pid


def decode(first, mv, at, length):
    """One packet from its first byte and its body mv[at:at+length], as a
    tuple (type, a, b):
        (CONNACK, session_present, return_code)
        (PUBLISH, Message, None)
        (PUBACK, pid, None)     (UNSUBACK, pid, None)
        (SUBACK, pid, return_codes_bytes)
        (PINGRESP, None, None)
    """
    kind = first >> 4
    flags = first & 0x0F
    if kind == PUBLISH:
        return (PUBLISH, _decode_publish(flags, mv, at, length), None)
    if kind == PUBACK:
        _expect("PUBACK", flags, length, 2)
        return (PUBACK, _pid(mv, at, "PUBACK"), None)
    if kind == PINGRESP:
        _expect("PINGRESP", flags, length, 0)
        return (PINGRESP, None, None)
    if kind == CONNACK:
        _expect("CONNACK", flags, length, 2)
        if mv[at] & 0xFE:
            raise ProtocolError("CONNACK with reserved acknowledge flags 0x%02x (spec 3.2.2.1)" % mv[at])
        return (CONNACK, mv[at] & 1, mv[at + 1])
    if kind == SUBACK:
        if flags or length < 3:
            raise ProtocolError("SUBACK with flags 0x%x and length %d (must be 0 and at least 3)" % (flags, length))
        codes = bytes(mv[at + 2:at + length])
        for code in codes:
            if code not in (0, 1, 2, SUBACK_FAILURE):
                raise ProtocolError("SUBACK with return code 0x%02x (must be 0, 1, 2 or 0x80, spec 3.9.3)" % code)
        return (SUBACK, _pid(mv, at, "SUBACK"), codes)
    if kind == UNSUBACK:
        _expect("UNSUBACK", flags, length, 2)
        return (UNSUBACK, _pid(mv, at, "UNSUBACK"), None)
    raise ProtocolError("unexpected %s packet from the broker (a broker never sends it to a client "
                        "that uses QoS 0/1 only)" % NAMES[kind])


def _decode_publish(flags, mv, at, length):
    qos = (flags >> 1) & 3
    if qos == 3:
        raise ProtocolError("PUBLISH with QoS 3 (spec 3.3.1.2: malformed)")
    if qos == 2:
        raise ProtocolError("PUBLISH with QoS 2: this client subscribes at QoS 0/1, the broker must downgrade")
    if length < 2:
        raise ProtocolError("PUBLISH of %d bytes has no room for its topic length" % length)
    topic_len = _u16(mv, at)
    header = 2 + topic_len + (2 if qos else 0)
    if header > length:
        raise ProtocolError("PUBLISH topic (%d bytes) and packet id overrun its %d-byte packet" % (topic_len, length))
    try:
        topic = str(mv[at + 2:at + 2 + topic_len], "utf-8")
    except UnicodeError:
        raise ProtocolError("PUBLISH topic is not valid UTF-8 (spec 1.5.3)")
    if not topic:
        raise ProtocolError("PUBLISH with an empty topic (spec 4.7.3)")
    pid = _pid(mv, at + 2 + topic_len, "PUBLISH") if qos else 0
    payload = bytes(mv[at + header:at + length])
    return Message(topic, payload, qos, bool(flags & 1), bool(flags & 8), pid)


class Decoder:
    """Broker-to-client packets from a byte stream, in one fixed buffer."""

    def __init__(self, max_packet=4096):
        self.max_packet = max_packet
        self._buf = bytearray(max_packet + 5)  # + first byte and 4 length bytes
        self._mv = memoryview(self._buf)
        self._start = 0
        self._end = 0

    def reset(self):
        """Forget buffered bytes (a new connection starts a new stream)."""
        self._start = self._end = 0

    def buffered(self):
        return self._end - self._start

    def space(self):
        """A memoryview of free buffer to read socket bytes into (never empty:
        next_packet() raises before a packet could outgrow the buffer)."""
        if self._start == self._end:
            self._start = self._end = 0
        elif self._end == len(self._buf):
            # Move the partial packet to the front; memoryview copies in place.
            kept = self._end - self._start
            self._mv[0:kept] = self._mv[self._start:self._end]
            self._start, self._end = 0, kept
        return self._mv[self._end:]

    def advance(self, count):
        """Count ``count`` bytes written into space() as received."""
        self._end += count

    def feed(self, data):
        """Copy as much of ``data`` as fits; return how many bytes were taken."""
        space = self.space()
        count = min(len(space), len(data))
        space[:count] = data[:count]
        self._end += count
        return count

    def next_packet(self):
        """The next complete packet (see decode()), or None until more bytes
        arrive. Raises ProtocolError on bytes that are not MQTT."""
        mv = self._mv
        start = self._start
        end = self._end
        if end - start < 2:
            return None
        length = 0
        shift = 0
        at = start + 1
        while True:
            if at >= end:
                return None
            byte = mv[at]
            at += 1
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift == 28:
                raise ProtocolError("remaining length longer than 4 bytes (spec 2.2.3): not an MQTT stream")
        if length > self.max_packet:
            raise PacketTooLarge("%s of %d bytes exceeds the client's %d-byte receive buffer (raise max_packet "
                                 "or publish smaller messages to the device)"
                                 % (NAMES[mv[start] >> 4], length, self.max_packet))
        if end - at < length:
            return None
        self._start = at + length
        return decode(mv[start], mv, at, length)
