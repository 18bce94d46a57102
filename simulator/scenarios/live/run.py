"""Run a scenario live: the same file, on real time, with real processes
and faults really applied (`edge-agent sim run --live FILE`).

    LiveBoard (physics on ptys)   --serial--> edge-agent run (real process)
    LiveModbus (pymodbus on ptys) --RTU----->     |
        --TLS--> FaultProxy --> mosquitto (TLS, real) --> edge-agent receiver run
                                                              |
                                         receiver.sqlite <----/  (expectations judged here)

What runs: a throwaway CA, mosquitto with mutual TLS, the shipped ACL
(docs/deploy/: the agent writes only as its device, the receiver reads as
a receiver) and persistence (a broker restart keeps the receiver's
session), the reference receiver
subscribed straight to it, the fault proxy in front of it for the agent
only, the scenario's physics on a pty per line-protocol bus and in the
registers of pymodbus slaves on a pty per Modbus bus, and the agent with
simulated GPIO (its power cuts silence the board's sensors).

Time: the scenario's timeline (its physics, its faults, its expectation
windows) runs ``speed`` times faster than the wall clock; the agent's own
timers (stuck rules, probes, keepalive, group commit) stay real. At speed
60, a scenario minute passes in a second, while a 10 s stuck rule still
needs 10 wall seconds (600 scenario seconds). Times the receiver stored
(the device's clock) are mapped back to scenario time, so the same
expectations, JUnit and PNG reports work unchanged.

How each fault is applied: simulator/scenarios/live/faults.py (and docs/simulator.md).

An agent that exits on its own is a finding: it is noted with its last
error line and restarted after a second, as a supervisor would.
"""

import os
import re
import shutil
import tempfile
import time

from rich.markup import escape

from edge_agent.core import cbor
from edge_agent.core import signals as sg
from edge_agent.keys.identity import create_identity
from edge_agent.receiver.storage import Storage
from . import faults as live_faults
from ...hardware import physics
from ...faults import small_fs
from ...fixtures.broker import Acl, Mosquitto
from ...faults.fault_proxy import FaultProxy
from .board import LiveBoard
from .modbus import LiveModbus
from ...fixtures.pki import DevPKI
from ...fixtures.processes import Child, edge_agent_argv
from ..spec import format_duration
from ..virtual import Result

DISK_FS_BYTES = 8 * 1024 * 1024  # the tmpfs holding the store when a scenario fills the disk
DEFAULT_STORE_MAX = 4 * 1024 * 1024  # as on the virtual clock: well under the tmpfs
SUPERVISOR_RESTART_S = 1.0
FINAL_DELIVERY_S = 15.0
# At the end, with the link up, an agent still in its reconnect backoff
# (full jitter, capped at 30 s: edge_agent/gateway/uplink.py) is given this long to
# come back and drain, as the virtual clock drains at the end.
FINAL_RECONNECT_S = 35.0
# The agent's log lines worth showing people (show_agent).
_SHOWN = re.compile(r"alert #|state #|gpio: gpio|bus \S+: garbage|connected to broker|unreachable"
                    r"|store .*recovered|last seq issued")
_GPIO_LINE = re.compile(r"gpio: gpio (\S+) \(.*\) -> (on|off)")


class LiveError(RuntimeError):
    """The live run could not be set up (message says what to do)."""


def run(spec, seed=None, speed=None, console=None, quiet=True, workdir=None, show_agent=False):
    """Run ``spec`` live; returns a scenario_run.Result, expectations judged.
    ``show_agent``: also print the agent's alert, state, GPIO and link lines."""
    from .. import expect as scenario_expect

    seed = spec.seed if seed is None else seed
    result = Result(spec, seed)
    live = LiveRun(spec, seed, speed or spec.speed, result, workdir, console, quiet)
    live.show_agent = show_agent
    try:
        live.execute()
    finally:
        live.cleanup()
    result.outcomes = scenario_expect.evaluate(spec, result)
    return result


class LiveRun:
    def __init__(self, spec, seed, speed, result, workdir, console, quiet):
        self.spec = spec
        self.board = spec.board
        self.seed = seed
        self.speed = float(speed)
        self.result = result
        self.own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="ea-live-")
        self.console = console
        self.quiet = quiet
        self.children = []
        self.broker = None
        self.proxy = None
        self.live_board = None
        self.agent = None
        self.agent_argv = None
        self.mounted = None
        self.filler = None
        self.wall0 = None
        self.gpio_state = dict((o, True) for o in self.board.outputs)
        self.lines_seen = 0
        self.last_seq = 0
        self.restart_at = None
        self.windows = {}  # kind -> scenario ms the open window began
        self.show_agent = False
        self.uplink_down = True  # until the agent says it connected

    # -- time --------------------------------------------------------------------

    def now(self):
        """The scenario time now, in ms (physics.T0 at the start)."""
        return physics.T0 + int((time.time() * 1000.0 - self.wall0) * self.speed)

    def t_now(self):
        """The scenario time now as a t+ offset, for people."""
        return _t(self.now())

    def to_scenario(self, wall_ms):
        return physics.T0 + int((wall_ms - self.wall0) * self.speed)

    def say(self, text):
        if self.console is not None and not self.quiet:
            self.console.print(text, highlight=False)

    # -- set-up -------------------------------------------------------------------

    def execute(self):
        spec = self.spec
        source = getattr(self.board, "source", None)
        if not source or not os.path.isfile(str(source)):
            raise LiveError("%s: live mode needs a board file (the agent process reads it), not an inline "
                            "[hardware] board: move the [hardware] tables into boards/NAME.toml (without the "
                            "'hardware.' prefix) and set scenario.board = \"boards/NAME.toml\"" % spec.path)
        other = sorted(b.id for b in self.board.buses.values() if b.protocol not in ("line", "modbus"))
        if other:
            self.result.notes.append("buses %s are not simulated in live mode (line and Modbus buses are)" %
                                     ", ".join(other))
        self.say("[bold]live[/]: %s (%s), %s of scenario time at %gx: %s wall" % (
            spec.name, os.path.relpath(spec.path), format_duration(spec.duration_ms), self.speed,
            format_duration(spec.duration_ms / self.speed)))
        pki = DevPKI(os.path.join(self.workdir, "pki"))
        self.pki = pki
        self.identity_dir = os.path.join(self.workdir, "identity")
        identity = create_identity(self.identity_dir, spec.device_id)
        registry = os.path.join(self.workdir, "devices.toml")
        with open(registry, "w") as f:
            f.write(identity.registry_entry(model=self.board.model))
        acl = Acl()
        acl.device(spec.device_id, self.board.model or None)
        acl.receiver("live")
        self.broker = Mosquitto(os.path.join(self.workdir, "broker"), pki=pki, persistent=True, acl=acl).start()
        self.proxy = FaultProxy(self.broker.port, seed=self.seed).start()
        self.db = os.path.join(self.workdir, "receiver.sqlite")
        cert, key = pki.receiver("live")
        receiver = Child("receiver", edge_agent_argv(
            "receiver", "run", "--registry", registry, "--db", self.db, "--no-live", "--group", "",
            "--client-id", "live-receiver-" + spec.device_id, "--broker", "127.0.0.1:%d" % self.broker.port,
            "--ca", pki.ca_cert, "--cert", cert, "--key", key), relay=False)
        self.children.append(receiver)
        self.receiver = receiver
        receiver.wait_for("receiving", 20)
        self.store_dir = self._store_dir()
        models = spec.models(self.seed)
        self.result.models = models
        for sid in models:
            self.result.readings[sid] = ([], [])
        self.live_board = LiveBoard(self.board, models, self.now, self.workdir, seed=self.seed,
                                    powered=lambda output: self.gpio_state.get(output, True), record=self._record)
        self.modbus = LiveModbus(self.board, models, self.now, self.workdir, record=self._record)
        self.wall0 = time.time_ns() // 1000000  # provisional, for the first register values
        self.modbus.start()
        self.agent_argv = self._agent_argv()
        self.start_agent()
        self.agent.wait_for("connected to broker", 30)
        self.say("  mosquitto (TLS, ACL) :%d, fault proxy :%d, receiver, agent %s on %s" % (
            self.broker.port, self.proxy.port, spec.device_id,
            ", ".join("%s=%s" % (b, os.path.basename(p)) for b, p in sorted(
                [(b, self.live_board.path(b)) for b in self.live_board.ports] + list(self.modbus.links.items())))))
        # Whole ms, as the agent stamps its signals: a frame sent at scenario
        # time t is never stamped before t.
        self.wall0 = time.time_ns() // 1000000
        self.live_board.start()
        self._play()
        self._finish()

    def _store_dir(self):
        """The agent's store: on a small tmpfs of its own when the scenario
        fills the disk (so the disk really fills), else in the work dir."""
        store_dir = os.path.join(self.workdir, "store")
        if not any(f.kind == "disk_full" for f in self.spec.faults):
            return store_dir
        mount_point = os.path.join(self.workdir, "storefs")
        os.makedirs(mount_point)
        why = small_fs.mount_tmpfs(mount_point, DISK_FS_BYTES)
        if why:
            self.result.notes.append(
                "disk_full not applied: could not mount a %d MiB tmpfs for the store (%s); run as root (mount "
                "needs CAP_SYS_ADMIN)" % (DISK_FS_BYTES >> 20, why))
            return store_dir
        self.mounted = mount_point
        return os.path.join(mount_point, "store")

    def _agent_argv(self):
        spec = self.spec
        cert, key = self.pki.client(spec.device_id)
        telemetry = max(200, int(spec.telemetry_interval_ms / self.speed))
        options = dict(spec.store_options)
        argv = ["run", "--board", str(self.board.source), "--identity", self.identity_dir,
                "--store-dir", self.store_dir, "--gpio", "simulated", "--telemetry-interval-ms", str(telemetry),
                "--broker", "127.0.0.1:%d" % self.proxy.port, "--ca", self.pki.ca_cert, "--cert", cert, "--key", key,
                "--store-max-bytes", str(options.get("max_bytes", DEFAULT_STORE_MAX)),
                "--store-segment-bytes", str(options.get("segment_bytes", 64 * 1024))]
        for bus in sorted(self.live_board.ports):
            argv += ["--port", "%s=%s" % (bus, self.live_board.path(bus))]
        for bus in sorted(self.modbus.links):
            argv += ["--port", "%s=%s" % (bus, self.modbus.path(bus))]
        if "sync_every" in options:
            argv += ["--sync-every", str(options["sync_every"])]
        if "sync_ms" in options:
            argv += ["--sync-ms", str(options["sync_ms"])]
        if spec.keepalive_ms:
            argv += ["--keepalive", str(max(1, spec.keepalive_ms // 1000))]
        return edge_agent_argv(*argv)

    def start_agent(self):
        self.agent = Child("agent", self.agent_argv, relay=False)
        self.children.append(self.agent)
        self.lines_seen = 0
        self.uplink_down = True

    def _record(self, sensor_id, t_ms, value):
        times, values = self.result.readings[sensor_id]
        times.append(t_ms)
        values.append(value)

    # -- the run --------------------------------------------------------------------

    def _play(self):
        spec = self.spec
        events = live_faults.timeline(spec)
        end_wall = self.wall0 + spec.duration_ms / self.speed
        index = 0
        while True:
            wall = time.time() * 1000.0
            if wall >= end_wall:
                break
            while index < len(events) and self.wall0 + events[index][0] / self.speed <= wall:
                _, _, action, fault = events[index]
                index += 1
                live_faults.apply(self, action, fault)
            self._watch_agent()
            next_event = self.wall0 + events[index][0] / self.speed if index < len(events) else end_wall
            wait_ms = min(next_event, end_wall) - time.time() * 1000.0
            time.sleep(min(0.05, max(0.0, wait_ms / 1000.0)))

    def window(self, kind, opening):
        now = self.now()
        if opening:
            self.windows.setdefault(kind, now)
            return
        start = self.windows.pop(kind, None)
        if start is not None:
            target = {"power": self.result.power_off, "disk": self.result.disk_full}.get(kind, self.result.link_down)
            target.append((start, now))

    def power_lost(self):
        """An unpowered board: GPIO lines float back to their default (on)."""
        now = self.now()
        for output in sorted(self.gpio_state):
            if not self.gpio_state[output]:
                self.gpio_state[output] = True
                self.result.gpio.append((now, output, True))

    def agent_lines(self):
        """New agent log lines: GPIO changes and the last seq it issued."""
        lines = self.agent.lines
        now = self.now()
        while self.lines_seen < len(lines):
            line = lines[self.lines_seen]
            self.lines_seen += 1
            if self.show_agent and _SHOWN.search(line):
                self.say("  %s  [dim]agent |[/] %s" % (_t(now), escape(line.split(": ", 1)[-1][:150])))
            match = _GPIO_LINE.search(line)
            if match:
                on = match.group(2) == "on"
                self.gpio_state[match.group(1)] = on
                self.result.gpio.append((now, match.group(1), on))
            elif "connected to broker" in line:
                self.uplink_down = False
            elif "unreachable" in line:
                self.uplink_down = True
            elif "last seq issued" in line:
                self.last_seq = max(self.last_seq, int(line.rsplit(" ", 1)[1]))

    def _watch_agent(self):
        """Follow the agent's log; restart it if it died on its own."""
        self.agent_lines()
        if "power" in self.windows:
            return
        if self.agent.process.poll() is None:
            return
        if self.restart_at is None:
            errors = [line for line in self.agent.lines if "ERROR" in line or "Error" in line]
            self.result.notes.append("the agent exited by itself (code %s) at %s: %s; restarted after %.0f s" % (
                self.agent.process.returncode, _t(self.now()), (errors[-1] if errors else "no error logged")[-200:],
                SUPERVISOR_RESTART_S))
            self.say("  %s  [red]the agent exited (code %s)[/]: restarting it" % (
                _t(self.now()), self.agent.process.returncode))
            self.restart_at = time.monotonic() + SUPERVISOR_RESTART_S
        elif time.monotonic() >= self.restart_at:
            self.restart_at = None
            self.start_agent()

    # -- the end --------------------------------------------------------------------

    def _finish(self):
        result = self.result
        self.live_board.stop()
        self.modbus.stop()
        end_scn = self.now()
        if self.restart_at is not None and "power" not in self.windows:
            self.restart_at = None
            self.start_agent()  # the supervisor's pending restart: what it stored must still go out
        running = self.agent.process.poll() is None
        link_up = "link" not in self.windows
        if running and link_up and self.uplink_down:
            waited = time.monotonic()
            deadline = waited + FINAL_RECONNECT_S
            while self.uplink_down and self.agent.process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
                self.agent_lines()
            result.notes.append("at the end the agent was in its reconnect backoff: waited %.1f s for it to %s" % (
                time.monotonic() - waited, "reconnect" if not self.uplink_down else "reconnect, in vain"))
        running = self.agent.process.poll() is None
        if running:
            result.final_outputs = dict(self.gpio_state)
            self.agent.stop()  # SIGTERM: it drains for a grace period, then syncs and closes its store
            self.agent_lines()
        if running and link_up:
            deadline = time.monotonic() + FINAL_DELIVERY_S
            while self._max_seq() < self.last_seq and time.monotonic() < deadline:
                time.sleep(0.1)
        time.sleep(0.3)  # the receiver commits what is in flight
        for kind in list(self.windows):
            start = self.windows.pop(kind)
            target = {"power": result.power_off, "disk": result.disk_full}.get(kind, result.link_down)
            target.append((start, end_scn))
        self.receiver.stop()
        self._collect(running)
        result.wall_s = (time.time() * 1000.0 - self.wall0) / 1000.0
        result.digest = "(live run: not deterministic)"
        result.notes.append("live at %gx; proxy: %s; board: %s" % (
            self.speed, ", ".join("%s %s" % kv for kv in sorted(self.proxy.snapshot().items()) if kv[1]),
            ", ".join("%s %s" % kv for kv in sorted(self.live_board.stats.items()))))

    def _max_seq(self):
        try:
            storage = Storage(self.db)
            try:
                row = storage.db.execute("SELECT COALESCE(MAX(seq), 0) FROM signals WHERE device = ?",
                                         (self.spec.device_id,)).fetchone()
            finally:
                storage.close()
            return row[0]
        except Exception:  # the receiver holds a write lock: ask again
            return 0

    def _collect(self, running):
        """The receiver's database, as a Result on the scenario's time axis."""
        result = self.result
        device = self.spec.device_id
        storage = Storage(self.db)
        try:
            rows = storage.db.execute(
                "SELECT seq, kind, priority, time_ms, received_ms, body FROM signals WHERE device = ? "
                "ORDER BY received_ms, seq", (device,)).fetchall()
            changes = []
            watched = self.spec.watched_sensors()
            for seq, kind, priority, time_ms, received_ms, body in rows:
                # Telemetry bodies are not kept (as in scenario_run): only
                # the good readings' times of sensors a `readings` expectation watches.
                if kind == sg.KIND_TELEMETRY and watched:
                    for row in cbor.loads(body).get(sg.T_READINGS) or ():
                        if row[1] in watched and row[2] is not None and row[3] == 0:
                            result.received_readings.setdefault(row[1], []).append(self.to_scenario(row[0]))
                body = {} if kind == sg.KIND_TELEMETRY else cbor.loads(body)
                signal = sg.Signal(kind, priority, self.to_scenario(time_ms), body, device, seq)
                result.delivered.append(signal)
                result.delivered_seqs.add(seq)
                result.issued.append((seq, kind, priority, signal.time_ms))
                if kind == sg.KIND_STATE:
                    b = signal.body
                    result.transitions.append((signal.time_ms, b[sg.S_COMPONENT], b[sg.S_FROM], b[sg.S_TO]))
                elif kind == sg.KIND_BIRTH:
                    result.boots.append((signal.time_ms, seq))
                changes.append((signal.time_ms, 1))
                changes.append((self.to_scenario(received_ms), -1))
            lost, skipped = storage.missing(device)
            result.receiver_lost = lost
            result.receiver_skipped = skipped
            top = max([self.last_seq] + [seq for seq, _, _, _ in result.issued])
            skipped_seqs = set(seq for first, last in skipped for seq in range(first, last + 1))
            for seq in range(1, top + 1):
                if seq not in result.delivered_seqs and seq not in skipped_seqs:
                    result.issued.append((seq, None, None, None))  # issued, never arrived
            result.issued.sort(key=lambda item: item[0])
            result.messages = storage.db.execute("SELECT COUNT(*) FROM envelopes").fetchone()[0]
            row = storage.db.execute("SELECT duplicates FROM devices WHERE device = ?", (device,)).fetchone()
            result.receiver_duplicates = row[0] if row else 0
            result.rejections = storage.rejection_counts()
        finally:
            storage.close()
        result.transitions.sort(key=lambda item: item[0])
        result.boots.sort()
        result.readings_count = sum(len(times) for times, _ in result.readings.values())
        # Signals made but not yet at the receiver, over time (device time
        # in, arrival out): the backlog the agent's store was holding.
        depth = 0
        result.depth = [(physics.T0, 0)]
        for t, step in sorted(changes):
            depth += step
            result.depth.append((max(t, physics.T0), depth))
        if running:
            last_boot = result.boots[-1][0] if result.boots else physics.T0
            states = dict((c, "ok") for c in self.board.components)
            for t, component, _, to in result.transitions:
                if t >= last_boot:
                    states[component] = to
            result.final_states = states
        # The live receiver sees arrival order, not the agent's batches:
        # "alerts first" is judged on the virtual clock only.

    def cleanup(self):
        if self.live_board is not None:
            self.live_board.stop()
        if getattr(self, "modbus", None) is not None:
            self.modbus.stop()
        for child in reversed(self.children):
            child.stop()
        self._save_logs()
        if self.proxy is not None and self.proxy._loop is not None:
            self.proxy.stop()
        if self.broker is not None:
            self.broker.stop()
        if self.mounted is not None:
            small_fs.unmount(self.mounted)
        if self.own_workdir and not os.environ.get("EA_LIVE_KEEP"):
            shutil.rmtree(self.workdir, ignore_errors=True)


    def _save_logs(self):
        """Each process's output in the work dir (kept with EA_LIVE_KEEP=1)."""
        counts = {}
        for child in self.children:
            counts[child.name] = counts.get(child.name, 0) + 1
            path = os.path.join(self.workdir, "%s-%d.log" % (child.name, counts[child.name]))
            with open(path, "w") as f:
                f.write(child.text() + "\n")


def _t(ms):
    return "t+" + format_duration(ms - physics.T0)
