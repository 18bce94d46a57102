"""Fleet mode: N simulated devices against one real mosquitto (TLS) and the
reference receiver process, in real time.

    fleet process (one asyncio loop)                   receiver process
    FleetDevice x N: core Device <- physics,           edge-agent receiver run
      durable store (own dir), uplink (own TLS   --->  mosquitto  --->  verify, dedupe, SQLite,
      MQTT connection, full-jitter backoff),    <---  (restarted      fleet escalation: K of N ->
      downlink: signed advisory -> audit signal        mid-run)       incident, signed advisory

What a run does (``FleetRun.run``):

1. a throwaway PKI, a mosquitto with persistence (simulator/fleet/broker.py),
   an operator key (the receiver signs advisories with it; every device
   trusts it), N device identities (Ed25519, or HMAC for some) and the
   receiver's registry with each device's model;
2. the receiver process, with the fleet file's K, fraction and window;
3. the devices, started over ``ramp``; one ticker feeds their physics;
4. the timeline: ``broker_down`` stops mosquitto and starts it again (the
   reconnect storm: connects are counted at each device's CONNACK and in
   mosquitto's log, per second); sensor faults hit the ``faulty`` devices,
   each up to ``fault_spread`` later than the file says;
5. at the end: devices flush and drain their stores, the receiver catches
   up, and everything is judged from the receiver's database: every issued
   seq of every device verified and stored, the fleet incident, the
   advisory's audit signal from every device of the model and from no
   other.

Exit codes as `sim run`: 0 every expectation held, 1 one failed, 2 a bad
fleet file.
"""

import asyncio
import concurrent.futures
import os
import random
import shutil
import sqlite3
import tempfile
import time

from edge_agent.core import cbor
from edge_agent.core import signals as sg
from ..scenarios import spec as sc
from .broker import FleetBroker, per_second, raise_fd_limit
from .device import FleetDevice, quiet_agent_logs

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_FILE = 2

# After the timeline: how long devices may take to empty their stores, and
# the receiver to store what they sent (grows with the fleet).
DRAIN_BASE_S = 20.0
DRAIN_PER_DEVICE_S = 0.03
TICK_S = 0.1
# aiomqtt connects (TCP + TLS handshake) in the default executor: enough
# threads that the fleet, not the pool, sets the storm's pace (32 made the
# loop no more punctual here).
CONNECT_THREADS = 256
RECEIVER_ID = "fleet-receiver"
# The receiver subscribes plainly (--group ''), not with a shared
# subscription: mosquitto 2.0.11 restores a persistent session's shared
# subscription at a restart but delivers it nothing published before the
# client reconnects (checked with mosquitto_sub -c: a plain subscription
# gets those messages, a $share one does not). Devices reconnecting ahead of
# the receiver then lose what the broker PUBACKed to them (docs/fleet.md).


def now_ms():
    return time.time_ns() // 1_000_000


class Storm:
    """Connect times around one broker outage."""

    def __init__(self, down_ms, up_ms):
        self.down_ms = down_ms
        self.up_ms = up_ms  # when the restarted broker listened again
        self.first_after = {}  # device -> ms of its first CONNACK after the restart
        self.broker_per_second = {}  # unix second -> connects in mosquitto's log

    @property
    def peak(self):
        return max(self.broker_per_second.values()) if self.broker_per_second else 0

    def client_peak(self):
        """The most CONNACKs in any one second (sliding, by the clients' clocks)."""
        times = sorted(self.first_after.values())
        best, start = 0, 0
        for end in range(len(times)):
            while times[end] - times[start] >= 1000:
                start += 1
            best = max(best, end - start + 1)
        return best

    def spread_ms(self):
        times = sorted(self.first_after.values())
        return (times[-1] - times[0]) if times else 0

    def last_after_up_ms(self):
        return (max(self.first_after.values()) - self.up_ms) if self.first_after else None


class Result:
    def __init__(self, spec):
        self.spec = spec
        self.devices = 0
        self.hmac_devices = 0
        self.wall_s = 0.0
        self.issued = 0
        self.stored = 0
        self.lost = 0
        self.missing_by_device = {}
        self.rejected = {}
        self.readings = 0
        self.connects = 0
        self.storms = []
        self.incidents = []  # rows of receiver.fleet.incidents
        self.advisory = {}  # model -> {"devices", "applied", "refused", "sent"}
        self.advisory_elsewhere = []  # devices of other models that audited an advisory
        self.advisory_last_ms = None
        self.fault_start_ms = None
        self.outcomes = []  # (ExpectSpec, passed, evidence)
        self.errors = []  # devices whose agent raised
        self.max_stall_ms = 0  # the physics ticker's worst lateness
        self.workdir = None
        self.receiver_tail = ""

    @property
    def passed(self):
        return not self.errors and all(ok for _, ok, _ in self.outcomes)


class FleetRun:
    def __init__(self, spec, workdir=None, console=None, quiet=False, keep=False):
        self.spec = spec
        self.console = console
        self.quiet = quiet
        self.keep = keep or workdir is not None
        self.workdir = workdir or tempfile.mkdtemp(prefix="ea-fleet-")
        self.result = Result(spec)
        self.result.workdir = self.workdir
        self.devices = []
        self.broker = None
        self.receiver = None
        self.t0_ms = None
        self.storms = []
        self.phase = "starting"
        self.broker_executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="broker-control")
        self.secrets = {}  # HMAC devices' secrets (they also verify advisories with them)
        self.trusted = None

    # -- setup -------------------------------------------------------------------

    def _setup(self):
        from edge_agent.keys.operators import create_operator
        from ..fixtures.pki import DevPKI

        spec = self.spec
        raise_fd_limit()
        self.pki = DevPKI(os.path.join(self.workdir, "pki"))
        # One client certificate for every simulated device: TLS admits the
        # fleet to the broker; each device's own key signs its signals.
        self.client_cert = self.pki.client("fleet-devices")
        self.receiver_cert = self.pki.client("receiver")
        self.broker = self._new_broker(os.path.join(self.workdir, "broker")).start()
        self.operator = create_operator(os.path.join(self.workdir, "operator"), "fleet-ops")
        self.operators_path = os.path.join(self.workdir, "operators.toml")
        with open(self.operators_path, "w") as f:
            f.write(self.operator.public_entry())
        self.identities = self._identities()
        self.registry_path = os.path.join(self.workdir, "devices.toml")
        fd = os.open(self.registry_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            for index, identity in enumerate(self.identities):
                f.write(identity.registry_entry(model=spec.model_of(index), include_secret=True))
        self.db_path = os.path.join(self.workdir, "receiver.sqlite")

    def _new_broker(self, directory):
        return FleetBroker(directory, self.pki)

    def _receiver_options(self):
        """More `receiver run` options (a subclass's: repair_run.py)."""
        return []

    def _identities(self):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from edge_agent.keys.identity import EDDSA, HMAC256, Identity

        rng = random.Random(self.spec.scenario.seed)
        identities = []
        for index, device_id in enumerate(self.spec.device_ids()):
            if self.spec.algorithm_of(index) == HMAC256:
                self.secrets[device_id] = rng.randbytes(32)
                identities.append(Identity(device_id, HMAC256, secret=self.secrets[device_id]))
                self.result.hmac_devices += 1
            else:
                key = Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))
                identities.append(Identity(device_id, EDDSA, private_key=key))
        return identities

    def _broker_args(self, cert):
        return ["--broker", "127.0.0.1:%d" % self.broker.port, "--ca", self.pki.ca_cert, "--cert", cert[0],
                "--key", cert[1]]

    def _start_receiver(self):
        from ..fixtures.processes import Child

        self.receiver = Child("receiver", self._receiver_argv(RECEIVER_ID, ""), relay=False)
        self.receiver.wait_for("receiving", 30)

    def _receiver_argv(self, client_id, group):
        from ..fixtures.processes import edge_agent_argv

        spec = self.spec
        return edge_agent_argv(
            "receiver", "run", "--registry", self.registry_path, "--db", self.db_path, "--no-live",
            "--client-id", client_id, "--group", group, "--operator", os.path.join(self.workdir, "operator"),
            "--fleet-k", str(spec.receiver_k), "--fleet-fraction", repr(spec.receiver_fraction),
            "--fleet-window", "%ds" % max(1, spec.receiver_window_ms // 1000), "--keepalive", "5",
            *self._receiver_options(), *self._broker_args(self.receiver_cert))

    def _devices(self, start_ms):
        from edge_agent.broker import BrokerSettings, client_context

        spec = self.spec
        scenario = spec.scenario
        context = client_context(self.pki.ca_cert, *self.client_cert)
        settings = BrokerSettings("127.0.0.1", self.broker.port, context, keepalive_s=30)
        faulty = set(spec.faulty_ids())
        rng = random.Random(scenario.seed + 1)
        store_options = dict(scenario.store_options)
        store_options.setdefault("max_bytes", 512 * 1024)
        store_options.setdefault("segment_bytes", 32 * 1024)
        for index, identity in enumerate(self.identities):
            board = _board_of_model(scenario.board, spec.model_of(index))
            models = scenario.models(scenario.seed * 100003 + index, start_ms)
            delay = rng.randrange(0, spec.fault_spread_ms + 1) if spec.fault_spread_ms else 0
            for model in models.values():
                if identity.device_id not in faulty:
                    model.faults = []
                for fault in model.faults:
                    fault.start += delay
            store_dir = os.path.join(self.workdir, "devices", identity.device_id, "store")
            device = FleetDevice(board, identity, settings, store_dir, models, start_ms,
                                 store_options=store_options,
                                 telemetry_interval_ms=scenario.telemetry_interval_ms,
                                 jitter=spec.jitter, on_connect=self._on_connect,
                                 agent_options={"downlink": self._downlink(identity, board, store_dir)})
            device.index = index
            device.connect_times = []
            self.devices.append(device)

    def _downlink(self, identity, board, store_dir):
        """The agent's signed downlink (edge_agent/gateway/downlink.py), trusting the
        operators of the fleet's operators file (with their scopes): their
        Ed25519 keys, or for an HMAC board its own secret under each
        operator's name (a small board checks a COSE_Mac0 under it)."""
        from edge_agent.gateway.downlink_setup import Setup
        from edge_agent.keys.operators import load_operators

        if self.trusted is None:
            self.trusted, self.scopes = load_operators(self.operators_path)
        trusted = self.trusted
        if identity.device_id in self.secrets:
            trusted = dict((kid, self.secrets[identity.device_id]) for kid in self.trusted)
        state_dir = os.path.join(os.path.dirname(store_dir), "state")
        os.makedirs(state_dir, exist_ok=True)
        return Setup(trusted, state_dir, None, board, [], scopes=self.scopes)

    def _on_connect(self, device):
        at = now_ms()
        device.connect_times.append(at)
        self.result.connects += 1
        # Any connect after the broker went down is a reconnect (the broker
        # may accept some before start() has seen its port open).
        for storm in self.storms:
            if at >= storm.down_ms and device.device_id not in storm.first_after:
                storm.first_after[device.device_id] = at

    # -- the run -------------------------------------------------------------------

    def run(self):
        started = time.monotonic()
        quiet_agent_logs()
        try:
            self._setup()
            self._start_receiver()
            asyncio.run(self._main())
            self._wait_for_receiver()
        finally:
            self.result.wall_s = time.monotonic() - started
            self._stop()
        self._judge()
        if not self.keep and self.result.passed:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return self.result

    async def _main(self):
        spec = self.spec
        loop = asyncio.get_running_loop()
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(min(CONNECT_THREADS, max(8, spec.count))))
        self.t0_ms = now_ms()
        self._devices(self.t0_ms)
        self.result.devices = len(self.devices)
        self.result.fault_start_ms = self._first_fault_ms()
        tasks = {}
        progress = self._progress()
        starter = asyncio.create_task(self._start_devices(tasks))
        ticker = asyncio.create_task(self._ticker())
        timeline = asyncio.create_task(self._timeline())
        helpers = (starter, ticker, timeline)
        try:
            end = self.t0_ms + spec.duration_ms
            while now_ms() < end:
                await asyncio.sleep(min(0.25, max(0, end - now_ms()) / 1000))
                self._show(progress)
            await starter
            await timeline
            ticker.cancel()
            self.phase = "draining"
            for device in self.devices:
                device.finish(now_ms())
            await self._drain(progress)
        finally:
            # Helpers first (on an interrupt they would go on starting
            # devices, feeding closed stores and restarting the broker).
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            # A device whose agent ended by raising is a bug, not weather:
            # the run fails and says which and why.
            for name, task in tasks.items():
                if task.done() and not task.cancelled() and task.exception() is not None:
                    exc = task.exception()
                    self.result.errors.append("%s: agent stopped: %s: %s" % (name, type(exc).__name__, exc))
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)
            if progress is not None:
                progress.stop()
        self.result.issued = sum(d.last_seq() for d in self.devices)
        self.result.readings = sum(d.readings for d in self.devices)

    async def _start_devices(self, tasks):
        ramp_ms = self.spec.ramp_ms
        count = len(self.devices)
        for index, device in enumerate(self.devices):
            due = self.t0_ms + (ramp_ms * index // count if ramp_ms else 0)
            if due > now_ms():
                await asyncio.sleep((due - now_ms()) / 1000)
            tasks[device.device_id] = asyncio.create_task(device.run(), name=device.device.device_id)

    async def _ticker(self):
        last = None
        while True:
            now = now_ms()
            if last is not None:
                # How late this tick is: the fleet process keeping real time
                # or not (a stalled loop delays readings, and a stuck rule
                # judges by the clock).
                self.result.max_stall_ms = max(self.result.max_stall_ms, now - last - int(TICK_S * 1000))
            last = now
            for device in self.devices:
                device.sample(now)
            await asyncio.sleep(TICK_S)

    async def _timeline(self):
        loop = asyncio.get_running_loop()
        for start, end in sorted(self.spec.outages()):
            await _sleep_until(self.t0_ms + start)
            storm = Storm(now_ms(), None)
            self.phase = "broker down"
            await loop.run_in_executor(self.broker_executor, self.broker.stop)
            if end is None:
                continue  # down to the end: the drain will fail, as it should
            self.storms.append(storm)
            await _sleep_until(self.t0_ms + end)
            await loop.run_in_executor(self.broker_executor, self.broker.start)
            storm.up_ms = now_ms()
            self.phase = "reconnecting"

    async def _drain(self, progress):
        deadline = time.monotonic() + DRAIN_BASE_S + DRAIN_PER_DEVICE_S * len(self.devices)
        while time.monotonic() < deadline:
            if all(d.pending() == 0 for d in self.devices):
                return True
            self._show(progress)
            await asyncio.sleep(0.2)
        return False

    def _first_fault_ms(self):
        starts = [f.at_ms for f in self.spec.scenario.faults if f.sensors]
        return self.t0_ms + min(starts) if starts else None

    def _wait_for_receiver(self):
        """Until the receiver stored every issued signal (or the drain time is up)."""
        issued = dict((d.device_id, d.last_seq()) for d in self.devices)
        deadline = time.monotonic() + DRAIN_BASE_S + DRAIN_PER_DEVICE_S * len(self.devices)
        while time.monotonic() < deadline:
            stored = self._stored_counts()
            if all(stored.get(device, (0, 0))[0] >= last for device, last in issued.items()):
                break
            time.sleep(0.3)
        # The advisories' audit signals may still be on their way: they are
        # in the stores already drained above, so they are counted.

    def _stored_counts(self):
        try:
            with _read_db(self.db_path) as db:
                return dict((row[0], (row[1], row[2])) for row in db.execute(
                    "SELECT device, COUNT(*), MAX(seq) FROM signals GROUP BY device"))
        except READ_ERRORS:
            return {}

    def _stop(self):
        if self.receiver is not None:
            self.receiver.stop()
            self.result.receiver_tail = "\n".join(self.receiver.lines[-15:])
        if self.broker is not None:
            self.broker.stop()
        self.broker_executor.shutdown(wait=False)

    # -- judging -------------------------------------------------------------------

    def _judge(self):
        from edge_agent.receiver import fleet

        r = self.result
        issued = dict((d.device_id, d.last_seq()) for d in self.devices)
        with _read_db(self.db_path) as db:
            stored = {}
            for device, seq in db.execute("SELECT device, seq FROM signals"):
                stored.setdefault(device, set()).add(seq)
            for device, last in issued.items():
                have = stored.get(device, set())
                missing = [s for s in range(1, last + 1) if s not in have]
                if missing:
                    r.missing_by_device[device] = missing
            r.stored = sum(len(v) for v in stored.values())
            r.lost = sum(len(v) for v in r.missing_by_device.values())
            r.rejected = dict(db.execute("SELECT reason, COUNT(*) FROM rejections GROUP BY reason").fetchall())
            r.incidents = fleet.incidents(db)
            for model in self.spec.models:
                r.advisory[model] = {"devices": sum(1 for i in range(len(self.devices))
                                                    if self.spec.model_of(i) == model),
                                     "applied": 0, "refused": 0, "sent": 0, "incidents": 0}
            rows = db.execute("SELECT i.model, a.device, a.sent_ms, a.audit_result FROM fleet_advisories a "
                              "JOIN fleet_incidents i ON i.id = a.incident").fetchall() if r.incidents else []
            for model, device, sent, result in rows:
                entry = r.advisory.setdefault(model, {"devices": 0, "applied": 0, "refused": 0, "sent": 0})
                entry["sent"] += 1 if sent else 0
                if result == "applied":
                    entry["applied"] += 1
                elif result:
                    entry["refused"] += 1
            model_of = dict((d.device_id, self.spec.model_of(d.index)) for d in self.devices)
            advised = set(row[1] for row in r.incidents)
            for device, body, received in db.execute("SELECT device, body, received_ms FROM signals WHERE kind = ?",
                                                     (sg.KIND_AUDIT,)):
                body = cbor.loads(body)
                if body.get(sg.U_ACTION) != "advisory":
                    continue
                r.advisory_last_ms = max(r.advisory_last_ms or 0, received)
                if model_of.get(device) not in advised:
                    r.advisory_elsewhere.append(device)
        for storm in self.storms:
            seconds = [t for t, _ in self.broker.connects("ea-" + self.spec.id_prefix)]
            storm.broker_per_second = per_second(seconds, start_s=storm.up_ms // 1000 - 1)
        r.storms = self.storms
        for expect in self.spec.expects:
            ok, evidence = _check(expect, r, self)
            r.outcomes.append((expect, ok, evidence))

    # -- display -------------------------------------------------------------------

    def _progress(self):
        if self.quiet or self.console is None or not self.console.is_terminal:
            return None
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        progress = Progress(TextColumn("[bold]fleet[/] {task.description}"), BarColumn(),
                            TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=self.console,
                            transient=True)
        progress.start()
        self._task = progress.add_task(self.spec.name, total=self.spec.duration_ms, status="")
        return progress

    def _show(self, progress):
        if progress is None:
            return
        online = sum(1 for d in self.devices if d.uplink.online.is_set())
        if self.phase in ("starting", "reconnecting") and online == self.spec.count:
            self.phase = "running"
        issued = sum(d.last_seq() for d in self.devices)
        acked = sum(d.uplink.published for d in self.devices)
        status = "%s | online %d/%d | signals %d issued, %d acked | connects %d" % (
            self.phase, online, len(self.devices), issued, acked, self.result.connects)
        progress.update(self._task, completed=min(self.spec.duration_ms, now_ms() - self.t0_ms), status=status)


def _check(expect, r, run):
    a = expect.args
    within = a.get("within")
    if expect.kind == "delivered":
        rejected = sum(r.rejected.values())
        ok = r.lost <= a["lost"] and rejected == 0
        worst = sorted(r.missing_by_device.items(), key=lambda kv: -len(kv[1]))[:3]
        return ok, "%d signals issued by %d devices, %d verified and stored, %d lost%s, %d rejected %s" % (
            r.issued, r.devices, r.stored, r.lost,
            (" (e.g. %s)" % ", ".join("%s: %s" % (d, _ranges(s)) for d, s in worst)) if worst else "",
            rejected, r.rejected or "")
    if expect.kind == "incident":
        matches = [row for row in r.incidents if row[1] == a["model"]
                   and (a.get("component") is None or row[2] == a["component"])
                   and (a.get("condition") is None or row[3] == a["condition"])]
        if not matches:
            return False, "no such incident; incidents: %s" % (
                "; ".join("%s on %s (%s)" % (row[3], row[2], row[1]) for row in r.incidents) or "none")
        row = matches[-1]
        evidence = "incident %d: %s on %s, %d of %d %s devices (threshold %d)" % (
            row[0], row[3], row[2], row[4], row[5], row[1], row[6])
        if within is not None and r.fault_start_ms is not None:
            after = _raised_received_ms(run, row[0]) - r.fault_start_ms
            evidence += ", raised %s after the fault began" % sc.format_duration(after)
            return after <= within, evidence
        return True, evidence
    if expect.kind == "advisory":
        entry = r.advisory.get(a["model"], {})
        devices = entry.get("devices", 0)
        applied = entry.get("applied", 0)
        ok = devices > 0 and applied == devices and not r.advisory_elsewhere
        evidence = "%d of %d %s devices applied it (audit signals at the receiver; %d sent, %d refused); %d " \
                   "devices of other models audited one" % (applied, devices, a["model"], entry.get("sent", 0),
                                                            entry.get("refused", 0), len(r.advisory_elsewhere))
        if within is not None and r.incidents and r.advisory_last_ms:
            took = r.advisory_last_ms - min(_raised_received_ms(run, row[0]) for row in r.incidents)
            evidence += "; the last audit arrived %s after the incident" % sc.format_duration(took)
            ok = ok and took <= within
        return ok, evidence
    if expect.kind == "reconnected":
        if not r.storms:
            return False, "the broker never came back"
        storm = r.storms[0]
        back = len(storm.first_after)
        last = storm.last_after_up_ms()
        ok = back == r.devices and (within is None or (last is not None and last <= within))
        return ok, "%d of %d devices reconnected, the last %s after the broker restarted" % (
            back, r.devices, sc.format_duration(last) if last is not None else "never")
    if expect.kind == "storm":
        if not r.storms:
            return False, "no outage"
        peak = r.storms[0].peak
        ok = (a.get("max_peak") is None or peak <= a["max_peak"]) and (a.get("min_peak") is None or peak >= a["min_peak"])
        return ok, "peak %d connects/s at the broker (per second: %s)" % (peak, _per_second_text(r.storms[0]))
    return False, "unknown expectation"


def _raised_received_ms(run, incident_id):
    with _read_db(run.db_path) as db:
        return db.execute("SELECT received_ms FROM fleet_incidents WHERE id = ?", (incident_id,)).fetchone()[0]


def _per_second_text(storm):
    seconds = sorted(storm.broker_per_second.items())
    return " ".join(str(count) for _, count in seconds[:20]) + (" ..." if len(seconds) > 20 else "")


def _ranges(seqs):
    out = []
    for s in sorted(seqs):
        if out and s == out[-1][1] + 1:
            out[-1][1] = s
        else:
            out.append([s, s])
    text = ", ".join("%d-%d" % (a, b) if a != b else str(a) for a, b in out[:4])
    return text + (" ..." if len(out) > 4 else "")


class _read_db:
    """A connection to the receiver's database: read-only on a SQLite file
    (WAL: the receiver may be writing), the receiver's storage on a
    postgresql:// URL (several receivers share it: shared_run.py). Either
    runs ``execute(sql, params)`` with ``?`` placeholders."""

    def __init__(self, db):
        from edge_agent.receiver.storage import is_postgres_url, open_storage

        if is_postgres_url(db):
            self.db = open_storage(db)
        else:
            self.db = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10)

    def __enter__(self):
        return self.db

    def __exit__(self, *exc):
        self.db.close()


def _read_errors():
    from edge_agent.receiver.storage import StorageError

    try:
        import psycopg
    except ImportError:  # SQLite only
        return (sqlite3.Error, StorageError)
    return (sqlite3.Error, StorageError, psycopg.Error)


# What reading the receiver's database mid-run may raise (it is being written, or not created yet).
READ_ERRORS = _read_errors()


async def _sleep_until(at_ms):
    left = at_ms - now_ms()
    if left > 0:
        await asyncio.sleep(left / 1000)


def _board_of_model(board, model):
    """The board with ``model`` as its model (a fleet file may run one board
    under several model names)."""
    if board.model == model:
        return board
    import copy

    clone = copy.copy(board)
    clone.model = model
    return clone


# -- reports -------------------------------------------------------------------------


def summary_lines(result):
    spec = result.spec
    r = result
    lines = ["%s (%s, seed %d): %d devices (%s; %d HMAC), %.1f s wall, jitter %s" % (
        spec.name, spec.path, spec.scenario.seed, r.devices, ", ".join(spec.models), r.hmac_devices, r.wall_s,
        "on" if spec.jitter else "OFF")]
    lines.append("  signals: %d issued, %d verified and stored at the receiver, %d lost, %d rejected; %d readings; "
                 "the physics ticker was at most %s late" % (r.issued, r.stored, r.lost, sum(r.rejected.values()),
                                                             r.readings, sc.format_duration(r.max_stall_ms)))
    for storm in r.storms:
        last = storm.last_after_up_ms()
        lines.append(
            "  reconnect storm: broker down %s; %d devices back within %s of its restart (spread %s); peak %d "
            "connects/s at the broker, %d in any 1 s at the clients" % (
                sc.format_duration(storm.up_ms - storm.down_ms), len(storm.first_after),
                sc.format_duration(last) if last is not None else "-", sc.format_duration(storm.spread_ms()),
                storm.peak, storm.client_peak()))
    for row in r.incidents:
        lines.append("  fleet incident %d: %s on %s, %d of %d %s devices (threshold %d)" % (
            row[0], row[3], row[2], row[4], row[5], row[1], row[6]))
    for model, entry in sorted(r.advisory.items()):
        if entry.get("sent") or entry.get("applied"):
            lines.append("  advisory for %s: sent to %d, applied by %d of %d devices" % (
                model, entry["sent"], entry["applied"], entry["devices"]))
    return lines


def print_result(result, console):
    for line in summary_lines(result):
        console.print(line, markup=False, highlight=False)
    for expect, ok, evidence in result.outcomes:
        console.print("  %s %s: %s" % ("PASS" if ok else "FAIL", expect.name, evidence), markup=False,
                      highlight=False)
    for error in result.errors[:10]:
        console.print("  ERROR %s" % error, markup=False, highlight=False)
    if not result.passed:
        console.print("  work directory kept: %s" % result.workdir, markup=False, highlight=False)
        if result.receiver_tail:
            console.print("  receiver's last lines:\n    " + result.receiver_tail.replace("\n", "\n    "),
                          markup=False, highlight=False)


def result_json(result):
    """The figures, for bench/bench_fleet.py."""
    storm = result.storms[0] if result.storms else None
    return {
        "devices": result.devices, "issued": result.issued, "stored": result.stored, "lost": result.lost,
        "rejected": sum(result.rejected.values()), "wall_s": round(result.wall_s, 1),
        "max_stall_ms": result.max_stall_ms,
        "jitter": result.spec.jitter, "passed": result.passed,
        "storm_peak_broker": storm.peak if storm else None,
        "storm_peak_clients": storm.client_peak() if storm else None,
        "storm_spread_ms": storm.spread_ms() if storm else None,
        "storm_back": len(storm.first_after) if storm else None,
        "storm_last_after_up_ms": storm.last_after_up_ms() if storm else None,
        "storm_per_second": [c for _, c in sorted(storm.broker_per_second.items())] if storm else None,
        "incidents": len(result.incidents),
        "advisory": result.advisory,
        "outcomes": [(e.name, ok, ev) for e, ok, ev in result.outcomes],
    }
