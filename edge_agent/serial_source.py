"""Serial ports on the gateway: pyserial, read without blocking the event loop.

A port that is missing or goes away (USB unplugged, simulator restarted) is
reopened with capped exponential backoff; the agent never stops because of a
serial port. Bytes go to ``on_bytes(data)`` exactly as they arrive: framing
is the core's job.
"""

import asyncio
import logging

import serial

log = logging.getLogger("edge_agent.serial")

RETRY_FIRST_S = 0.5
RETRY_MAX_S = 10.0


class SerialSource:
    def __init__(self, bus_id, port, baud, on_bytes, on_closed=None):
        self.bus_id = bus_id
        self.port = port
        self.baud = baud
        self.on_bytes = on_bytes
        self.on_closed = on_closed
        self.connected = asyncio.Event()
        self.bytes_read = 0
        self.opens = 0

    async def run(self):
        delay = RETRY_FIRST_S
        while True:
            try:
                handle = serial.Serial(self.port, self.baud, timeout=0)
            except (serial.SerialException, OSError) as exc:
                log.warning(
                    "bus %s: cannot open %s (%s); retrying in %.1f s. Check the cable and the board file's "
                    "buses.%s.port (or --port)",
                    self.bus_id, self.port, _reason(exc), delay, self.bus_id,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            self.opens += 1
            log.info("bus %s: reading %s at %d baud", self.bus_id, self.port, self.baud)
            delay = RETRY_FIRST_S
            try:
                await self._pump(handle)
            finally:
                handle.close()
                self.connected.clear()
                if self.on_closed:
                    self.on_closed()

    async def _pump(self, handle):
        """Read until the port fails; return so run() can reopen it."""
        loop = asyncio.get_running_loop()
        failed = loop.create_future()

        def readable():
            try:
                data = handle.read(handle.in_waiting or 1)
            except (serial.SerialException, OSError) as exc:
                if not failed.done():
                    failed.set_result(exc)
                return
            if data:
                self.bytes_read += len(data)
                self.on_bytes(data)

        fd = handle.fileno()
        loop.add_reader(fd, readable)
        self.connected.set()
        try:
            exc = await failed
            log.warning("bus %s: %s closed (%s); reopening", self.bus_id, self.port, _reason(exc))
        finally:
            loop.remove_reader(fd)


def _reason(exc):
    return str(exc) or type(exc).__name__
