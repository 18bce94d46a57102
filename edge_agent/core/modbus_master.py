"""Modbus RTU master for one bus: poll scheduler and transaction state machine.

Sans-I/O, like h11: the master never touches a port or a clock. The bus
adapter (the gateway's serial adapter, edge_agent/gateway/serial_source.py;
on a board, firmware/uart_source.py), through ``Device.poll_bus`` and
``Device.feed``, runs a short pump::

    events, send, deadline = master.poll(now_ms)   # send: bytes to write now, or None
    write(send); wait for bytes or the deadline
    events = master.feed(data, now_ms)             # bytes that arrived

Theory of operation. One request is outstanding at a time (RTU is half
duplex, and a slave is addressed only by its reply's position in time):

    state   event                                     next    effect
    IDLE    poll: line quiet, a request due           AWAIT   send it; deadline = wire time + timeout
    IDLE    feed: bytes                               IDLE    "unexpected" (noise, a late reply); the line is busy again
    AWAIT   feed: the reply completes                 IDLE    readings, or sensor errors for an exception reply
    AWAIT   poll: deadline passed, tries left         IDLE    the same request again, first in line
    AWAIT   poll: deadline passed, no tries left      IDLE    "no-reply": no readings, so the health engine's
                                                              dropout rule sees the slave fall silent
    AWAIT   flush (port closed)                       IDLE    the request failed ("no-reply")

Anything else is a bug in the caller and raises ``IllegalTransition``.

What is due: writes (queued by ``write``) before polls; polls by earliest
due time, each sensor on its own period (``period_ms`` of the board). A
sensor's next poll is one period after its last one was due, or after now
when the bus has fallen behind (no burst of catch-up polls).

Timing (MODBUS over Serial Line V1.02, 2.5.1.1): frames are separated by
at least 3.5 character times of silence; above 19200 baud the spec fixes
that at 1.75 ms. A character is 1 start + 8 data + parity + stop bits.
Time here is whole milliseconds, and a reply that ended at 10.9 ms is
stamped 10, so the gap is the silence rounded up plus 1 ms: never shorter
than the spec, at most 1 ms longer.

Events are the line protocol's (frames.py): ``Frame(READING, sensor,
value)`` for a scaled value, ``Frame(SENSOR_ERROR, sensor, code)`` when the
slave answered with an exception or a float that is not finite, and
``BadFrame(reason, raw, detail)`` for what the device counts and logs:
``no-reply``, ``garbage`` (noise before a reply), ``unexpected`` (bytes
while no request was outstanding). ``WriteResult`` reports writes.
"""

from edge_agent.core import frames as fr
from edge_agent.core import modbus as mb

NAME = "modbus"
DEFAULT_BAUD = 19200  # the spec's default rate (MODBUS over Serial Line 2.5.1)

IDLE = "idle"
AWAIT = "await"

SEND = "send"
REPLY = "reply"
TIMEOUT = "timeout"
CLOSED = "closed"

_TRANSITIONS = {
    (IDLE, SEND): AWAIT,
    (AWAIT, REPLY): IDLE,
    (AWAIT, TIMEOUT): IDLE,
    (AWAIT, CLOSED): IDLE,
}

NO_REPLY = "no-reply"
GARBAGE = "garbage"
UNEXPECTED = "unexpected"

PARITIES = {"none": 0, "even": 1, "odd": 1}  # parity bits per character
DEFAULT_PARITY = "even"  # the spec's default (MODBUS over Serial Line 2.5.1)
DEFAULT_TIMEOUT_MS = 200
DEFAULT_RETRIES = 2
# Rx buffer bound: a reply is at most 256 bytes; keep two in case noise
# precedes one, drop the oldest beyond that.
MAX_BUFFER = 2 * mb.MAX_ADU


class IllegalTransition(mb.ModbusError):
    """The caller drove the master in a way its state table forbids."""


class Point:
    """One sensor as the board declares it on a Modbus bus: where its value
    lives (a Source) and how often to read it."""

    __slots__ = ("sensor", "source", "period_ms", "request", "next_due")

    def __init__(self, sensor, source, period_ms):
        self.sensor = sensor
        self.source = source
        self.period_ms = period_ms
        # Built once: the same bytes go out at every poll.
        self.request = mb.read_request(source.slave, source.function, source.address,
                                       mb.TYPE_REGISTERS[source.type])
        self.next_due = None

    def value(self, words):
        src = self.source
        return mb.decode_value(words, src.type, src.word_order) * src.scale + src.offset




class _Job:
    # A request in flight or queued: a poll of a Point, or a write.
    __slots__ = ("request", "point", "tag", "tries")

    def __init__(self, request, point=None, tag=None):
        self.request = request
        self.point = point
        self.tag = tag
        self.tries = 0


def char_us(baud, parity="none", stop_bits=1):
    """Microseconds one character takes on the wire."""
    bits = 1 + 8 + PARITIES[parity] + stop_bits
    return (bits * 1000000 + baud - 1) // baud


def gap_us(baud, parity="none", stop_bits=1):
    """The silence between frames: 3.5 characters, 1750 us above 19200 baud."""
    if baud > 19200:
        return 1750
    return (7 * char_us(baud, parity, stop_bits) + 1) // 2


def _ceil_ms(us):
    return (us + 999) // 1000


class ModbusMaster:
    def __init__(self, points, baud, parity=DEFAULT_PARITY, stop_bits=1, timeout_ms=DEFAULT_TIMEOUT_MS,
                 retries=DEFAULT_RETRIES):
        if parity not in PARITIES:
            raise mb.RequestError("parity must be one of %s, not %r" % (", ".join(sorted(PARITIES)), parity))
        self.points = list(points)
        self.char_us = char_us(baud, parity, stop_bits)
        self.gap_ms = _ceil_ms(gap_us(baud, parity, stop_bits)) + 1  # +1: see the module doc
        self.timeout_ms = timeout_ms
        self.retries = retries
        self.state = IDLE
        self._job = None  # the job in flight (AWAIT) or to retry first (IDLE)
        self._writes = []
        self._deadline = None  # AWAIT: reply due by
        self._quiet_until = None  # IDLE: the line must stay silent until then
        self._rx = bytearray()
        self.stats = {"requests": 0, "replies": 0, "retries": 0, "no_reply": 0, "exceptions": 0,
                      "garbage_bytes": 0, "unexpected_bytes": 0, "writes": 0}

    # -- the state table ---------------------------------------------------

    def _to(self, event):
        following = _TRANSITIONS.get((self.state, event))
        if following is None:
            raise IllegalTransition("modbus master: %s is not allowed in state %s" % (event, self.state))
        self.state = following

    # -- the pump's calls --------------------------------------------------

    def poll(self, now_ms):
        """Serve timeouts and start the next request. Returns (events, bytes
        to send now or None, deadline: call poll again then, or None when
        there is nothing to poll at all)."""
        events = []
        if self.state == AWAIT:
            if now_ms - self._deadline < 0:
                return events, None, self._deadline
            self._timed_out(now_ms, events)
        if self._quiet_until is not None and now_ms - self._quiet_until < 0:
            return events, None, self._quiet_until
        job = self._next_job(now_ms)
        if job is None:
            return events, None, self._next_due()
        self._to(SEND)
        self._job = job
        job.tries += 1
        self.stats["requests"] += 1
        self._rx = bytearray()
        wire_ms = _ceil_ms((len(job.request.adu) + job.request.reply_length) * self.char_us)
        self._deadline = now_ms + wire_ms + self.timeout_ms
        return events, job.request.adu, self._deadline

    def feed(self, data, now_ms):
        """Bytes arrived at ``now_ms``. Returns events."""
        events = []
        if not data:
            return events
        # Whatever arrives, the line was busy: the next request waits for
        # silence after it.
        self._quiet_until = now_ms + self.gap_ms
        if self.state != AWAIT:
            self.stats["unexpected_bytes"] += len(data)
            events.append(fr.BadFrame(UNEXPECTED, bytes(data[:fr.MAX_FRAME]),
                                      "%d bytes while no request was outstanding (noise, or a reply after its "
                                      "timeout: raise timeout_ms if this repeats)" % len(data)))
            return events
        self._rx.extend(data)
        request = self._job.request
        start, end = mb.find_reply(self._rx, request)
        if start:
            self._garbage(self._rx[:start], events)
            self._rx = self._rx[start:]
        if end is None:
            if len(self._rx) > MAX_BUFFER:
                self._garbage(self._rx[:-MAX_BUFFER], events)
                self._rx = self._rx[-MAX_BUFFER:]
            return events
        frame = bytes(self._rx[: end - start])
        self._rx = self._rx[end - start :]
        self._garbage(self._rx, events)  # bytes after the reply in the same read
        self._rx = bytearray()
        self._to(REPLY)
        self.stats["replies"] += 1
        job, self._job = self._job, None
        self._deadline = None
        self._complete(job, mb.parse_reply(request, frame), events)
        return events

    def flush(self, now_ms):
        """The port closed: the request in flight failed."""
        events = []
        if self.state == AWAIT:
            self._to(CLOSED)
            job, self._job = self._job, None
            self._fail(job, "the port closed", events)
        self._quiet_until = None
        return events

    def write(self, slave, address, values, tag=None):
        """Queue a write of register contents (function 6 for one value, 16
        for several); it goes before the next poll. The outcome comes as a
        WriteResult event carrying ``tag``. Raises RequestError at once for
        a write Modbus cannot express."""
        self._writes.append(_Job(mb.write_request(slave, address, values), tag=tag))

    # -- internals ---------------------------------------------------------

    def _next_job(self, now_ms):
        if self._job is not None:  # a retry goes first
            return self._job
        if self._writes:
            return self._writes.pop(0)
        best = None
        for point in self.points:
            if point.next_due is None:
                point.next_due = now_ms  # first poll at once
            if now_ms - point.next_due >= 0 and (best is None or point.next_due - best.next_due < 0):
                best = point
        if best is None:
            return None
        due = best.next_due + best.period_ms
        best.next_due = due if due - now_ms > 0 else now_ms + best.period_ms
        return _Job(best.request, point=best)

    def _next_due(self):
        due = None
        for point in self.points:
            if point.next_due is not None and (due is None or point.next_due - due < 0):
                due = point.next_due
        return due

    def _timed_out(self, now_ms, events):
        self._to(TIMEOUT)
        self._garbage(self._rx, events)
        self._rx = bytearray()
        self._deadline = None
        # A slave may still be answering: leave the line quiet before the
        # next request so its late reply cannot run into it.
        self._quiet_until = now_ms + self.gap_ms
        job = self._job
        if job.tries <= self.retries:
            self.stats["retries"] += 1
            return  # self._job stays: _next_job sends it again
        self._job = None
        self._fail(job, "no reply within %d ms after %d tries" % (self.timeout_ms, job.tries), events)

    def _fail(self, job, why, events):
        self.stats["no_reply"] += 1
        detail = "%s: %s" % (job.request.describe(), why)
        if job.point is not None:
            detail = "sensor %s (%s)" % (job.point.sensor, detail)
            events.append(fr.BadFrame(NO_REPLY, b"", detail))
        else:
            events.append(fr.WriteResult(job.tag, False, detail))

    def _complete(self, job, reply, events):
        point = job.point
        if isinstance(reply, mb.ExceptionReply):
            self.stats["exceptions"] += 1
            if point is None:
                events.append(fr.WriteResult(job.tag, False, "%s: slave answered %s" % (job.request.describe(), reply.name)))
            else:
                events.append(fr.Frame(fr.SENSOR_ERROR, point.sensor, reply.name))
            return
        if point is None:
            self.stats["writes"] += 1
            events.append(fr.WriteResult(job.tag, True))
            return
        value = point.value(reply.values)
        if value != value or value in (float("inf"), float("-inf")):
            # Devices use NaN for "no measurement yet" (e.g. warming up).
            events.append(fr.Frame(fr.SENSOR_ERROR, point.sensor, "not-a-number"))
        else:
            events.append(fr.Frame(fr.READING, point.sensor, float(value)))

    def _garbage(self, data, events):
        if data:
            self.stats["garbage_bytes"] += len(data)
            events.append(fr.BadFrame(GARBAGE, bytes(data[:fr.MAX_FRAME]), "%d bytes of noise around a reply" % len(data)))


# -- the decoder interface (decoders.py) and board keys ----------------------

BUS_KEYS = ("parity", "stop_bits", "timeout_ms", "retries")
SENSOR_KEYS = ("slave", "function", "address", "type", "word_order", "scale", "offset")


class BusSettings:
    __slots__ = ("parity", "stop_bits", "timeout_ms", "retries")

    def __init__(self, parity=DEFAULT_PARITY, stop_bits=1, timeout_ms=DEFAULT_TIMEOUT_MS, retries=DEFAULT_RETRIES):
        self.parity = parity
        self.stop_bits = stop_bits
        self.timeout_ms = timeout_ms
        self.retries = retries


class Source:
    """Where a sensor's value lives on the bus ([sensors.ID.modbus])."""

    __slots__ = ("slave", "function", "address", "type", "word_order", "scale", "offset")

    def __init__(self, slave, function, address, type_name, word_order="big", scale=1.0, offset=0.0):
        self.slave = slave
        self.function = function
        self.address = address
        self.type = type_name
        self.word_order = word_order
        self.scale = scale
        self.offset = offset


def check_bus(check, entry, key):
    parity = check.text(entry, "parity", key, required=False, default=DEFAULT_PARITY)
    if parity not in PARITIES:
        check.problem(key + ".parity", "unknown parity %r" % (parity,), "use one of: even, odd, none")
        parity = DEFAULT_PARITY
    stop_bits = check.integer(entry, "stop_bits", key, 1, 2, default=1)
    timeout_ms = check.integer(entry, "timeout_ms", key, 10, 10000, default=DEFAULT_TIMEOUT_MS)
    retries = check.integer(entry, "retries", key, 0, 5, default=DEFAULT_RETRIES)
    return BusSettings(parity, stop_bits, timeout_ms, retries)


def check_sensor(check, table, key):
    """Validate a [sensors.ID.modbus] table (``key`` names it)."""
    check.unknown_keys(table, SENSOR_KEYS, key)
    slave = check.integer(table, "slave", key, mb.FIRST_SLAVE, mb.LAST_SLAVE)
    function = check.integer(table, "function", key, 1, 4, default=mb.READ_HOLDING_REGISTERS)
    address = check.integer(table, "address", key, 0, 0xFFFF)
    bits = function in mb.BIT_FUNCTIONS
    type_name = check.text(table, "type", key, required=False, default="bool" if bits else "uint16")
    if bits and type_name != "bool":
        check.problem(key + ".type", "function %d reads bits, so the type is bool, not %r" % (function, type_name),
                      "remove type, or read registers with function = 3 or 4")
        type_name = "bool"
    elif not bits and type_name not in mb.REGISTER_TYPES:
        check.problem(key + ".type", "unknown register type %r" % (type_name,), "use one of: %s" % ", ".join(mb.REGISTER_TYPES))
        type_name = "uint16"
    word_order = check.text(table, "word_order", key, required=False, default="big")
    if word_order not in mb.WORD_ORDERS:
        check.problem(key + ".word_order", "unknown word order %r" % (word_order,),
                      "use \"big\" (high word first, ABCD) or \"little\" (low word first, CDAB)")
        word_order = "big"
    elif "word_order" in table and mb.TYPE_REGISTERS[type_name] == 1:
        check.problem(key + ".word_order", "%s is one register, so word order means nothing" % type_name,
                      "remove word_order, or set type to a 32-bit type")
    scale = check.number(table, "scale", key, default=1.0)
    if scale == 0:
        check.problem(key + ".scale", "a scale of 0 makes every reading 0", "use the device's resolution, e.g. 0.1")
    offset = check.number(table, "offset", key, default=0.0)
    if address is not None and address + mb.TYPE_REGISTERS[type_name] > 0x10000:
        check.problem(key + ".address", "%s at %d runs past register 65535" % (type_name, address), "check the address")
    return Source(slave, function, address, type_name, word_order, scale, offset)


class Decoder:
    """The decoders.py interface over a ModbusMaster for one bus."""

    writes = True  # the adapter must write what poll() returns

    def __init__(self, bus, sensors):
        settings = bus.settings or BusSettings()
        points = []
        for sensor in sorted(sensors, key=lambda s: s.id):
            src = sensor.source
            points.append(Point(sensor.id, src, sensor.period_ms))
        self.master = ModbusMaster(points, bus.baud, settings.parity, settings.stop_bits, settings.timeout_ms,
                                   settings.retries)

    def feed(self, data, now_ms):
        return self.master.feed(data, now_ms)

    def poll(self, now_ms):
        return self.master.poll(now_ms)

    def flush(self, now_ms):
        return self.master.flush(now_ms)

    def write(self, slave, address, values, tag=None):
        self.master.write(slave, address, values, tag)
