"""The reference receiver: the cloud side's starting point.

Subscribes with an MQTT v5 shared subscription (``$share/<group>/ea/v1/+/+``)
so several instances split a fleet between them, verifies every envelope
against the registry, drops duplicates and reports gaps by (device, seq),
and stores signals in SQLite. A message is acknowledged to the broker only
after it is committed (manual PUBACK), so a receiver crash loses nothing:
the broker redelivers what was not acknowledged.
"""

import asyncio
import logging
import time

import aiomqtt
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

from edge_agent.core import cbor
from edge_agent.core import signals as sg
from edge_agent.receiver.registry import Rejection

log = logging.getLogger("edge_agent.receiver")

SUBSCRIPTION = "%s/+/+" % sg.TOPIC_ROOT
# Messages already waiting are committed together: one SQLite transaction
# per message would cap the receiver at the disk's commit rate.
BATCH_MAX = 200
ADVISORY_BATCH = 500


def now_ms():
    return time.time_ns() // 1_000_000


class Receiver:
    def __init__(self, settings, registry, storage, group="edge-agent-receivers", client_id=None, fleet=None):
        """``fleet``: a receiver.fleet.FleetWatch (fleet-wide escalation and
        advisories), or None."""
        self.settings = settings
        self.fleet = fleet
        self.registry = registry
        self.storage = storage
        self.group = group
        self.client_id = client_id
        self.accepted = 0
        self.duplicates = 0
        self.rejected = {}
        self.connected = asyncio.Event()

    @property
    def topic_filter(self):
        return "$share/%s/%s" % (self.group, SUBSCRIPTION) if self.group else SUBSCRIPTION

    def handle(self, topic, payload, received_ms):
        """Process one message (a signal or a bundle) inside the current
        transaction. Returns "accepted" (at least one new signal),
        "duplicate", "status" or the rejection reason."""
        parts = topic.split("/")
        if len(parts) == 4 and parts[3] == "status":
            return self._status(parts[2], payload, received_ms)
        if len(parts) == 4 and parts[3] == "cmd":
            return "command"  # downlink to a device (ours or an operator's): not a signal
        try:
            fresh = self.accept(topic, payload, received_ms)
        except Rejection as exc:
            self.rejected[exc.reason] = self.rejected.get(exc.reason, 0) + 1
            self.storage.store_rejection(topic, exc.reason, exc.detail, payload, received_ms)
            log.warning("rejected message on %s: %s", topic, exc)
            return exc.reason
        for signal in fresh:
            if signal.kind == sg.KIND_ALERT and signal.body.get(sg.A_ACTIVE):
                log.warning("alert %s #%d: %s", signal.device, signal.seq, signal.body.get(sg.A_TEXT))
        return "accepted" if fresh else "duplicate"

    def accept(self, topic, payload, received_ms):
        """Verify and store one signal message (a signal or a bundle) inside
        the current transaction; return its signals not stored before
        (duplicates are counted and dropped). Raises Rejection."""
        signals = self.registry.open_signals(payload, topic)
        fresh = [s for s in signals if not self.storage.has(s.device, s.seq)]
        if fresh:
            envelope_id = self.storage.store_envelope(payload)
            for signal in fresh:
                self.storage.store_signal(signal, envelope_id, received_ms)
        # A message holds one device's signals: one row update for all of them.
        self.storage.seen(signals[0].device, received_ms, len(signals) - len(fresh))
        self.accepted += len(fresh)
        self.duplicates += len(signals) - len(fresh)
        if self.fleet is not None:
            for signal in fresh:
                self.fleet.observe(signal, received_ms)
        return fresh

    def _status(self, device, payload, received_ms):
        # Status messages are retained and written by the broker itself (the
        # last will), so they cannot be signed; they only inform the
        # display and never enter the signal record.
        try:
            status = cbor.loads(payload)
            online = status[sg.K_ONLINE]
        except (cbor.CBORError, KeyError, TypeError) as exc:
            self.rejected["bad-status"] = self.rejected.get("bad-status", 0) + 1
            self.storage.store_rejection("ea/v1/%s/status" % device, "bad-status", str(exc), payload, received_ms)
            return "bad-status"
        if device in self.registry.devices:
            self.storage.set_online(device, bool(online), received_ms)
        return "status"

    async def run(self):
        """Receive until cancelled; reconnects with backoff."""
        delay = 0.5
        while True:
            try:
                await self._session()
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                log.warning("broker %s: %s; reconnecting in %.1f s", self.settings.describe(), exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15)

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
                await self._send_advisories(client)  # queued before a restart or outage
            messages = client.messages
            while True:
                batch = [await messages.__anext__()]
                # Take only what is already queued. Never time out a pending
                # __anext__ (wait_for): aiomqtt cancels its queue.get task,
                # and a message that task already dequeued is lost (seen
                # here: 1-4 of 300 messages missing).
                while len(messages) and len(batch) < BATCH_MAX:
                    batch.append(await messages.__anext__())
                received = now_ms()
                self.storage.begin()
                for message in batch:
                    self.handle(str(message.topic), bytes(message.payload), received)
                self.storage.commit()
                for message in batch:
                    if message.qos > 0:
                        client._client.ack(message.mid, message.qos)
                if self.fleet is not None and self.fleet.raised_since_send:
                    await self._send_advisories(client)

    async def _send_advisories(self, client):
        """Publish the fleet advisories queued in the database (QoS 1) and
        mark each sent at its PUBACK; what a crash interrupts goes at the
        next session."""
        self.fleet.raised_since_send = False
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


def _session_properties():
    # Keep the session (and its queued messages) for an hour when a named
    # receiver disconnects, so a restart resumes instead of losing messages.
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 3600
    return properties
