"""The sensor board of a live scenario: the scenario's physics on real
pseudo-terminals, in real time, with faults on the wire.

One pty pair per line-protocol bus of the board (the agent opens a stable
symlink to it, as it would open /dev/ttyUSB0). A thread sends each
sensor's frame at the board's sample period (wall time); the value is the
scenario's PhysicalSensor sampled at the scenario time of that moment
(``clock()``: wall time mapped through the run's speed), so stuck, drift,
spike, noise, dropout, sensor faults and cooling loss come from the same
physics as on the virtual clock. A sensor whose component's power output
the agent switched off sends nothing (``powered``), like the unpowered
fan on the bench.

Line faults, really on the wire:

- ``garbage(bus, n)``: n random bytes written between frames, once;
- bit flips: while active, each frame is sent with one random bit flipped
  with probability ``rate`` (the CRC must catch it);
- truncated frames: while active, each frame is cut at a random byte with
  probability ``rate`` (the next frame's '$' must resynchronise);
- ``disconnect(bus)``/``reconnect(bus)``: the pty is closed (the agent's
  read fails, as when a USB adapter is pulled) and later a new one takes
  its place behind the same symlink (the agent reopens it with backoff).

The sensor_board.py command-line board keeps its simple hand-driven
sensors; this one is for scenarios.
"""

import os
import random
import threading
import time
import tty

from edge_agent.core import frames as fr


class _Port:
    """One bus's pty pair behind a symlink."""

    def __init__(self, bus_id, link):
        self.bus_id = bus_id
        self.link = link
        self.master = self.slave = None
        self.lock = threading.Lock()
        self.written = 0
        self.dropped = 0
        self.open()

    def open(self):
        with self.lock:
            self.master, self.slave = os.openpty()
            tty.setraw(self.slave)
            os.set_blocking(self.master, False)
            path = os.ttyname(self.slave)
            tmp = self.link + ".new"
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.symlink(path, tmp)
            os.replace(tmp, self.link)  # atomic: the agent never sees no link

    def close(self):
        with self.lock:
            # The path goes too, as /dev/ttyUSB0 does when the adapter is
            # pulled; a dangling link could meet a reused /dev/pts number.
            if os.path.lexists(self.link):
                os.unlink(self.link)
            for fd in (self.master, self.slave):
                if fd is not None:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            self.master = self.slave = None

    @property
    def connected(self):
        return self.master is not None

    def write(self, data):
        """Like a UART: what the far end does not take is lost."""
        with self.lock:
            if self.master is None:
                self.dropped += len(data)
                return
            try:
                self.written += os.write(self.master, data)
            except (BlockingIOError, OSError):
                self.dropped += len(data)


class LiveBoard:
    """``models``: sensor id -> PhysicalSensor; ``clock()``: the scenario
    time now (ms); ``powered(output_id)``: whether the agent has that
    output on; ``record(sensor, t, value)``: what was sent."""

    def __init__(self, board, models, clock, workdir, seed=0, powered=None, record=None):
        self.board = board
        self.models = models
        self.clock = clock
        self.powered = powered or (lambda output: True)
        self.record = record or (lambda sensor, t, value: None)
        self.rng = random.Random(seed)
        self.ports = {}
        self.sensors = {}  # bus -> [sensor]
        for bus_id in sorted(board.buses):
            if board.buses[bus_id].protocol != "line":
                continue
            self.ports[bus_id] = _Port(bus_id, os.path.join(workdir, "tty-%s" % bus_id))
            self.sensors[bus_id] = sorted(board.sensors_on(bus_id), key=lambda s: s.id)
        self.flip_rate = {}  # bus -> probability per frame
        self.cut_rate = {}
        self.stats = {"frames": 0, "flipped": 0, "truncated": 0, "garbage_bytes": 0}
        self._stop = threading.Event()
        self._thread = None

    def path(self, bus_id):
        return self.ports[bus_id].link

    def start(self):
        self._thread = threading.Thread(target=self._run, name="live-board", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for port in self.ports.values():
            port.close()

    # -- faults ---------------------------------------------------------------

    def garbage(self, bus_id, nbytes):
        self.ports[bus_id].write(bytes(self.rng.getrandbits(8) for _ in range(nbytes)))
        self.stats["garbage_bytes"] += nbytes

    def set_bit_flips(self, bus_id, rate):
        self.flip_rate[bus_id] = rate

    def set_truncation(self, bus_id, rate):
        self.cut_rate[bus_id] = rate

    def disconnect(self, bus_id):
        self.ports[bus_id].close()

    def reconnect(self, bus_id):
        if not self.ports[bus_id].connected:
            self.ports[bus_id].open()

    # -- the stream -------------------------------------------------------------

    def _frame(self, sensor, t_ms):
        model = self.models[sensor.id]
        power = self.board.components[sensor.component].power_output
        if power and not self.powered(power):
            return b""
        reading = model.sample(t_ms)
        if reading is None:
            return b""
        if reading.value is None:
            self.record(sensor.id, t_ms, None)
            return fr.encode_frame(fr.SENSOR_ERROR, sensor.id, reading.code or "open")
        self.record(sensor.id, t_ms, reading.value)
        return fr.encode_frame(fr.READING, sensor.id, reading.value)

    def _damage(self, bus_id, frame):
        rng = self.rng
        if rng.random() < self.flip_rate.get(bus_id, 0.0):
            data = bytearray(frame)
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            frame = bytes(data)
            self.stats["flipped"] += 1
        if rng.random() < self.cut_rate.get(bus_id, 0.0):
            frame = frame[:rng.randrange(1, len(frame) - 1)]
            self.stats["truncated"] += 1
        return frame

    def _run(self):
        start = time.monotonic()
        due = []
        for bus_id, sensors in self.sensors.items():
            for sensor in sensors:
                due.append([start, bus_id, sensor])
        while not self._stop.is_set():
            due.sort(key=lambda d: d[0])
            wait = due[0][0] - time.monotonic()
            if wait > 0:
                if self._stop.wait(wait):
                    return
            slot = due[0]
            _, bus_id, sensor = slot
            # A late thread (a loaded machine) skips samples rather than
            # sending a burst: a UART's sensor does not catch up either.
            slot[0] = max(slot[0] + sensor.period_ms / 1000.0, time.monotonic())
            frame = self._frame(sensor, self.clock())
            if frame:
                self.stats["frames"] += 1
                self.ports[bus_id].write(self._damage(bus_id, frame))
