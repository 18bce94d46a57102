"""The reference receiver: the cloud side's starting point.

Subscribes with an MQTT v5 shared subscription (``$share/<group>/ea/v1/+/+``)
so several instances split a fleet between them, verifies every envelope
against the registry, drops duplicates and reports gaps by (device, seq),
and stores signals (storage.py: SQLite or PostgreSQL). A message is
acknowledged to the broker only after it is committed (manual PUBACK), so a
receiver crash loses nothing: the broker redelivers what was not
acknowledged.
"""

import asyncio
import logging
import os
import time
import traceback

import aiomqtt
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

from edge_agent.core import cbor
from edge_agent.core import signals as sg
from edge_agent.receiver import alert_waves
from edge_agent.receiver.printable import describe, duration, short
from edge_agent.receiver.registry import Rejection
from edge_agent.receiver.routing import AlertRouting
from edge_agent.receiver.storage import MAX_INTEGER
from edge_agent.tasks import until_one_fails

log = logging.getLogger("edge_agent.receiver")

SUBSCRIPTION = "%s/+/+" % sg.TOPIC_ROOT
# Messages already waiting are committed together: one transaction per
# message would cap the receiver at the disk's commit rate.
BATCH_MAX = 200
ADVISORY_BATCH = 500
# How often a receiver looks for advisories queued and not sent (another
# receiver may have died between its commit and the broker's PUBACK).
UNSENT_CHECK_S = 5.0
# A batch the database gave up (a deadlock between receivers) is handled
# again, at most this many times before the receiver stops.
BATCH_ATTEMPTS = 5
# Reconnect backoff: doubling from the first to the most, per outage
# (of the broker, or of a PostgreSQL server).
RECONNECT_FIRST_S = 0.5
RECONNECT_MAX_S = 15
# A signal dated further than this ahead of the receiver's clock counts as
# a clock anomaly of its device (docs/receiver.md). Fleet escalation never
# takes a device time later than the arrival (receiver/fleet.py).
CLOCK_SKEW_MS = 5 * 60 * 1000

# What handle() returns, besides a rejection reason.
ACCEPTED = "accepted"  # at least one new signal stored
DUPLICATE = "duplicate"  # verified, every signal already stored
STATUS = "status"  # a registered device's status, stored as a claim
IGNORED = "ignored"  # a retained status of a device not in the registry, replayed by the broker
COMMAND = "command"  # a downlink command to a device: not ours to judge
INTERNAL_ERROR = "internal-error"  # a bug met by this message: rejected, never a crash
# Only while a batch is handled without savepoints (_handle_batch): a single
# alert held to be stored with the batch's others (alert_waves.py).
WAITING = "waiting"


def now_ms():
    return time.time_ns() // 1_000_000


class Receiver:
    def __init__(self, settings, registry, storage, group="edge-agent-receivers", client_id=None, fleet=None,
                 routing=None, repair=None):
        """``fleet``: a receiver.fleet.FleetWatch (fleet-wide escalation and
        advisories), or None. ``routing``: a receiver.routing.AlertRouting
        (tickets and webhooks); by default tickets only. ``repair``: a
        receiver.repair.RepairLoop (asks devices for missing seqs), or None."""
        self.settings = settings
        self.fleet = fleet
        self.repair = repair
        self.registry = registry
        self.storage = storage
        self.routing = routing if routing is not None else AlertRouting(storage, registry=registry)
        self.group = group
        self.client_id = client_id
        self.accepted = 0
        self.duplicates = 0
        self.rejected = {}
        self.ignored = 0
        self.anomalies = {}  # e.g. "clock-ahead": signals dated ahead of our clock
        self.stored_by_kind = {}  # kind -> fresh signals stored (the metrics')
        self.on_commit = []  # callables(messages, seconds handling and committing them): metrics
        self._clock_warned = set()
        # Single alerts waiting to be stored in waves, while a batch is
        # handled without savepoints; None otherwise (each stored at once).
        self._waiting = None
        self._waiting_ms = None
        self.connected = asyncio.Event()

    @property
    def topic_filter(self):
        return "$share/%s/%s" % (self.group, SUBSCRIPTION) if self.group else SUBSCRIPTION

    def handle(self, topic, payload, received_ms, retained=False):
        """Process one message (a signal, a bundle, a status) inside the
        current transaction. Returns ACCEPTED, DUPLICATE, STATUS, IGNORED,
        COMMAND or the reason it was rejected (stored in rejections).

        No message, whatever its bytes or topic, makes this raise: an
        unexpected exception undoes the message's writes (a savepoint) and
        becomes the rejection "internal-error" with a bounded description.
        Only the database's own failures (disk full, locked: not about the
        message) propagate, so nothing of the batch is acknowledged and the
        broker delivers it again. ``retained``: the broker replayed this
        from its retained store (at subscription), not a message sent now."""
        self.storage.savepoint()
        try:
            outcome = self._handle(topic, payload, received_ms, retained)
        except self.storage.FATAL_ERRORS + (MemoryError,):
            raise
        except Exception as exc:
            self.storage.rollback_message()
            return self._internal_error(topic, payload, received_ms, exc)
        self.storage.release()
        return outcome

    def _handle(self, topic, payload, received_ms, retained):
        parts = topic.split("/")
        if len(parts) == 4 and parts[3] == "status":
            return self._status(parts[2], topic, payload, received_ms, retained)
        if len(parts) == 4 and parts[3] == "cmd":
            return COMMAND  # downlink to a device (ours or an operator's): not a signal
        try:
            fresh = self.accept(topic, payload, received_ms)
        except Rejection as exc:
            return self._reject(topic, exc.reason, exc.detail, payload, received_ms)
        if fresh is None:
            return WAITING
        _log_alerts(fresh)
        return ACCEPTED if fresh else DUPLICATE

    def _reject(self, topic, reason, detail, payload, received_ms):
        self._store_waiting_alerts()
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        self.storage.store_rejection(topic, reason, detail, payload, received_ms)
        log.warning("rejected message on %s: %s: %s", short(topic), reason, detail)
        return reason

    def _internal_error(self, topic, payload, received_ms, exc):
        detail = "%s, at %s" % (describe(exc), _where(exc))
        log.error("internal error on a message on %s (rejected, the receiver carries on): %s", short(topic), detail)
        return self._reject(topic, INTERNAL_ERROR, detail, payload, received_ms)

    def accept(self, topic, payload, received_ms):
        """Verify and store one signal message (a signal or a bundle) inside
        the current transaction; return its signals not stored before
        (duplicates are counted and dropped), or None for a single alert
        left waiting (_handle_batch). Raises Rejection."""
        bodies = []  # each signal's body as signed: stored as is, not encoded again
        signals = self.registry.open_signals(payload, topic, bodies)
        for signal in signals:
            if signal.seq > MAX_INTEGER or signal.time_ms > MAX_INTEGER:
                raise Rejection("bad-signal", "seq or time beyond 2**63 - 1 (the receiver stores 64-bit integers)")
        # The database decides what is new (a duplicate, or a redelivery
        # another receiver on the same database stored first), and records
        # the message in its device's row (a message holds one device's signals).
        # A message of one alert: its ticket changes in the statement that
        # stores it (storage.store_alerts), or with the batch's other alerts.
        alone = len(signals) == 1 and signals[0].kind == sg.KIND_ALERT
        if alone:
            alert = (payload, signals[0], bodies[0])
            if self._waiting is not None:
                self._waiting.append(alert)  # at the batch's time of arrival, _waiting_ms
                return None
            (new, ticket_row), = self.storage.store_alerts([alert], received_ms)
            return self._stored(signals, [new], received_ms, ticket_row)
        self._store_waiting_alerts()
        return self._stored(signals, self.storage.store_message(payload, signals, bodies, received_ms), received_ms)

    def _store_waiting_alerts(self):
        """Store the single alerts waiting (accept()), wave by wave, each
        wave's followed up before the next is stored."""
        if not self._waiting:
            return
        waiting, self._waiting = self._waiting, []
        received_ms = self._waiting_ms
        for wave in alert_waves.waves(waiting):
            for (_, signal, _), (new, ticket_row) in zip(wave, self.storage.store_alerts(wave, received_ms)):
                _log_alerts(self._stored([signal], [new], received_ms, ticket_row))

    def _stored(self, signals, stored, received_ms, ticket_row=None):
        """Follow up a message's signals once stored (``stored``: a new flag
        each): counters, clock check, tickets and routes, fleet escalation,
        gap repair. ``ticket_row``: for a single alert, what its ticket's
        statement returned. Returns the new signals."""
        alone = len(signals) == 1 and signals[0].kind == sg.KIND_ALERT
        fresh = [signal for signal, new in zip(signals, stored) if new]
        self._check_clock(signals[0].device, fresh, received_ms)
        self.accepted += len(fresh)
        self.duplicates += len(signals) - len(fresh)
        for signal in fresh:
            self.stored_by_kind[signal.kind] = self.stored_by_kind.get(signal.kind, 0) + 1
            if alone:
                self.routing.observe_changed(signal, received_ms, ticket_row)
            elif signal.kind == sg.KIND_ALERT:
                self.routing.observe(signal, received_ms)
        if self.fleet is not None:
            for signal in fresh:
                self.fleet.observe(signal, received_ms)
        if self.repair is not None:
            for signal in fresh:
                self.repair.observe(signal, received_ms)
        return fresh

    def _check_clock(self, device, fresh, received_ms):
        """Count signals dated ahead of the receiver's clock by more than
        CLOCK_SKEW_MS (a device clock that is off: stored, flagged)."""
        ahead = [s.time_ms - received_ms for s in fresh if s.time_ms - received_ms > CLOCK_SKEW_MS]
        if not ahead:
            return
        self.storage.clock_ahead(device, max(ahead), len(ahead))
        self.anomalies["clock-ahead"] = self.anomalies.get("clock-ahead", 0) + len(ahead)
        if device not in self._clock_warned:
            self._clock_warned.add(device)
            log.warning("device %s: its signals are dated %s ahead of this receiver's clock (more than %s "
                        "tolerated): its clock is off; fleet escalation counts them at their arrival",
                        device, duration(max(ahead)), duration(CLOCK_SKEW_MS))

    def _status(self, device, topic, payload, received_ms, retained):
        self._store_waiting_alerts()  # a status and fresh signals set the device's row in their order
        # Status messages are retained and written by the broker itself (the
        # last will), so they cannot be signed: anyone who can publish can
        # forge one. They are a claim about the device that its signed
        # signals confirm or contradict (storage.presence), and never enter
        # the signal record.
        try:
            status = cbor.loads(payload)
        except cbor.CBORError as exc:
            return self._reject(topic, "bad-status", "not CBOR: %s" % short(str(exc)), payload, received_ms)
        problem = _status_problem(status, device)
        if problem:
            return self._reject(topic, "bad-status", problem, payload, received_ms)
        if device not in self.registry.devices:
            if retained:
                # Replayed by the broker at every subscription: a shared
                # broker keeps other registries' devices' statuses. Counted,
                # never shown; one sent now is rejected with its evidence.
                self.ignored += 1
                return IGNORED
            return self._reject(topic, "unknown-device", "status of a device not in the registry", payload,
                                received_ms)
        self.storage.set_online(device, status[sg.K_ONLINE], received_ms)
        return STATUS

    async def run(self):
        """Receive until cancelled; reconnects with backoff."""
        delay = RECONNECT_FIRST_S
        while True:
            try:
                await self._session()
            except aiomqtt.MqttError as exc:
                if self.connected.is_set():
                    # The session was up (subscribed): this is a new outage,
                    # not the next failure of one, so the backoff starts over.
                    delay = RECONNECT_FIRST_S
                self.connected.clear()
                log.warning("broker %s: %s; reconnecting in %.1f s", self.settings.describe(), exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)

    async def _session(self):
        s = self.settings
        client = aiomqtt.Client(
            s.host, s.port, tls_context=s.tls_context, keepalive=s.keepalive_s,
            identifier=self.client_id, protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False if self.client_id else True,
            properties=_session_properties() if self.client_id else None,
        )
        # aiomqtt has no public switch for manual acknowledgement; paho (its
        # engine) does. With it, PUBACK goes out only after our commit.
        client._client.manual_ack_set(True)
        async with client:
            await client.subscribe(self.topic_filter, qos=1)
            log.info("receiving %s on %s", self.topic_filter, s.describe())
            self.connected.set()
            if self.fleet is not None:
                await self._send_advisories_through_outages(client)  # queued before a restart or outage
            if self.repair is None:
                await self._receive(client)
            else:
                await until_one_fails(self._receive(client), self.repair.run(client))

    async def _receive(self, client):
        """Handle the session's messages, batch by batch, until it ends."""
        messages = client.messages
        unsent_checked = time.monotonic()
        while True:
            batch = [await messages.__anext__()]
            # Take only what is already queued. Never time out a pending
            # __anext__ (wait_for): aiomqtt cancels its queue.get task,
            # and a message that task already dequeued is lost (seen
            # here: 1-4 of 300 messages missing).
            while len(messages) and len(batch) < BATCH_MAX:
                batch.append(await messages.__anext__())
            await self._store_through_outages(batch)
            for message in batch:
                if message.qos > 0:
                    client._client.ack(message.mid, message.qos)
            if self.fleet is not None and (self.fleet.raised_since_send
                                           or time.monotonic() - unsent_checked > UNSENT_CHECK_S):
                unsent_checked = time.monotonic()
                await self._send_advisories_through_outages(client)

    async def _store_through_outages(self, batch):
        """_store_batch, waiting out a lost database server: the batch
        stays here unacknowledged (the broker holds back what follows)
        while the storage reconnects with backoff, then it is handled again
        from the start. A batch whose COMMIT went through just before the
        connection broke is stored once all the same: its signals are then
        duplicates of themselves (dropped, counted)."""
        while True:
            try:
                self._store_batch(batch)
                return
            except self.storage.LOST_ERRORS as exc:
                await self._reconnect_storage(exc, "a batch of %d messages, none acknowledged" % len(batch))

    async def _send_advisories_through_outages(self, client):
        try:
            await self._send_advisories(client)
        except self.storage.LOST_ERRORS as exc:
            # What was not marked sent is sent at the next turn (at-least-once,
            # as after a crash).
            await self._reconnect_storage(exc, "fleet advisories, sent at the next turn")

    async def _reconnect_storage(self, exc, waiting):
        """Reconnect the storage after ``exc`` (its LOST_ERRORS), doubling the
        wait from RECONNECT_FIRST_S to RECONNECT_MAX_S; the MQTT session
        stays up meanwhile (the connect runs in a thread)."""
        delay = RECONNECT_FIRST_S
        log.warning("database %s lost (%s); %s; reconnecting in %.1f s", self.storage.name,
                    self.storage.describe_error(exc), waiting, delay)
        while True:
            await asyncio.sleep(delay)
            try:
                await asyncio.to_thread(self.storage.reconnect)
            except self.storage.LOST_ERRORS as again:
                delay = min(delay * 2, RECONNECT_MAX_S)
                log.warning("database %s: %s; reconnecting in %.1f s", self.storage.name,
                            self.storage.describe_error(again), delay)
                continue
            log.warning("database %s: reconnected", self.storage.name)
            return

    def _store_batch(self, batch):
        """Handle and commit a batch. Sorted by device (a stable sort: each
        device's messages keep their order), so receivers sharing a database
        lock devices' rows in one order; a batch the database aborts anyway
        (a deadlock) is undone and handled again message by message,
        counters included.

        Messages are first handled without a savepoint each (two statements
        fewer a message: on PostgreSQL, a round trip). The rare message that
        raises (handle()'s internal-error case) undoes the batch, which is
        then handled again under a savepoint per message, so that message
        alone is rejected and the others are stored as before."""
        batch = sorted(batch, key=lambda message: str(message.topic).split("/")[2:3])
        guarded = False
        attempt = 0
        while True:
            counters = self._counters()
            started = time.monotonic()
            received = now_ms()
            self.storage.begin()
            try:
                self._handle_batch(batch, received, guarded)
                self.storage.commit()
                for callback in self.on_commit:
                    callback(len(batch), time.monotonic() - started)
                return
            except _MessageFailed:
                self.storage.rollback()
                self._restore(counters)
                guarded = True
            except self.storage.RETRY_ERRORS as exc:
                self.storage.rollback()
                self._restore(counters)
                # Again message by message: a wave of alerts (alert_waves.py)
                # locks its tickets in no set order; one message at a time, in
                # device order, receivers lock rows in one order.
                guarded = True
                attempt += 1
                if attempt == BATCH_ATTEMPTS:
                    raise
                log.warning("database aborted a batch of %d messages (%s); handling it again", len(batch),
                            short(str(exc)))
            except self.storage.LOST_ERRORS:
                self._restore(counters)  # the transaction went with the connection
                raise

    def _handle_batch(self, batch, received, guarded):
        if guarded:
            for message in batch:
                self.handle(str(message.topic), bytes(message.payload), received, bool(message.retain))
            return
        # Without savepoints, single alerts wait and are stored together.
        self._waiting, self._waiting_ms = [], received
        try:
            for message in batch:
                self._unguarded(self._handle, str(message.topic), bytes(message.payload), received,
                                bool(message.retain))
            self._unguarded(self._store_waiting_alerts)
        finally:
            self._waiting = None

    def _unguarded(self, step, *args):
        """``step(*args)`` with what a message raises made _MessageFailed
        (the batch is handled again, guarded); the database's own failures
        pass as they are."""
        try:
            step(*args)
        except self.storage.FATAL_ERRORS + (MemoryError,):
            raise
        except Exception as exc:
            raise _MessageFailed() from exc

    def _counters(self):
        return (self.accepted, self.duplicates, dict(self.rejected), self.ignored, dict(self.anomalies),
                len(self.fleet.raised) if self.fleet is not None else 0, dict(self.stored_by_kind))

    def _restore(self, counters):
        (self.accepted, self.duplicates, self.rejected, self.ignored, self.anomalies, raised,
         self.stored_by_kind) = counters
        if self.fleet is not None:
            del self.fleet.raised[raised:]

    async def _send_advisories(self, client):
        """Publish the fleet advisories queued in the database (QoS 1) and
        mark each sent at its PUBACK; what a crash interrupts goes at the
        next session. Receivers sharing a database take turns (the
        storage's send lock): one publishes, the others skip."""
        self.fleet.raised_since_send = False
        if not self.storage.try_send_lock():
            return
        try:
            while True:
                queued = self.fleet.unsent(limit=ADVISORY_BATCH)
                if not queued:
                    return
                # Rows of a model's devices share one message on the model's topic.
                messages = dict(((topic, payload), None) for _, _, topic, payload in queued)
                await asyncio.gather(*(client.publish(topic, payload, qos=1) for topic, payload in messages))
                self.storage.begin()
                self.fleet.mark_sent([(incident, device) for incident, device, _, _ in queued], now_ms())
                self.storage.commit()
                log.warning("fleet: advisories for %d devices published in %d messages", len(queued), len(messages))
        finally:
            self.storage.send_unlock()


class _MessageFailed(Exception):
    """A message raised while its batch was handled without savepoints."""


def _log_alerts(fresh):
    """A log line for each raised alert among ``fresh`` signals."""
    for signal in fresh:
        if signal.kind == sg.KIND_ALERT and signal.body.get(sg.A_ACTIVE):
            log.warning("alert %s #%d: %s", signal.device, signal.seq, short(signal.body.get(sg.A_TEXT)))


def _status_problem(status, device):
    """Why a decoded status is not the documented map {0: 1, 2: device, 7:
    online} (docs/wire-format.md) for the topic's ``device``, or None."""
    if not isinstance(status, dict):
        return "a status must be a map {0: 1, 2: device, 7: online}, got %s" % short(status)
    version = status.get(sg.K_VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or version != sg.VERSION:
        return "version (key 0) must be %d, got %s" % (sg.VERSION, short(version))
    claimed = status.get(sg.K_DEVICE)
    if not isinstance(claimed, str) or claimed != device:
        return "device (key 2) %s is not the topic's device %s" % (short(claimed), short(device))
    if not isinstance(status.get(sg.K_ONLINE), bool):
        return "online (key 7) must be true or false, got %s" % short(status.get(sg.K_ONLINE))
    return None


def _where(exc):
    """Where an unexpected exception was raised: the innermost frames as
    file:line function (code positions only, no data)."""
    frames = traceback.extract_tb(exc.__traceback__)[-3:]
    return " < ".join("%s:%d %s" % (os.path.basename(f.filename), f.lineno, f.name) for f in reversed(frames))


def _session_properties():
    # Keep the session (and its queued messages) for an hour when a named
    # receiver disconnects, so a restart resumes instead of losing messages.
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 3600
    return properties
