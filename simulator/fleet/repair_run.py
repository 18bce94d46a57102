"""Fleet runs for gap repair (issue 21): the fleet of run.py against a
stock-like broker (no persistence, a small ``max_queued_messages``) and
the receiver with a repair key the devices trust with ``scopes =
["replay"]``, under a timeline of what loses signals the devices were
PUBACKed for:

    ("receiver_down", at_ms, for_ms)   the receiver stopped (SIGTERM) and started
                                        again: its session keeps the broker's
                                        first max_queued messages, the rest are lost
    ("broker_kill", at_ms, for_ms)     mosquitto killed (SIGKILL) without
                                        persistence, started again after for_ms:
                                        whatever it held is lost

The devices fill the gaps from their replay windows when the receiver
asks. ``RepairRun.result`` is run.py's Result (its delivered check:
every seq each device issued, stored) plus ``repair``: the receiver's
repair counters (receiver.repair.counts) and when the last gap was
repaired. Used by tests/receiver/test_repair_fleet.py and
bench/bench_repair.py.
"""

import asyncio
import os
import time

from .broker import FleetBroker
from .run import READ_ERRORS, FleetRun, _read_db, _sleep_until, now_ms

REPAIR_KEY = "rx-repair"


class StockBroker(FleetBroker):
    """mosquitto as a stock install runs it: no persistence, a bounded queue
    per offline client (QoS 1 messages beyond it are dropped)."""

    def __init__(self, directory, pki, max_queued):
        super().__init__(directory, pki)
        self.persistent = False
        self.max_queued = max_queued

    def _config(self):
        return "\n".join("max_queued_messages %d" % self.max_queued if line.startswith("max_queued_messages")
                         else line for line in super()._config().splitlines()) + "\n"


class RepairRun(FleetRun):
    def __init__(self, spec, events, max_queued=100, settle="2s", timeout="5s", repair_wait_s=120.0,
                 window_bytes=128 * 1024, store=None, **kwargs):
        """``window_bytes``: each device's replay window (0: none: a device
        holds only what its store has not dropped yet, the rest is "gone");
        ``store``: more store options (e.g. small segments, dropped sooner)."""
        super().__init__(spec, **kwargs)
        options = spec.scenario.store_options
        options.update(store or {})
        options["window_bytes"] = window_bytes
        options["max_bytes"] = max(options.get("max_bytes", 0), 2 * window_bytes)  # room for live records too
        self.events = sorted(events, key=lambda e: e[1])
        self.max_queued = max_queued
        self.settle = settle
        self.timeout = timeout
        self.repair_wait_s = repair_wait_s
        self.receiver_up_ms = []  # each restart of the receiver: when it subscribed again
        self.broker_kills = 0
        self.accounted_ms = None  # when every issued seq was stored or lost for good, by the books too

    def _new_broker(self, directory):
        return StockBroker(directory, self.pki, self.max_queued)

    def _setup(self):
        from edge_agent.keys.operators import create_operator

        super()._setup()
        self.repair_key_dir = os.path.join(self.workdir, "repair-key")
        repair_key = create_operator(self.repair_key_dir, REPAIR_KEY)
        with open(self.operators_path, "a") as f:
            f.write(repair_key.public_entry(["replay"]))

    def _receiver_options(self):
        return ["--repair-key", self.repair_key_dir, "--repair-settle", self.settle, "--repair-timeout",
                self.timeout]

    async def _timeline(self):
        for action, at_ms, for_ms in self.events:
            await _sleep_until(self.t0_ms + at_ms)
            await self._event(action, at_ms, for_ms)
            self.phase = "running"

    async def _event(self, action, at_ms, for_ms):
        loop = asyncio.get_running_loop()
        if action == "receiver_down":
            self.phase = "receiver down"
            await loop.run_in_executor(self.broker_executor, self.receiver.stop)
            await _sleep_until(self.t0_ms + at_ms + for_ms)
            # Started from the broker's control thread, which lives to the
            # end of the run: a child dies with the thread that started it
            # (dying_with_parent), and the loop's default executor's
            # threads end with _main, before the repair is waited for.
            await loop.run_in_executor(self.broker_executor, self._start_receiver)
            self.receiver_up_ms.append(now_ms())
        elif action == "broker_kill":
            self.phase = "broker killed"
            await loop.run_in_executor(self.broker_executor, self.broker.kill)
            self.broker_kills += 1
            await _sleep_until(self.t0_ms + at_ms + for_ms)
            await loop.run_in_executor(self.broker_executor, self.broker.start)
        else:
            raise ValueError("unknown repair run event %r" % (action,))

    async def _drain(self, progress):
        """The devices' stores drained, the devices stay up (serving repairs)
        until the receiver has every seq they issued, or lost it for good:
        repair takes a settle delay, timeouts and re-asks, not just a
        drain. At most repair_wait_s."""
        drained = await super()._drain(progress)
        deadline = time.monotonic() + self.repair_wait_s
        while time.monotonic() < deadline and not self._all_accounted():
            self._show(progress)
            await asyncio.sleep(0.5)
        self.accounted_ms = now_ms()
        return drained

    def _wait_for_receiver(self):
        self._all_accounted()  # done in _drain, while the devices were up

    def _all_accounted(self):
        """Every issued seq stored or lost for good, and the receiver's
        books say so (no range pending: a pass runs every 2 s)."""
        issued = dict((d.device_id, d.last_seq()) for d in self.devices)
        accounted, pending = self._accounted()
        return not pending and all(accounted.get(device, 0) >= last for device, last in issued.items())

    def _accounted(self):
        """({device: seqs stored + seqs lost for good}, pending ranges)."""
        try:
            with _read_db(self.db_path) as db:
                counts = dict(db.execute("SELECT device, COUNT(*) FROM signals GROUP BY device"))
                for device, lost in db.execute("SELECT device, SUM(last_seq - first_seq + 1) FROM repair_ranges "
                                               "WHERE state = 'lost' GROUP BY device"):
                    counts[device] = counts.get(device, 0) + lost
                pending = db.execute("SELECT COUNT(*) FROM repair_ranges WHERE state = 'pending'").fetchone()[0]
                return counts, pending
        except READ_ERRORS:
            return {}, 0

    def _judge(self):
        from edge_agent.receiver import repair
        from edge_agent.receiver.storage import open_storage

        super()._judge()
        storage = open_storage(self.db_path)
        try:
            figures = repair.counts(storage)
            figures["ranges"] = repair.ranges(storage)
            figures["last_repaired_ms"] = storage.query(
                "SELECT MAX(done_ms) FROM repair_ranges WHERE state = ?", (repair.REPAIRED,))[0][0]
            figures["first_asked_ms"] = storage.query("SELECT MIN(created_ms) FROM repair_requests")[0][0]
        finally:
            storage.close()
        self.result.repair = figures


def stored_once(db):
    """[(device, seq, copies)] stored more than once: none, by the primary key.
    ``db``: a SQLite path or a postgresql:// URL."""
    with _read_db(db) as db:
        return db.execute("SELECT device, seq, COUNT(*) FROM signals GROUP BY device, seq HAVING COUNT(*) > 1").fetchall()
