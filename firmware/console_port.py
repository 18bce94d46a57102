"""The technician console on a UART: the core's interpreter
(edge_agent/core/console.py) served REPL-free on the board's serial port.

This module only moves bytes and gives the interpreter its *view* of the
firmware (core/console.py lists what a view offers). One session at a
time, renewed when it ends (Ctrl-D); a logged-in session idle for
``idle_logout_ms`` (default 15 min) is logged out (a UART cannot tell that
the cable was pulled). ``uart`` is duck-typed like the bus
UARTs (firmware/uart_source.py): machine.UART on the ESP32 (UART0 after
``os.dupterm(None, 0)`` detaches the REPL, or a spare UART), a pty on the
unix port. Nothing here can stop the firmware: a bug in a command is
answered with an error by the interpreter, and output is bounded by the
UART itself (a terminal nobody reads just lets the bytes go by).
"""

import asyncio
from collections import deque

from edge_agent import __version__
from edge_agent.core import console as con
from edge_agent.core import signals as sg

READ_SIZE = 64
TICK_MS = 1000  # how often idle sessions are looked for
LOG_LINES = 20  # the `log` command's memory on a board: 20 lines, ~2 KiB
ERROR_LINES = 5


class LogRing:
    """The last log lines, for `log` and `status`; wraps the firmware's log."""

    def __init__(self, log):
        self._log = log
        self.lines = deque((), LOG_LINES)  # type: deque
        self.errors = deque((), ERROR_LINES)  # type: deque

    def __call__(self, level, text):
        self._log(level, text)
        line = "%s %s" % (level, text)
        self.lines.append(line)
        if level == "error":
            self.errors.append(line)


class FirmwareView(con.View):
    """The core console's view of the firmware (con.View has what the
    gateway's shares)."""

    def __init__(self, firmware, ring):
        super().__init__(firmware, ring, "edge-agent-firmware " + __version__)

    def link(self):
        uplink = self._host.uplink
        return "%s: %d signals acknowledged, %d connects, %d failures" % (
            "online" if uplink.online else "offline", uplink.published, uplink.connects, uplink.failures)

    def settings(self):
        firmware = self._host
        return super().settings() + [
            ("store", "%d KiB in %d KiB segments" % (firmware.store.max_bytes // 1024,
                                                     firmware.store.segment_bytes // 1024)),
            ("outputs", ", ".join("%s %s" % (o, "on" if on else "OFF")
                                  for o, on in sorted(firmware.outputs.state.items())) or "none"),
        ]

    def dispatch(self, outputs):
        self._host.dispatch(outputs)

    def output_is_on(self, output_id):
        return self._host.outputs.state.get(output_id)


class ConsolePort:
    def __init__(self, firmware, uart, ring, trusted=None, idle_logout_ms=None):
        self.uart = uart
        self.console = con.Console(FirmwareView(firmware, ring), trusted,
                                   idle_logout_ms=idle_logout_ms or con.IDLE_LOGOUT_MS)
        self.session = None
        self.log = ring

    def on_signal(self, signal):
        """Alerts, state changes and audits become notices between lines."""
        if signal.kind in (sg.KIND_ALERT, sg.KIND_STATE, sg.KIND_AUDIT) and self.session is not None:
            self.console.observe(signal)
            self._send()

    def _send(self):
        session = self.session
        data = session.take_output() if session is not None else b""
        if data:
            self.uart.write(data)

    async def _tick(self):
        while True:
            await asyncio.sleep(TICK_MS / 1000)
            self.console.tick()
            self._send()

    async def run(self):
        asyncio.create_task(self._tick())
        reader = asyncio.StreamReader(self.uart)
        while True:
            if self.session is None or self.session.closed:
                self.session = self.console.open_session("uart")
                self._send()
            data = await reader.read(READ_SIZE)
            if not data:
                continue
            self.session.feed(data)
            self._send()
            while self.console.internal_errors:
                self.log("error", "console: internal error: %s" % self.console.internal_errors.pop(0))
