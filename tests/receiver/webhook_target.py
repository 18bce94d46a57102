"""A real HTTP server receiving webhooks (aiohttp's server, in a thread of
its own with its own event loop): records each request's headers and raw
body, answers ``status``; stop() and start() again on the same port play
a target that goes down and comes back."""

import asyncio
import threading

from aiohttp import web

from simulator.fixtures.broker import free_port


class WebhookTarget:
    def __init__(self, port=None, status=200):
        self.port = port or free_port()
        self.status = status
        self.received = []  # (headers dict, body bytes)
        self._lock = threading.Lock()
        self._loop = None
        self._thread = None
        self._runner = None

    @property
    def url(self):
        return "http://127.0.0.1:%d/hook" % self.port

    def bodies(self):
        with self._lock:
            return list(self.received)

    async def _handle(self, request):
        body = await request.read()
        with self._lock:
            self.received.append((dict(request.headers), body))
        return web.Response(status=self.status, text="ok" if self.status < 300 else "down for maintenance")

    def start(self):
        ready = threading.Event()

        async def serve():
            app = web.Application()
            app.router.add_post("/hook", self._handle)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
            ready.set()

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(serve(), self._loop).result(10)
        ready.wait(10)
        return self

    def stop(self):
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._loop = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
