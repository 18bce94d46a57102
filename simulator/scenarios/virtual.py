"""Run a scenario on a virtual clock through the real pipeline.

    PhysicalSensors --Reading--> core Device (health engine, triage) --Signal-->
        durable Store (real files, DurableSequencer) --while the link is up-->
        group_for_publish, Identity.seal (Ed25519) --> Registry.open_signals
        (verify) --> receiver Storage (SQLite: dedupe, gaps) --> store.ack

It is the agent's composition (edge_agent/gateway/agent.py and uplink.py) with the
wall clock and the network taken out: every step happens at a virtual
millisecond, in a deterministic order, as fast as the CPU goes. What the
run does in place of the agent's adapters:

- the link: while up, the store is drained at once after every append, in
  the uplink's batches (most urgent lane first, alerts alone, the rest
  bundled). "broker_down" and "partition" take it down for a window; the
  store absorbs what the device makes, and the backlog drains when the link
  returns (the uplink rewinds to the acknowledged positions first).
- the disk: ``SimDisk`` is the real POSIX adapter on a temporary directory,
  with power-loss semantics: what was written but not yet synced is gone
  after a power cut (each append file is cut back to its last synced size).
  It skips the real fsync (a 30-day run would spend minutes in fsync
  proving nothing about the agent).
- a power cut: the Device, Store and sequencer are dropped without closing
  (their RAM, including the store's write buffer, is lost), the disk is cut
  back, and after ``off`` a new Store recovers the directory, a new
  DurableSequencer resumes above its stored limit (the receiver sees the
  skipped numbers end right below the new birth signal), GPIO lines come
  back on, and a new Device starts from scratch.
- disk full: the store's byte bound shrinks to ``max_bytes`` for a window;
  the store evicts (telemetry first, never an alert while telemetry
  remains) and the evictions are reported upstream as the agent does.

Same seed, same bytes: the identity's key is derived from the seed and the
device id, Ed25519 signatures are deterministic, and nothing reads a clock
or the hash seed, so ``Result.digest`` (sha256 over every sealed message in
publish order) is byte-identical between runs.
"""

import hashlib
import os
import shutil
import tempfile
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent import __version__
from edge_agent.core import bundle
from edge_agent.core import device as dv
from edge_agent.core import reading as rd
from edge_agent.core import signals as sg
from edge_agent.core.evictions import EvictionTally
from edge_agent.core.outputs import SetOutput
from edge_agent.core.store import EVICTED, OVERFLOW, Store
from edge_agent.core.store_seq import DurableSequencer
from edge_agent.keys.identity import EDDSA, Identity
from edge_agent.receiver.service import Receiver
from edge_agent.receiver.storage import Storage
from edge_agent.receiver.registry import Registry
from edge_agent.gateway.store_posix import PosixDir
from edge_agent.gateway.uplink import BATCH_RECORDS, URGENT_PRIORITY, group_for_publish
from ..hardware import physics
from . import reading_loop
from edge_agent.gateway.gpio import SimulatedGpio

# As in edge_agent/gateway/agent.py: evictions are reported at most this often.
# The progress bar appears only when a run has taken this long (wall).
PROGRESS_AFTER_S = 1.0


# -- the disk ------------------------------------------------------------------


class _SimAppend:
    """An append file whose synced size is tracked: a power cut cuts it back."""

    __slots__ = ("fd", "path", "size", "synced", "disk")

    def __init__(self, disk, path):
        self.disk = disk
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.size = os.fstat(self.fd).st_size
        self.synced = self.size
        disk.appends[path] = self

    def write(self, data):
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]
        self.size += len(data)

    def flush(self):
        pass  # writes go to the OS at once: after a SIGKILL they would survive

    def sync(self):
        self.synced = self.size

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        self.disk.appends.pop(self.path, None)
        self.disk.closed_unsynced[self.path] = self.synced


class _SimUpdate:
    """The ack journal: written in place at once; the store makes each entry
    durable right after writing it, so a power cut never catches one
    unsynced and the simulated sync has nothing to track."""

    __slots__ = ("inner",)

    def __init__(self, inner):
        self.inner = inner

    def write_at(self, offset, data):
        self.inner.write_at(offset, data)

    def sync(self):
        pass

    def close(self):
        self.inner.close()


class SimDisk(PosixDir):
    def __init__(self, path):
        super().__init__(path, lock=True)
        self.appends = {}  # path -> open _SimAppend
        self.closed_unsynced = {}  # path -> synced size of closed but never re-synced files

    def open_append(self, name):
        return _SimAppend(self, self._p(name))

    def open_update(self, name):
        return _SimUpdate(super().open_update(name))

    def write_file(self, name, data):
        with open(self._p(name), "wb", buffering=0) as f:
            f.write(data)

    def sync_dir(self):
        pass

    def power_cut(self):
        """Lose what was not synced, release the lock (the process died)."""
        for handle in list(self.appends.values()):
            os.close(handle.fd)
            handle.fd = None
            if os.path.exists(handle.path):
                os.truncate(handle.path, handle.synced)
        self.appends.clear()
        self.closed_unsynced.clear()
        self.close()


# -- what happened ---------------------------------------------------------------


class Result:
    """Everything a run recorded, for the expectations and the reports."""

    def __init__(self, spec, seed):
        self.spec = spec
        self.seed = seed
        self.start_ms = physics.T0
        self.end_ms = physics.T0 + spec.duration_ms
        self.readings = {}  # sensor -> ([t], [value or None for a fault report])
        self.issued = []  # (seq, kind, priority, time_ms) in issue order
        self.delivered = []  # Signal objects as the receiver decoded them (no telemetry bodies kept)
        self.delivered_seqs = set()
        self.drains = []  # per drain: [(priority, kind)] in publish order, and when it started
        self.transitions = []  # (t, component, from, to) as issued by the device
        self.gpio = []  # (t, output, on)
        self.depth = []  # (t, unacknowledged records in the store)
        self.link_down = []  # [start, end) windows
        self.power_off = []  # [start, end) windows
        self.disk_full = []  # [start, end) windows
        self.evictions = []  # (t, lane, records, bytes)
        self.boots = []  # (t, birth seq)
        self.receiver_lost = []
        self.receiver_skipped = []
        self.receiver_duplicates = 0
        self.rejections = {}
        self.messages = 0
        self.digest = ""
        self.wall_s = 0.0
        self.cpu_s = 0.0  # this process's CPU time for the same span (steadier on a shared machine)
        self.readings_count = 0
        self.models = {}
        self.outcomes = []  # scenario_expect.Outcome, filled by the caller
        self.final_states = {}  # component -> state at the end ({} if the device is off)
        self.final_outputs = {}  # output -> on at the end
        self.notes = []  # things the run refused to do (an illegal operator action)
        self.received_readings = {}  # watched sensor -> [time_ms of each good reading the receiver got]
        self.crossings = {}  # (sensor, limit, below) -> the model's first reading past it, or None (expect.crossing)

    @property
    def speed(self):
        """Simulated seconds per wall second."""
        return (self.end_ms - self.start_ms) / 1000.0 / max(self.wall_s, 1e-9)

    @property
    def passed(self):
        return all(o.passed for o in self.outcomes)


def format_t(t_ms):
    """A virtual time as the offset from the run's start."""
    from .spec import format_duration

    return "t+" + format_duration(t_ms - physics.T0)


def scratch_receiver(path):
    """The receiver's SQLite storage for a virtual run: a scratch database
    that no broker acknowledgement depends on and nobody opens again after
    the run (not even after a simulated power cut, which is the device's).
    Beyond durable=False, its rollback journal stays in memory and nothing
    is synced: a commit per message is then 35-40 % cheaper (CPU time,
    about 110 -> 70 us for a 320-reading message), the same SQL with the
    same results. Its one connection keeps the file locked from its first
    write to the end: no lock, unlock and header check per commit (about 13
    system calls a message fewer). Not ":memory:": a long dense run stores
    about 50 bytes a reading, which belongs on disk."""
    storage = Storage(path, durable=False)
    storage.db.execute("PRAGMA journal_mode=MEMORY")
    storage.db.execute("PRAGMA synchronous=OFF")
    storage.db.execute("PRAGMA locking_mode=EXCLUSIVE")
    return storage


def identity_for(device_id, seed):
    """A deterministic Ed25519 identity (a simulation key, never a real one)."""
    raw = hashlib.sha256(("edge-agent simulator %s %d" % (device_id, seed)).encode()).digest()
    return Identity(device_id, EDDSA, private_key=Ed25519PrivateKey.from_private_bytes(raw))


class VirtualDevice:
    """One device's pipeline on the virtual clock, with its receiver."""

    def __init__(self, spec, seed, workdir, result, record=True):
        self.spec = spec
        self.board = spec.board
        self.result = result
        self.record = record
        self.watched = spec.watched_sensors()
        self.store_dir = os.path.join(workdir, "store")
        self.store_options = dict(spec.store_options)
        self.store_options.setdefault("segment_bytes", 64 * 1024)
        self.store_options.setdefault("max_bytes", max(4 * 1024 * 1024, 2 * self.store_options["segment_bytes"]))
        self.identity = identity_for(spec.device_id, seed)
        self.registry = Registry()
        self.registry.add_entries(self.identity.registry_entry(model=self.board.model, include_secret=True))
        self.receiver = scratch_receiver(os.path.join(workdir, "receiver.sqlite"))
        # The reference receiver's own code path, without the MQTT session.
        self.reception = Receiver(None, self.registry, self.receiver)
        self.sha = hashlib.sha256()
        self.link_up = True
        self.on = False
        self.store_due = None
        self.normal_max_bytes = self.store_options["max_bytes"]
        self.full_max_bytes = None
        self.evictions = EvictionTally()
        self.boot(physics.T0)

    # -- power ----------------------------------------------------------------

    def boot(self, now):
        self.disk = SimDisk(self.store_dir)
        self.store = Store(self.disk, now, **self.store_options)
        if self.full_max_bytes is not None:
            self.store.max_bytes = self.full_max_bytes
        self.sequencer = DurableSequencer(self.disk)
        self.device = dv.Device(self.board, self.spec.device_id, sequencer=self.sequencer,
                                telemetry_interval_ms=self.spec.telemetry_interval_ms, telemetry_max_readings=500)
        self.gpio = SimulatedGpio(self.board.outputs)  # every line on at boot
        self.on = True
        self._take_reports(now)
        birth = self.device.birth(now, "edge-agent " + __version__)
        self.result.boots.append((now, birth.seq))
        self.dispatch([birth], now)

    def power_cut(self, now):
        """SIGKILL or a power cut: nothing is closed, unsynced data is lost."""
        self.disk.power_cut()
        self.device = self.store = self.sequencer = None
        self.on = False
        self.store_due = None
        self.evictions = EvictionTally()  # the tally lived in the process that died
        for output in sorted(self.gpio.outputs):
            if not self.gpio.is_on(output):
                self.result.gpio.append((now, output, True))  # unpowered board: lines float back to default

    # -- the agent's dispatch ---------------------------------------------------

    def dispatch(self, outputs, now):
        stored = False
        result = self.result
        for item in outputs:
            if isinstance(item, SetOutput):
                self.gpio.apply(item)
                result.gpio.append((now, item.output, item.on))
            elif isinstance(item, sg.Signal):
                urgent = item.kind == sg.KIND_ALERT and item.priority <= sg.PRIORITY_HIGH
                result.issued.append((item.seq, item.kind, item.priority, item.time_ms))
                if item.kind == sg.KIND_STATE:
                    b = item.body
                    result.transitions.append((item.time_ms, b[sg.S_COMPONENT], b[sg.S_FROM], b[sg.S_TO]))
                self.store.append(item.priority, item.encode(), now, urgent=urgent)
                stored = True
        if stored:
            self._take_reports(now)
            self.store_due = self.store.poll(now)
            if self.link_up:
                self.drain(now)
            self._record_depth(now)

    def _take_reports(self, now):
        for report in self.store.take_reports():
            if report.kind in (EVICTED, OVERFLOW) and report.records:
                self.result.evictions.append((now, report.lane, report.records, report.nbytes))
            self.evictions.count(report, now)

    def evictions_signal(self, now):
        """The coalesced evictions signal (due now, or pending at the end)."""
        signal = self.evictions.take(now, force=True)
        if signal is not None:
            self.dispatch([self.device.number(signal)], now)

    def _record_depth(self, now):
        if not self.record:
            return
        depth = sum(self.store.lane_info(lane)[0] for lane in range(self.store.lanes))
        series = self.result.depth
        if not series or series[-1][1] != depth:
            series.append((now, depth))

    # -- the link -----------------------------------------------------------------

    def set_link(self, up, now):
        self.link_up = up
        if up and self.on:
            self.store.rewind()  # as the uplink does at every new session
            self.drain(now)
            self._record_depth(now)

    def _keep_readings(self, signal):
        kept = self.result.received_readings
        for row in signal.body.get(sg.T_READINGS) or ():
            if row[1] in self.watched and row[2] is not None and row[3] == rd.GOOD:
                kept.setdefault(row[1], []).append(row[0])

    def drain(self, now):
        """The uplink's pump, with the receiver on the other end."""
        store = self.store
        result = self.result
        order = []
        while True:
            batch = store.read(max_records=BATCH_RECORDS)
            if batch is None:
                break
            groups = group_for_publish(batch.records, urgent=batch.lane <= URGENT_PRIORITY)
            self.receiver.begin()
            for kind, records in groups:
                payload = records[0] if len(records) == 1 else bundle.encode(records)
                sealed = self.identity.seal(payload)
                self.sha.update(len(sealed).to_bytes(4, "big"))
                self.sha.update(sealed)
                result.messages += 1
                # Duplicates (sent again after a power cut) are dropped there.
                for signal in self.reception.accept(sg.topic(self.spec.device_id, kind), sealed, now):
                    result.delivered_seqs.add(signal.seq)
                    order.append((signal.priority, signal.kind))
                    if signal.kind == sg.KIND_TELEMETRY:
                        if self.watched:
                            self._keep_readings(signal)
                        signal.body = None  # the receiver has it; keep the run's memory flat
                    result.delivered.append(signal)
            self.receiver.commit()
            store.ack(batch.lane, batch.end)
        if order:
            result.drains.append((now, order))
        self.store_due = store.poll(now)


# -- the run ---------------------------------------------------------------------


def run(spec, seed=None, console=None, quiet=True, record=True, workdir=None):
    """Run ``spec``; returns a Result with its expectations judged."""
    from . import expect as scenario_expect

    seed = spec.seed if seed is None else seed
    result = Result(spec, seed)
    own_dir = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="ea-scenario-")
    try:
        _run(spec, seed, result, workdir, console, quiet, record)
    finally:
        if own_dir:
            shutil.rmtree(workdir, ignore_errors=True)
    result.outcomes = scenario_expect.evaluate(spec, result)
    return result


def _timeline(spec):
    """Device-level events: (t, order, action, fault). Order breaks ties:
    ends before starts, so back-to-back windows hand over cleanly."""
    events = []
    for fault in spec.faults:
        at = physics.T0 + fault.at_ms
        end = physics.T0 + fault.end_ms if fault.end_ms is not None else None
        if fault.kind in ("broker_down", "partition"):
            events.append((at, 1, "link_down", fault))
            if end is not None:
                events.append((end, 0, "link_up", fault))
        elif fault.kind == "power_cut":
            events.append((at, 1, "power_cut", fault))
            events.append((at + fault.args["off_ms"], 2, "power_on", fault))
        elif fault.kind == "disk_full":
            events.append((at, 1, "disk_full", fault))
            if end is not None:
                events.append((end, 0, "disk_ok", fault))
        elif fault.kind in ("force", "release"):
            events.append((at, 3, fault.kind, fault))
    events.sort(key=lambda e: (e[0], e[1], e[3].key))
    return events


def _run(spec, seed, result, workdir, console, quiet, record):
    models = spec.models(seed)
    result.models = models
    vd = VirtualDevice(spec, seed, workdir, result, record=record)
    end = result.end_ms
    # The reading queue: each sensor's next reading time, by its index (its
    # rank by id, so ties go in id order); per-sensor lookups are list indexes.
    ids = sorted(models)
    queue = reading_loop.ReadingQueue([physics.T0 + i for i in range(len(ids))])
    periods = [models[sid].period_ms for sid in ids]
    powers = [models[sid].power_output for sid in ids]
    samplers = [models[sid].sampler() for sid in ids]
    series_of = [None] * len(ids)
    events = _timeline(spec)
    ei = 0
    now = physics.T0
    link_down_since = None
    off_since = None
    full_since = None
    readings = result.readings
    if record:
        for i, sid in enumerate(ids):
            readings[sid] = series_of[i] = ([], [])
    wall0 = time.perf_counter()
    cpu0 = time.process_time()
    progress = None
    task = None
    show = console is not None and not quiet and console.is_terminal
    steps = 0
    next_show = 2000
    try:
        while True:
            steps += 1
            if show and steps >= next_show:
                next_show = steps + 2000
                elapsed = time.perf_counter() - wall0
                if progress is None and elapsed > PROGRESS_AFTER_S:
                    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

                    progress = Progress(TextColumn("[bold]%s" % spec.stem), BarColumn(),
                                        TextColumn("{task.fields[sim]}"), TimeRemainingColumn(),
                                        console=console, transient=True)
                    progress.start()
                    task = progress.add_task("run", total=end - physics.T0, sim="")
                if progress is not None:
                    progress.update(task, completed=now - physics.T0,
                                    sim="day %.1f, %.0fx" % ((now - physics.T0) / physics.DAY_MS,
                                                             (now - physics.T0) / 1000.0 / max(elapsed, 1e-9)))
            # The next thing to happen, in a fixed order on ties: timeline,
            # device deadline, store group commit, evictions report, reading.
            t_event = events[ei][0] if ei < len(events) else None
            t_dev = vd.device.next_deadline() if vd.on else None
            t_store = vd.store_due if vd.on else None
            t_evict = vd.evictions.due_ms if vd.on else None
            t_read = queue.first()
            best = None
            which = None
            for t, name in ((t_event, "event"), (t_dev, "device"), (t_store, "store"), (t_evict, "evict"),
                            (t_read, "read")):
                if t is not None and (best is None or t < best):
                    best, which = t, name
            if best is None or best > end:
                break
            now = max(now, best)
            if which == "event":
                _, _, action, fault = events[ei]
                ei += 1
                if action == "link_down":
                    if vd.link_up:
                        vd.link_up = False
                        link_down_since = now
                elif action == "link_up":
                    if not vd.link_up:
                        result.link_down.append((link_down_since, now))
                        vd.set_link(True, now)
                elif action == "power_cut":
                    if vd.on:
                        vd.power_cut(now)
                        off_since = now
                elif action == "power_on":
                    if not vd.on:
                        result.power_off.append((off_since, now))
                        vd.boot(now)
                elif action == "disk_full":
                    vd.full_max_bytes = fault.args["max_bytes"] or 2 * vd.store_options["segment_bytes"]
                    full_since = now
                    if vd.on:
                        vd.store.max_bytes = vd.full_max_bytes
                elif action == "disk_ok":
                    vd.full_max_bytes = None
                    result.disk_full.append((full_since, now))
                    if vd.on:
                        vd.store.max_bytes = vd.normal_max_bytes
                elif action in ("force", "release") and vd.on:
                    op = vd.device.force if action == "force" else vd.device.release
                    try:
                        vd.dispatch(op(fault.args["component"], now, fault.args["who"]), now)
                    except Exception as exc:  # an illegal transition is the scenario's finding, not a crash
                        result.notes.append("%s %s at %s: %s" % (action, fault.args["component"],
                                                                 format_t(now), exc))
            elif which == "device":
                outputs, _ = vd.device.poll(now)
                vd.dispatch(outputs, now)
            elif which == "store":
                vd.store_due = vd.store.poll(now)
            elif which == "evict":
                vd.evictions_signal(now)
            else:
                # Readings, back to back while nothing else is due first
                # (reading_loop.read, the loop nearly every step is in).
                others = None
                for t in (t_event, t_dev, t_store, t_evict):
                    if t is not None and (others is None or t < others):
                        others = t
                limit = end + 1 if others is None or others > end else others
                on = vd.on
                batch = reading_loop.read(queue, limit, periods, powers, samplers, series_of, record,
                                          vd.device if on else None, vd.gpio.state if on else None, vd.dispatch)
                if batch.now is not None:
                    now = batch.now
                steps += batch.steps
                result.readings_count += batch.readings
        # The end: whatever windows are open close here; a device that is
        # on flushes its telemetry and, with the link up, drains.
        now = end
        if not vd.link_up:
            result.link_down.append((link_down_since, end))
        if not vd.on:
            result.power_off.append((off_since, end))
        if vd.full_max_bytes is not None:
            result.disk_full.append((full_since, end))
        if vd.on:
            result.final_states = vd.device.component_states()
            result.final_outputs = dict(vd.gpio.state)
            vd.dispatch(vd.device.flush(end), end)
            if vd.evictions.due_ms is not None:
                vd.evictions_signal(end)
            vd.store.close()
        vd.disk.close()
    finally:
        if progress is not None:
            progress.stop()
        result.wall_s = time.perf_counter() - wall0
        result.cpu_s = time.process_time() - cpu0
    lost, skipped = vd.receiver.missing(spec.device_id)
    result.receiver_lost = lost
    result.receiver_skipped = skipped
    row = vd.receiver.db.execute("SELECT duplicates FROM devices WHERE device = ?", (spec.device_id,)).fetchone()
    result.receiver_duplicates = row[0] if row else 0
    result.rejections = vd.receiver.rejection_counts()
    vd.receiver.close()
    result.digest = vd.sha.hexdigest()
