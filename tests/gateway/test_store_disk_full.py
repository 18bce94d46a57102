"""The store on a really full file system: a 256 KiB tmpfs of its own
(needs root to mount; skipped otherwise), filled to the last byte by a
filler file and freed again at random moments, with appends, reads, acks,
syncs and crashes in between (hypothesis). The ENOSPC is the kernel's.

After every step nothing raised; after every crash and reopen (also on a
full disk) every record that was durable and not acknowledged is read back,
in order, and nothing is read that was not appended."""

import os

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as hs
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from store_support import crash

from edge_agent.core import store as st
from edge_agent.gateway.store_posix import PosixDir
from simulator.faults import small_fs

MOUNT = "/tmp/ea-store-disk-full-%d" % os.getpid()


@pytest.fixture(scope="module")
def tmpfs():
    os.makedirs(MOUNT, exist_ok=True)
    why = small_fs.mount_tmpfs(MOUNT, 256 * 1024)
    if why:
        os.rmdir(MOUNT)
        pytest.skip("needs root to mount a tmpfs: %s" % why)
    yield MOUNT
    small_fs.unmount(MOUNT)
    os.rmdir(MOUNT)


class DiskFullMachine(RuleBasedStateMachine):
    root = None
    full_episodes = 0  # over all examples: the disk really was full

    @initialize()
    def start(self):
        self.dir = os.path.join(self.root, "store")
        for name in os.listdir(self.root):
            path = os.path.join(self.root, name)
            if os.path.isdir(path):
                for inner in os.listdir(path):
                    os.remove(os.path.join(path, inner))
                os.rmdir(path)
            else:
                os.remove(path)
        self.now = 0
        self.counter = 0
        self.appended = {lane: [] for lane in range(4)}  # payloads, in order
        self.durable = {lane: 0 for lane in range(4)}  # how many of them are durable
        self.acked = {lane: 0 for lane in range(4)}  # prefix acknowledged (model)
        self.store = self._open()

    def _count(self):
        DiskFullMachine.full_episodes += self.store.stats["disk_full"]

    def _open(self):
        return st.Store(PosixDir(self.dir), self.now, segment_bytes=2048, max_bytes=4 << 20,
                        hold_bytes=4 << 20, sync_every=5)

    def _mark_durable(self):
        if not self.store.disk_full and self.store.unsynced == 0:
            for lane in range(4):
                self.durable[lane] = len(self.appended[lane])

    @rule(lane=hs.integers(0, 3), size=hs.integers(1, 300))
    def append(self, lane, size):
        self.counter += 1
        payload = b"%d:%06d:" % (lane, self.counter) + b"x" * size
        self.now += 7
        assert self.store.append(lane, payload, self.now, urgent=lane == 0)
        self.appended[lane].append(payload)
        self.store.flush()
        self._mark_durable()

    @rule()
    def fill(self):
        assert small_fs.fill(os.path.join(self.root, "filler"))[1] == 0

    @rule()
    def free(self):
        path = os.path.join(self.root, "filler")
        if os.path.exists(path):
            os.remove(path)

    @rule(advance=hs.integers(0, 2000))
    def poll(self, advance):
        self.now += advance
        self.store.poll(self.now)
        self._mark_durable()

    @rule(records=hs.integers(1, 20))
    def send_and_ack(self, records):
        batch = self.store.read(records)
        if batch is not None:
            lane = batch.lane
            start = self.acked[lane]
            assert batch.records == self.appended[lane][start : start + len(batch.records)]
            self.store.ack(lane, batch.end)
            self.acked[lane] = start + len(batch.records)

    @rule()
    def crash_and_reopen(self):
        self._count()
        crash(self.store)
        self.store = self._open()
        got = {lane: [] for lane in range(4)}
        while True:
            batch = self.store.read(1000)
            if batch is None:
                break
            got[batch.lane].extend(batch.records)
        for lane in range(4):
            appended = self.appended[lane]
            # Nothing invented, nothing reordered.
            positions = [appended.index(p) for p in got[lane]]
            assert positions == sorted(positions)
            # Every durable, unacknowledged record is back.
            must = appended[self.acked[lane] : self.durable[lane]]
            assert all(p in got[lane] for p in must), (lane, len(must), len(got[lane]))
            # The new process starts from what it found (the model follows).
            self.appended[lane] = got[lane]
            self.durable[lane] = len(got[lane])
            self.acked[lane] = 0
        self.store.rewind()

    @invariant()
    def within_hold(self):
        if getattr(self, "store", None) is not None:
            assert self.store.held()[1] <= self.store.hold_bytes

    def teardown(self):
        if getattr(self, "store", None) is not None:
            path = os.path.join(self.root, "filler")
            if os.path.exists(path):
                os.remove(path)
            self._count()
            self.store.close()


def test_a_really_full_tmpfs_loses_nothing_durable(tmpfs):
    DiskFullMachine.root = tmpfs
    run = DiskFullMachine.TestCase
    run.settings = settings(max_examples=100, stateful_step_count=40, deadline=None,
                            suppress_health_check=list(HealthCheck))
    run().runTest()
    assert DiskFullMachine.full_episodes > 0, DiskFullMachine.full_episodes
