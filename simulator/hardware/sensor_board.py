"""A virtual sensor board on a pseudo-terminal.

It opens a pty pair, prints the path of the terminal end (the agent opens it
as it would /dev/ttyUSB0), and streams frames of the serial line protocol
for every sensor of one bus of a board file, each at its sample period, with
noise. Faults are injected at start (``--fault``) or while running, by
commands on standard input, one per line:

    fail SENSOR MODE    MODE: stuck | high | low | error | silent
    heal SENSOR         back to normal behaviour
    garbage N           write N random bytes between frames, once
    status              print each sensor's mode and frames sent
    quit                stop

Replies and events go to standard output, one line each, so a program (the
demo, a test) can drive it. The first line is always ``pty PATH``.
"""

import math
import os
import random
import selectors
import sys
import time
import tty

from edge_agent.core import frames as fr

MODES = ("normal", "stuck", "high", "low", "error", "silent")


class VirtualSensor:
    """A sensor whose value wanders around a set point with a slow cycle and
    Gaussian noise: enough physics for a live demo (the scenario simulator
    brings real models)."""

    def __init__(self, sensor, rng):
        span = sensor.high - sensor.low
        self.id = sensor.id
        self.period_s = sensor.period_ms / 1000.0
        self.low = sensor.low
        self.high = sensor.high
        self.set_point = sensor.low + 0.45 * span
        self.swing = 0.05 * span
        self.noise = 0.005 * span
        self.cycle_s = 60.0 + rng.random() * 60.0
        self.rng = rng
        self.mode = "normal"
        self.last_value = self.set_point
        self.sent = 0

    def value_at(self, t):
        return self.set_point + self.swing * math.sin(2 * math.pi * t / self.cycle_s) + self.rng.gauss(0, self.noise)

    def frame(self, t):
        """The bytes to send at time ``t`` (seconds), or b"" when silent."""
        mode = self.mode
        if mode == "silent":
            return b""
        if mode == "error":
            return fr.encode_frame(fr.SENSOR_ERROR, self.id, "open")
        if mode == "high":
            value = self.high + 0.1 * (self.high - self.low) + abs(self.rng.gauss(0, self.noise))
        elif mode == "low":
            value = self.low - 0.1 * (self.high - self.low) - abs(self.rng.gauss(0, self.noise))
        elif mode == "stuck":
            value = self.last_value
        else:
            value = self.value_at(t)
        self.last_value = value
        return fr.encode_frame(fr.READING, self.id, round(value, 3))


class SensorBoard:
    def __init__(self, board, bus_id, seed=None, link=None, out=sys.stdout):
        self.rng = random.Random(seed)
        sensors = board.sensors_on(bus_id)
        if not sensors:
            raise SystemExit("sensor board: bus %r of %s has no sensors" % (bus_id, board.source))
        self.sensors = {s.id: VirtualSensor(s, self.rng) for s in sorted(sensors, key=lambda s: s.id)}
        self.out = out
        self.master, self.slave = os.openpty()
        # Raw mode: no echo, no newline translation; the agent sets the same
        # through pyserial, but the simulator must not depend on that.
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        self.link = link
        if link:
            if os.path.islink(link):
                os.unlink(link)
            os.symlink(self.path, link)
        self.dropped = 0
        self.written = 0

    def say(self, text):
        self.out.write(text + "\n")
        self.out.flush()

    def write(self, data):
        """Write like a UART: what the receiver cannot take is lost."""
        try:
            self.written += os.write(self.master, data)
        except BlockingIOError:
            self.dropped += len(data)

    def command(self, line):
        words = line.split()
        if not words:
            return True
        verb = words[0]
        if verb == "quit":
            return False
        if verb == "fail" and len(words) == 3 and words[1] in self.sensors and words[2] in MODES:
            self.sensors[words[1]].mode = words[2]
            self.say("ok %s %s" % (words[1], words[2]))
        elif verb == "heal" and len(words) == 2 and words[1] in self.sensors:
            self.sensors[words[1]].mode = "normal"
            self.say("ok %s normal" % words[1])
        elif verb == "garbage" and len(words) == 2 and words[1].isdigit():
            self.write(bytes(self.rng.getrandbits(8) for _ in range(int(words[1]))))
            self.say("ok garbage %s" % words[1])
        elif verb == "status":
            for sensor in self.sensors.values():
                self.say("sensor %s %s sent=%d" % (sensor.id, sensor.mode, sensor.sent))
        else:
            self.say(
                "error: cannot do %r; commands: fail SENSOR MODE (%s), heal SENSOR, garbage N, status, quit; sensors: %s"
                % (line.strip(), "|".join(MODES[1:]), ", ".join(self.sensors))
            )
        return True

    def run(self, faults=(), duration_s=None, stdin=sys.stdin):
        self.say("pty %s" % self.path)
        start = time.monotonic()
        schedule = sorted(faults, key=lambda f: f[2])
        due = {sid: start for sid in self.sensors}
        selector = selectors.DefaultSelector()
        stdin_open = stdin is not None
        if stdin_open:
            try:
                selector.register(stdin.fileno(), selectors.EVENT_READ)
                os.set_blocking(stdin.fileno(), False)
            except PermissionError:
                # /dev/null or a file (epoll refuses those): no commands,
                # only --fault schedules.
                stdin_open = False
        pending = b""
        try:
            while True:
                now = time.monotonic()
                if duration_s is not None and now - start >= duration_s:
                    return 0
                while schedule and now - start >= schedule[0][2]:
                    sensor_id, mode, _ = schedule.pop(0)
                    self.command("fail %s %s" % (sensor_id, mode))
                for sensor_id, when in due.items():
                    if now >= when:
                        sensor = self.sensors[sensor_id]
                        data = sensor.frame(now - start)
                        if data:
                            self.write(data)
                            sensor.sent += 1
                        due[sensor_id] = when + sensor.period_s
                timeout = max(0.0, min(due.values()) - time.monotonic())
                if not stdin_open:
                    time.sleep(timeout)
                    continue
                for _key, _ in selector.select(timeout):
                    chunk = os.read(stdin.fileno(), 4096)
                    if not chunk:  # stdin closed: keep streaming, stop listening
                        selector.unregister(stdin.fileno())
                        stdin_open = False
                        break
                    pending += chunk
                    while b"\n" in pending:
                        line, pending = pending.split(b"\n", 1)
                        if not self.command(line.decode(errors="replace")):
                            return 0
        finally:
            self.close()

    def close(self):
        if self.link and os.path.islink(self.link):
            os.unlink(self.link)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


def parse_fault(text, board):
    """'SENSOR=MODE@SECONDS' -> (sensor, mode, seconds)."""
    try:
        target, when = text.rsplit("@", 1)
        sensor_id, mode = target.split("=", 1)
        seconds = float(when)
    except ValueError:
        raise SystemExit("--fault %r: write SENSOR=MODE@SECONDS, e.g. coolant_temp=high@5" % text)
    if sensor_id not in board.sensors:
        raise SystemExit("--fault %r: no sensor %r in %s" % (text, sensor_id, board.source))
    if mode not in MODES:
        raise SystemExit("--fault %r: mode must be one of %s" % (text, ", ".join(MODES)))
    return sensor_id, mode, seconds


def main_from_args(args):
    from edge_agent.boardfile import load_board
    from edge_agent.core.board import BoardError

    try:
        board = load_board(args.board)
    except BoardError as exc:
        raise SystemExit(str(exc))
    bus_id = args.bus or sorted(board.buses)[0]
    if bus_id not in board.buses:
        raise SystemExit("--bus %s: no such bus in %s (buses: %s)" % (bus_id, board.source, ", ".join(sorted(board.buses))))
    faults = [parse_fault(f, board) for f in args.fault]
    sim = SensorBoard(board, bus_id, seed=args.seed, link=args.link)
    stdin = sys.stdin if sys.stdin is not None and not sys.stdin.closed else None
    return sim.run(faults, duration_s=args.duration, stdin=stdin)
