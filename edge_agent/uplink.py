"""MQTT uplink on the gateway (aiomqtt): one session per device, QoS 1.

Topics (docs/wire-format.md): signals go to ``ea/v1/<device>/<kind>``; a
retained ``ea/v1/<device>/status`` says online, and the broker's last will
says offline when the session dies uncleanly.

Until the durable store lands, signals wait in a bounded in-memory queue,
one lane per priority, most urgent first. A signal leaves the queue only
after the broker's PUBACK (aiomqtt's ``publish`` at QoS 1 returns then); if
the link fails mid-publish it goes back to the front and is sent again
(at-least-once: the receiver drops duplicates by (device, seq)). When the
queue is full the least urgent, oldest signal is dropped and counted, so
ingest never waits on the network.
"""

import asyncio
import collections
import logging
import random

import aiomqtt

from edge_agent.core import cbor
from edge_agent.core import signals as sg

log = logging.getLogger("edge_agent.uplink")

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
DEFAULT_QUEUE_LIMIT = 10000


class BrokerSettings:
    """Where and how to reach the broker. ``tls_context`` None means
    plaintext, which only --insecure allows."""

    def __init__(self, host, port, tls_context=None, keepalive_s=30):
        self.host = host
        self.port = port
        self.tls_context = tls_context
        self.keepalive_s = keepalive_s

    def describe(self):
        return "%s:%d (%s)" % (self.host, self.port, "TLS" if self.tls_context else "plaintext")


def status_topic(device_id):
    return "%s/%s/status" % (sg.TOPIC_ROOT, device_id)


def status_payload(device_id, online):
    return cbor.dumps({sg.K_VERSION: sg.VERSION, sg.K_DEVICE: device_id, sg.K_ONLINE: online})


class Uplink:
    """Publishes signals sealed by ``identity`` (COSE_Sign1 or COSE_Mac0)."""

    def __init__(self, settings, identity, queue_limit=DEFAULT_QUEUE_LIMIT):
        self.settings = settings
        self.identity = identity
        self.device_id = identity.device_id
        self.queue_limit = queue_limit
        self.lanes = [collections.deque() for _ in range(sg.PRIORITY_LOW + 1)]
        self.wakeup = asyncio.Event()
        self.online = asyncio.Event()
        self.published = 0
        self.dropped = 0
        self.connects = 0

    def depth(self):
        return sum(len(lane) for lane in self.lanes)

    def submit(self, signal):
        """Queue a signal; never blocks. Drops the least urgent, oldest signal
        when full (and counts it)."""
        if self.depth() >= self.queue_limit:
            for lane in reversed(self.lanes):
                if lane:
                    lane.popleft()
                    self.dropped += 1
                    if self.dropped == 1 or self.dropped % 1000 == 0:
                        log.warning("uplink queue full (%d): %d signals dropped so far", self.queue_limit, self.dropped)
                    break
        self.lanes[signal.priority].append(signal)
        self.wakeup.set()

    def _next(self):
        for lane in self.lanes:
            if lane:
                return lane
        return None

    async def run(self):
        backoff = BACKOFF_FIRST_S
        while True:
            try:
                await self._session()
            except aiomqtt.MqttError as exc:
                self.online.clear()
                # Full jitter (AWS architecture blog): a fleet that lost the
                # broker together must not come back together.
                wait = random.uniform(0, backoff)
                log.warning(
                    "broker %s unreachable (%s); retrying in %.1f s, %d signals queued",
                    self.settings.describe(), exc, wait, self.depth(),
                )
                await asyncio.sleep(wait)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
            else:
                backoff = BACKOFF_FIRST_S

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
            timeout=10,
        ) as client:
            self.connects += 1
            await client.publish(status_topic(self.device_id), status_payload(self.device_id, True), qos=1, retain=True)
            log.info("connected to broker %s", settings.describe())
            self.online.set()
            while True:
                lane = self._next()
                if lane is None:
                    self.wakeup.clear()
                    await self.wakeup.wait()
                    continue
                signal = lane[0]
                await client.publish(sg.topic(self.device_id, signal.kind), self.identity.seal(signal.encode()), qos=1)
                # PUBACK received: only now is the signal off our hands. It is
                # still lane[0] because submit() only appends and drops from
                # the lowest lane's front when full; guard anyway.
                if lane and lane[0] is signal:
                    lane.popleft()
                self.published += 1
