"""MQTT uplink on the gateway (aiomqtt): drains the durable store to the
broker, most urgent first, and acknowledges only what the broker has.

Topics (docs/wire-format.md): signals go to ``ea/v1/<device>/<kind>``; a
retained ``ea/v1/<device>/status`` says online, and the broker's last will
says offline when the session dies uncleanly.

The loop, per session:

    rewind the store to its acknowledged positions (resend what was in flight)
    repeat:
        batch = store.read()            # the most urgent lane with records
        publish it, QoS 1               # alerts one per message; the rest in
                                        # bundles: one signature, many signals
        await every PUBACK, then store.ack(batch)

Preemption: a batch is small (BATCH_RECORDS records, a few publishes), and
the next read always starts from the most urgent lane, so an alert raised
while a 100k telemetry backlog drains waits for at most one batch.
Pacing: ``drain_rate`` (signals/s) throttles the non-urgent lanes only, so
a fleet coming back online does not flatten the broker while alerts still
go at once. Reconnects back off exponentially with full jitter.

Gap repair (``replays``, a core repair.ReplayService): records a receiver
asked for again are republished unchanged between batches, only when no
record of priority 0-1 waits (an alert read first is sent first) and at
the service's own rate; they are not acknowledged in the store (they were
already). A replayed signal of priority 0-1 goes alone, the others in
bundles, as when they were first sent.

Listening for signed commands (``listen()``), the session is MQTT 5 so the
agent can tell the broker the largest packet it takes (Maximum Packet
Size on CONNECT, MAX_PACKET_BYTES: one command of the core's bound plus
its topic and headers): the broker drops a larger publish for this client
instead of sending it, so a 30 MB publish on the command topic never
reaches the agent's memory (paho reads a packet whole before anything can
look at it). What the broker does send and is still over the bound, the
core refuses unparsed (``too-large``). The session is persistent (clean
start off, a session that never expires), as MQTT 3.1.1's clean_session
False was.
"""

import asyncio
import logging
import random
import time

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.core import bundle
from edge_agent.core import signals as sg
from edge_agent.core.operator import MAX_COMMAND_BYTES
from edge_agent.core.signals import status_payload, status_topic

log = logging.getLogger("edge_agent.gateway.uplink")

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
# Records read per batch: small enough that an alert is never stuck behind
# much telemetry, large enough to keep the pipe full.
BATCH_RECORDS = 256
# Bundle limits: mosquitto's default message_size_limit is 256 MiB, but
# small brokers and gateways choke long before; 64 KiB keeps one publish
# well under a TCP window on a slow link.
BUNDLE_MAX_BYTES = 64 * 1024
PUBLISH_TIMEOUT_S = 20
# Lanes at or below this priority are never paced or bundled.
URGENT_PRIORITY = sg.PRIORITY_HIGH
# The largest packet the broker may send a listening agent (MQTT 5 Maximum
# Packet Size): a command at the core's bound, its topic (at most ~90
# bytes: a 64-character model or device id) and the PUBLISH headers and
# properties a broker adds.
MAX_PACKET_BYTES = MAX_COMMAND_BYTES + 1024
SESSION_NEVER_EXPIRES = 0xFFFFFFFF  # MQTT 5 Session Expiry Interval: kept until the device is back


def group_for_publish(records, urgent):
    """[(kind, [records])] to publish, in the gateway's bundle limit."""
    return bundle.group_for_publish(records, urgent, BUNDLE_MAX_BYTES)


class Pacer:
    """A token bucket over signals/s for the backlog lanes (None: no limit)."""

    def __init__(self, rate, clock=time.monotonic, sleep=asyncio.sleep):
        self.rate = rate
        self.clock = clock
        self.sleep = sleep
        self.allowance = 0.0
        self.last = None

    async def spend(self, count):
        if not self.rate:
            return
        now = self.clock()
        if self.last is not None:
            # At most one second of credit: a quiet hour is not a licence
            # to burst an hour's worth at once.
            self.allowance = min(self.rate, self.allowance + (now - self.last) * self.rate)
        self.last = now
        self.allowance -= count
        if self.allowance < 0:
            await self.sleep(-self.allowance / self.rate)


class Uplink:
    """Publishes the store's signals sealed by ``identity`` (COSE)."""

    def __init__(self, settings, identity, store, drain_rate=None, on_error=None):
        self.settings = settings
        self.identity = identity
        self.device_id = identity.device_id
        self.store = store
        self.pacer = Pacer(drain_rate)
        self.wakeup = asyncio.Event()
        self.online = asyncio.Event()
        self.client = None  # the connected client, during a session
        self.published = 0  # signals acknowledged by the broker
        self.last_puback_monotonic = None  # when the last batch was acknowledged (the metrics')
        self.messages = 0  # MQTT messages acknowledged
        self.connects = 0
        # Seams for the fleet simulator (simulator/fleet/run.py): jitter False
        # waits the whole backoff (the thundering herd, for comparison);
        # on_connect() is called at each CONNACK, to count connects.
        self.jitter = True
        self.on_connect = None
        # The signed downlink (downlink.py): topics subscribed at QoS 1 in
        # every session, each message handed to on_message(topic, payload).
        self.subscriptions = []
        self.on_message = None
        self.on_subscribed = None
        self.replays = None  # a repair.ReplayService (downlink_setup.py), or None
        self.replayed = 0  # records republished for a gap repair

    def listen(self, topics, on_message, on_subscribed=None):
        """Receive on ``topics`` from the next session on. The session is
        then persistent (MQTT 5, clean start off, never expiring), so
        commands published while the device is offline wait at the broker,
        and says the largest packet the agent takes (MAX_PACKET_BYTES)."""
        self.subscriptions = list(topics)
        self.on_message = on_message
        self.on_subscribed = on_subscribed

    def notify(self):
        """Something was appended to the store: wake the sender."""
        self.wakeup.set()

    async def run(self):
        backoff = BACKOFF_FIRST_S
        while True:
            connects = self.connects
            try:
                await self._session()
            except aiomqtt.MqttError as exc:
                self.online.clear()
                if self.connects != connects:
                    # The session had connected: a link that was up is a
                    # fresh outage, not the next failure of the last one.
                    backoff = BACKOFF_FIRST_S
                # Full jitter (AWS architecture blog): a fleet that lost the
                # broker together must not come back together.
                wait = random.uniform(0, backoff) if self.jitter else backoff
                log.warning("broker %s unreachable (%s); retrying in %.1f s", self.settings.describe(), exc, wait)
                await asyncio.sleep(wait)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
            else:
                backoff = BACKOFF_FIRST_S

    def _session_options(self):
        """How to connect: MQTT 3.1.1 for sending only; listening, MQTT 5
        with a persistent session and the largest packet we take."""
        if not self.subscriptions:
            return {}
        properties = Properties(PacketTypes.CONNECT)
        properties.MaximumPacketSize = MAX_PACKET_BYTES
        properties.SessionExpiryInterval = SESSION_NEVER_EXPIRES
        return {"protocol": aiomqtt.ProtocolVersion.V5, "clean_start": False, "properties": properties}

    async def _session(self):
        settings = self.settings
        will = aiomqtt.Will(status_topic(self.device_id), status_payload(self.device_id, False), qos=1, retain=True)
        async with aiomqtt.Client(
            settings.host,
            settings.port,
            identifier="ea-" + self.device_id,
            tls_context=settings.tls_context,
            keepalive=settings.keepalive_s,
            will=will,
            timeout=PUBLISH_TIMEOUT_S,
            max_inflight_messages=BATCH_RECORDS,
            **self._session_options(),
        ) as client:
            self.connects += 1
            if self.on_connect is not None:
                self.on_connect()
            # What was read but not acknowledged may not have reached the
            # broker: send it again (receivers drop duplicates by seq).
            self.store.rewind()
            await client.publish(status_topic(self.device_id), status_payload(self.device_id, True), qos=1, retain=True)
            log.info("connected to broker %s", settings.describe())
            self.client = client
            self.online.set()
            try:
                if self.subscriptions:
                    await self._pump_and_receive(client)
                else:
                    await self._pump(client)
            finally:
                self.client = None
                self.online.clear()

    async def announce_offline(self):
        """On a clean stop: a clean disconnect does not fire the last will,
        so say offline ourselves (retained), if connected."""
        client = self.client
        if client is not None:
            try:
                await client.publish(status_topic(self.device_id), status_payload(self.device_id, False),
                                     qos=1, retain=True, timeout=2)
            except aiomqtt.MqttError as exc:
                log.info("could not publish offline status: %s", exc)

    async def _pump_and_receive(self, client):
        for topic in self.subscriptions:
            await client.subscribe(topic, qos=1)
        log.info("listening for signed commands on %s", ", ".join(self.subscriptions))
        if self.on_subscribed is not None:
            self.on_subscribed()
        tasks = [asyncio.create_task(self._pump(client)), asyncio.create_task(self._receive(client))]
        try:
            # Either ends only by raising (the link failed): end the session.
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _receive(self, client):
        async for message in client.messages:
            self.on_message(str(message.topic), bytes(message.payload))

    async def _pump(self, client):
        """Send the store's batches, most urgent lane first, until the link fails."""
        while True:
            self.wakeup.clear()
            batch = self.store.read(max_records=BATCH_RECORDS)
            wait_ms = None
            if batch is None or batch.lane > URGENT_PRIORITY:
                wait_ms = await self._replay(client)
            if batch is None:
                if wait_ms is None:
                    await self.wakeup.wait()
                elif wait_ms:
                    try:
                        await asyncio.wait_for(self.wakeup.wait(), wait_ms / 1000)
                    except asyncio.TimeoutError:
                        pass
                continue
            await self._send(client, batch)
            self.store.ack(batch.lane, batch.end)
            self.published += len(batch.records)
            self.last_puback_monotonic = time.monotonic()
            if batch.lane > URGENT_PRIORITY:
                await self.pacer.spend(len(batch.records))

    async def _replay(self, client):
        """Republish what a gap repair has due now; the ms until more is
        due (0: at once), None when no repair is in service."""
        if self.replays is None:
            return None
        records, wait_ms = self.replays.take(int(time.time() * 1000))
        urgent = [record for lane, record in records if lane <= URGENT_PRIORITY]
        rest = [record for lane, record in records if lane > URGENT_PRIORITY]
        for group, is_urgent in ((urgent, True), (rest, False)):
            if group:
                await self._publish(client, group, is_urgent)
        self.replayed += len(records)
        return wait_ms

    async def _send(self, client, batch):
        """Publish a batch and wait for every PUBACK."""
        await self._publish(client, batch.records, batch.lane <= URGENT_PRIORITY)

    async def _publish(self, client, records, urgent):
        """Publish records, alone or bundled (group_for_publish), and wait
        for every PUBACK."""
        groups = group_for_publish(records, urgent=urgent)
        publishes = []
        for kind, records in groups:
            payload = records[0] if len(records) == 1 else bundle.encode(records)
            publishes.append(client.publish(sg.topic(self.device_id, kind), self.identity.seal(payload), qos=1))
        # Pipelined: all of the batch's messages in flight at once.
        sent = asyncio.ensure_future(asyncio.gather(*publishes))
        # aiomqtt does not fail publishes in flight when paho drops the link
        # (keepalive timeout in a partition): they would wait the whole
        # PUBLISH_TIMEOUT_S. Watch the client's (private) disconnect future
        # so a dead link ends the session at once.
        lost = asyncio.ensure_future(asyncio.shield(client._disconnected))  # noqa: SLF001
        try:
            await asyncio.wait([sent, lost], return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
        if not sent.done():
            sent.cancel()
            await asyncio.gather(sent, return_exceptions=True)
            raise aiomqtt.MqttError("connection lost with %d publishes in flight" % len(publishes))
        sent.result()
        self.messages += len(publishes)
