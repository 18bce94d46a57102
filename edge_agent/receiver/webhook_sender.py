"""Delivers the outbox (outbox.py) over HTTP with aiohttp's client: claims
due rows under a lease, posts each signed body (webhooks.sign), and marks
it delivered, to retry, or dead. Runs beside the receiver on its event
loop and its database connection: each database step is synchronous and
short, so it never interleaves with the receiver's batch transaction.

Never logged: a route's secret, the signature, the URL's path (a Slack
webhook URL's path is a secret too). Logged: the route's name, the row,
the HTTP status or connection error (with the URL cut out of it).
"""

import asyncio
import logging
import os
import socket
import time
import uuid

import aiohttp

from edge_agent.receiver import outbox, webhooks
from edge_agent.receiver.printable import short

log = logging.getLogger("edge_agent.receiver.webhooks")

# One attempt may take this long (connect, send, answer), well inside the lease.
TIMEOUT_S = 10
# Rows posted at once: a slow target does not hold up the others.
CONCURRENCY = 16
CLAIM_BATCH = 64
# How often the sender looks for due rows when nothing woke it (another
# receiver's rows, retries coming due).
POLL_S = 1.0
# How often delivered rows past outbox.KEEP_DELIVERED_MS are pruned.
PRUNE_S = 3600.0


def now_ms():
    return time.time_ns() // 1_000_000


class WebhookSender:
    def __init__(self, storage, routes, owner=None, clock_ms=now_ms, poll_s=POLL_S):
        self.storage = storage
        self.routes = routes
        self.owner = owner or "%s-%d-%s" % (socket.gethostname(), os.getpid(), uuid.uuid4().hex[:8])
        self.clock_ms = clock_ms
        self.poll_s = poll_s
        self.wake = asyncio.Event()
        self.delivered = 0
        self.failures = 0
        self.dead = 0

    async def run(self):
        """Deliver until cancelled."""
        timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
        pruned = time.monotonic() - PRUNE_S
        try:
            async with aiohttp.ClientSession(timeout=timeout, headers={"User-Agent": "edge-agent-receiver"}) as session:
                while True:
                    if time.monotonic() - pruned >= PRUNE_S:
                        pruned = time.monotonic()
                        outbox.prune(self.storage, self.clock_ms())
                    if not await self.deliver_due(session):
                        try:
                            await asyncio.wait_for(self.wake.wait(), self.poll_s)
                        except asyncio.TimeoutError:
                            pass
                        self.wake.clear()
        finally:
            # A clean stop (SIGTERM) hands back what was in flight at once;
            # after a crash the leases expire instead (outbox.LEASE_MS).
            outbox.release(self.storage, self.owner)

    async def deliver_due(self, session):
        """Claim and post what is due; returns how many rows it tried."""
        rows = outbox.claim(self.storage, self.owner, self.routes.by_name, self.clock_ms(), limit=CLAIM_BATCH)
        if not rows:
            return 0
        limit = asyncio.Semaphore(CONCURRENCY)

        async def one(row):
            async with limit:
                return await self._post(session, row)

        errors = await asyncio.gather(*(one(row) for row in rows))
        # One commit (one sync) for the claimed rows' outcomes, not one per
        # row: a crash before it sends them again (at least once; the
        # delivery id lets a target drop the repeat).
        self.storage.begin()
        try:
            for row, error in zip(rows, errors):
                self._settle(row, error)
            self.storage.commit()
        except BaseException:
            self.storage.rollback()
            raise
        return len(rows)

    async def _post(self, session, row):
        """None when the target took it (2xx), else what went wrong."""
        route = self.routes.by_name[row["route"]]
        body = bytes(row["payload"])
        headers = {"Content-Type": "application/json", webhooks.EVENT_HEADER: row["event"],
                   webhooks.DELIVERY_HEADER: str(row["id"]),
                   webhooks.SIGNATURE_HEADER: webhooks.sign(route.secret, body, time.time())}
        try:
            async with session.post(route.url, data=body, headers=headers, allow_redirects=False) as response:
                await response.read()
                if 200 <= response.status < 300:
                    return None
                return "HTTP %d %s" % (response.status, short(response.reason or ""))
        except asyncio.TimeoutError:
            return "no answer within %d s" % TIMEOUT_S
        except aiohttp.ClientError as exc:
            return "%s: %s" % (type(exc).__name__, short(str(exc).replace(route.url, route.where)))

    def _settle(self, row, error):
        now = self.clock_ms()
        if error is None:
            outbox.delivered(self.storage, row["id"], self.owner, now)
            self.delivered += 1
            return
        self.failures += 1
        if outbox.failed(self.storage, row, self.owner, error, now, self.routes):
            self.dead += 1
            log.error("webhook %s: outbox row %d (%s %s #%d) is a dead letter after %d attempts: %s",
                      row["route"], row["id"], row["event"], row["device"], row["seq"], row["attempts"], error)
        else:
            log.warning("webhook %s: outbox row %d attempt %d failed (%s); next in %.1f s", row["route"], row["id"],
                        row["attempts"], error, self.routes.retry_delay_ms(row["attempts"]) / 1000)
