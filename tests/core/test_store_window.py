"""The store's replay window (issue 21) on real files, CPython and
MicroPython: acknowledged segments kept within bytes and age, oldest
dropped first, never in the way of new records, kept across a restart,
and read back by ``scan``."""

from store_support import FilesDir, drain, open_store

from edge_agent.core import store as st
from edge_agent.core import store_format as fmt


def _with_dir(test):
    fs = FilesDir()
    try:
        test(fs)
    finally:
        fs.destroy()


def _fill(store, lane, first, count, size=40, start_ms=0):
    for i in range(first, first + count):
        store.append(lane, (b"%d:%05d:" % (lane, i)) + bytes(size), start_ms + i)


def _scanned(store, max_records=7):
    out = []
    position = None
    while True:
        records, position = store.scan(position, max_records)
        out += records
        if position is None:
            return out


def _numbers(records, lane=None):
    return [int(r[2:7]) for n, r in records if lane is None or n == lane]


def test_acknowledged_segments_stay_within_the_window_oldest_dropped_first():
    def body(fs):
        store = open_store(fs, segment_bytes=512, window_bytes=2048)
        _fill(store, 3, 0, 80)
        drain(store)
        store.sync()
        held = store.window_bytes_held()
        assert 1024 < held <= 2048
        kept = _numbers(_scanned(store))
        # The newest acknowledged records, in order, up to the last one.
        assert kept == list(range(80 - len(kept), 80)) and len(kept) > 30
        assert store.stats["window_dropped"] > 0 and store.lane_info(3)[0] == 0
        assert store.read() is None  # acknowledged: never sent again
        store.close()
        # Across a restart: the window is on disk, the acks too (the
        # segment that was in use is sealed now, so it counts: the window
        # may let its oldest go).
        store = open_store(fs, segment_bytes=512, window_bytes=2048)
        assert store.read() is None
        after = _numbers(_scanned(store))
        assert after == kept[len(kept) - len(after):] and after[-1] == 79
        assert store.window_bytes_held() <= 2048
        store.close()

    _with_dir(body)


def test_without_a_window_compaction_is_as_before():
    def body(fs):
        store = open_store(fs, segment_bytes=512)
        _fill(store, 3, 0, 80)
        drain(store)
        store.sync()
        assert len(fs.segments(3)) == 1 and store.window_bytes_held() == 0
        store.close()
        assert fs.segments(3) == []

    _with_dir(body)


def test_the_age_bound_drops_segments_older_than_window_ms():
    def body(fs):
        store = open_store(fs, segment_bytes=512, window_bytes=64 * 1024, window_ms=1000)
        _fill(store, 3, 0, 40, start_ms=0)  # times 0..39
        _fill(store, 3, 40, 40, start_ms=5000)  # times 5040..5079
        drain(store)
        store.poll(5100)
        store.sync()
        kept = _numbers(_scanned(store))
        # Every record older than 1 s (before 4100) went, with its segment;
        # a segment is dropped once its successor began before the cutoff.
        assert kept[0] >= 30 and kept[-1] == 79
        assert [n for n in kept if n < 40] == list(range(kept[0], 40)) if kept[0] < 40 else True
        store.close()

    _with_dir(body)


def test_the_window_gives_way_to_new_records_before_any_unacknowledged_one():
    def body(fs):
        store = open_store(fs, segment_bytes=512, max_bytes=4096, window_bytes=4096)
        _fill(store, 2, 0, 40)
        drain(store)  # lane 2 acknowledged: the window
        store.sync()
        assert store.window_bytes_held() > 1024
        _fill(store, 3, 0, 20)  # unacknowledged telemetry
        _fill(store, 0, 0, 30)  # alerts that need the room
        assert store.stats["evicted"] == 0  # only the window made room so far
        assert store.stats["window_dropped"] > 0 and store.bytes <= store.max_bytes
        records = drain(store)
        assert _numbers(records, 0) == list(range(30)) and _numbers(records, 3) == list(range(20))
        store.close()

    _with_dir(body)


def test_put_stays_on_the_fast_path_and_eviction_order_holds_with_a_window():
    def body(fs):
        store = open_store(fs, segment_bytes=512, max_bytes=4096, window_bytes=2048)
        _fill(store, 3, 0, 200)  # never acknowledged: the store fills, telemetry evicts oldest first
        kept = _numbers(drain(store))
        assert kept == list(range(200 - len(kept), 200))
        assert store.stats["evicted"] == 200 - len(kept)
        store.close()

    _with_dir(body)


def test_scan_reads_every_lane_with_unsent_records_and_records_larger_than_a_read():
    def body(fs):
        store = open_store(fs, segment_bytes=65536, max_bytes=256 * 1024, window_bytes=16384)
        _fill(store, 1, 0, 5)
        _fill(store, 3, 0, 30)
        store.append(2, b"2:00000:" + bytes(st.READ_AHEAD + 10), 1)
        batch = store.read(3)
        store.ack(batch.lane, batch.end)
        records = _scanned(store, 4)
        assert _numbers(records, 1) == list(range(5)) and _numbers(records, 3) == list(range(30))
        assert [len(r) for n, r in records if n == 2] == [st.READ_AHEAD + 18]
        assert [n for n, _ in records] == sorted(n for n, _ in records)
        store.close()

    _with_dir(body)


def test_scan_steps_over_a_damaged_record_and_survives_segments_going():
    def body(fs):
        store = open_store(fs, segment_bytes=512, window_bytes=4096)
        _fill(store, 3, 0, 30)
        drain(store)
        store.close()
        name = fs.segments(3)[0]
        data = bytearray(fs.whole(name))
        data[fmt.SEGMENT_HEADER + 12] ^= 0xFF  # the first record's payload
        fs.overwrite(name, bytes(data))
        store = open_store(fs, segment_bytes=512, window_bytes=4096)
        numbers = _numbers(_scanned(store))
        assert numbers == list(range(1, 30))
        records, position = store.scan(None, 3)
        store._drop_oldest_window_segment()  # the window lets go between two calls
        rest = []
        while position is not None:
            more, position = store.scan(position, 3)
            rest += more
        assert _numbers(rest) and _numbers(rest) == sorted(_numbers(rest))
        store.close()

    _with_dir(body)


def test_window_settings_are_checked():
    def body(fs):
        for options in ({"window_bytes": -1}, {"window_ms": -5}):
            try:
                open_store(fs, **options)
            except st.StoreUsageError as exc:
                assert "window" in str(exc)
            else:
                raise AssertionError(options)

    _with_dir(body)
