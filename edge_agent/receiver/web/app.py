"""The web view's application: aiohttp, one database reader thread, the
access check in front of every page, the live feed behind /events.

Storage calls are blocking (sqlite3, psycopg), so they run on one thread of
their own (``Reader``) that owns the view's connection: the event loop
keeps serving, and a SQLite connection stays on the thread that made it."""

import asyncio
import concurrent.futures
import logging
import os

from aiohttp import web

from edge_agent.receiver.routing import AlertRouting
from edge_agent.receiver.web import pages, routes
from edge_agent.receiver.web.live import LiveFeed
from edge_agent.receiver.web.series import BundleCache
from edge_agent.receiver.web.state import ACCESS, BUNDLES, FEED, READER, ROUTING, access_level

log = logging.getLogger("edge_agent")

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
# No inline script or style, nothing from elsewhere: an escaped value that
# slipped through still could not run.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
PUBLIC = ("/login", "/static/")


class Reader:
    """The view's storage on a thread of its own: ``await run(f, *args)``
    calls ``f(storage, *args)`` there. Opened with ``await open()``: opening
    may wait for the database's write lock (the schema check), which in
    `receiver run --http` the receiver on this same event loop may hold, so
    the loop must keep running meanwhile."""

    def __init__(self, open_storage):
        self._open_storage = open_storage
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="web-db")
        self.storage = None

    async def open(self):
        self.storage = await asyncio.get_running_loop().run_in_executor(self._pool, self._open_storage)

    async def run(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(self._pool, function, self.storage, *args)

    async def close(self):
        if self.storage is not None:
            await asyncio.get_running_loop().run_in_executor(self._pool, self.storage.close)
        self._pool.shutdown()


@web.middleware
async def check_access(request, handler):
    """401 unless a token or a verified client certificate is presented."""
    if not request.path.startswith(PUBLIC) and access_level(request) is None:
        if "text/html" in request.headers.get("Accept", ""):
            raise web.HTTPUnauthorized(text=pages.login("This view needs an access token."),
                                       content_type="text/html", headers={"WWW-Authenticate": "Bearer"})
        raise web.HTTPUnauthorized(text="401: an access token (Authorization: Bearer) or a client certificate "
                                        "is needed\n", headers={"WWW-Authenticate": "Bearer"})
    response = await handler(request)
    response.headers.update(SECURITY_HEADERS)
    return response


async def make_app(open_storage, access, ack_routes=None, registry=None):
    """The view over the storage ``open_storage()`` returns (called on the
    reader's thread); raises what it raises (StorageError). ``ack_routes``
    (receiver.routes.Routes) and ``registry``: acknowledgements queue the webhooks
    of routes that take them, as `receiver ack --routes` does."""
    app = web.Application(middlewares=[check_access])
    app[ACCESS] = access
    app[READER] = Reader(open_storage)
    app[FEED] = LiveFeed(app[READER])
    try:
        await app[READER].open()
        await app[FEED].start()
    except BaseException:
        await app[READER].close()
        raise
    app[ROUTING] = AlertRouting(app[READER].storage, ack_routes, registry) if ack_routes else None
    app[BUNDLES] = BundleCache()
    routes.add(app)
    app.router.add_static("/static/", STATIC)

    async def feed(app):
        task = asyncio.create_task(app[FEED].run())
        yield
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    async def end_streams(app):
        app[FEED].close()

    async def close_reader(app):
        await app[READER].close()

    app.on_shutdown.append(end_streams)
    app.cleanup_ctx.append(feed)
    app.on_cleanup.append(close_reader)
    return app


async def serve(app, host, port, ssl_context=None):
    """Serve until cancelled; returns once listening (the runner is
    returned, for cleanup)."""
    runner = web.AppRunner(app, access_log=None)  # access logs would keep URLs and nothing more useful
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    log.info("web view: %s://%s:%d/", "https" if ssl_context else "http", host, port)
    return runner
