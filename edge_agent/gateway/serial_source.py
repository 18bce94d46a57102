"""Serial ports on the gateway: pyserial, read without blocking the event loop.

A port that is missing or goes away (USB unplugged, simulator restarted) is
reopened with capped exponential backoff; the agent never stops because of a
serial port. Bytes go to ``on_bytes(data)`` exactly as they arrive: framing
is the core's job.

A bus whose protocol asks questions (Modbus RTU) also has ``on_poll()``,
which returns (bytes to write now or None, seconds to wait at most before
asking again, or None for "until bytes arrive"). The pump is then: ask,
write, wait for bytes or the timeout, ask again; every decision (what to
send, the silence between frames, timeouts, retries) is the core's
(edge_agent/core/modbus_master.py). One task per bus: a bus that fails or
whose slaves fall silent only ever waits on itself.
"""

import asyncio
import fcntl
import logging
import os
import struct
import termios

import serial

log = logging.getLogger("edge_agent.serial")

RETRY_FIRST_S = 0.5
RETRY_MAX_S = 10.0

_PARITY = {"none": serial.PARITY_NONE, "even": serial.PARITY_EVEN, "odd": serial.PARITY_ODD}


class SerialSource:
    def __init__(self, bus_id, port, baud, on_bytes, on_closed=None, on_poll=None, parity="none", stop_bits=1,
                 opener=None):
        """``opener``: a callable returning an open port (pyserial's
        interface: read, write, in_waiting, fileno, close); by default
        pyserial opens ``port``. FdPort adapts a descriptor already open."""
        self.bus_id = bus_id
        self.port = port
        self.baud = baud
        self.on_bytes = on_bytes
        self.on_closed = on_closed
        self.on_poll = on_poll
        self.parity = parity
        self.stop_bits = stop_bits
        self.opener = opener or self._open_serial
        self.connected = asyncio.Event()
        self.bytes_read = 0
        self.opens = 0
        self.bytes_written = 0

    @classmethod
    def for_bus(cls, bus, port, on_bytes, on_closed=None, on_poll=None, opener=None):
        """A source for a board Bus: its character format (parity, stop
        bits) comes from the protocol's settings when it has them."""
        settings = bus.settings
        return cls(bus.id, port, bus.baud, on_bytes, on_closed, on_poll,
                   parity=getattr(settings, "parity", "none"), stop_bits=getattr(settings, "stop_bits", 1),
                   opener=opener)

    async def run(self):
        delay = RETRY_FIRST_S
        while True:
            try:
                handle = self.opener()
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

    def _open_serial(self):
        return serial.Serial(self.port, self.baud, parity=_PARITY[self.parity], stopbits=self.stop_bits, timeout=0)

    async def _pump(self, handle):
        """Read until the port fails; return so run() can reopen it."""
        loop = asyncio.get_running_loop()
        failed = loop.create_future()
        arrived = asyncio.Event()

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
                arrived.set()

        fd = handle.fileno()
        loop.add_reader(fd, readable)
        self.connected.set()
        try:
            if self.on_poll is None:
                exc = await failed
            else:
                exc = await self._ask(handle, failed, arrived)
            log.warning("bus %s: %s closed (%s); reopening", self.bus_id, self.port, _reason(exc))
        finally:
            loop.remove_reader(fd)

    async def _ask(self, handle, failed, arrived):
        """The request/response pump: ask the core, write, wait for bytes or
        its deadline, repeat. Returns the exception that closed the port."""
        while not failed.done():
            arrived.clear()
            send, wait_s = self.on_poll()
            if send:
                try:
                    handle.write(send)
                except (serial.SerialException, OSError) as exc:
                    return exc
                self.bytes_written += len(send)
            waiter = asyncio.ensure_future(arrived.wait())
            try:
                await asyncio.wait([waiter, failed], timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
        return failed.result()


# A wall clock stepped back (NTP) must not park a bus: never wait longer
# than this before asking the core again.
MAX_WAIT_S = 1.0


def bus_source(device, bus, port, clock, dispatch, opener=None):
    """The task reading (and, for request/response protocols, writing) one
    bus of ``device`` (core.device.Device): bytes go in with the time from
    ``clock()`` (int ms); outputs go to ``dispatch(outputs)``."""

    def on_bytes(data):
        dispatch(device.feed(bus.id, data, clock()))

    def on_closed():
        dispatch(device.close_bus(bus.id, clock()))

    def on_poll():
        now = clock()
        outputs, send, deadline = device.poll_bus(bus.id, now)
        if outputs:
            dispatch(outputs)
        wait_s = None if deadline is None else min(MAX_WAIT_S, max(0, deadline - now) / 1000)
        return send, wait_s

    return SerialSource.for_bus(bus, port, on_bytes, on_closed, on_poll if device.bus_writes(bus.id) else None,
                                opener)


class FdPort:
    """A port that is already an open descriptor (the master side of a
    pseudo-terminal the simulator or a test holds), with the part of
    pyserial's interface SerialSource uses. Closing it leaves the
    descriptor open: its owner closes it."""

    def __init__(self, fd):
        self.fd = fd
        os.set_blocking(fd, False)

    @property
    def in_waiting(self):
        return struct.unpack("i", fcntl.ioctl(self.fd, termios.FIONREAD, b"\0\0\0\0"))[0]

    def read(self, n):
        try:
            return os.read(self.fd, max(1, n))
        except BlockingIOError:
            return b""

    def write(self, data):
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.fd, view):]
            except BlockingIOError:
                # A pty holds about 4 KB; a request is at most 256 bytes,
                # so this only happens when nobody reads the other end.
                raise OSError("port %d: output buffer full (nobody reading the other end?)" % self.fd) from None
        return len(data)

    def fileno(self):
        return self.fd

    def close(self):
        pass


def _reason(exc):
    return str(exc) or type(exc).__name__

