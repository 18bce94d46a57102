"""The gateway agent: the composition root that wires core and adapters.

    serial ports (pyserial) --bytes--> core Device --signals--> Uplink (aiomqtt)
                                            \\--notices--> logging

One asyncio task per bus and one for the uplink; a timer task calls the
core's ``poll`` at the deadline it returns. Time comes from the wall clock
here and only here, as integer milliseconds.
"""

import asyncio
import logging
import time

from edge_agent.core import device as dv
from edge_agent.core import signals as sg
from edge_agent.serial_source import SerialSource
from edge_agent.uplink import Uplink

log = logging.getLogger("edge_agent.agent")

_NOTICE_LEVELS = {dv.INFO: logging.DEBUG, dv.WARNING: logging.WARNING, dv.ERROR: logging.ERROR}
SUMMARY_INTERVAL_S = 10.0


def now_ms():
    return time.time_ns() // 1_000_000


class Agent:
    def __init__(self, board, identity, broker, port_overrides=None, clock=now_ms, **device_options):
        self.board = board
        self.clock = clock
        self.device = dv.Device(board, identity.device_id, **device_options)
        self.uplink = Uplink(broker, identity)
        self.sources = []
        overrides = port_overrides or {}
        for bus in board.buses.values():
            port = overrides.get(bus.id, bus.port)
            self.sources.append(
                SerialSource(
                    bus.id,
                    port,
                    bus.baud,
                    on_bytes=self._bytes_handler(bus.id),
                    on_closed=self._closed_handler(bus.id),
                )
            )
        self._poll_wakeup = asyncio.Event()
        self._reported_bad = {}

    def _bytes_handler(self, bus_id):
        def on_bytes(data):
            self._dispatch(self.device.feed(bus_id, data, self.clock()))

        return on_bytes

    def _closed_handler(self, bus_id):
        def on_closed():
            self._dispatch(self.device.close_bus(bus_id, self.clock()))

        return on_closed

    def _dispatch(self, outputs):
        for item in outputs:
            if isinstance(item, sg.Signal):
                if item.kind == sg.KIND_ALERT:
                    log.warning("alert #%d: %s", item.seq, item.body.get(sg.A_TEXT))
                self.uplink.submit(item)
            else:
                log.log(_NOTICE_LEVELS.get(item.level, logging.INFO), "%s", item.text)
        # A new telemetry batch may have set an earlier deadline.
        self._poll_wakeup.set()

    async def _poll_loop(self):
        while True:
            outputs, deadline = self.device.poll(self.clock())
            self._dispatch(outputs)
            self._poll_wakeup.clear()
            timeout = None if deadline is None else max(0, deadline - self.clock()) / 1000
            try:
                await asyncio.wait_for(self._poll_wakeup.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    async def _summary_loop(self):
        """Every few seconds, one log line for bad frames instead of one per
        frame: a noisy line must not drown the log."""
        while True:
            await asyncio.sleep(SUMMARY_INTERVAL_S)
            current = dict(self.device.bad_by_reason)
            if current != self._reported_bad:
                delta = {k: v - self._reported_bad.get(k, 0) for k, v in current.items()}
                log.info(
                    "bad frames in the last %.0f s: %s (totals %s)",
                    SUMMARY_INTERVAL_S,
                    ", ".join("%s %d" % kv for kv in sorted(delta.items()) if kv[1]),
                    self.device.stats,
                )
                self._reported_bad = current

    async def run(self):
        tasks = [asyncio.create_task(source.run(), name="bus-" + source.bus_id) for source in self.sources]
        tasks.append(asyncio.create_task(self.uplink.run(), name="uplink"))
        tasks.append(asyncio.create_task(self._poll_loop(), name="poll"))
        tasks.append(asyncio.create_task(self._summary_loop(), name="summary"))
        try:
            # Tasks only end by raising: a bug, not a condition to ride out.
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
