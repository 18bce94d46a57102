"""A full disk under the store (CPython and MicroPython): writes fail with
ENOSPC at chosen points, the store rides it out and loses nothing durable.

``BudgetDir`` is the real-file adapter of store_support.py with a byte
budget: a write that does not fit raises OSError(28) and writes nothing
(the adapter contract; store_posix cuts a partial write back the same
way). tests/gateway/test_store_disk_full.py does this on a real, really full tmpfs.
"""

import os

from edge_agent.core import store as st
from edge_agent.core import store_format as fmt
from edge_agent.core.store_seq import DurableSequencer
from store_support import AppendHandle, FilesDir, UpdateHandle, crash, drain, open_store, read_all

ENOSPC = 28


def _full():
    return OSError(ENOSPC, "No space left on device")


class _BudgetHandle(AppendHandle):
    def __init__(self, owner, path):
        AppendHandle.__init__(self, path)
        self.owner = owner

    def write(self, data):
        self.owner.spend(len(data))
        AppendHandle.write(self, data)


class _BudgetUpdate(UpdateHandle):
    def __init__(self, owner, path):
        UpdateHandle.__init__(self, path)
        self.owner = owner
        self.size = os.stat(path)[6]

    def write_at(self, offset, data):
        grow = offset + len(data) - self.size
        if grow > 0:
            self.owner.spend(grow)
            self.size += grow
        UpdateHandle.write_at(self, offset, data)


class BudgetDir(FilesDir):
    """Real files, and ``free`` bytes left: None is unlimited."""

    def __init__(self, path=None):
        FilesDir.__init__(self, path)
        self.free = None

    def spend(self, n):
        if self.free is not None:
            if n > self.free:
                raise _full()
            self.free -= n

    def open_append(self, name):
        return _BudgetHandle(self, self._p(name))

    def open_update(self, name):
        return _BudgetUpdate(self, self._p(name))

    def write_file(self, name, data):
        old = self.size(name) if name in self.list() else 0
        self.spend(max(0, len(data) - old))
        FilesDir.write_file(self, name, data)

    refuse_removals = False  # littlefs: a removal's commit needs a free block

    def remove(self, name):
        if self.refuse_removals and name in self.list():
            raise _full()
        size = self.size(name)
        FilesDir.remove(self, name)
        if self.free is not None:
            self.free += size


def _payload(lane, n):
    return ("L%d-%05d-" % (lane, n)).encode() + b"x" * 20


def _kinds(reports):
    return [r.kind for r in reports]


def _store_with(fs, count, **options):
    """A store on ``fs`` holding ``count`` synced telemetry records (lane 3)."""
    store = open_store(fs, **options)
    for n in range(count):
        store.append(3, _payload(3, n), 0)
    store.sync()
    return store


def test_a_full_disk_holds_records_in_ram_sends_them_and_writes_them_later():
    fs = BudgetDir()
    try:
        store = _store_with(fs, 10)
        fs.free = 0
        for n in range(10, 30):
            assert store.append(3, _payload(3, n), 1)  # no exception, not dropped
        store.append(0, _payload(0, 0), 1, urgent=True)
        store.flush()
        store.poll(10000)
        assert store.disk_full
        reports = store.take_reports()
        assert _kinds(reports) == [st.DISK_FULL], reports
        # The uplink reads all of it, on disk and in RAM, most urgent first.
        got = read_all(store)
        assert got == [(0, _payload(0, 0))] + [(3, _payload(3, n)) for n in range(30)]
        fs.free = None
        store.poll(20000)
        assert not store.disk_full and store.unsynced == 0
        assert _kinds(store.take_reports()) == [st.DISK_OK]
        crash(store)
        again = open_store(fs)
        assert read_all(again) == got
        again.close()
    finally:
        fs.destroy()


def test_records_durable_before_the_disk_filled_survive_a_crash_and_a_full_recovery():
    fs = BudgetDir()
    try:
        store = _store_with(fs, 50)  # several segments of 1 KiB, the last one unsealed
        fs.free = 0
        for n in range(50, 60):
            store.append(3, _payload(3, n), 0)
        store.sync()
        assert store.disk_full
        crash(store)
        # Restarted while the disk is still full: recovery cannot seal the
        # unsealed segment or write its report, and must not fail for it.
        again = open_store(fs)
        assert again.recovery.unrepaired == 1
        assert again.disk_full
        assert st.DISK_FULL in _kinds(again.take_reports())
        assert read_all(again) == [(3, _payload(3, n)) for n in range(50)]
        # Appending while full and full after a restart: held in RAM.
        assert again.append(0, _payload(0, 1), 5, urgent=True)
        fs.free = None
        again.poll(100000)
        assert not again.disk_full
        again.close()
        last = open_store(fs)
        assert last.recovery.unrepaired == 0
        assert drain(last) == [(0, _payload(0, 1))] + [(3, _payload(3, n)) for n in range(50)]
        last.close()
    finally:
        fs.destroy()


def test_acknowledging_while_full_frees_space_and_writing_resumes():
    fs = BudgetDir()
    try:
        store = _store_with(fs, 60)
        fs.free = 0
        for n in range(60, 80):
            store.append(3, _payload(3, n), 0)
        assert store.disk_full
        batch = store.read(30)  # the uplink: sent and acknowledged
        store.ack(batch.lane, batch.end)
        store.poll(10**6)  # compaction removes whole acked segments: room
        assert not store.disk_full, store.take_reports()
        # The freed 2 KiB took the held records, not the 8 KiB ack journal:
        # the acks wait in RAM (at-least-once), so no DISK_OK yet.
        assert _kinds(store.take_reports()) == [st.DISK_FULL]
        fs.free = None
        store.poll(2 * 10**6)
        assert _kinds(store.take_reports()) == [st.DISK_OK] and store.unsynced == 0
        assert [p for _, p in drain(store)] == [_payload(3, n) for n in range(30, 80)]
        store.close()
    finally:
        fs.destroy()


def test_the_ram_hold_is_bounded_and_evicts_telemetry_before_alerts():
    fs = BudgetDir()
    try:
        store = _store_with(fs, 40, hold_bytes=2048)
        fs.free = 0
        alerts = []
        for n in range(200):
            assert store.append(3, _payload(3, 1000 + n), 1)
            if n % 10 == 0:
                alerts.append(_payload(0, n))
                assert store.append(0, alerts[-1], 1, urgent=True)
            assert store.held()[1] <= 2048 or not store.disk_full
        reports = store.take_reports()
        evicted = [r for r in reports if r.kind in (st.EVICTED, st.OVERFLOW)]
        assert evicted and all(r.lane == 3 and r.kind == st.EVICTED for r in evicted), reports
        assert store.stats["evicted"] == store.evicted_by_lane[3] > 0
        got = read_all(store)
        assert [p for lane, p in got if lane == 0] == alerts
        # Telemetry kept is the newest, in order, and nothing is invented.
        kept = [p for lane, p in got if lane == 3]
        assert kept == sorted(kept) and kept[-1] == _payload(3, 1199)
        store.close()
    finally:
        fs.destroy()


def test_a_hold_full_of_alerts_evicts_the_oldest_alerts_and_drops_telemetry():
    fs = BudgetDir()
    try:
        store = open_store(fs, hold_bytes=512)
        fs.free = 0
        for n in range(40):
            assert store.append(0, _payload(0, n), 0, urgent=True)
        assert store.held()[1] <= 512
        n = 40
        while store.held()[1] + 39 + 40 <= 512:  # no room left for a telemetry segment
            assert store.append(0, _payload(0, n), 0, urgent=True)
            n += 1
        evicted = [r for r in store.take_reports() if r.kind == st.OVERFLOW]
        assert evicted and all(r.lane == 0 and r.reason == st.REASON_DISK_FULL_EVICTED for r in evicted)
        assert not store.append(3, _payload(3, 0), 0)  # telemetry never pushes out alerts
        drops = [r for r in store.take_reports() if r.kind == st.OVERFLOW]
        assert len(drops) == 1 and drops[0].reason == st.REASON_DISK_FULL_DROPPED
        assert store.stats["dropped"] == 1
        kept = [p for _, p in read_all(store)]
        assert kept[-1] == _payload(0, n - 1) and kept == sorted(kept)
        fs.free = None
        store.close()
    finally:
        fs.destroy()


def test_closing_on_a_full_disk_writes_held_alerts_over_telemetry():
    fs = BudgetDir()
    try:
        store = _store_with(fs, 60)
        fs.free = 0
        store.append(0, _payload(0, 7), 1, urgent=True)
        assert store.disk_full
        store.close()  # no exception; the alert is made room for
        kinds = _kinds(store.take_reports())
        assert st.EVICTED in kinds and st.LOST not in kinds, kinds
        fs.free = None
        again = open_store(fs)
        got = read_all(again)
        assert got[0] == (0, _payload(0, 7))
        again.close()
    finally:
        fs.destroy()


def test_closing_on_a_full_disk_with_nothing_to_evict_reports_the_loss():
    fs = BudgetDir()
    try:
        store = open_store(fs)
        fs.free = 0
        store.append(0, _payload(0, 1), 1, urgent=True)
        store.close()
        lost = [r for r in store.take_reports() if r.kind == st.LOST]
        assert len(lost) == 1 and lost[0].records == 1
    finally:
        fs.destroy()


def test_the_sequencer_reserves_in_place_on_a_full_disk():
    fs = BudgetDir()
    try:
        seq = DurableSequencer(fs, block=4)
        taken = [seq.take() for _ in range(3)]
        fs.free = 0
        taken += [seq.take() for _ in range(10)]  # crosses two reservations
        assert taken == list(range(1, 14)) and seq.unreserved == 0
        assert fmt.SEQ_NAME + fmt.TMP_SUFFIX not in fs.list()
        again = DurableSequencer(fs, block=4)
        assert again.take() > taken[-1]
    finally:
        fs.destroy()


def test_a_fresh_sequencer_on_a_full_disk_still_hands_out_numbers():
    fs = BudgetDir()
    try:
        fs.free = 0
        seq = DurableSequencer(fs, block=4)
        assert [seq.take() for _ in range(3)] == [1, 2, 3]
        assert seq.unreserved == 3
        fs.free = None
        assert seq.take() == 4 and seq.limit > 4
    finally:
        fs.destroy()


def test_other_os_errors_still_propagate():
    fs = BudgetDir()
    try:
        store = open_store(fs)
        store.append(3, _payload(3, 0), 0)

        def broken(name):
            raise OSError(30, "Read-only file system")

        fs.open_append = broken
        store._lanes[3].active.handle = None
        try:
            store.sync()
        except OSError as exc:
            assert fmt.errno_of(exc) == 30
        else:
            raise AssertionError("EROFS was swallowed")
    finally:
        fs.destroy()


def test_an_io_error_is_ridden_out_like_a_full_disk():
    # Issue 19 (from issue 10's notes): a flash program or erase that fails
    # (EIO) held the records and retried, reported as its own kind, instead
    # of the store raising it (the firmware reset the board on it).
    fs = BudgetDir()
    try:
        store = _store_with(fs, 10)
        real = fs.spend

        def failing(n):
            raise OSError(fmt.EIO, "Input/output error")

        fs.spend = failing
        for n in range(10, 30):
            assert store.append(3, _payload(3, n), 1)
        assert store.append(0, _payload(0, 0), 1, urgent=True)
        store.poll(10000)
        assert store.disk_full and store.stats["disk_errors"] > 0
        assert _kinds(store.take_reports()) == [st.DISK_ERROR]
        got = read_all(store)  # sent from RAM meanwhile
        assert got == [(0, _payload(0, 0))] + [(3, _payload(3, n)) for n in range(30)]
        fs.spend = real  # the flash takes writes again
        store.poll(20000)
        assert not store.disk_full and store.unsynced == 0
        assert _kinds(store.take_reports()) == [st.DISK_OK]
        crash(store)
        again = open_store(fs)
        assert read_all(again) == got
        again.close()
    finally:
        fs.destroy()


def _segments(fs):
    return sorted(n for n in fs.list() if n[:1].isdigit())


def test_a_segment_removal_the_full_disk_refuses_keeps_the_file_and_is_retried():
    # Issue 19 (from issue 10's notes): on littlefs removing a file commits
    # metadata, which a full disk can refuse. Compaction must not crash on
    # it: the file stays, the store goes on, and the next compaction
    # removes it; a crash meanwhile brings back nothing acknowledged.
    fs = BudgetDir()
    try:
        store = _store_with(fs, 60)
        files = _segments(fs)
        batch = store.read(30)
        store.ack(batch.lane, batch.end)
        fs.refuse_removals = True
        store.sync()  # compaction tries to remove the acknowledged segments
        assert store.stats["removals_deferred"] > 0 and _segments(fs) == files
        for n in range(60, 70):
            assert store.append(3, _payload(3, n), 10**6)
        store.sync()
        # a crash now: the acknowledged records in the kept files stay acknowledged
        crash(store)
        again = open_store(fs)
        batch = again.read(5)
        assert batch.records == [_payload(3, n) for n in range(30, 35)]  # nothing acknowledged comes back
        again.ack(batch.lane, batch.end)
        fs.refuse_removals = False
        again.sync()  # the next compaction removes what is wholly acknowledged
        again.close()
        store = open_store(fs)
        assert [p for _, p in read_all(store)] == [_payload(3, n) for n in range(35, 70)]
        store.close()
        # and a store that kept going removes its deferred files once it can
        store = open_store(fs)
        batch = store.read(1000)
        store.ack(batch.lane, batch.end)
        fs.refuse_removals = True
        store.sync()
        kept = len(store._unremoved)
        assert kept > 0
        fs.refuse_removals = False
        store.append(3, _payload(3, 99), 4 * 10**6)
        store.sync()
        assert store._unremoved == [] and not set(files) & set(_segments(fs))
        store.close()
    finally:
        fs.destroy()
