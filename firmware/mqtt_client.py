"""A small asyncio MQTT 3.1.1 client for the firmware (MicroPython on ESP32)
that also runs unchanged on CPython.

    client = MQTTClient("broker.example", 8883, "dev-1", ssl=context,
                        will=Will("ea/v1/dev-1/state", b"lost", qos=1, retain=True))
    await client.connect()
    await client.subscribe("ea/v1/dev-1/cmd", qos=1)
    await client.publish("ea/v1/dev-1/sig", payload, qos=1)   # returns on PUBACK
    message = await client.next_message()                        # or on_message=

Theory of operation. One connection at a time; while connected two tasks
run: the reader (socket -> Decoder -> dispatch) and the pinger (PINGREQ when
either direction has been quiet for keepalive/2; the broker is declared dead
when nothing at all, not even a PINGRESP, has arrived for 1.5 x keepalive).
Whatever ends a connection (EOF, socket error, malformed packet, dead
broker) goes through ``_lost(error)``: both tasks stop, the socket closes,
``wait_disconnected()`` returns the error. Nothing reconnects behind the
caller's back: the application calls ``connect()`` again, with its own
backoff (firmware/uplink.py: doubling, full jitter).

QoS 1 publishes wait in one of ``max_inflight`` pre-allocated entries of
the in-flight table until their PUBACK. With clean_session=False,
unacknowledged entries survive a lost connection: ``connect()`` sends them
again with DUP set and the waiting ``publish()`` calls complete on the new
connection's PUBACKs. With clean_session=True a lost connection fails them
with ConnectionLost.

Memory: receive and transmit buffers are sized once (``max_packet``,
``tx_size``), the in-flight table and the inbox are bounded, incoming QoS 1
messages are acknowledged only once the application has them (callback
returned, or taken from the inbox), so a slow consumer stalls the socket,
not the heap (it must keep up within 1.5 x keepalive, or the stalled reader
reads as a dead broker).

Errors: API misuse raises ValueError/TypeError; anything the broker or the
link does raises an MQTTError subclass (mqtt_packets.py), with a message
that says what happened and what to check.
"""

import asyncio
from collections import deque
from errno import ECONNREFUSED

from mqtt_packets import (CONNACK, DISCONNECT_PACKET, PINGREQ_PACKET, PINGRESP, PUBACK, PUBLISH, SUBACK,
                          SUBACK_FAILURE, UNSUBACK, ConnectRefused, Decoder, Message, MQTTError, PacketTooLarge,
                          ProtocolError, Will, check_qos, check_topic_filter, check_topic_name, encode_connect,
                          encode_subscribe, encode_unsubscribe, publish_header_into, puback_into)

try:
    from time import ticks_diff, ticks_ms
except ImportError:  # CPython
    import time

    def ticks_ms():
        # The stubs model MicroPython's time (no monotonic); this is CPython's.
        return int(time.monotonic() * 1000)  # type: ignore[attr-defined]

    # An assignment, not a def: mypy wants a conditional def to repeat the
    # stub's overloads exactly, which needs typing (not on MicroPython).
    ticks_diff = lambda a, b: a - b  # noqa: E731

try:
    sleep_ms = asyncio.sleep_ms
except AttributeError:  # CPython

    async def sleep_ms(ms):
        await asyncio.sleep(ms / 1000)

__all__ = ("MQTTClient", "Message", "Will", "MQTTError", "ProtocolError", "PacketTooLarge", "ConnectRefused",
           "ConnectFailed", "ConnectionLost", "KeepaliveTimeout", "NotConnected", "SubscribeRefused")


class ConnectFailed(MQTTError):
    """The broker could not be reached, or the TCP/TLS/CONNACK handshake did
    not complete in time."""


class ConnectionLost(MQTTError):
    """An established connection ended without our DISCONNECT."""


class KeepaliveTimeout(ConnectionLost):
    """Nothing arrived from the broker for 1.5 x keepalive: broker or network dead."""


class NotConnected(MQTTError):
    """The call needs a connection and there is none (connect() first)."""


class SubscribeRefused(MQTTError):
    """The broker answered SUBSCRIBE with failure (0x80), e.g. its ACL."""


def _pulse(event):
    """Wake every task waiting on ``event`` now, and leave it clear: waiters
    re-check their own condition in a loop (one event serves many waiters)."""
    event.set()
    event.clear()


class MQTTClient:
    def __init__(self, host, port, client_id, keepalive_s=60, clean_session=True, username=None, password=None,
                 will=None, ssl=None, server_hostname=None, max_packet=2048, tx_size=512, max_inflight=8, inbox_size=4,
                 on_message=None, connect_timeout_s=15, response_timeout_s=10, max_subscriptions=4):
        """``ssl``: None for plain TCP, else an SSLContext (CPython's ssl or
        MicroPython's ssl/tls with DER certificates: see tls_context()).
        ``max_packet``: the largest packet accepted from the broker (the
        receive buffer). ``tx_size``: the transmit buffer; a publish that
        fits is copied there and written once, a larger one is written as
        header + the caller's payload, uncopied. ``on_message(message)``:
        called by the reader for each message (an attribute: may be set
        after construction); without it messages queue in an inbox of
        ``inbox_size`` for next_message() / ``async for``."""
        if will is not None and not isinstance(will, Will):
            raise TypeError("will must be a Will(topic, payload, qos, retain)")
        if max_inflight < 1 or inbox_size < 1:
            raise ValueError("max_inflight and inbox_size must be at least 1")
        self.host = host
        self.port = port
        self.client_id = client_id
        self.keepalive_s = keepalive_s
        self.clean_session = clean_session
        self.ssl = ssl
        self.server_hostname = server_hostname
        self.connect_timeout_s = connect_timeout_s
        self.response_timeout_s = response_timeout_s
        self._connect_packet = encode_connect(client_id, keepalive_s, clean_session, username, password, will)
        self._decoder = Decoder(max_packet)
        self._tx = bytearray(tx_size)
        self._tx_mv = memoryview(self._tx)
        self._ack = bytearray(4)
        # The in-flight table, one entry per QoS 1 publish awaiting PUBACK, as
        # parallel lists (an object per slot with its own Event cost ~400 B
        # each on MicroPython). pid: 0 free, -1 reserved, else the packet id;
        # outcome: None waiting, True acknowledged, or the exception to raise.
        self._pids = [0] * max_inflight
        self._topics = [None] * max_inflight
        self._payloads = [None] * max_inflight
        self._retains = bytearray(max_inflight)
        self._outcomes = [None] * max_inflight  # type: list[MQTTError | bool | None]
        self._settled = asyncio.Event()  # pulsed when an outcome is set
        self._slot_freed = asyncio.Event()  # pulsed when an entry is freed
        self._draining = False
        self._drained = asyncio.Event()
        self._topic = None  # the last topic published and its UTF-8 bytes
        self._topic_bytes = b""
        # The subscription's lock and event and the inbox are made on first
        # use (_request, _inbox_made): a board without operators subscribes
        # to nothing and receives nothing (with the one-tuple inbox, the
        # client is ~0.5 KiB smaller on a 32-bit heap).
        self._sub_lock = None  # type: asyncio.Lock | None
        self._sub_done = None  # type: asyncio.Event | None
        self._subscriptions = []  # (filter, qos) restored when the broker kept no session
        self._max_subscriptions = max_subscriptions
        self._sub_pid = 0
        self._sub_result = None
        self.on_message = on_message
        self._inbox = None  # type: tuple[deque[Message], asyncio.Event, asyncio.Event] | None  # messages, ready, space
        self._inbox_size = inbox_size
        self._pid = 0
        self._reader = None  # type: asyncio.StreamReader | None
        self._writer = None  # type: asyncio.StreamWriter | None
        self._opening = None  # type: asyncio.StreamWriter | None  # the writer while CONNECT/CONNACK is under way
        self._tasks = [None, None]  # type: list[asyncio.Task | None]  # reader, pinger
        self._down = asyncio.Event()
        self._down.set()
        self.error = None  # what ended the last connection (None: our disconnect() or never connected)
        self.session_present = False
        self.connects = 0
        self._last_rx = self._last_tx = self._last_ping = ticks_ms()  # set again by connect()

    # --- connection --------------------------------------------------------

    @property
    def connected(self):
        return self._writer is not None

    async def connect(self):
        """Open the connection (TCP, TLS, CONNECT/CONNACK), resend unacked
        QoS 1 publishes with DUP, restore subscriptions the broker forgot.
        Returns the broker's session-present flag. Raises ConnectRefused,
        ConnectFailed, MQTTError."""
        if self._writer is not None:
            raise MQTTError("already connected: disconnect() first")
        try:
            session_present = await asyncio.wait_for(self._handshake(), self.connect_timeout_s)  # type: int
        except asyncio.TimeoutError:
            self._close_link(self._opening)
            raise ConnectFailed("no CONNACK from %s:%d within %d s (broker down, or TLS/port mismatch?)"
                                % (self.host, self.port, self.connect_timeout_s))
        except MQTTError:
            self._close_link(self._opening)
            raise
        except ValueError as exc:  # MicroPython's ssl: certificate verification failed
            self._close_link(self._opening)
            raise ConnectFailed("TLS with %s:%d failed: %s (check the CA this device trusts and the broker's "
                                "certificate: name or IP, expiry, the device clock)"
                                % (self.host, self.port, str(exc).strip()))
        except OSError as exc:
            self._close_link(self._opening)
            if exc.args and exc.args[0] == ECONNREFUSED:
                raise ConnectFailed("nothing accepts connections at %s:%d: broker down or wrong port"
                                    % (self.host, self.port))
            raise ConnectFailed("connecting to %s:%d failed during TCP/TLS setup (%r): check the port, that TLS is "
                                "on exactly when the listener has it, and that the broker's CA and this device's "
                                "certificate are the right ones" % (self.host, self.port, exc))
        self._writer = self._opening  # connected from here on
        self._opening = None
        self.session_present = bool(session_present)
        self.error = None
        self.connects += 1
        self._down.clear()
        now = ticks_ms()
        self._last_rx = self._last_tx = self._last_ping = now
        self._tasks[0] = asyncio.create_task(self._read_loop())
        if self.keepalive_s:
            self._tasks[1] = asyncio.create_task(self._ping_loop())
        try:
            if not self.clean_session:
                for i in range(len(self._pids)):
                    if self._pids[i] > 0 and self._outcomes[i] is None:
                        await self._send_publish(self._topics[i], self._payloads[i], 1, self._retains[i], True,
                                                 self._pids[i])
            if not self.session_present:
                for topic, qos in self._subscriptions:
                    await self._subscribe_now(topic, qos)
        except MQTTError as exc:  # connected but not usable: end it so the caller can simply retry
            self._lost(exc)
            raise
        return self.session_present

    async def _handshake(self):
        self._opening = None
        self._decoder.reset()
        if self.ssl is None:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        else:
            reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self.ssl,
                                                           server_hostname=self.server_hostname or self.host)
        self._opening = writer  # so a timeout or error can close it
        self._reader = reader
        writer.write(self._connect_packet)
        await writer.drain()
        while True:
            packet = self._decoder.next_packet()
            if packet is not None:
                break
            if not await self._fill():
                raise ConnectFailed("the broker at %s:%d closed the connection before CONNACK (TLS required, or "
                                    "client certificate refused?)" % (self.host, self.port))
        if packet[0] != CONNACK:
            raise ProtocolError("expected CONNACK, got packet type %d" % packet[0])
        if packet[2]:
            raise ConnectRefused(packet[2])
        return packet[1]

    async def _fill(self):
        """Read what the socket has into the decoder; False at end of stream."""
        reader = self._reader
        if reader is None:  # the link was closed meanwhile: read as end of stream
            return False
        space = self._decoder.space()
        if hasattr(reader, "readinto"):  # MicroPython: straight into the buffer
            count = None
            while count is None:  # None: TLS record not complete yet
                count = await reader.readinto(space)
        else:  # CPython's StreamReader has no readinto
            data = await reader.read(len(space))
            count = len(data)
            space[:count] = data
        self._decoder.advance(count)
        return count > 0

    def _close_link(self, writer, graceful=False):
        if writer is None:
            return
        self._writer = self._reader = self._opening = None
        transport = getattr(writer, "transport", None)
        try:
            if transport is not None:  # CPython
                if graceful:
                    writer.close()  # flushes what is buffered (our DISCONNECT)
                else:
                    transport.abort()  # do not wait for a dead peer's TLS close_notify
            else:
                writer.s.close()  # MicroPython: Stream.close() leaves the socket (and mbedTLS state) open
        except OSError:
            pass

    def _lost(self, error, graceful=False):
        """End the connection (idempotent): stop the tasks, close the socket,
        fail what cannot survive it, wake wait_disconnected()."""
        writer = self._writer
        if writer is None:
            return
        self.error = error
        current = asyncio.current_task()
        for index in (0, 1):
            task = self._tasks[index]
            self._tasks[index] = None
            if task is not None and task is not current:
                task.cancel()
        self._close_link(writer, graceful)
        self._draining = False  # a drain on the closed socket must not block the next connection
        self._drained.set()
        failure = error or NotConnected("disconnected by the application")
        if self._sub_pid and self._sub_done is not None:
            self._sub_result = failure
            self._sub_done.set()
        if self.clean_session and self.in_flight():
            lost = ConnectionLost("connection lost before PUBACK (clean session: publish again): %s" % failure)
            for i in range(len(self._pids)):
                if self._pids[i] > 0 and self._outcomes[i] is None:
                    self._outcomes[i] = lost
            _pulse(self._settled)
        self._down.set()

    async def wait_disconnected(self):
        """Wait until the connection ends; return what ended it (None after
        disconnect())."""
        await self._down.wait()
        return self.error

    async def disconnect(self):
        """Send DISCONNECT (the broker then drops the last will) and close."""
        if self._writer is None:
            return
        try:
            await self._write(DISCONNECT_PACKET)
        except MQTTError:
            pass
        self._lost(None, graceful=True)

    # --- tasks ---------------------------------------------------------------

    async def _read_loop(self):
        try:
            while True:
                packet = self._decoder.next_packet()
                if packet is None:
                    if not await self._fill():
                        partial = self._decoder.buffered()
                        raise ConnectionLost("the broker closed the connection" + (
                            " in the middle of a packet (%d bytes of it received)" % partial if partial else ""))
                    continue
                self._last_rx = ticks_ms()
                await self._dispatch(packet)
        except MQTTError as exc:
            self._lost(exc)
        except (OSError, ValueError) as exc:  # ValueError: MicroPython's ssl on a TLS failure
            self._lost(ConnectionLost("reading from the broker failed: %r" % (exc,)))
        except Exception as exc:  # never let a bug in dispatch kill the device silently
            self._lost(MQTTError("internal error in the MQTT reader: %r" % (exc,)))

    async def _dispatch(self, packet):
        kind = packet[0]
        if kind == PUBLISH:
            message = packet[1]
            await self._deliver(message)
            if message.qos:
                puback_into(self._ack, message.pid)
                await self._write(self._ack)
        elif kind == PUBACK:
            for i in range(len(self._pids)):
                if self._pids[i] == packet[1] and self._outcomes[i] is None:
                    self._outcomes[i] = True
                    _pulse(self._settled)
                    break
            # else: a PUBACK for a publish the caller gave up on; nothing to do
        elif kind == SUBACK or kind == UNSUBACK:
            if self._sub_pid and packet[1] == self._sub_pid and self._sub_done is not None:
                self._sub_result = packet[2] if kind == SUBACK else b""
                self._sub_done.set()
        elif kind != PINGRESP:
            raise ProtocolError("unexpected packet type %d on an established connection" % kind)

    async def _ping_loop(self):
        keepalive_ms = self.keepalive_s * 1000
        half = keepalive_ms // 2
        step = max(50, min(keepalive_ms // 4, 1000))
        try:
            while True:
                await sleep_ms(step)
                now = ticks_ms()
                silent = ticks_diff(now, self._last_rx)
                if silent >= keepalive_ms * 3 // 2:
                    self._lost(KeepaliveTimeout("nothing from the broker for %d ms (keepalive %d s): broker or "
                                                "network dead" % (silent, self.keepalive_s)))
                    return
                if ticks_diff(now, self._last_tx) >= half or (silent >= half
                                                              and ticks_diff(now, self._last_ping) >= half):
                    self._last_ping = now
                    await self._write(PINGREQ_PACKET)
        except MQTTError:
            pass  # _write already ended the connection

    # --- writing -------------------------------------------------------------

    # MicroPython's Stream.drain() sends a snapshot of its out_buf and then
    # empties it: bytes written by another task during that drain would be
    # lost. So a packet is written only while no drain is in progress (the
    # wait comes before the transmit buffer is filled), and drain() runs only
    # when the socket did not take everything at once. That also keeps the
    # common path free of a Lock's three coroutine objects per packet.

    async def _writable(self):
        while self._draining:
            self._drained.clear()
            await self._drained.wait()
        if self._writer is None:
            raise NotConnected("not connected to the broker: connect() first")

    async def _write(self, packet):
        if self._draining:  # (no connection: _write_now raises NotConnected)
            await self._writable()
        await self._write_now(packet)

    async def _write_now(self, first, rest=()):
        """Write one packet (optionally in more parts: ``rest``); the caller
        has just awaited _writable(). A failure ends the connection and
        raises ConnectionLost."""
        writer = self._writer
        if writer is None:
            raise NotConnected("not connected to the broker: connect() first")
        try:
            writer.write(first)
            for part in rest:
                writer.write(part)
            # CPython: always drain (it returns at once unless the transport
            # is paused). MicroPython: only when bytes are left over; its
            # drain() would otherwise still yield once, and on the unix port
            # a scheduler pass with a TLS socket in the poll set costs 1 ms
            # (select's ioctl poll period for objects without a fd), which
            # would cap TLS publishing at ~1,000 packets/s there.
            if getattr(writer, "out_buf", True):
                self._draining = True
                try:
                    await writer.drain()
                finally:
                    self._draining = False
                    self._drained.set()
        except (OSError, ValueError) as exc:  # ValueError: MicroPython's ssl on a TLS failure
            error = ConnectionLost("writing to the broker failed: %r" % (exc,))
            if self._writer is writer:  # not a newer connection made meanwhile
                self._lost(error)
            raise error
        except BaseException:
            # Cancelled mid-drain: MicroPython's stream may hold half a
            # packet that a later drain would resend whole; drop the link.
            if self._writer is writer:
                self._lost(ConnectionLost("a write was cancelled mid-packet"))
            raise
        self._last_tx = ticks_ms()

    async def _send_publish(self, topic, payload, qos, retain, dup, pid):
        if topic != self._topic:  # publishing to one topic again and again: encode it once
            topic_bytes = topic.encode()
            if len(topic_bytes) + 9 > len(self._tx):
                raise ValueError("topic %r does not fit tx_size=%d" % (topic, len(self._tx)))
            self._topic, self._topic_bytes = topic, topic_bytes
        topic_bytes = self._topic_bytes
        if self._draining or self._writer is None:
            await self._writable()
        pieces = payload if type(payload) is tuple else (payload,)
        size = 0
        for piece in pieces:
            size += len(piece)
        # No await between filling the transmit buffer and writing it.
        end = publish_header_into(self._tx, topic_bytes, size, qos, retain, dup, pid)
        if end + size <= len(self._tx):  # one write of one buffer
            for piece in pieces:
                self._tx_mv[end:end + len(piece)] = piece
                end += len(piece)
            await self._write_now(self._tx_mv[:end])
        else:  # larger than the buffer: header from the buffer, the payload as it is
            await self._write_now(self._tx_mv[:end], pieces)

    # --- publish -----------------------------------------------------------

    def _next_pid(self):
        while True:
            self._pid = self._pid % 65535 + 1
            if self._pid == self._sub_pid:
                continue
            if self._pid not in self._pids:
                return self._pid

    async def publish(self, topic, payload, qos=0, retain=False):
        """Publish; with qos=1 return once the broker's PUBACK arrives (across
        reconnects when clean_session=False). At most max_inflight QoS 1
        publishes wait at once; more wait here for a free slot. ``payload``:
        bytes (or str), or a tuple of bytes pieces sent one after another,
        never joined (a board's heap need not find one block for the
        message; firmware/uplink.py). Raises NotConnected, ConnectionLost."""
        check_topic_name(topic)
        check_qos(qos)
        if isinstance(payload, str):
            payload = payload.encode()
        if qos == 0:
            await self._send_publish(topic, payload, 0, retain, False, 0)
            return
        if self._writer is None:
            raise NotConnected("not connected to the broker: connect() first")
        i = await self._take_slot()
        try:
            pid = self._pids[i] = self._next_pid()
            self._topics[i], self._payloads[i], self._retains[i] = topic, payload, 1 if retain else 0
            try:
                await self._send_publish(topic, payload, 1, retain, False, pid)
            except ConnectionLost:
                if self.clean_session:
                    raise
                # persistent session: connect() resends it with DUP
            while self._outcomes[i] is None:
                await self._settled.wait()
            if self._outcomes[i] is not True:
                raise self._outcomes[i]
        finally:
            self._pids[i] = 0
            self._topics[i] = self._payloads[i] = self._outcomes[i] = None
            _pulse(self._slot_freed)

    async def _take_slot(self):
        while True:
            for i in range(len(self._pids)):
                if self._pids[i] == 0:
                    self._pids[i] = -1  # reserved until its packet id is set
                    return i
            await self._slot_freed.wait()

    def in_flight(self):
        """How many QoS 1 publishes wait for their PUBACK."""
        count = 0
        for i in range(len(self._pids)):
            if self._pids[i] > 0 and self._outcomes[i] is None:
                count += 1
        return count

    # --- subscribe -------------------------------------------------------------

    async def subscribe(self, topic, qos=1):
        """Subscribe and wait for SUBACK; returns the granted QoS. The
        subscription is restored after a reconnect that found no session.
        Raises SubscribeRefused, NotConnected, MQTTError."""
        check_topic_filter(topic)
        check_qos(qos)
        granted = await self._subscribe_now(topic, qos)
        for index in range(len(self._subscriptions)):
            if self._subscriptions[index][0] == topic:
                self._subscriptions[index] = (topic, qos)
                break
        else:
            if len(self._subscriptions) >= self._max_subscriptions:
                raise ValueError("more than max_subscriptions=%d topic filters" % self._max_subscriptions)
            self._subscriptions.append((topic, qos))
        return granted

    async def unsubscribe(self, topic):
        check_topic_filter(topic)
        await self._request(encode_unsubscribe, topic, None)
        for index in range(len(self._subscriptions)):
            if self._subscriptions[index][0] == topic:
                self._subscriptions.pop(index)
                break

    async def _subscribe_now(self, topic, qos):
        codes = await self._request(encode_subscribe, topic, qos)
        if len(codes) != 1 or codes[0] == SUBACK_FAILURE:
            raise SubscribeRefused("broker refused the subscription to %r (SUBACK %r): check its ACL for this client"
                                   % (topic, codes))
        return codes[0]

    async def _request(self, encode, topic, qos):
        """One SUBSCRIBE/UNSUBSCRIBE at a time, waiting for its answer."""
        lock, done = self._sub_lock, self._sub_done
        if lock is None or done is None:
            lock = self._sub_lock = asyncio.Lock()
            done = self._sub_done = asyncio.Event()
        async with lock:
            if self._writer is None:
                raise NotConnected("not connected to the broker: connect() first")
            self._sub_pid = 0
            pid = self._next_pid()
            self._sub_pid = pid
            self._sub_result = None
            done.clear()
            try:
                await self._write(encode(pid, topic) if qos is None else encode(pid, topic, qos))
                try:
                    await asyncio.wait_for(done.wait(), self.response_timeout_s)
                except asyncio.TimeoutError:
                    raise MQTTError("no answer to (UN)SUBSCRIBE %r within %d s" % (topic, self.response_timeout_s))
            finally:
                self._sub_pid = 0
            if isinstance(self._sub_result, Exception):
                raise self._sub_result
            return self._sub_result

    # --- receive -------------------------------------------------------------

    async def _deliver(self, message):
        if self.on_message is not None:
            try:
                self.on_message(message)
            except Exception as exc:  # the application's bug must not drop the connection
                print("mqtt: on_message raised %r for %r" % (exc, message))
            return
        inbox, ready, space = self._inbox_made()
        while len(inbox) >= self._inbox_size:
            space.clear()
            await space.wait()
        inbox.append(message)
        ready.set()

    async def next_message(self):
        """The next received message (when no on_message callback is set)."""
        inbox, ready, space = self._inbox_made()
        while not len(inbox):
            ready.clear()
            await ready.wait()
        message = inbox.popleft()
        space.set()
        return message

    def _inbox_made(self):
        """(messages, ready, space): the inbox and its events, made on first use."""
        if self._inbox is None:
            self._inbox = (deque((), self._inbox_size), asyncio.Event(), asyncio.Event())
        return self._inbox

    def __aiter__(self):
        return self

    async def __anext__(self):
        return await self.next_message()


def tls_context(ca_der, cert_der=None, key_der=None):
    """A MicroPython client SSLContext from DER bytes (mbedTLS there takes
    DER, not PEM): verifies the broker against ``ca_der`` and presents the
    device certificate for mutual TLS. On CPython build an ssl.SSLContext
    from PEM files instead (edge_agent.broker.client_context)."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # The stubs give ssl.SSLContext no verify_mode, but MicroPython's has it
    # (a property over tls.SSLContext's) and it defaults to CERT_NONE there:
    # without this line the broker's certificate would not be checked.
    context.verify_mode = ssl.CERT_REQUIRED  # type: ignore[attr-defined]
    context.load_verify_locations(cadata=ca_der)
    if cert_der is not None:
        context.load_cert_chain(cert_der, key_der)
    return context
