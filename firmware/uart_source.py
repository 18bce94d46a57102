"""One bus of the board read from a UART: bytes in, the core's outputs out.

``uart`` is duck-typed: anything asyncio.StreamReader can wait on and
whose ``read(n)`` returns what has arrived (up to n bytes) without
blocking: ``machine.UART(id, baud, timeout=0)`` on the ESP32, a pty file
in raw mode with VMIN=0 on the unix port (firmware/unix_hw.py). Waiting
is select/poll based (MicroPython's asyncio polls the stream), so a
silent bus costs nothing and never delays the others.

A request/response bus (Modbus) also writes: the core says what to send
and by when it wants to be asked again (``Device.poll_bus``).
"""

import asyncio

CHUNK = 256  # bytes per read: a UART's RX ring is 256 bytes by default on the ESP32
# Never wait longer than this before asking a writing bus's core again
# (the clock may have been stepped by NTP).
MAX_WAIT_MS = 1000
RETRY_MS = 1000  # after a read error (a pty whose other end went away)


class UartSource:
    def __init__(self, device, bus_id, uart, clock, dispatch, log):
        self.device = device
        self.bus_id = bus_id
        self.uart = uart
        self.clock = clock
        self.dispatch = dispatch
        self.log = log
        self.writes = device.bus_writes(bus_id)
        self.bytes_read = 0
        self.bytes_written = 0
        self.errors = 0
        # Set by a clean stop: bytes read after it are not fed. Cancelling
        # the task is not enough: a wait_for whose read completed as it was
        # cancelled returns the bytes (seen: a reading fed after the stop's
        # last flush, stored at close and never sent).
        self.stopped = False
        # Every read lands in this one buffer (readinto), fed as a view of
        # what arrived: read(CHUNK) asked the heap for a new 257-byte block
        # at every read, and after a reconnect with a backlog a fragmented
        # 72 KiB heap had none (docs/firmware.md). The decoders copy what
        # they keep.
        self._buffer = memoryview(bytearray(CHUNK))

    async def run(self):
        reader = asyncio.StreamReader(self.uart)
        while True:
            try:
                data = await (self._ask(reader) if self.writes else self._read(reader))
            except OSError as exc:
                # A UART does not fail; a pty does when its other end closes.
                self.errors += 1
                if self.errors == 1:
                    self.log("warning", "bus %s: read failed (%s); retrying every %d ms" % (self.bus_id, exc, RETRY_MS))
                await asyncio.sleep_ms(RETRY_MS) if hasattr(asyncio, "sleep_ms") else await asyncio.sleep(RETRY_MS / 1000)
                continue
            if self.stopped:
                return
            if data:
                self.bytes_read += len(data)
                self.dispatch(self.device.feed(self.bus_id, data, self.clock()))

    async def _read(self, reader):
        """What has arrived (a view of the buffer; empty when nothing has:
        machine.UART.readinto returns None then)."""
        return self._buffer[: await reader.readinto(self._buffer) or 0]

    async def _ask(self, reader):
        """Send what the core asks, then wait for bytes or its deadline.
        Returns the bytes read (empty when the deadline came first)."""
        now = self.clock()
        outputs, send, deadline = self.device.poll_bus(self.bus_id, now)
        if outputs:
            self.dispatch(outputs)
        if send:
            self.uart.write(send)
            self.bytes_written += len(send)
        wait_ms = MAX_WAIT_MS if deadline is None else min(MAX_WAIT_MS, max(0, deadline - now))
        try:
            return await asyncio.wait_for(self._read(reader), wait_ms / 1000)
        except asyncio.TimeoutError:
            return b""
