"""The durable store: power-safe, bounded, priority-aware buffering.

Theory of operation (docs/store.md has the full rules and the format).

- Lanes. One lane per priority class; lane 0 is the most urgent (lane
  number = signal priority). Each lane is a run of append-only segment
  files, oldest first. Records are opaque payload bytes (CBOR signals).
- Writing. ``append`` frames the payload (length + CRC) and writes it to the
  lane's active segment, creating one when there is none or it is full.
  After a restart the store never appends to an old segment: recovery seals
  them all, and writing starts in a new one.
- Group commit. Written records become durable at the next ``sync``, which
  happens after ``sync_every`` records, or at ``sync_ms`` after the first
  unsynced record (the adapter calls ``poll(now_ms)`` by the deadline it
  returns), or at once for ``append(..., urgent=True)``. So a power cut
  loses at most the last ``sync_every`` records / ``sync_ms`` ms.
- Reading. ``read`` returns a Batch from the most urgent lane with unread
  records; ``ack(lane, batch.end)`` acknowledges through that batch.
  Acknowledged positions become durable at the next sync (one marker per
  lane, replaced atomically); a lost ack only means records are sent again
  (at-least-once: the signal seq lets receivers drop duplicates). After a
  restart, reading resumes at the last durable acknowledged position.
- Compaction. At each sync, sealed segments wholly acknowledged are
  removed. The active one stays until it is full (appends go on in the
  same file), unless eviction needs its space or the disk is full.
- Replay window (``window_bytes`` > 0). Wholly acknowledged segments are
  kept instead, up to ``window_bytes`` of them (sealed ones counted) and,
  with ``window_ms``, while they are younger than that (a segment is as
  old as the next one of its lane is: all its records came before), oldest
  dropped first. ``scan`` reads them back, streaming, to answer a gap
  repair (repair.py). They never stand in the way of new records: when
  room is needed they go first, oldest first, before any unacknowledged
  record, and all at once while the disk is full.
- Bound. The bytes of all segments (each counted with the seal it will
  end with) never exceed ``max_bytes``. To make room the store evicts whole
  segments: the least urgent lane first, oldest segment first, and never
  from a lane more urgent than the record being added. If only more urgent
  data is left, the new record is dropped. Every eviction and drop is
  counted in ``stats`` and queued as a Report (``take_reports``); evicting
  or dropping in a lane whose own data fills the store is an OVERFLOW
  report, the loud kind. Appending never blocks and never raises for a
  full store: backpressure ends here, not at the sensors.

The file adapter ``fs`` (edge_agent/gateway/store_posix.py on CPython) provides::

    list() -> [name]              size(name) -> int
    read(name, offset, n) -> bytes (at most n; fewer at end of file)
    open_append(name) -> handle   handle.write(b) / flush() / sync() / close()
                                  write appends all of b or raises, leaving
                                  the file as it was (a full disk)
    open_update(name) -> handle   handle.write_at(offset, b) / sync() / close():
                                  overwrite in place (the ack journal's slots)
    write_file(name, data)        create or overwrite, durable on return
    rename(old, new)              atomic replace
    remove(name)                  sync_dir()  make names durable (POSIX)
    close()                       release the directory (e.g. its lock)

Disk full. An OSError with a disk-full errno (store_format.is_disk_full:
ENOSPC, EFBIG, EDQUOT) from any write, sync or new file is a condition, not
a crash: what is on disk stays readable and acknowledgeable (compaction and
eviction free space), new records wait in RAM up to ``hold_bytes`` and are
written when space returns (retried every RETRY_MS, each ``sync_every``
records, each urgent append), and beyond that the usual eviction makes
room, telemetry first. A DISK_FULL report says when it starts, DISK_OK when
it ends. An I/O error (EIO: a flash program or erase that failed, a bad
block on an SD card) is ridden out the same way, reported as DISK_ERROR.
Any other OSError still propagates.

Position: (segment number, byte offset, record index in that segment):
tuples compare in log order. Consumers treat them as opaque.
"""

import struct
import sys

from edge_agent.core import cbor
from edge_agent.core import store_format as fmt

_pack = struct.pack
_crc32 = fmt.crc32
try:
    # A bound Struct method skips the format-cache lookup of struct.pack
    # and struct.unpack_from: ~10 ns a call, twice per record.
    _II = struct.Struct("<II")
    _pack_ii = _II.pack
    _unpack_ii = _II.unpack_from
except AttributeError:  # MicroPython's struct has no Struct

    def _pack_ii(a, b):
        return _pack("<II", a, b)

    def _unpack_ii(data, pos):
        return struct.unpack_from("<II", data, pos)


# CRC-32 of the 4 length bytes, precomputed for small records (most
# signals): the record CRC continues from it over the payload, so the hot
# path packs the header once (the put benchmark's margin over its floor is
# a few percent). CPython only: on MicroPython the table would be 2 KiB of
# a board's heap held for good (an array of 512 words; a list of big ints
# on 32 bits, ~14 KiB, is built first), so there the fast paths are off
# (_WORD_CRCS_UPTO 0) and every record takes the general path, whose CRC
# runs over the length word too (docs/firmware.md, "The memory budget").
if sys.implementation.name == "micropython":
    _WORD_CRCS_UPTO = 0
    _WORD_CRCS = ()
else:
    _WORD_CRCS_UPTO = 512
    _WORD_CRCS = [_crc32(_pack("<I", n)) for n in range(_WORD_CRCS_UPTO)]

DEFAULT_LANES = 4
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
DEFAULT_SEGMENT_BYTES = 1024 * 1024
# The durability bound: at most this many records or this much time may be
# lost on power loss. 100 records matches the benchmark's bound; 500 ms is
# well under a telemetry interval and costs at most 2 syncs a second when
# idle-ish. An SD card fsync takes 5-50 ms: a few per second is fine.
DEFAULT_SYNC_EVERY = 100
DEFAULT_SYNC_MS = 500
# Bytes read per call when a batch is read: a batch of 100 small signals
# is ~7 KiB; a record larger than this is read whole with a second call.
READ_AHEAD = 16384
READ_CHUNK = fmt.MAX_PAYLOAD + fmt.RECORD_HEADER  # the default byte budget of a batch
MIN_SEGMENT_BYTES = 128
# Records wait in a list in RAM and reach the file adapter as one write at
# the next sync, read or segment change, or once this many bytes wait: a
# list append costs a quarter of a buffered file write per record. They are
# no less durable there than in the adapter's own write buffer: neither
# survives a power cut until the sync. 8 KiB holds the benchmark's 100
# signals per sync and bounds the RAM an ESP32 spends on it. An adapter
# may ask for more (``fs.write_buffer``: the POSIX one takes 64 KiB, so a
# sync of 100 larger signals is still one write).
WRITE_BUFFER = 8192
# Ack journal entries between checkpoints into the per-lane markers: 256
# entries are 8 KiB, and a checkpoint (a few renames and a directory sync)
# every 256 ack syncs costs nothing measurable.
JOURNAL_LIMIT = 256
# A new journal's zeros are written from one kept block of at most this
# many bytes (a multiple of the 32-byte entry): the whole journal at once
# here; the firmware writes its 512 bytes from 128 (4 writes per checkpoint).
JOURNAL_BLANK = 8192
# While the disk is full: records held in RAM at most (then the usual
# eviction makes room, telemetry first), and how often writing is retried.
DEFAULT_HOLD_BYTES = 1024 * 1024
RETRY_MS = 1000
# A disk that fills again right after acks freed a segment is still full:
# DISK_OK is reported only after this long without a failed write, so a
# flapping disk gives one DISK_FULL and one DISK_OK, not one per segment.
DISK_OK_AFTER_MS = 5000

EVICTED = "evicted"  # less urgent data made room (normal under pressure)
OVERFLOW = "overflow"  # data of the incoming lane's urgency or higher fills the store
REASON_EVICTED = "store full: oldest segment evicted"
REASON_DROPPED = "store full of more urgent data: new record dropped"
CORRUPT = "corrupt"  # a damaged record was stepped over while reading
RECOVERED = "recovered"  # recovery on open discarded something
DISK_FULL = "disk-full"  # writing failed for lack of space: records are held in RAM
DISK_ERROR = "disk-error"  # writing failed with an I/O error (EIO): records are held in RAM, retried
DISK_OK = "disk-ok"  # the held records were written: the disk takes writes again
LOST = "lost"  # closing on a full disk: records held in RAM could not be written
REASON_DISK_FULL_EVICTED = "disk full: oldest segment evicted"
REASON_DISK_FULL_DROPPED = "disk full and the RAM hold full of more urgent data: new record dropped"


_blank = b""


def _blank_journal():
    """The zeros a new journal is written with, JOURNAL_BLANK at a time:
    one bytes object made when a store opens and kept (shared by every
    store), not a new one after each checkpoint (on a board, a 513-byte
    block a fragmented heap refused)."""
    global _blank
    size = min(JOURNAL_LIMIT * fmt.JOURNAL_ENTRY, JOURNAL_BLANK)
    if len(_blank) != size:
        _blank = bytes(size)
    return _blank


class StoreError(Exception):
    """Base of the store's errors."""


class StoreUsageError(StoreError):
    """The caller misused the API (bad lane, payload size, ack position)."""


class StoreCorruptError(StoreError):
    """The directory holds data this store cannot trust or use."""


class Report:
    """Something the store did that the operator must hear about."""

    __slots__ = ("kind", "lane", "records", "nbytes", "reason")

    def __init__(self, kind, lane, records, nbytes, reason):
        self.kind = kind
        self.lane = lane
        self.records = records
        self.nbytes = nbytes
        self.reason = reason

    def __repr__(self):
        return "Report(%s, lane %d, %d records, %d bytes: %s)" % (
            self.kind,
            self.lane,
            self.records,
            self.nbytes,
            self.reason,
        )


class Batch:
    """Records read from one lane; acknowledge them with ack(lane, end)."""

    __slots__ = ("lane", "records", "end")

    def __init__(self, lane, records, end):
        self.lane = lane
        self.records = records
        self.end = end

    def __repr__(self):
        return "Batch(lane %d, %d records, end %r)" % (self.lane, len(self.records), self.end)


_wholly_acked = fmt.wholly_acked


class _Segment:
    __slots__ = ("segno", "name", "first_ms", "end", "count", "handle", "pieces", "limit", "synced_end", "file_end",
                 "file_count")

    def __init__(self, segno, first_ms, end, count):
        self.segno = segno
        self.name = None
        self.first_ms = first_ms
        self.end = end  # offset just after the last record
        self.count = count
        self.handle = None  # open for appending while active or not yet synced
        self.pieces = None  # bytes appended but not yet handed to the handle
        self.limit = 0  # appends past this offset take the slow path (seal or drain)
        self.synced_end = end  # what the last sync made durable
        # What the file holds (the rest waits in pieces): reads stop here.
        self.file_end = end
        self.file_count = count


class _Lane:
    __slots__ = ("number", "segments", "active", "ack", "cursor", "ack_dirty", "saved_ack", "next_segno")

    def __init__(self, number, ack, saved_ack):
        self.number = number
        self.segments = []
        self.active = None
        self.ack = ack
        self.cursor = ack
        self.ack_dirty = False  # ack moved since the last sync
        self.saved_ack = saved_ack  # what the lane's marker file holds
        self.next_segno = ack[0] + 1


class Store:
    def __init__(
        self,
        fs,
        now_ms,
        lanes=DEFAULT_LANES,
        max_bytes=DEFAULT_MAX_BYTES,
        segment_bytes=DEFAULT_SEGMENT_BYTES,
        sync_every=DEFAULT_SYNC_EVERY,
        sync_ms=DEFAULT_SYNC_MS,
        hold_bytes=DEFAULT_HOLD_BYTES,
        window_bytes=0,
        window_ms=0,
    ):
        if not 1 <= lanes <= 16:
            raise StoreUsageError("lanes must be 1-16, got %r" % lanes)
        if segment_bytes < MIN_SEGMENT_BYTES:
            raise StoreUsageError("segment_bytes must be at least %d, got %r" % (MIN_SEGMENT_BYTES, segment_bytes))
        if max_bytes < 2 * segment_bytes:
            raise StoreUsageError(
                "max_bytes (%d) must be at least twice segment_bytes (%d) so eviction can make room"
                % (max_bytes, segment_bytes)
            )
        if sync_every < 1 or sync_ms < 0:
            raise StoreUsageError("sync_every must be >= 1 and sync_ms >= 0")
        if window_bytes < 0 or window_ms < 0:
            raise StoreUsageError("window_bytes and window_ms must be >= 0 (0 bytes: no replay window; 0 ms: no "
                                  "age bound)")
        self.window_bytes = window_bytes
        self.window_ms = window_ms
        # True while a gap repair is served from the window (repair.py): its
        # bounds are not enforced meanwhile (a repair lasts at most 4096
        # records at the replay rate), so what the repair promised is still
        # there to send; room for new records still takes the window first.
        self.window_pinned = False
        self.fs = fs
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.sync_every = sync_every
        self.sync_ms = sync_ms
        self.hold_bytes = hold_bytes
        # The largest payload that fits an empty segment with its seal.
        self.max_payload = min(
            fmt.MAX_PAYLOAD, segment_bytes - fmt.SEGMENT_HEADER - fmt.SEAL_SIZE - fmt.RECORD_HEADER
        )
        self._seal_limit = segment_bytes - fmt.SEAL_SIZE
        # Read here, not at import: the firmware lowers WRITE_BUFFER first.
        self._write_buffer = getattr(fs, "write_buffer", 0) or WRITE_BUFFER
        _blank_journal()  # early: on a board, before the heap is fragmented
        self._lane_count = lanes
        self.appended = 0  # records appended (counted at each sync)
        self.stats = {
            "dropped": 0,
            "evicted": 0,
            "evicted_segments": 0,
            "overflows": 0,
            "corrupt_skipped": 0,
            "syncs": 0,
            "read": 0,
            "disk_full": 0,
            "disk_errors": 0,  # writes that failed with EIO (ridden out like a full disk)
            "removals_deferred": 0,  # segment removals a full disk refused (retried)
            "segments": 0,  # segment files started (each a create, later a remove)
            "window_dropped": 0,  # acknowledged segments the replay window let go (bound, age, room)
        }
        self.evicted_by_lane = [0] * lanes
        self._reports = []
        self._unsynced = 0
        self._due_ms = None
        self._sealing = []  # sealed segments whose last writes await a sync
        self._journal = None  # the ack journal, open for appending
        self._journal_entries = 0
        self._dir_dirty = False  # files created or removed since the last sync
        self._unremoved = []  # dropped segments' files a full disk would not let us remove
        self._ack_pending = False  # an ack waits for the next sync
        self._closed = False
        # The unsynced count at which append() looks at syncing: 1 while
        # nothing is unsynced (the first record starts the sync clock), then
        # sync_every (later while the disk is full).
        self._sync_at = 1
        self._full = False  # the last write failed for lack of space
        self._full_reported = False  # DISK_FULL reported, DISK_OK not yet
        self._full_ms = 0  # when a write last failed for lack of space
        self._written_since_full = 0  # held records written since DISK_FULL
        self._last_ms = now_ms
        self._open(lanes, now_ms)

    # -- opening ---------------------------------------------------------

    def _open(self, lanes, now_ms):
        # Imported here: needed only to open; a board drops it once built
        # (firmware/config.py, BUILD_ONLY).
        from edge_agent.core import store_recovery

        state = store_recovery.load(self.fs, lanes, repair=True)
        self.recovery = state.report
        self.bytes = 0
        self._lanes = []
        for number in range(lanes):
            lane = _Lane(number, state.acks[number], state.marker_acks[number])
            lane.next_segno = max(lane.next_segno, state.max_segno[number] + 1)
            for seg_state in state.lanes[number]:
                seg = _Segment(seg_state.segno, seg_state.first_ms, seg_state.end, seg_state.count)
                seg.name = seg_state.name
                lane.segments.append(seg)
                self.bytes += seg.end + fmt.SEAL_SIZE
                if seg.segno >= lane.next_segno:
                    lane.next_segno = seg.segno + 1
            self._lanes.append(lane)
        for report in state.report.discards:
            self._reports.append(Report(RECOVERED, report.lane, 0, report.nbytes, report.reason))
        record = self.recovery.to_map()
        record["at_ms"] = now_ms
        try:
            fmt.replace(self.fs, fmt.RECOVERY_NAME, cbor.dumps(record))
            self.fs.sync_dir()
        except OSError as exc:
            # A full disk: the report is for `store inspect`, not needed to run.
            self._disk_error(exc)
            fmt.remove_quietly(self.fs, fmt.RECOVERY_NAME + fmt.TMP_SUFFIX)
        if self.recovery.unrepaired and not self._full:
            self._note_full("%d segments left unsealed" % self.recovery.unrepaired)
        if state.journal:
            try:
                self._checkpoint_acks()
            except OSError as exc:
                # The journal stays (the next open reads it); the positions
                # it holds go into a new one at the next sync with room.
                self._disk_error(exc)
                for lane in self._lanes:
                    lane.ack_dirty = lane.ack != lane.saved_ack
                self._ack_pending = True
        # Segments wholly acknowledged before the crash can go now.
        for lane in self._lanes:
            self._compact(lane)
        self._trim_window()

    # -- writing ---------------------------------------------------------

    def append(self, lane, payload, now_ms, urgent=False):
        """Store ``payload`` (bytes, or a buffer the store copies before it
        returns: cbor.dumps_transient's view) in ``lane``. Returns True when stored,
        False when the store is full of more urgent data (the record is
        dropped and reported). ``urgent`` syncs at once (for alerts)."""
        # The hot path (the benchmark's put): a small record, a valid lane,
        # room in the active segment's write window (seg.limit: the seal's
        # or the write buffer's limit, the lower; 0 while the disk is full)
        # and under the byte bound. Anything else, including every error,
        # takes _append_slow. (A small record is within max_payload, or,
        # in segments so small that max_payload is under 512, cannot fit
        # seg.limit. A closed store has no active segments. A negative lane
        # would index from the end, hence lane >= 0.) The record's CRC
        # continues from the table's CRC of its length.
        length = len(payload)
        if 0 < length < _WORD_CRCS_UPTO and lane >= 0:
            try:
                seg = self._lanes[lane].active
            except IndexError:
                seg = None  # no such lane: _append_slow says so
            if seg is not None:
                size = length + 8  # fmt.RECORD_HEADER
                end = seg.end + size
                total = self.bytes + size
                if end <= seg.limit and total <= self.max_bytes:
                    seg.pieces.append(_pack_ii(length, _crc32(payload, _WORD_CRCS[length])) + payload)
                    seg.end = end
                    seg.count += 1
                    self.bytes = total
                    unsynced = self._unsynced + 1
                    self._unsynced = unsynced
                    # _sync_at is 1 after a sync, so the first record of a
                    # sync window goes to _sync_due too, which starts its clock.
                    if urgent or unsynced >= self._sync_at or now_ms >= self._due_ms:
                        self._sync_due(now_ms, urgent)
                    return True
        return self._append_slow(lane, payload, now_ms, urgent)

    def _append_slow(self, lane, payload, now_ms, urgent):
        length = len(payload)
        if not (0 < length <= self.max_payload and 0 <= lane < self._lane_count):
            self._refuse(lane, length)
        size = length + fmt.RECORD_HEADER
        state = self._lanes[lane]
        seg = state.active
        if seg is None or seg.end + size > seg.limit or self.bytes + size > self.max_bytes:
            seg = self._segment_for(state, size, now_ms)
            if seg is None:
                return False
        seg.pieces.append(fmt.encode_record(payload))
        seg.end += size
        seg.count += 1
        self.bytes += size
        self._unsynced += 1
        self._sync_due(now_ms, urgent)
        return True

    def _sync_due(self, now_ms, urgent):
        """After an append: start the sync window's clock at its first
        record, and sync when the record count or the deadline is reached
        or the record is urgent."""
        if self._due_ms is None:
            self._due_ms = now_ms + self.sync_ms
        if self._sync_at == 1:
            self._sync_at = self.sync_every
        if urgent or self._unsynced >= self._sync_at or now_ms >= self._due_ms:
            self._sync(now_ms)

    def _refuse(self, lane, length):
        if self._closed:
            raise StoreUsageError("the store is closed")
        if not (isinstance(lane, int) and 0 <= lane < self._lane_count):
            raise StoreUsageError("no lane %r: lanes are 0-%d" % (lane, self._lane_count - 1))
        raise StoreUsageError("payload of %d bytes: records must be 1-%d bytes" % (length, self.max_payload))

    def _segment_for(self, state, size, now_ms):
        """The segment a record of ``size`` bytes goes to, after making
        room (evicting) and starting a segment if needed; None if the
        record must be dropped."""
        self._last_ms = now_ms
        seg = state.active
        if self._full:
            return self._segment_while_full(state, size, now_ms)
        if seg is not None and seg.end + size > seg.limit:
            # The write buffer is full (or the seal is near).
            if not self._drain(seg):
                return self._segment_while_full(state, size, now_ms)
        if self.bytes + self._room_needed(seg, size) > self.max_bytes:
            if not self._make_room(state, size):
                return None
            seg = state.active
        if self._starts_segment(seg, size):
            seg = self._start_segment(state, now_ms)
        return seg

    def _starts_segment(self, seg, size):
        """True when a record of ``size`` bytes cannot go in ``seg`` (the
        lane's active segment or None) before its seal."""
        return seg is None or seg.end + size > self._seal_limit

    def _room_needed(self, seg, size):
        """What a record of ``size`` bytes adds to the bound: with a new
        segment's header and seal when it starts one."""
        if self._starts_segment(seg, size):
            return size + fmt.SEGMENT_HEADER + fmt.SEAL_SIZE
        return size

    def _segment_while_full(self, state, size, now_ms):
        """_segment_for while the disk is full: records wait in RAM, within
        max_bytes and hold_bytes; beyond, eviction makes room."""
        seg = state.active
        if not self._fits(self._room_needed(seg, size)):
            if not self._make_room(state, size):
                return None
            if not self._full:  # eviction freed enough disk to write it all
                return self._segment_for(state, size, now_ms)
            seg = state.active
        if self._starts_segment(seg, size):
            seg = self._start_segment(state, now_ms)
        seg.limit = 0  # every append takes this path until the disk has room
        return seg

    def _fits(self, need):
        if self.bytes + need > self.max_bytes:
            return False
        return not self._full or self.held()[1] + need <= self.hold_bytes

    def _start_segment(self, state, now_ms):
        old = state.active
        if old is not None:
            old.pieces.append(fmt.encode_seal(old.count, old.end))
            self._sealing.append(old)
            self._drain(old)
        seg = _Segment(state.next_segno, now_ms, fmt.SEGMENT_HEADER, 0)
        seg.name = fmt.segment_name(state.number, seg.segno)
        state.next_segno += 1
        seg.pieces = [fmt.encode_segment_header(state.number, seg.segno, now_ms)]
        seg.synced_end = 0
        seg.file_end = 0
        seg.file_count = 0
        self._open_fast_path(seg)
        if not self._full:
            try:
                seg.handle = self.fs.open_append(seg.name)
            except OSError as exc:
                self._disk_error(exc)  # opened when the disk has room (_drain)
        state.segments.append(seg)
        state.active = seg
        self.bytes += fmt.SEGMENT_HEADER + fmt.SEAL_SIZE
        self._dir_dirty = True
        self.stats["segments"] += 1
        return seg

    def _drain(self, seg):
        """Hand the records waiting in RAM to the file adapter, as one
        write. False when the disk is full (they stay in RAM)."""
        pieces = seg.pieces
        data = None
        try:
            if seg.handle is None:
                seg.handle = self.fs.open_append(seg.name)
            if pieces:
                data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
                seg.handle.write(data)
                del pieces[:]
                seg.file_end += len(data)
                seg.file_count = seg.count
            seg.handle.flush()
        except OSError as exc:
            self._disk_error(exc)
            if data is not None and pieces:
                pieces[:] = [data]  # joined once, not again at every retry
            return False
        if not self._full:
            self._open_fast_path(seg)
        return True

    def _open_fast_path(self, seg):
        """Appends to ``seg`` take append()'s fast path until its write
        buffer is full or the seal is near, whichever comes first."""
        seg.limit = min(self._seal_limit, seg.file_end + self._write_buffer)

    def _disk_error(self, exc):
        """A full disk or an I/O error (EIO) becomes the disk-full state:
        records wait in RAM and writing is retried (a flash that failed one
        program or erase, a brown-out, usually takes the next); any other
        OSError is raised."""
        if fmt.is_disk_full(exc):
            if not self._full:
                self._note_full(str(exc))
        elif fmt.is_disk_error(exc):
            self.stats["disk_errors"] += 1
            if not self._full:
                self._note_full(str(exc), DISK_ERROR)
        else:
            raise exc

    def _note_full(self, reason, kind=DISK_FULL):
        self._full = True
        self._full_ms = self._last_ms
        self.stats["disk_full"] += 1
        for lane in self._lanes:
            if lane.active is not None:
                lane.active.limit = 0
        if not self._full_reported:
            self._full_reported = True
            records, nbytes = self.held()
            self._reports.append(Report(kind, -1, records, nbytes, reason))

    def _retry_writes(self):
        """Write what waits in RAM, most urgent lane first. True when all of
        it is written (the disk-full state ends)."""
        records = self.held()[0] if self._full else 0
        for seg in self._pending_segments():
            if not self._drain(seg):
                return False
        if self._full:
            self._full = False
            for lane in self._lanes:
                seg = lane.active
                if seg is not None:
                    self._open_fast_path(seg)
            self._written_since_full += records
        return True

    def _pending_segments(self):
        """Segments with records not yet in their file, most urgent lane first."""
        out = []
        for lane in self._lanes:
            for seg in self._sealing:
                if seg.pieces and seg in lane.segments:
                    out.append(seg)
            seg = lane.active
            if seg is not None and (seg.pieces or seg.handle is None):
                out.append(seg)
        return out

    def held(self):
        """(records, bytes) waiting in RAM, not yet in a file (the write
        buffer; while the disk is full, everything appended since)."""
        records = 0
        nbytes = 0
        for seg in self._sealing:
            records += seg.count - seg.file_count
            nbytes += seg.end + fmt.SEAL_SIZE - seg.file_end
        for lane in self._lanes:
            seg = lane.active
            if seg is not None:
                records += seg.count - seg.file_count
                nbytes += seg.end - seg.file_end
        return records, nbytes

    @property
    def disk_full(self):
        """True while writes fail for lack of space (records wait in RAM)."""
        return self._full

    def _make_room(self, incoming, size):
        """Evict until a record of ``size`` bytes fits in ``incoming``'s lane.
        False if it cannot fit without touching more urgent lanes."""
        freed = False
        for lane in self._lanes:
            freed = self._compact(lane, True) or freed
        freed = self._trim_window() or freed
        while True:
            if self._full and freed:
                self._retry_writes()  # removed files may have made room
            freed = False
            if self._fits(self._room_needed(incoming.active, size)):
                return True
            if self.window_bytes and self._drop_oldest_window_segment(True):
                freed = True  # the replay window gives way first: acknowledged already
                continue
            victim = None
            for lane in reversed(self._lanes):
                if lane.number < incoming.number:
                    break
                if lane.segments:
                    victim = lane
                    break
            if victim is None:
                self.stats["dropped"] += 1
                self.stats["overflows"] += 1
                reason = REASON_DISK_FULL_DROPPED if self._full else REASON_DROPPED
                self._reports.append(Report(OVERFLOW, incoming.number, 1, size, reason))
                return False
            # Losing anything but the least urgent lane (telemetry) is loud.
            self._evict_oldest(victim, victim.number < len(self._lanes) - 1)
            freed = True

    def _evict_oldest(self, lane, overflow):
        seg = lane.segments.pop(0)
        unacked = fmt.unacked_in(seg, lane.ack)
        self._drop_segment(lane, seg)
        after = (seg.segno + 1, fmt.SEGMENT_HEADER, 0)
        if lane.cursor < after:
            lane.cursor = after
        if lane.ack < after:
            lane.ack = after
        self.stats["evicted"] += unacked
        self.stats["evicted_segments"] += 1
        self.evicted_by_lane[lane.number] += unacked
        kind = EVICTED
        if overflow:
            kind = OVERFLOW
            self.stats["overflows"] += 1
        reason = REASON_DISK_FULL_EVICTED if self._full else REASON_EVICTED
        self._reports.append(Report(kind, lane.number, unacked, seg.end + fmt.SEAL_SIZE, reason))

    def _drop_segment(self, lane, seg):
        if seg is lane.active:
            lane.active = None
        if seg.handle is not None:
            seg.handle.close()
            seg.handle = None
            seg.pieces = None
        if seg in self._sealing:
            self._sealing.remove(seg)
        self._remove_file(seg.name)
        self.bytes -= seg.end + fmt.SEAL_SIZE
        self._dir_dirty = True

    def _remove_file(self, name):
        """Remove a dropped segment's file. A file the full disk never let
        us create is fine. A removal the full disk refuses (littlefs needs
        a free block to commit it) keeps the file: it is retried at the
        next compaction and sync (``_retry_removals``); until then it only
        takes space, and a recovery meanwhile finds it wholly acknowledged
        (skipped), or evicted (its records sent again, which the receiver
        deduplicates by seq)."""
        try:
            self.fs.remove(name)
        except OSError as exc:
            if fmt.is_write_failure(exc):
                if name not in self._unremoved:
                    self._unremoved.append(name)
                self.stats["removals_deferred"] += 1
            elif fmt.errno_of(exc) != fmt.ENOENT:
                raise

    def _retry_removals(self):
        waiting = self._unremoved
        self._unremoved = []
        for name in waiting:
            self._remove_file(name)
        if len(self._unremoved) < len(waiting):
            self._dir_dirty = True

    # -- durability ------------------------------------------------------

    def poll(self, now_ms):
        """Sync if the group-commit deadline has passed. Returns the next
        deadline in ms, or None when nothing waits to be made durable."""
        if self._due_ms is None and self._ack_pending:
            self._due_ms = now_ms + self.sync_ms
        if self._due_ms is not None and now_ms >= self._due_ms:
            self._sync(now_ms)
        return self._due_ms

    def flush(self):
        """Hand every record waiting in RAM to the file adapter (the OS),
        without syncing. Afterwards a crash of this process (a bug, the
        OOM killer, SIGKILL) loses nothing; only a power cut can still take
        what is not synced. The agent calls it after each batch of appends;
        a bulk writer may leave it to the next sync. While the disk is
        full it does nothing: writing is retried at the sync deadlines."""
        if self._full:
            return
        for seg in self._pending_segments():
            if not self._drain(seg):
                return

    @property
    def unsynced(self):
        """Records appended since the last sync (lost if power fails now)."""
        return self._unsynced

    def sync(self):
        """Make every appended record and every ack durable, then remove
        wholly acknowledged segments. On a full disk it does what it can
        (compaction still frees space); ``disk_full`` then stays True and
        poll() retries by the deadline it returns."""
        self._sync(self._last_ms)

    def _sync(self, now_ms):
        self._last_ms = now_ms
        done = self._sync_once()
        freed = False
        for lane in self._lanes:
            freed = self._compact(lane) or freed
        freed = self._trim_window() or freed
        if not done and freed:
            done = self._sync_once()  # acknowledged segments made room
        if not done:
            # Not durable yet: try again in RETRY_MS or sync_every records.
            self._due_ms = now_ms + RETRY_MS
            self._sync_at = self._unsynced + self.sync_every
            return
        self.appended += self._unsynced
        self._unsynced = 0
        self._due_ms = None
        self._sync_at = 1
        self.stats["syncs"] += 1
        if self._full_reported and now_ms - self._full_ms >= DISK_OK_AFTER_MS:
            self._full_reported = False
            records = self._written_since_full
            self._written_since_full = 0
            self._reports.append(Report(DISK_OK, -1, records, 0, "disk takes writes again: records held in RAM written"))

    def _sync_once(self):
        """Write and fsync the segments, save the acks, fsync the directory.
        False if the disk was full for any of it."""
        if not self._retry_writes():
            return False
        try:
            for seg in self._sealing:
                seg.handle.sync()
                seg.handle.close()  # sealed: nothing more will be written
                seg.handle = None
                seg.pieces = None
            self._sealing = []
            for lane in self._lanes:
                seg = lane.active
                if seg is not None and seg.synced_end != seg.end:
                    seg.handle.sync()
                    seg.synced_end = seg.end
        except OSError as exc:
            # (Some file systems report a full disk only at fsync.)
            self._disk_error(exc)
            self._sealing = [seg for seg in self._sealing if seg.handle is not None]
            return False
        if self._ack_pending and not self._save_acks():
            return False
        if self._dir_dirty:
            try:
                self.fs.sync_dir()
            except OSError as exc:
                self._disk_error(exc)
                return False
            self._dir_dirty = False
        return True

    def _save_acks(self):
        """Acks go to the journal (one write and one fsync per sync, like
        the data); every JOURNAL_LIMIT entries they are checkpointed into
        the per-lane markers, replaced atomically, and the journal starts
        over. docs/store.md, 'Acknowledgements', says why both.

        The journal is written whole (zeros) and made durable when it is
        created, then each entry overwrites the next 32-byte slot in place:
        an overwrite that does not grow the file needs no metadata commit,
        which on ext4 makes its fsync about 40 % cheaper than an append's
        (docs/benchmarks.md). Unused slots are zeros, which recovery reads
        as the journal's end."""
        moved = [lane for lane in self._lanes if lane.ack_dirty]
        try:
            if self._journal_entries + len(moved) > JOURNAL_LIMIT:
                self._checkpoint_acks()
            else:
                if self._journal is None:
                    self._journal = self._new_journal()
                    self._dir_dirty = True  # a new file: its name must be made durable
                entries = []
                for lane in moved:
                    entries.append(fmt.encode_record(fmt.encode_ack(lane.number, lane.ack)))
                self._journal.write_at(self._journal_entries * fmt.JOURNAL_ENTRY, b"".join(entries))
                self._journal.sync()
                self._journal_entries += len(moved)
        except OSError as exc:
            # A full disk (or an I/O error): the acks stay in RAM and are
            # saved at a later sync; until then a crash only means their
            # records are resent. No records wait for this, so it is not
            # the disk-full state.
            if not fmt.is_write_failure(exc):
                raise
            return False
        for lane in moved:
            lane.ack_dirty = False
        self._ack_pending = False
        return True

    def _new_journal(self):
        """Create the journal whole, as zeros, durable; its update handle.
        The first JOURNAL_BLANK bytes are the new file's, the rest (on a
        board) written over the handle from the same kept block."""
        blank = _blank_journal()
        self.fs.write_file(fmt.JOURNAL_NAME, blank)
        journal = self.fs.open_update(fmt.JOURNAL_NAME)
        size = JOURNAL_LIMIT * fmt.JOURNAL_ENTRY
        if size > len(blank):
            try:
                for offset in range(len(blank), size, len(blank)):
                    journal.write_at(offset, blank if offset + len(blank) <= size else blank[: size - offset])
                journal.sync()
            except OSError:
                journal.close()
                raise
        return journal

    def _checkpoint_acks(self):
        for lane in self._lanes:
            if lane.ack != lane.saved_ack:
                fmt.replace(self.fs, fmt.ack_name(lane.number), fmt.encode_ack(lane.number, lane.ack))
                lane.saved_ack = lane.ack
        # The markers must be durable before the journal goes: until then
        # the journal is what holds the newest positions.
        self.fs.sync_dir()
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if fmt.JOURNAL_NAME in self.fs.list():
            self.fs.remove(fmt.JOURNAL_NAME)
            self._dir_dirty = True  # no hurry: a stale journal holds only older positions
        self._journal_entries = 0

    def _compact(self, lane, active_too=False):
        """Remove the lane's wholly acknowledged segments; True if any went.
        (Before their acks are durable too: after a crash the older marker
        then points before segments that are gone, which only means those
        records, acknowledged by the broker, are not there to resend.)

        The active segment stays while it has room, even wholly
        acknowledged: with a receiver that acks every batch at once,
        removing it made each append create a file and each sync remove it
        (file churn per signal, and flash wear on an SD card). It goes once
        sealed, when its space is needed (``active_too``, from eviction),
        and while the disk is full (its records need never be written)."""
        if self._unremoved:
            self._retry_removals()
        removed = False
        active_too = active_too or self._full
        if self.window_bytes and not self._full:
            return False  # the replay window keeps them: _trim_window, once per sync, holds its bounds
        while lane.segments:
            seg = lane.segments[0]
            if not _wholly_acked(seg, lane.ack):
                return removed
            if seg is lane.active and not active_too:
                return removed
            lane.segments.pop(0)
            self._drop_segment(lane, seg)
            removed = True
        return removed

    # -- replay window ---------------------------------------------------

    def _window_candidates(self):
        """Per lane, its oldest segment if it is a sealed, wholly
        acknowledged one (what the window would drop next), with its
        lane: [(lane, segment)]."""
        out = []
        for lane in self._lanes:
            if lane.segments:
                seg = lane.segments[0]
                if seg is not lane.active and _wholly_acked(seg, lane.ack):
                    out.append((lane, seg))
        return out

    def window_bytes_held(self):
        """Bytes of the sealed, wholly acknowledged segments kept."""
        total = 0
        for lane in self._lanes:
            for seg in lane.segments:
                if seg is lane.active or not _wholly_acked(seg, lane.ack):
                    break
                total += seg.end + fmt.SEAL_SIZE
        return total

    def rolled_lanes(self):
        """Lanes holding a sealed segment (more than the one in use): a
        replay window rolls through them, oldest first (repair.py)."""
        out = []
        for lane in self._lanes:
            if len(lane.segments) > 1 or (lane.segments and lane.segments[0] is not lane.active):
                out.append(lane.number)
        return out

    def _trim_window(self):
        """Drop the window's segments past its age, then its oldest past its
        byte bound; True if any went (nothing without a window, or while
        the disk is full: compaction then removes them all)."""
        if not self.window_bytes or self._full or self.window_pinned:
            return False
        removed = False
        if self.window_ms:
            cutoff = self._last_ms - self.window_ms
            for lane in self._lanes:
                # A segment is as old as its successor's first record.
                while len(lane.segments) > 1 and lane.segments[0] is not lane.active and \
                        _wholly_acked(lane.segments[0], lane.ack) and lane.segments[1].first_ms < cutoff:
                    self._drop_window_segment(lane)
                    removed = True
        held = self.window_bytes_held()
        while held > self.window_bytes:
            held -= self._drop_oldest_window_segment()
            removed = True
        return removed

    def _drop_oldest_window_segment(self, active_too=False):
        """Drop the window's oldest segment (by first record time, any
        lane; with ``active_too`` a wholly acknowledged active segment may
        go too); its bytes, 0 if the window is empty."""
        oldest = None
        for lane in self._lanes:
            if lane.segments:
                seg = lane.segments[0]
                if (active_too or seg is not lane.active) and _wholly_acked(seg, lane.ack) and \
                        (oldest is None or seg.first_ms < oldest[1].first_ms):
                    oldest = (lane, seg)
        if oldest is None:
            return 0
        return self._drop_window_segment(oldest[0])

    def _drop_window_segment(self, lane):
        seg = lane.segments.pop(0)
        self._drop_segment(lane, seg)
        self.stats["window_dropped"] += 1
        return seg.end + fmt.SEAL_SIZE

    def close(self):
        """Seal the active segments and make everything durable."""
        if self._closed:
            return
        for lane in self._lanes:
            # A wholly acknowledged active segment needs no seal (the
            # window keeps it, sealed, for the next run).
            self._compact(lane, True)
            seg = lane.active
            if seg is not None:
                seg.pieces.append(fmt.encode_seal(seg.count, seg.end))
                lane.active = None
                self._sealing.append(seg)
        self.sync()
        if self._full:
            self._write_out_on_close()
        if self._journal is not None and not self._full:
            try:
                self._checkpoint_acks()  # a clean shutdown leaves only markers
                self.fs.sync_dir()
            except OSError as exc:
                self._disk_error(exc)  # the journal stays; the next open checkpoints
        self._closed = True
        self._lane_count = 0
        self.fs.close()

    def _write_out_on_close(self):
        """Closing on a full disk: what waits in RAM dies with the process
        unless it is written now, so the less urgent data on disk makes room
        for it (the eviction rule: telemetry first, never a lane more urgent
        than the held records). What still cannot be written is reported."""
        while not self._retry_writes():
            held = [seg for seg in self._pending_segments() if seg.count > seg.file_count]
            if not held:
                break  # only seals wait: recovery scans those segments
            most_urgent = len(self._lanes)
            for lane in self._lanes:
                for seg in held:
                    if seg in lane.segments and lane.number < most_urgent:
                        most_urgent = lane.number
            victim = None
            for lane in reversed(self._lanes):
                if lane.number < most_urgent:
                    break
                # Only data already on disk gives way (not what is being saved).
                if lane.segments and lane.segments[0] not in held:
                    victim = lane
                    break
            if victim is None:
                break
            self._evict_oldest(victim, victim.number < len(self._lanes) - 1)
        records, nbytes = self.held()
        if self._full and records:
            self._reports.append(Report(LOST, -1, records, nbytes, "disk full at close: records held in RAM not written"))
        self.sync()

    # -- consuming -------------------------------------------------------

    def read(self, max_records=100, max_bytes=READ_CHUNK):
        """The next unread records of the most urgent lane that has any, as
        a Batch (None when every lane is read through). Damaged records are
        stepped over and reported, never returned."""
        for lane in self._lanes:
            while self._has_unread(lane):
                cursor = lane.cursor
                batch = self._read_lane(lane, max_records, max_bytes)
                if batch.records:
                    return batch
                if lane.cursor == cursor:
                    break  # the rest waits in RAM for a full disk to make room
        return None

    def ack(self, lane, position):
        """Acknowledge every record of ``lane`` up to ``position`` (a
        Batch.end). Acking an older position again does nothing."""
        state = self._lanes[lane]
        if position <= state.ack:
            return
        if position > state.cursor:
            raise StoreUsageError(
                "lane %d: ack position %r is past what was read (%r)" % (lane, position, state.cursor)
            )
        state.ack = position
        state.ack_dirty = True
        self._ack_pending = True  # poll() gives it a deadline

    def rewind(self):
        """Read again from the acknowledged positions (after the uplink lost
        its connection with records in flight)."""
        for lane in self._lanes:
            lane.cursor = lane.ack

    def _has_unread(self, lane):
        if not lane.segments:
            return False
        last = lane.segments[-1]
        cursor = lane.cursor
        return cursor[0] < last.segno or (cursor[0] == last.segno and cursor[1] < last.end)

    def _read_lane(self, lane, max_records, max_bytes):
        records = []
        append = records.append
        want_records = max_records  # counts down
        budget = max_bytes
        segno, offset, index = lane.cursor
        unpack_ii = _unpack_ii
        crc32 = _crc32
        word_crcs = _WORD_CRCS
        upto = _WORD_CRCS_UPTO
        limit = fmt.MAX_PAYLOAD
        read = self.fs.read
        for seg in lane.segments:
            if seg.segno < segno:
                continue
            if seg.segno > segno:
                segno, offset, index = seg.segno, fmt.SEGMENT_HEADER, 0
            if seg.pieces and not self._full:
                self._drain(seg)  # records still in the write buffer
            end = seg.end
            want = READ_AHEAD
            while offset < end and want_records > 0 and budget > 0:
                # One read for many records; ``data`` is bytes, so a slice
                # of it is the record's own copy (no memoryview, no second
                # copy) and the CRC runs over that slice.
                short = False
                if offset < seg.file_end:
                    stop = end if end < seg.file_end else seg.file_end
                    asked = min(stop - offset, want)
                    data = read(seg.name, offset, asked)
                    short = len(data) < asked
                else:
                    # The disk is full: these records wait in RAM, and are
                    # sent from there (once acknowledged they need no disk).
                    data = self._ram_bytes(seg, offset, min(end - offset, want))
                size = len(data)
                last = size - 8  # fmt.RECORD_HEADER: a header starts at or before this
                pos = 0
                before = len(records)
                for _ in range(want_records):
                    if pos > last or budget <= 0:
                        break
                    # Fast path for a valid small DATA record (type bits 0,
                    # so the word is the length; the CRC of the word comes
                    # from the table); anything else goes to check_record,
                    # which gives the reason.
                    length, crc = unpack_ii(data, pos)
                    start = pos + 8
                    stop = start + length
                    if 0 < length < upto and stop <= size:
                        record = data[start:stop]
                        if crc32(record, word_crcs[length]) == crc:
                            append(record)
                            pos = stop
                            budget -= length
                            continue
                    elif 0 < length <= limit and stop <= size:
                        record = data[start:stop]
                        if crc32(record, crc32(data[pos : start - 4])) == crc:
                            append(record)
                            pos = stop
                            budget -= length
                            continue
                    break
                got = len(records) - before
                want_records -= got
                index += got
                if pos < size and want_records > 0 and budget > 0:
                    # The record at ``pos`` did not check out in this chunk.
                    reason, start, length, _ = fmt.check_record(data, pos, size)
                    if reason is None:
                        reason = fmt.BAD_TYPE  # a valid SEAL where data belongs
                    if reason == fmt.TORN and offset + start + length <= end:
                        # The record continues past this chunk: read on
                        # from it, with room for all of it.
                        want = max(READ_AHEAD, start + length - pos)
                    else:
                        pos = self._skip_corrupt(lane, seg, offset + pos, reason) - offset
                if short and want_records > 0 and budget > 0 and offset + pos < seg.file_end:
                    # The file ends before what was written to it (a flash or
                    # file system that lost committed bytes): reading on
                    # would wait forever for bytes that are gone. Report
                    # them and go on past them.
                    lost = self._skip_short(lane, seg, offset + pos, index)
                    index += lost
                    pos = seg.file_end - offset
                offset += pos
            if want_records <= 0 or budget <= 0:
                break
        lane.cursor = (segno, offset, index)
        self.stats["read"] += len(records)
        return Batch(lane.number, records, lane.cursor)

    def scan(self, position=None, max_records=64):
        """Every stored record, acknowledged (the replay window) or not,
        lane by lane, oldest first, from ``position`` (None: the start):
        ([(lane, payload)], the position to go on from, or None at the
        end). A gap repair's lookup (repair.py): rare, so it reads the
        files READ_AHEAD bytes at a time (a larger record whole) and holds
        no more than ``max_records`` records, whatever the window's size.
        A damaged record is stepped over; a segment removed between calls
        is skipped. Reading and acknowledging are not disturbed."""
        number, segno, offset = position or (0, 0, 0)
        out = []
        while number < len(self._lanes) and len(out) < max_records:
            lane = self._lanes[number]
            seg = None
            for candidate in lane.segments:
                if candidate.segno >= segno:
                    seg = candidate
                    break
            if seg is None:
                number, segno, offset = number + 1, 0, 0
                continue
            if seg.segno != segno or offset < fmt.SEGMENT_HEADER:
                segno, offset = seg.segno, fmt.SEGMENT_HEADER
            if offset >= seg.end:
                segno, offset = segno + 1, 0
                continue
            offset = self._scan_chunk(number, seg, offset, out, max_records)
        return out, ((number, segno, offset) if number < len(self._lanes) else None)

    def _scan_chunk(self, number, seg, offset, out, max_records):
        """Records of ``seg`` from ``offset`` into ``out``, one read's worth;
        where the next read starts."""
        want = READ_AHEAD
        while True:
            asked = min(want, seg.end - offset)
            data = self._segment_bytes(seg, offset, asked)
            size = len(data)
            pos = 0
            need = 0
            while pos < size and len(out) < max_records:
                reason, start, length, record_type = fmt.check_record(data, pos, size)
                if reason is None and record_type == fmt.TYPE_DATA:
                    out.append((number, data[start:start + length]))
                    pos = start + length
                    continue
                if reason == fmt.TORN and offset + start + length <= seg.end:
                    need = fmt.RECORD_HEADER + length  # the record continues past this read
                    break
                following = fmt.find_next_record(memoryview(data), pos + 1, size)
                return offset + (size if following < 0 else following)
            if pos:
                return offset + pos
            if size == asked and need > asked:
                want = need  # a record larger than READ_AHEAD: read it, and only it, whole
                continue
            return seg.end  # nothing readable from here (a file shorter than written): past it

    def _segment_bytes(self, seg, offset, n):
        """``n`` bytes of ``seg`` from ``offset``: from its file, or from RAM
        for records not written yet (a full disk, the write buffer)."""
        if offset + n > seg.file_end and seg.pieces and not self._full:
            self._drain(seg)
        if offset < seg.file_end:
            return self.fs.read(seg.name, offset, min(n, seg.file_end - offset))
        return self._ram_bytes(seg, offset, n)

    def _ram_bytes(self, seg, offset, n):
        """Bytes ``offset``.. of ``seg`` that are not in its file yet."""
        pieces = seg.pieces
        if len(pieces) > 1:
            pieces[:] = [b"".join(pieces)]  # joined once for reads and the next write
        start = offset - seg.file_end
        return pieces[0][start : start + n]

    def _skip_short(self, lane, seg, at, index):
        """The file of ``seg`` ends before ``seg.file_end``: its records
        from ``at`` (the segment's ``index``-th on) are gone. Report them
        (CORRUPT, SHORT_FILE, how many and their bytes) and return how many;
        reading resumes at ``seg.file_end`` (records still in RAM follow)."""
        lost = seg.file_count - index
        if lost < 1:
            lost = 1
        self.stats["corrupt_skipped"] += 1
        self._reports.append(Report(CORRUPT, lane.number, lost, seg.file_end - at, fmt.SHORT_FILE))
        return lost

    def _skip_corrupt(self, lane, seg, at, reason):
        """Step over a damaged record at offset ``at`` (in the file: records
        in RAM were framed here); return where valid records resume (the
        segment's end if none do)."""
        end = seg.end
        if seg.file_end < end:
            end = seg.file_end
        data = self.fs.read(seg.name, at, end - at)
        following = fmt.find_next_record(memoryview(data), 1, len(data))
        resume = end if following < 0 else at + following
        self.stats["corrupt_skipped"] += 1
        self._reports.append(Report(CORRUPT, lane.number, 1, resume - at, reason))
        return resume

    # -- observing -------------------------------------------------------

    def take_reports(self):
        """Reports since the last call (evictions, drops, overflow,
        corruption, recovery discards), oldest first."""
        reports = self._reports
        self._reports = []
        return reports

    def lane_info(self, lane):
        """(unacknowledged records, bytes, segments, oldest first_ms or None)."""
        state = self._lanes[lane]
        return fmt.summarize_lane(state.segments, state.ack)

    @property
    def lanes(self):
        return len(self._lanes)
