"""The live feed: new alerts pushed to every open page by server-sent
events (/events).

The view reads the database the receivers write, maybe from another
process or machine, so it watches the database rather than the receiver:
every POLL_S it asks for alerts stored since the last one it pushed
(by the receiver's arrival time, received_ms) and sends each to every
subscriber. An alert stored by any receiver sharing the database reaches
the page within POLL_S plus the query."""

import asyncio
import json
import logging

from edge_agent.receiver.web import queries

log = logging.getLogger("edge_agent")

POLL_S = 0.5
# A quiet stream still sends a comment this often, so proxies and the
# browser see the connection is alive (and a closed page is noticed).
KEEPALIVE_S = 15.0
# A subscriber that stopped reading is dropped rather than holding memory.
QUEUE_LIMIT = 1000


class LiveFeed:
    def __init__(self, reader):
        self.reader = reader
        self.subscribers = set()
        self._cursor = None
        self._seen = set()

    def subscribe(self):
        queue = asyncio.Queue(QUEUE_LIMIT)
        self.subscribers.add(queue)
        return queue

    def unsubscribe(self, queue):
        self.subscribers.discard(queue)

    async def start(self):
        """Before the view serves: what is stored now is on the pages, only
        what comes after is news (an alert stored between this and the first
        page is on that page and pushed too: shown, never lost)."""
        self._cursor = await self.reader.run(queries.latest_alert_received_ms)
        self._seen = {(a.device, a.seq) for a in await self.reader.run(queries.alerts_since, self._cursor, set())}

    async def run(self):
        while True:
            await asyncio.sleep(POLL_S)
            try:
                await self.poll()
            except Exception as exc:  # noqa: BLE001 (a database hiccup: say so, try again next poll)
                log.warning("web view: live feed query failed: %s", " ".join(str(exc).split()))

    async def poll(self):
        alerts = await self.reader.run(queries.alerts_since, self._cursor, self._seen)
        for alert in alerts:
            if alert.received_ms > self._cursor:
                self._cursor, self._seen = alert.received_ms, set()
            self._seen.add((alert.device, alert.seq))
            self.publish("alert", alert.to_json())

    def close(self):
        """End every open stream (the server is stopping): None is the end."""
        for queue in list(self.subscribers):
            try:
                queue.put_nowait(None)
            except asyncio.QueueFull:
                pass
        self.subscribers.clear()

    def publish(self, event, data):
        message = "event: %s\ndata: %s\n\n" % (event, json.dumps(data, separators=(",", ":")))
        for queue in list(self.subscribers):
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:
                self.subscribers.discard(queue)
