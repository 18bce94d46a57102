"""The durable store's logic on real files (CPython and MicroPython).

Durability against SIGKILL and the property-based model check are in
tests/gateway/test_store_crash.py and tests/test_store_model.py (CPython only)."""

from support import raises
from store_support import FilesDir, drain, open_store, read_all

from edge_agent.core import cbor
from edge_agent.core import store as st
from edge_agent.core import store_format as fmt
from edge_agent.core import store_recovery as recovery
from edge_agent.core.store_seq import DurableSequencer, SeqMarkerError


def _with_dir(test):
    fs = FilesDir()
    try:
        test(fs)
    finally:
        fs.destroy()


def test_most_urgent_lane_is_read_first_in_append_order():
    def body(fs):
        store = open_store(fs)
        for i in range(5):
            store.append(3, b"t%d" % i, i)
        store.append(0, b"alert", 10)
        store.append(2, b"state", 11)
        assert drain(store) == [(0, b"alert"), (2, b"state")] + [(3, b"t%d" % i) for i in range(5)]
        assert store.read() is None
        store.close()

    _with_dir(body)


def test_batches_respect_record_and_byte_limits():
    def body(fs):
        store = open_store(fs)
        for i in range(10):
            store.append(1, b"%02d" % i + bytes(98), i)
        batch = store.read(max_records=4)
        assert len(batch.records) == 4 and batch.lane == 1
        batch = store.read(max_records=100, max_bytes=250)
        assert len(batch.records) == 3  # the batch stops once 250 bytes are reached
        assert batch.records[0][:2] == b"04"
        store.close()

    _with_dir(body)


def test_unacknowledged_records_are_read_again_after_reopen():
    def body(fs):
        store = open_store(fs)
        for i in range(6):
            store.append(2, b"r%d" % i, i)
        batch = store.read(max_records=2)
        store.ack(batch.lane, batch.end)
        store.read(max_records=2)  # read, never acknowledged
        store.close()
        store = open_store(fs, 100)
        assert [r for _, r in read_all(store)] == [b"r2", b"r3", b"r4", b"r5"]
        store.close()

    _with_dir(body)


def test_rewind_reads_unacknowledged_records_again():
    def body(fs):
        store = open_store(fs)
        for i in range(3):
            store.append(0, b"a%d" % i, i)
        first = store.read(max_records=1)
        store.ack(0, first.end)
        assert len(store.read().records) == 2
        assert store.read() is None
        store.rewind()
        assert store.read().records == [b"a1", b"a2"]
        store.close()

    _with_dir(body)


def test_ack_past_what_was_read_is_refused_and_old_acks_are_ignored():
    def body(fs):
        store = open_store(fs)
        store.append(0, b"x", 0)
        store.append(0, b"y", 0)
        first = store.read(max_records=1)
        second = store.read(max_records=1)
        store.rewind()
        raises(st.StoreUsageError, store.ack, 0, second.end)
        store.read(max_records=2)
        store.ack(0, second.end)
        store.ack(0, first.end)  # older: nothing happens
        assert store.read() is None
        store.close()

    _with_dir(body)


def test_bad_lane_and_payload_sizes_are_refused():
    def body(fs):
        store = open_store(fs)
        raises(st.StoreUsageError, store.append, 4, b"x", 0)
        raises(st.StoreUsageError, store.append, -7, b"x", 0)
        raises(st.StoreUsageError, store.append, 0, b"", 0)
        raises(st.StoreUsageError, store.append, 0, bytes(store.max_payload + 1), 0)
        assert store.append(0, bytes(store.max_payload), 0)
        store.close()
        raises(st.StoreUsageError, store.append, 0, b"x", 0)

    _with_dir(body)


def test_bad_configuration_is_refused():
    def body(fs):
        raises(st.StoreUsageError, st.Store, fs, 0, segment_bytes=64)
        raises(st.StoreUsageError, st.Store, fs, 0, segment_bytes=1024, max_bytes=1500)
        raises(st.StoreUsageError, st.Store, fs, 0, sync_every=0)
        raises(st.StoreUsageError, st.Store, fs, 0, lanes=0)

    _with_dir(body)


def test_group_commit_syncs_every_n_records():
    def body(fs):
        store = open_store(fs, sync_every=3, sync_ms=10000)
        store.append(3, b"a", 0)
        store.append(3, b"b", 0)
        assert store.unsynced == 2
        store.append(3, b"c", 0)
        assert store.unsynced == 0 and store.stats["syncs"] == 1
        store.close()

    _with_dir(body)


def test_group_commit_syncs_at_the_deadline_and_urgent_records_at_once():
    def body(fs):
        store = open_store(fs, sync_every=100, sync_ms=500)
        store.append(3, b"a", 1000)
        assert store.poll(1200) == 1500  # deadline: 500 ms after the first unsynced record
        assert store.unsynced == 1
        assert store.poll(1500) is None and store.unsynced == 0
        store.append(3, b"b", 2000)
        store.append(3, b"c", 2600)  # appended past the deadline: syncs now
        assert store.unsynced == 0
        store.append(0, b"alert", 2700, urgent=True)
        assert store.unsynced == 0
        store.close()

    _with_dir(body)


def test_an_ack_becomes_durable_by_the_next_deadline():
    def body(fs):
        store = open_store(fs, sync_ms=500)
        store.append(1, b"a", 0)
        store.append(1, b"b", 0)
        store.sync()
        batch = store.read(max_records=1)
        store.ack(1, batch.end)
        assert store.poll(1000) == 1500
        assert fmt.JOURNAL_NAME not in fs.list()
        store.poll(1500)
        assert recovery.load(fs, 4, repair=False).acks[1] == batch.end  # in the journal
        store.close()
        assert fmt.JOURNAL_NAME not in fs.list()  # close checkpoints into the marker
        assert fmt.decode_ack(fs.whole(fmt.ack_name(1)), 1) == batch.end

    _with_dir(body)


def test_reopen_writes_to_a_new_segment_and_seals_the_old_one():
    def body(fs):
        store = open_store(fs)
        store.append(0, b"before", 0)
        store.sync()
        # No close: the process "died". Reopening seals the segment.
        store = open_store(fs, 10)
        assert store.recovery.scanned == 1 and store.recovery.discards == []
        store.append(0, b"after", 20)
        store.close()
        assert fs.segments(0) == ["0-00000001.seg", "0-00000002.seg"]
        assert fmt.decode_seal(fs.read("0-00000001.seg", fs.size("0-00000001.seg") - 16, 16), 38) == 1
        store = open_store(fs, 30)
        assert store.recovery.scanned == 0  # sealed: only their tails were read
        assert [r for _, r in read_all(store)] == [b"before", b"after"]
        store.close()

    _with_dir(body)


def test_torn_last_record_at_every_byte_offset_recovers_to_the_last_good_one():
    def body(fs):
        store = open_store(fs)
        for payload in (b"one", b"two", b"three-is-longer"):
            store.append(2, payload, 0)
        store.sync()
        name = fs.segments(2)[0]
        whole = fs.whole(name)
        last = len(fmt.encode_record(b"three-is-longer"))
        for cut in range(1, last):
            fs.overwrite(name, whole[: len(whole) - cut])
            store = open_store(fs, 1)
            assert [r for _, r in read_all(store)] == [b"one", b"two"], cut
            discards = store.recovery.discards
            assert len(discards) == 1 and discards[0].nbytes == last - cut, cut
            assert discards[0].offset == len(whole) - last
            # The repaired segment is sealed and ends after "two".
            assert fs.size(name) == len(whole) - last + fmt.SEAL_SIZE
            assert store.take_reports()[0].kind == st.RECOVERED
            store.close()
            fs.remove(fs.segments(2)[1]) if len(fs.segments(2)) > 1 else None

    _with_dir(body)


def test_flipped_bits_in_the_last_record_recover_to_the_last_good_one():
    def body(fs):
        store = open_store(fs)
        store.append(1, b"keep", 0)
        store.append(1, b"lose", 0)
        store.sync()
        name = fs.segments(1)[0]
        whole = fs.whole(name)
        last = len(fmt.encode_record(b"lose"))
        for i in range(len(whole) - last, len(whole)):
            damaged = bytearray(whole)
            damaged[i] ^= 0x41
            fs.overwrite(name, bytes(damaged))
            store = open_store(fs, 1)
            assert [r for _, r in read_all(store)] == [b"keep"], i
            assert store.recovery.discarded_bytes == last
            store.close()

    _with_dir(body)


def test_corrupt_record_in_a_sealed_segment_is_skipped_with_a_report():
    def body(fs):
        store = open_store(fs)
        for payload in (b"first", b"second", b"third"):
            store.append(0, payload, 0)
        store.close()
        name = fs.segments(0)[0]
        damaged = bytearray(fs.whole(name))
        damaged[fmt.SEGMENT_HEADER + 13 + 10] ^= 0x01  # a payload byte of "second"
        fs.overwrite(name, bytes(damaged))
        store = open_store(fs, 1)
        assert [r for _, r in read_all(store)] == [b"first", b"third"]
        reports = store.take_reports()
        assert [(r.kind, r.reason, r.nbytes) for r in reports] == [(st.CORRUPT, fmt.BAD_CRC, 14)]
        assert store.stats["corrupt_skipped"] == 1
        store.close()
        records, problems = recovery.verify(fs, 4)
        assert records == 2 and len(problems) == 1 and problems[0].reason == fmt.BAD_CRC

    _with_dir(body)


def test_a_segment_file_shorter_than_what_was_written_is_reported_never_a_loop():
    # Issue 19 (from issue 10's notes): a flash or file system that loses
    # bytes the store wrote and synced, under a running store. Reading it
    # waited forever for them (the read loop asked for the missing bytes
    # again and again); now the records that are gone are reported and the
    # rest is read on.
    def body(fs):
        store = open_store(fs)
        payloads = [b"rec-%03d-" % n + b"x" * 20 for n in range(40)]
        for payload in payloads:
            store.append(3, payload, 0)
        store.sync()
        name = fs.segments(3)[0]
        whole = fs.whole(name)
        fs.overwrite(name, whole[: len(whole) // 2])  # the file loses its second half
        got = []
        for _ in range(100):
            batch = store.read(8)
            if batch is None:
                break
            got += batch.records
            store.ack(batch.lane, batch.end)
        else:
            raise AssertionError("read never ended")
        reports = [r for r in store.take_reports() if r.kind == st.CORRUPT]
        assert [(r.lane, r.reason) for r in reports] == [(3, fmt.SHORT_FILE)], reports
        lost = reports[0].records
        k = 0
        while k < len(got) and got[k] == payloads[k]:
            k += 1
        # what the first half held, then the next segment: only the lost ones missing
        assert k > 0 and lost > 0 and got == payloads[:k] + payloads[k + lost:], (k, lost, len(got))
        assert reports[0].nbytes == lost * (8 + len(payloads[0])) + fmt.SEAL_SIZE  # and the seal
        store.close()

    _with_dir(body)


def test_damaged_length_in_the_middle_resynchronises_on_the_next_record():
    def body(fs):
        store = open_store(fs)
        for payload in (b"aaaa", b"bbbb", b"cccc", b"dddd"):
            store.append(0, payload, 0)
        store.sync()
        name = fs.segments(0)[0]
        damaged = bytearray(fs.whole(name))
        damaged[fmt.SEGMENT_HEADER + 12] = 0x7F  # length of "bbbb"
        fs.overwrite(name, bytes(damaged))
        store = open_store(fs, 1)  # unsealed: recovery scans it
        assert [r for _, r in read_all(store)] == [b"aaaa", b"cccc", b"dddd"]
        assert [d.kept_after for d in store.recovery.discards] == [True]
        store.close()

    _with_dir(body)


def test_segment_with_only_a_torn_header_is_removed():
    def body(fs):
        fs.write_file("0-00000004.seg", fmt.encode_segment_header(0, 4, 0)[:10])
        store = open_store(fs)
        assert fs.segments() == []
        assert store.recovery.discards[0].reason == recovery.EMPTY
        store.append(0, b"x", 0)
        store.close()
        assert fs.segments() == ["0-00000005.seg"]  # numbers never go back

    _with_dir(body)


def test_damaged_segment_header_keeps_the_records():
    def body(fs):
        store = open_store(fs)
        store.append(3, b"r1", 0)
        store.append(3, b"r2", 0)
        store.close()
        name = fs.segments(3)[0]
        damaged = bytearray(fs.whole(name))
        damaged[1] ^= 0xFF
        fs.overwrite(name, bytes(damaged))
        store = open_store(fs, 1)
        assert [r for _, r in read_all(store)] == [b"r1", b"r2"]
        assert store.recovery.discards[-1].reason == fmt.BAD_HEADER
        store.close()
        assert recovery.verify(fs, 4)[1] == []  # rewritten with a good header

    _with_dir(body)


def test_damaged_ack_marker_means_everything_is_sent_again():
    def body(fs):
        store = open_store(fs)
        store.append(1, b"a", 0)
        store.append(1, b"b", 0)
        drain(store)
        store.close()
        assert fs.segments() == []  # wholly acknowledged: compacted
        store = open_store(fs)
        store.append(1, b"c", 0)
        drain(store)
        store.append(1, b"d", 0)
        store.close()
        fs.overwrite("1.ack", b"\x00" * fmt.ACK_SIZE)
        store = open_store(fs, 1)
        assert [r for _, r in read_all(store)] == [b"c", b"d"]
        assert store.recovery.discards[0].reason == fmt.BAD_MARKER
        store.close()

    _with_dir(body)


def test_recovery_report_is_kept_on_disk():
    def body(fs):
        store = open_store(fs)
        store.append(0, b"abc", 0)
        store.sync()
        fs.overwrite(fs.segments(0)[0], fs.whole(fs.segments(0)[0])[:-2])
        store = open_store(fs, 777)
        saved = cbor.loads(fs.whole(fmt.RECOVERY_NAME))
        assert saved["at_ms"] == 777
        assert saved["discarded_bytes"] == 9
        assert saved["discards"][0]["reason"] == fmt.TORN
        store.close()

    _with_dir(body)


def test_compaction_removes_wholly_acknowledged_segments():
    def body(fs):
        store = open_store(fs, segment_bytes=256)
        for i in range(30):
            store.append(3, b"%02d" % i + bytes(30), i)
        store.sync()
        before = len(fs.segments(3))
        assert before > 3
        batch = store.read(max_records=15)
        store.ack(3, batch.end)
        store.sync()
        after = len(fs.segments(3))
        assert 0 < after < before
        assert store.lane_info(3)[0] == 15
        drain(store)
        store.sync()
        # The active segment, wholly acknowledged, stays for the next appends.
        assert fs.segments(3) == ["3-00000006.seg"]
        assert store.lane_info(3)[0] == 0
        store.close()
        assert fs.segments(3) == []  # closing removes it (no seal needed)
        store = open_store(fs)
        assert store.bytes == 0 and store.read() is None
        store.close()

    _with_dir(body)


def test_records_acked_at_once_share_a_segment_file():
    # The receiver acks every batch at once (the scenario simulator, a good
    # link): each append used to start a new file and each sync remove it.
    def body(fs):
        store = open_store(fs, segment_bytes=1024)
        for i in range(200):
            assert store.append(3, b"%03d" % i + bytes(37), i)
            store.flush()
            batch = store.read()
            store.ack(3, batch.end)
            store.sync()
            assert [r[:3] for r in batch.records] == [b"%03d" % i]
        # 200 records of 48 bytes framed: 10 segments of 1 KiB, not 200.
        assert store.stats["segments"] <= 11
        assert len(fs.segments(3)) == 1  # sealed ones are removed, the active one stays
        assert store.bytes <= 1024
        store.close()
        assert fs.segments() == []

    _with_dir(body)


def test_crash_with_a_wholly_acknowledged_active_segment():
    def body(fs):
        store = open_store(fs, segment_bytes=1024)
        for i in range(5):
            store.append(3, b"a%d" % i, i)
            store.ack(3, store.read().end)
            store.sync()
        store.append(3, b"unacked", 9)
        store.sync()
        # Killed: the active segment is neither sealed nor removed.
        store = open_store(fs, 10)
        assert [r for _, r in read_all(store)] == [b"unacked"]
        store.close()
        # Wholly acknowledged and killed: recovery removes it.
        store = open_store(fs, 11)
        store.append(3, b"b", 11)
        store.ack(3, store.read().end)
        store.sync()
        assert len(fs.segments(3)) == 1
        store = open_store(fs, 12)
        assert fs.segments(3) == [] and store.read() is None
        store.close()

    _with_dir(body)


def _fill(store, lane, count, size, start_ms=0):
    for i in range(count):
        store.append(lane, (b"%d:%05d:" % (lane, i)) + bytes(size), start_ms + i)


def test_full_store_evicts_least_urgent_oldest_first():
    def body(fs):
        store = open_store(fs, segment_bytes=512, max_bytes=4096)
        _fill(store, 3, 60, 40)  # telemetry: more than fits
        _fill(store, 0, 10, 40)
        assert store.bytes <= store.max_bytes
        reports = store.take_reports()
        assert reports and all(r.kind == st.EVICTED and r.lane == 3 for r in reports)
        assert store.stats["evicted"] == sum(r.records for r in reports)
        records = drain(store)
        alerts = [r for lane, r in records if lane == 0]
        telemetry = [r for lane, r in records if lane == 3]
        assert len(alerts) == 10
        # What is left of the telemetry is its newest part, in order.
        assert telemetry[-1].startswith(b"3:00059:")
        numbers = [int(r[2:7]) for r in telemetry]
        assert numbers == list(range(60 - len(numbers), 60))
        assert store.stats["evicted"] == 60 - len(telemetry)
        store.close()

    _with_dir(body)


def test_alerts_survive_a_telemetry_flood():
    def body(fs):
        store = open_store(fs, segment_bytes=512, max_bytes=4096)
        _fill(store, 0, 5, 40)
        _fill(store, 1, 5, 40)
        _fill(store, 3, 1000, 40)
        assert store.evicted_by_lane[0] == 0 and store.evicted_by_lane[1] == 0
        assert store.evicted_by_lane[3] > 900
        lanes = [lane for lane, _ in drain(store)]
        assert lanes.count(0) == 5 and lanes.count(1) == 5
        store.close()

    _with_dir(body)


def test_telemetry_is_dropped_when_only_alerts_remain_and_alerts_overflow_loudly():
    def body(fs):
        store = open_store(fs, segment_bytes=512, max_bytes=2048)
        _fill(store, 1, 200, 40)  # alerts alone overflow the store
        overflow = [r for r in store.take_reports() if r.kind == st.OVERFLOW]
        assert overflow and all(r.lane == 1 for r in overflow)
        assert store.evicted_by_lane[1] > 0
        while store.max_bytes - store.bytes > 100:  # top the store up with alerts
            _fill(store, 1, 1, 40, start_ms=199)
        store.take_reports()
        assert store.append(3, bytes(150), 0) is False  # never at the alerts' cost
        dropped = store.take_reports()
        assert [(r.kind, r.lane, r.reason) for r in dropped] == [(st.OVERFLOW, 3, st.REASON_DROPPED)]
        assert store.stats["dropped"] == 1
        # Every alert left is one of the newest, and the newest is there.
        left = [r for _, r in read_all(store)]
        assert b"1:00199:" in [r[:8] for r in left]
        assert store.bytes <= store.max_bytes
        store.close()

    _with_dir(body)


def test_inspect_state_without_repairing():
    def body(fs):
        store = open_store(fs)
        _fill(store, 2, 5, 10, start_ms=5000)
        store.sync()
        fs.overwrite(fs.segments(2)[0], fs.whole(fs.segments(2)[0])[:-3])
        state = recovery.load(fs, 4, repair=False)
        assert [s.count for s in state.lanes[2]] == [4]
        assert state.lanes[2][0].first_ms == 5000
        assert state.report.discards[0].reason == fmt.TORN
        assert fs.size(fs.segments(2)[0]) % 2 == 1 or True  # untouched below
        assert fmt.decode_seal(fs.read(fs.segments(2)[0], fs.size(fs.segments(2)[0]) - 16, 16), 0) is None

    _with_dir(body)


def test_lane_info_counts_depth_bytes_segments_and_oldest():
    def body(fs):
        store = open_store(fs, segment_bytes=256)
        _fill(store, 3, 12, 30, start_ms=100)
        batch = store.read(max_records=2)
        store.ack(3, batch.end)
        depth, nbytes, segments, oldest = store.lane_info(3)
        assert depth == 10 and oldest == 100 and segments >= 2
        assert nbytes == store.bytes
        assert store.lane_info(0) == (0, 0, 0, None)
        store.close()

    _with_dir(body)


def test_durable_sequencer_never_reuses_a_number():
    def body(fs):
        seq = DurableSequencer(fs, block=10)
        taken = [seq.take() for _ in range(25)]
        assert taken == list(range(1, 26))
        # A "crash": a new sequencer on the same directory, no shutdown.
        again = DurableSequencer(fs, block=10)
        assert again.take() > 25
        assert again.take() == again.next_seq - 1

    _with_dir(body)


def test_durable_sequencer_refuses_a_damaged_marker():
    def body(fs):
        seq = DurableSequencer(fs)
        seq.take()
        fs.overwrite(fmt.SEQ_NAME, b"garbage")
        error = raises(SeqMarkerError, DurableSequencer, fs)
        assert "seq" in str(error) and "docs/store.md" in str(error)

    _with_dir(body)


def test_ack_journal_is_checkpointed_into_markers():
    def body(fs):
        store = open_store(fs)
        for i in range(st.JOURNAL_LIMIT + 10):
            store.append(i % 2, b"r%d" % i, i)
            batch = store.read()
            store.ack(batch.lane, batch.end)
            store.sync()
        # The journal restarted after a checkpoint: it holds only the last few.
        entries = recovery.scan_journal(fs.whole(fmt.JOURNAL_NAME))
        assert 0 < len(entries) <= 12
        assert fmt.decode_ack(fs.whole(fmt.ack_name(0)), 0) is not None
        store.append(0, b"unread", 0)
        store.sync()
        store = open_store(fs, 1)  # without close: positions come from the journal
        assert read_all(store) == [(0, b"unread")]
        assert fmt.JOURNAL_NAME not in fs.list()  # open checkpoints it
        store.close()

    _with_dir(body)


def test_torn_journal_entry_only_loses_that_ack():
    def body(fs):
        store = open_store(fs)
        for i in range(3):
            store.append(2, b"r%d" % i, i)
        for _ in range(2):
            batch = store.read(1)
            store.ack(2, batch.end)
            store.sync()
        journal = fs.whole(fmt.JOURNAL_NAME)
        # The second entry's slot, torn: its last 5 bytes never landed.
        torn_at = 2 * fmt.JOURNAL_ENTRY - 5
        fs.overwrite(fmt.JOURNAL_NAME, journal[:torn_at] + bytes(5) + journal[torn_at + 5 :])
        store = open_store(fs, 1)
        assert read_all(store) == [(2, b"r1"), (2, b"r2")]  # r1 sent again: at-least-once
        assert store.recovery.discards[0].name == fmt.JOURNAL_NAME
        assert store.recovery.discards[0].offset == fmt.JOURNAL_ENTRY
        store.close()

    _with_dir(body)


def _two_appended_one_acked(fs):
    """A new store with records a and b on lane 1, a acknowledged and
    synced: (the store, a's batch, the journal's bytes)."""
    store = open_store(fs)
    store.append(1, b"a", 0)
    store.append(1, b"b", 0)
    batch = store.read(1)
    store.ack(1, batch.end)
    store.sync()
    return store, batch, fs.whole(fmt.JOURNAL_NAME)


def test_journal_slots_are_preallocated_zeros_and_zeros_are_its_end():
    def body(fs):
        store, batch, journal = _two_appended_one_acked(fs)
        # Written whole when created; the entry overwrote the first slot.
        assert len(journal) == st.JOURNAL_LIMIT * fmt.JOURNAL_ENTRY
        assert journal[fmt.JOURNAL_ENTRY :] == bytes(len(journal) - fmt.JOURNAL_ENTRY)
        entries = recovery.scan_journal(journal)
        assert [(e[0], e[1], e[2]) for e in entries] == [(batch.end, 1, None)]  # no damage reported
        assert recovery.verify(fs, 4)[1] == []
        store = open_store(fs, 1)  # without close: the position comes from the journal
        assert store.recovery.discards == []
        assert read_all(store) == [(1, b"b")]
        store.close()

    _with_dir(body)


def test_journal_zeros_written_from_a_smaller_block_are_the_same_file():
    # As on a board (firmware/app.py STORE_BUFFERS): 16 slots, zeros 96 bytes
    # at a time (the last piece shorter), then every slot used and checkpointed.
    saved = st.JOURNAL_LIMIT, st.JOURNAL_BLANK, st._blank
    st.JOURNAL_LIMIT, st.JOURNAL_BLANK = 16, 96

    def body(fs):
        store, batch, journal = _two_appended_one_acked(fs)
        assert len(journal) == 16 * fmt.JOURNAL_ENTRY
        assert journal[fmt.JOURNAL_ENTRY :] == bytes(15 * fmt.JOURNAL_ENTRY)
        assert len(st._blank) == 96  # the kept block, not the whole journal
        assert recovery.verify(fs, 4)[1] == []
        for i in range(20):  # past a checkpoint: a new journal, written the same way
            store.append(2, b"r%d" % i, i)
            batch = store.read()
            store.ack(batch.lane, batch.end)
            store.sync()
        assert len(fs.whole(fmt.JOURNAL_NAME)) == 16 * fmt.JOURNAL_ENTRY
        store.append(0, b"unread", 0)
        store.sync()
        store = open_store(fs, 1)  # without close: positions from the journal
        assert read_all(store) == [(0, b"unread")]
        store.close()

    try:
        _with_dir(body)
    finally:
        st.JOURNAL_LIMIT, st.JOURNAL_BLANK, st._blank = saved


def test_appended_journal_without_zeros_still_reads():
    # A journal of entries with no zeroed slots after them (as earlier
    # versions of the store wrote it) gives the same positions.
    def body(fs):
        store = open_store(fs)
        for i in range(3):
            store.append(2, b"r%d" % i, i)
        store.sync()
        first = store.read(1).end
        second = store.read(1).end
        store.close()
        journal = fmt.encode_record(fmt.encode_ack(2, first)) + fmt.encode_record(fmt.encode_ack(2, second))
        fs.write_file(fmt.JOURNAL_NAME, journal)
        store = open_store(fs, 1)
        assert store.recovery.discards == []
        assert read_all(store) == [(2, b"r2")]
        store.close()

    _with_dir(body)


def test_both_append_paths_frame_records_alike_and_every_sync_window_starts_its_clock():
    # append() frames records under 512 bytes inline (its fast path) and
    # the rest through store_format.encode_record; the bytes must be the
    # format's either way. Each sync window, by count or by deadline,
    # starts its clock at its own first record.
    def body(fs):
        store = open_store(fs, segment_bytes=8192, sync_every=3, sync_ms=500)
        payloads = [bytes([n % 251]) * n for n in (1, 511, 512, 513, 70, 2000, 7)]
        for payload in payloads:
            store.append(2, payload, 1000)
        assert store.stats["syncs"] == 2 and store.unsynced == 1  # after the 3rd and the 6th
        assert store.poll(1000) == 1500
        late = bytes(600)  # a record for the slow path, later in the window: same deadline
        store.append(2, late, 1400)
        assert store.poll(1499) == 1500 and store.unsynced == 2
        assert store.poll(1500) is None and store.unsynced == 0
        store.append(2, b"y", 5000)  # a new window: a new clock, not the old deadline
        assert store.unsynced == 1 and store.poll(5000) == 5500
        store.close()
        (name,) = fs.segments(2)
        records = b"".join([fmt.encode_record(p) for p in payloads + [late, b"y"]])
        start = fmt.SEGMENT_HEADER
        assert fs.whole(name)[start : start + len(records)] == records
        assert fmt.scan_segment(fs.whole(name)).count == len(payloads) + 2

    _with_dir(body)


def test_records_larger_than_one_read_and_batches_across_segments():
    def body(fs):
        store = open_store(fs, segment_bytes=65536, max_bytes=1 << 20)
        big = [bytes([i]) * (st.READ_AHEAD + 5000 * i) for i in range(1, 4)]
        for payload in big:
            store.append(1, payload, 0)
            store.append(1, b"small", 0)
        assert len(fs.segments(1)) >= 2
        records = [r for _, r in read_all(store)]
        assert records == [big[0], b"small", big[1], b"small", big[2], b"small"]
        store.close()

    _with_dir(body)


def test_leftover_temporary_files_are_removed_on_open():
    def body(fs):
        fs.write_file("2.ack.tmp", b"half")
        store = open_store(fs)
        assert "2.ack.tmp" not in fs.list() and store.recovery.removed_tmp == 1
        store.close()

    _with_dir(body)
