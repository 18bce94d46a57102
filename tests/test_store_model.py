"""The store against a simple model, step by step (hypothesis stateful).

The model is a list of unacknowledged payloads per lane plus how many of
them the consumer has read. Every rule runs the real store (real files, the
POSIX adapter) and the model side by side, and the invariants compare them
after every step: what a read returns, each lane's depth, the byte bound,
and that every eviction the store reports takes the oldest records of the
least urgent lane that may give way.
"""

import shutil
import tempfile

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from store_support import crash

from edge_agent.core import store as store_mod
from edge_agent.core.store import Store
from edge_agent.gateway.store_posix import PosixDir

LANES = 4
SEGMENT_BYTES = 256
MAX_BYTES = 1536  # six segments: evictions happen often


class StoreModel(RuleBasedStateMachine):
    @initialize()
    def open_empty(self):
        self.directory = tempfile.mkdtemp(prefix="ea-store-model-")
        self.store = self._open()
        self.lanes = [[] for _ in range(LANES)]  # unacknowledged payloads, oldest first
        self.read_counts = [0] * LANES  # how many of them were read
        self.batches = []  # (lane, end position, last payload) since the last rewind
        self.counter = 0
        self.now = 0

    def _open(self):
        return Store(
            PosixDir(self.directory),
            0,
            lanes=LANES,
            segment_bytes=SEGMENT_BYTES,
            max_bytes=MAX_BYTES,
            sync_every=7,
            sync_ms=50,
        )

    def teardown(self):
        if hasattr(self, "store"):
            self.store.close()
            shutil.rmtree(self.directory, ignore_errors=True)

    @rule(lane=st.integers(0, LANES - 1), size=st.integers(1, 120), urgent=st.booleans())
    def append(self, lane, size, urgent):
        self.counter += 1
        self.now += 3
        payload = (b"%d:" % self.counter + b"x" * size)[: max(size, len(b"%d:" % self.counter))]
        stored = self.store.append(lane, payload, self.now, urgent)
        self._apply_reports(lane)
        if stored:
            self.lanes[lane].append(payload)
        else:
            # Dropped only when nothing at this urgency or below is left.
            assert all(not self.lanes[other] for other in range(lane, LANES))

    @rule(lane=st.integers(0, LANES - 1), count=st.integers(2, 30), size=st.integers(1, 60))
    def flood(self, lane, count, size):
        # Bursts fill the store, so eviction and dropping get exercised.
        for _ in range(count):
            self.append(lane, size, False)

    def _apply_reports(self, incoming):
        for report in self.store.take_reports():
            if report.reason == store_mod.REASON_DROPPED:
                event("dropped")
                assert report.lane == incoming
                continue
            assert report.kind in (store_mod.EVICTED, store_mod.OVERFLOW)
            candidates = [lane for lane in range(incoming, LANES) if self.lanes[lane]]
            assert candidates, "evicted from lane %d with nothing evictable" % report.lane
            # The least urgent non-empty lane at or below the incoming
            # record's urgency; never a more urgent one.
            assert report.lane == candidates[-1], (report, candidates)
            assert report.kind == (store_mod.EVICTED if report.lane == LANES - 1 else store_mod.OVERFLOW)
            assert 1 <= report.records <= len(self.lanes[report.lane])
            event("evicted from lane %d" % report.lane)
            del self.lanes[report.lane][: report.records]
            self.read_counts[report.lane] = max(0, self.read_counts[report.lane] - report.records)

    @rule(max_records=st.integers(1, 10))
    def read(self, max_records):
        batch = self.store.read(max_records)
        unread = [lane for lane in range(LANES) if self.read_counts[lane] < len(self.lanes[lane])]
        if not unread:
            assert batch is None
            return
        lane = unread[0]
        start = self.read_counts[lane]
        expected = self.lanes[lane][start : start + max_records]
        assert batch is not None and batch.lane == lane
        assert batch.records == expected
        self.read_counts[lane] += len(expected)
        self.batches.append((lane, batch.end, expected[-1]))

    @precondition(lambda self: self.batches)
    @rule(data=st.data())
    def ack(self, data):
        lane, end, last = data.draw(st.sampled_from(self.batches))
        self.store.ack(lane, end)
        if last in self.lanes[lane]:
            through = self.lanes[lane].index(last) + 1
            del self.lanes[lane][:through]
            self.read_counts[lane] -= through

    @rule()
    def sync(self):
        self.store.sync()

    @rule(elapsed=st.integers(0, 100))
    def poll(self, elapsed):
        self.now += elapsed
        deadline = self.store.poll(self.now)
        assert deadline is None or deadline > self.now

    @rule()
    def rewind(self):
        self.store.rewind()
        self.read_counts = [0] * LANES
        self.batches = []

    @rule()
    def reopen(self):
        self.store.close()
        self.store = self._open()
        assert self.store.recovery.discards == []
        self.read_counts = [0] * LANES
        self.batches = []

    @rule()
    def reopen_after_kill(self):
        # Die right after a sync: open files dropped without sealing.
        self.store.sync()
        crash(self.store)
        self.store = self._open()
        assert self.store.recovery.discards == []
        self.read_counts = [0] * LANES
        self.batches = []

    @invariant()
    def agrees_with_model(self):
        if not hasattr(self, "store"):
            return
        assert self.store.bytes <= MAX_BYTES
        for lane in range(LANES):
            assert self.store.lane_info(lane)[0] == len(self.lanes[lane]), lane


StoreModel.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestStoreModel = StoreModel.TestCase


WINDOW_BYTES = 768  # half the store: acknowledged segments kept, and in the way of nothing


class StoreModelWithWindow(StoreModel):
    """The same model and rules with a replay window: the store must read,
    count, bound and evict unacknowledged records exactly as without one
    (the window gives way first and is never reported as an eviction), keep
    its window within bounds, and ``scan`` must hold every unacknowledged
    record."""

    def _open(self):
        return Store(PosixDir(self.directory), 0, lanes=LANES, segment_bytes=SEGMENT_BYTES, max_bytes=MAX_BYTES,
                     sync_every=7, sync_ms=50, window_bytes=WINDOW_BYTES, window_ms=200)

    @rule()
    def sync(self):
        # The window's bound is held at each sync (where compaction runs):
        # between two, acknowledged segments may add up to more.
        super().sync()
        assert self.store.window_bytes_held() <= WINDOW_BYTES

    @invariant()
    def scan_holds_the_unacknowledged(self):
        if not hasattr(self, "store"):
            return
        held = {}
        position = None
        while True:
            records, position = self.store.scan(position, 5)
            for lane, record in records:
                held.setdefault(lane, []).append(record)
            if position is None:
                break
        for lane in range(LANES):
            kept = held.get(lane, [])
            if self.lanes[lane]:
                # Oldest first, and the unacknowledged ones are the newest.
                assert kept[-len(self.lanes[lane]):] == self.lanes[lane], lane


StoreModelWithWindow.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestStoreModelWithWindow = StoreModelWithWindow.TestCase
