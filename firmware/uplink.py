"""The firmware's uplink: drains the durable store to the broker with the
project's own MQTT client (firmware/mqtt_client.py), most urgent first,
and acknowledges in the store only what the broker has acknowledged.

Per session (the same rules as the gateway's edge_agent/gateway/uplink.py):

    connect (last will: retained "offline" status)
    rewind the store (what was in flight may not have arrived: send again;
        receivers drop duplicates by seq)
    publish retained "online" status; subscribe to the command topics
        (commands.topics(): ea/v1/<device>/cmd; core/command_flow.py says why
        a board does not take its model's topic)
    repeat: batch = store.read()  (the most urgent lane first)
            alerts one per message, the rest in bundles (one MAC each)
            await every PUBACK, then store.ack(batch)

Gap repair (``replays``, the core's repair.ReplayService, set by app.py
when the board takes commands): between batches, when no alert waits,
the records a receiver asked for again are republished unchanged, a few
at a time (the service's rate: 20/s on a board), never acknowledged in
the store (they were already).

A lost link ends the session; the next one starts after a backoff with
full jitter (a fleet that lost its broker together must not return
together), doubling up to ``backoff_max_ms``. Memory: a batch is at most
``batch_records`` records and BATCH_BYTES of them (their bytes are held
until acknowledged), and a bundle and its envelope are pieces of those
records, never copies, so the peak is about one batch.

``client`` is firmware/mqtt_client.py's MQTTClient (``client_for``: the
broker, TLS and the last will); this loop only connects and publishes,
and hands the client's messages to ``commands`` (firmware/commands.py).
"""

import asyncio
import gc
import random

from edge_agent.core import bundle
from edge_agent.core import signals as sg
from mqtt_client import MQTTClient, tls_context
from mqtt_packets import MQTTError, Will

# Checked this often while idle: a dead link is noticed by the client's
# keepalive; this only bounds how long the pump sleeps past it.
IDLE_CHECK_S = 1

BATCH_RECORDS = 32  # small: RAM on a board, and an alert waits at most one batch
# A batch's records are in RAM together, each its own block: after a
# reconnect with a backlog, 32 records were up to ~10 KiB spread over a
# fragmented heap (the 32-bit day through broker restarts). 1 KiB, not 2:
# the 72 KiB day with broker restarts, lowest free 4.4 KiB instead of
# 3.6-4.1 and largest free block 1.1 KiB instead of 0.4-1.1. At least one
# record is read whatever its size.
BATCH_BYTES = 1024
# A bundle's records, at most 384 bytes of them: set when a bundle was one
# contiguous block (a fragmented board heap refused larger ones). A bundle
# and its envelope are now pieces of the records (bundle.encode_pieces);
# the limit stays: a message that fits the MQTT client's 512-byte transmit
# buffer is copied there and written at once, a larger one in parts.
BUNDLE_MAX_BYTES = 384
# Sealed messages in RAM at once: a batch of 32 records made up to 16
# messages of up to ~570 bytes, all sealed before the first was sent (9 KiB
# at once, in blocks a fragmented heap refused: the 32-bit 96 KiB day).
PUBLISH_WINDOW = 4
# The MQTT client's receive limit and transmit buffer (both allocated once):
# commands and tokens are under 1 KiB; a publish larger than this (a bundle,
# up to BUNDLE_MAX_BYTES) goes out in two writes. 2 KiB instead of 4 saves
# 4 KiB of heap (measured: MQTTClient(max_packet=4096) holds 14 KiB).
MAX_PACKET = 2048
# A board without operators subscribes to nothing (clean session), so the
# broker only sends acks (CONNACK, PUBACK, SUBACK, PINGRESP: 2-5 bytes); a
# larger packet is refused as too large and the link restarts. Saves the
# 2 KiB buffer where no command can come.
MAX_PACKET_NO_COMMANDS = 64
BACKOFF_FIRST_MS = 500
BACKOFF_MAX_MS = 30000
URGENT_PRIORITY = sg.PRIORITY_HIGH


def will_for(device_id):
    """The last will: the broker publishes "offline" (retained) for us."""
    return Will(sg.status_topic(device_id), sg.status_payload(device_id, False), qos=1, retain=True)


def client_for(settings):
    """The MQTT client for ``settings`` (config.DeviceSettings): TLS when
    provisioned with it, our last will, this module's packet size (small
    when no operator may send commands). The DER credentials are dropped
    from ``settings`` once mbedTLS has parsed them (into its own heap, the
    IDF heap on a board): ~1 KiB of GC heap; ``settings.tls`` then holds
    the context, so it still says TLS."""
    ssl = None
    if settings.tls:
        tls = settings.tls
        ssl = tls.get("context") or tls_context(tls["ca"], tls["cert"], tls["key"])
        settings.tls = {"context": ssl}
    max_packet = MAX_PACKET if settings.operators else MAX_PACKET_NO_COMMANDS
    return MQTTClient(settings.host, settings.port, "ea-" + settings.device_id, keepalive_s=settings.keepalive_s,
                      will=will_for(settings.device_id), ssl=ssl, max_packet=max_packet)


class Uplink:
    def __init__(self, client, identity, store, log, commands=None, backoff_max_ms=BACKOFF_MAX_MS,
                 batch_records=BATCH_RECORDS, clock=None):
        """``commands``: firmware/commands.py's Commands (its ``topics()`` are
        subscribed, their messages go to its ``on_message``); None: no
        subscription."""
        self.client = client
        self.identity = identity
        self.device_id = identity.device_id
        self.store = store
        self.log = log
        self.commands = commands
        self.backoff_max_ms = backoff_max_ms
        self.batch_records = batch_records
        self.wakeup = asyncio.Event()
        self.online = False
        self.published = 0  # signals acknowledged by the broker
        self.messages = 0
        self.connects = 0
        self.failures = 0
        self.clock = clock  # ms, for pacing gap repairs
        self.replays = None  # a repair.ReplayService (app.py), or None
        self.replayed = 0
        client.on_message = self.on_message

    def notify(self):
        """Something was stored: wake the sender."""
        self.wakeup.set()

    async def run(self):
        backoff = BACKOFF_FIRST_MS
        while True:
            try:
                await self._session()
                backoff = BACKOFF_FIRST_MS
            except (MQTTError, OSError, asyncio.TimeoutError) as exc:
                # MQTTError: refused CONNACK, lost link, malformed packet;
                # OSError: refused, reset, TLS handshake.
                self.failures += 1
                self.online = False
                wait = random.randint(0, backoff)
                self.log("warning", "broker unreachable (%s: %s); retrying in %d ms"
                         % (type(exc).__name__, exc, wait))
                await asyncio.sleep(wait / 1000)
                backoff = min(backoff * 2, self.backoff_max_ms)

    async def _session(self):
        client = self.client
        try:
            # The last connection's objects (TLS socket, streams, tasks) freed
            # first, so the new ones take the lowest holes that fit them
            # instead of scattering through a fragmented heap (docs/firmware.md).
            gc.collect()
            await client.connect()
            self.connects += 1
            self.store.rewind()
            await client.publish(sg.status_topic(self.device_id), sg.status_payload(self.device_id, True), qos=1,
                                 retain=True)
            if self.commands is not None:
                for topic in self.commands.topics():
                    await client.subscribe(topic, qos=1)
            self.online = True
            self.log("info", "connected to broker (session %d)" % self.connects)
            await self._pump(client)
        finally:
            self.online = False
            if client.connected:
                await client.disconnect()

    def on_message(self, message):
        """The client's callback for subscribed topics (commands)."""
        if self.commands is not None:
            self.commands.on_message(message.topic, message.payload)

    async def _pump(self, client):
        while True:
            self.wakeup.clear()
            batch = self.store.read(max_records=self.batch_records, max_bytes=BATCH_BYTES)
            wait_ms = None
            if batch is None or batch.lane > URGENT_PRIORITY:
                wait_ms = await self._replay(client)
            if batch is None:
                if not client.connected:
                    raise OSError("link lost: %s" % (client.error,))
                if wait_ms == 0:
                    continue
                idle = IDLE_CHECK_S if wait_ms is None else min(IDLE_CHECK_S, wait_ms / 1000)
                try:
                    await asyncio.wait_for(self.wakeup.wait(), idle)
                except asyncio.TimeoutError:
                    pass
                continue
            self.messages += await self._publish(client, batch.records, batch.lane <= URGENT_PRIORITY)
            self.store.ack(batch.lane, batch.end)
            self.published += len(batch.records)

    async def _replay(self, client):
        """Republish what a gap repair has due now (urgent records alone);
        the ms until more is due (0: at once), None when none is served."""
        if self.replays is None:
            return None
        records, wait_ms = self.replays.take(self.clock())
        for is_urgent in (True, False):
            group = [record for lane, record in records if (lane <= URGENT_PRIORITY) == is_urgent]
            if group:
                await self._publish(client, group, is_urgent)
        self.replayed += len(records)
        return wait_ms

    async def _publish(self, client, records, urgent):
        """Publish ``records`` (alerts and urgent ones alone, the rest in
        bundles), await every PUBACK; the number of messages."""
        groups = bundle.group_for_publish(records, urgent, BUNDLE_MAX_BYTES)
        # Pipelined a window at a time: a window's messages are in
        # flight together, and only its sealed messages are in RAM.
        for first in range(0, len(groups), PUBLISH_WINDOW):
            publishes = []
            for kind, items in groups[first:first + PUBLISH_WINDOW]:
                # A bundle and its envelope stay pieces (the records as the
                # store read them): no block of a message's size is needed.
                payload = items[0] if len(items) == 1 else bundle.encode_pieces(items)
                publishes.append(client.publish(sg.topic(self.device_id, kind), self.identity.seal(payload),
                                                qos=1))
            await asyncio.gather(*publishes)
        return len(groups)

    async def announce_offline(self):
        """A clean stop: say offline ourselves (a clean DISCONNECT does not
        fire the will)."""
        client = self.client
        if client.connected:
            try:
                await client.publish(sg.status_topic(self.device_id), sg.status_payload(self.device_id, False), qos=1,
                                     retain=True)
                await client.disconnect()
            except (MQTTError, OSError, asyncio.TimeoutError):
                pass
