"""The durable store's on-disk format: pure functions, bytes in, bytes out
(and, at the end, the recovery report and two steps over the file adapter
that the store keeps using once it is open).

docs/store.md is the byte-by-byte specification; this module is its only
implementation. Every integer is little-endian (both the Pi and the ESP32
are little-endian, so packing is a copy). Every checksum is CRC-32/ISO-HDLC,
the zlib/binascii CRC.

Files in a store directory::

    <lane>-<segno:08d>.seg   a segment: SEGMENT_HEADER, then records
    <lane>.ack               the lane's acknowledged position (ACK marker)
    acks                     ack journal: records whose payloads are ACK markers,
                             then zeros (slots not written yet)
    seq                      the sequencer's reserved high-water mark
    last-recovery            CBOR report of the last open's recovery
    *.tmp                    a marker being replaced; removed on open

A record is an 8-byte header and its payload::

    word  u32   payload length (bits 0-27) | record type (bits 28-31)
    crc   u32   CRC-32 of the 4 word bytes followed by the payload

The CRC covers the length, so a record whose header was zero-filled or torn
never checks out: CRC-32 of four zero bytes is not zero, a zero length is
invalid, and a record cut short by the end of the file is torn by
definition. Type DATA carries a caller's payload; type SEAL closes a
segment (payload: record count and the offset of the seal itself), which
lets recovery trust a sealed segment after reading only its last 16 bytes.
"""

import struct

try:
    from binascii import crc32 as _native_crc32
except ImportError:  # a MicroPython build without MICROPY_PY_BINASCII_CRC32
    _native_crc32 = None

FORMAT_VERSION = 1

SEGMENT_MAGIC = b"EASG"
ACK_MAGIC = b"EAAK"
SEQ_MAGIC = b"EASQ"

RECORD_HEADER = 8
TYPE_DATA = 0
TYPE_SEAL = 1
LENGTH_MASK = 0x0FFFFFFF
# A record's payload may not exceed this (the store may set a lower limit
# from its segment size). 64 KiB is 16 telemetry batches of 200 readings.
MAX_PAYLOAD = 65536

# magic 4, version 1, lane 1, reserved 2, segno u32, first_ms u64, crc u32
SEGMENT_HEADER = 24
_SEGMENT_HEADER_FMT = "<4sBBHIQ"
# a SEAL record: header 8 + payload (count u32, seal offset u32)
SEAL_SIZE = RECORD_HEADER + 8
# magic 4, version 1, lane 1, reserved 2, segno u32, offset u32, index u32, crc u32
ACK_SIZE = 24
_ACK_FMT = "<4sBBHIII"
# An ack journal entry: a DATA record whose payload is an ack marker.
JOURNAL_ENTRY = RECORD_HEADER + ACK_SIZE
# magic 4, version 1, reserved 3, limit u64, crc u32
SEQ_SIZE = 20
_SEQ_FMT = "<4sBBHQ"

SEGMENT_SUFFIX = ".seg"
ACK_SUFFIX = ".ack"
TMP_SUFFIX = ".tmp"
SEQ_NAME = "seq"
RECOVERY_NAME = "last-recovery"
JOURNAL_NAME = "acks"

# errno numbers that mean "the disk is full": ENOSPC, EFBIG (a file size
# limit, e.g. RLIMIT_FSIZE), EDQUOT (122 on Linux, 69 on BSD/macOS; 69 is
# ESRMNT on Linux, which no file write returns). Numbers, not names:
# MicroPython's errno module has none of them; littlefs reports 28 too.
DISK_FULL_ERRNOS = (28, 27, 122, 69)
ENOENT = 2


def errno_of(exc):
    """The errno number of an OSError (MicroPython: its first argument)."""
    code = getattr(exc, "errno", None)
    if code is None and exc.args:
        code = exc.args[0]
    return code


def is_disk_full(exc):
    """True when the OSError ``exc`` says the disk (or quota) is full."""
    return errno_of(exc) in DISK_FULL_ERRNOS


# EIO: the medium failed a write (a flash program or erase, an SD card's
# bad block, a brown-out). The store rides it out like a full disk.
EIO = 5


def is_disk_error(exc):
    """True when the OSError ``exc`` is an I/O error (EIO)."""
    return errno_of(exc) == EIO


def is_write_failure(exc):
    """A failed write the store rides out (records held in RAM, retried):
    a full disk or an I/O error. Anything else is not the store's to
    handle."""
    return is_disk_full(exc) or is_disk_error(exc)


# Reasons a record or file is rejected (stable strings: reported, counted
# and documented in docs/store.md).
TORN = "torn"  # the record runs past the end of the data
BAD_CRC = "bad-crc"
BAD_LENGTH = "bad-length"  # zero, or over MAX_PAYLOAD
BAD_TYPE = "bad-type"
BAD_HEADER = "bad-segment-header"
BAD_MARKER = "bad-marker"
SHORT_FILE = "short-file"  # a segment's file ends before bytes the store wrote and synced to it


def _table_crc32(data, crc=0):
    """CRC-32/ISO-HDLC, table-driven: the same numbers as binascii.crc32."""
    table = _crc_table()
    crc ^= 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


_TABLE = []


def _crc_table():
    if not _TABLE:
        for n in range(256):
            c = n
            for _ in range(8):
                c = (0xEDB88320 ^ (c >> 1)) if c & 1 else (c >> 1)
            _TABLE.append(c)
    return _TABLE


table_crc32 = _table_crc32
crc32 = _native_crc32 if _native_crc32 is not None else _table_crc32


def segment_name(lane, segno):
    return "%d-%08d%s" % (lane, segno, SEGMENT_SUFFIX)


def parse_segment_name(name):
    """(lane, segno) for a segment file name, or None for any other name."""
    if not name.endswith(SEGMENT_SUFFIX):
        return None
    stem = name[: -len(SEGMENT_SUFFIX)]
    dash = stem.find("-")
    if dash < 1:
        return None
    lane, segno = stem[:dash], stem[dash + 1 :]
    if not (lane.isdigit() and segno.isdigit()):
        return None
    return int(lane), int(segno)


def ack_name(lane):
    return "%d%s" % (lane, ACK_SUFFIX)


def parse_ack_name(name):
    if not name.endswith(ACK_SUFFIX):
        return None
    stem = name[: -len(ACK_SUFFIX)]
    return int(stem) if stem.isdigit() else None


def encode_record(payload, record_type=TYPE_DATA):
    word = struct.pack("<I", len(payload) | (record_type << 28))
    return word + struct.pack("<I", crc32(payload, crc32(word))) + payload


def encode_segment_header(lane, segno, first_ms):
    body = struct.pack(_SEGMENT_HEADER_FMT, SEGMENT_MAGIC, FORMAT_VERSION, lane, 0, segno, first_ms)
    return body + struct.pack("<I", crc32(body))


def decode_segment_header(data):
    """(lane, segno, first_ms) from a segment's first 24 bytes, or None if
    they are not a valid header of this format version."""
    if len(data) < SEGMENT_HEADER:
        return None
    body = bytes(data[:20])
    if struct.unpack("<I", bytes(data[20:24]))[0] != crc32(body):
        return None
    magic, version, lane, _, segno, first_ms = struct.unpack(_SEGMENT_HEADER_FMT, body)
    if magic != SEGMENT_MAGIC or version != FORMAT_VERSION:
        return None
    return lane, segno, first_ms


def encode_seal(count, seal_offset):
    return encode_record(struct.pack("<II", count, seal_offset), TYPE_SEAL)


def decode_seal(tail, seal_offset):
    """The record count if ``tail`` (the last SEAL_SIZE bytes of a segment,
    starting at ``seal_offset``) is a valid seal, else None."""
    if len(tail) != SEAL_SIZE:
        return None
    status, start, length, record_type = check_record(tail, 0, SEAL_SIZE)
    if status is not None or record_type != TYPE_SEAL or length != 8:
        return None
    count, offset = struct.unpack_from("<II", tail, start)
    return count if offset == seal_offset else None


def check_record(data, pos, end):
    """Check the record at ``data[pos:end]``.

    Returns (reason or None, payload start, payload length, record type).
    ``reason`` is None for a valid record, else TORN, BAD_LENGTH, BAD_TYPE or
    BAD_CRC. ``data`` may be bytes or a memoryview (no copy is made)."""
    if pos + RECORD_HEADER > end:
        return TORN, pos, 0, 0
    word, crc = struct.unpack_from("<II", data, pos)
    length = word & LENGTH_MASK
    record_type = word >> 28
    if record_type > TYPE_SEAL:
        return BAD_TYPE, pos, length, record_type
    if length == 0 or length > MAX_PAYLOAD:
        return BAD_LENGTH, pos, length, record_type
    start = pos + RECORD_HEADER
    if start + length > end:
        return TORN, start, length, record_type
    view = data if isinstance(data, memoryview) else memoryview(data)
    if crc32(view[start : start + length], crc32(view[pos : pos + 4])) != crc:
        return BAD_CRC, start, length, record_type
    return None, start, length, record_type


def find_next_record(data, pos, end):
    """The offset of the first valid record at or after ``pos``, or -1.

    Used to step over a corrupt record whose length can no longer be
    trusted. A false match needs a plausible length and a 32-bit CRC match
    by chance (about one in 4 billion per candidate offset)."""
    while pos + RECORD_HEADER <= end:
        if check_record(data, pos, end)[0] is None:
            return pos
        pos += 1
    return -1


class SegmentScan:
    """What a full scan of one segment's bytes found.

    ``count`` valid DATA records; ``end`` the offset just after the last
    valid record (where a torn tail begins); ``sealed`` whether a valid
    SEAL closes the segment; ``skipped`` a list of (offset, bytes, reason)
    for corrupt stretches that valid records follow; ``torn`` (offset,
    bytes, reason) for a bad tail, or None."""

    __slots__ = ("count", "end", "sealed", "skipped", "torn")

    def __init__(self):
        self.count = 0
        self.end = SEGMENT_HEADER
        self.sealed = False
        self.skipped = []
        self.torn = None


def scan_segment(data):
    """Scan a whole segment (header included) record by record."""
    result = SegmentScan()
    view = memoryview(data)
    end = len(data)
    pos = SEGMENT_HEADER
    while pos < end:
        reason, start, length, record_type = check_record(view, pos, end)
        if reason is None:
            if record_type == TYPE_SEAL:
                if struct.unpack_from("<I", view, start + 4)[0] == pos and start + length == end:
                    result.sealed = True
                    return result
                reason = BAD_TYPE  # a seal anywhere but the very end is damage
            else:
                result.count += 1
                pos = start + length
                result.end = pos
                continue
        following = find_next_record(view, pos + 1, end)
        if following < 0:
            result.torn = (pos, end - pos, reason)
            return result
        result.skipped.append((pos, following - pos, reason))
        pos = following
    return result


def encode_ack(lane, position):
    segno, offset, index = position
    body = struct.pack(_ACK_FMT, ACK_MAGIC, FORMAT_VERSION, lane, 0, segno, offset, index)
    return body + struct.pack("<I", crc32(body))


def decode_ack(data, lane=None):
    """The (segno, offset, index) position in an ack marker, or None.
    ``lane`` None accepts any lane (read it from byte 5)."""
    if len(data) != ACK_SIZE:
        return None
    body = bytes(data[:20])
    if struct.unpack("<I", bytes(data[20:]))[0] != crc32(body):
        return None
    magic, version, marker_lane, _, segno, offset, index = struct.unpack(_ACK_FMT, body)
    if magic != ACK_MAGIC or version != FORMAT_VERSION or (lane is not None and marker_lane != lane):
        return None
    return (segno, offset, index)


def encode_seq(limit):
    body = struct.pack(_SEQ_FMT, SEQ_MAGIC, FORMAT_VERSION, 0, 0, limit)
    return body + struct.pack("<I", crc32(body))


def decode_seq(data):
    """The reserved limit in a seq marker, or None."""
    if len(data) != SEQ_SIZE:
        return None
    body = bytes(data[:16])
    if struct.unpack("<I", bytes(data[16:]))[0] != crc32(body):
        return None
    magic, version, _, _, limit = struct.unpack(_SEQ_FMT, body)
    if magic != SEQ_MAGIC or version != FORMAT_VERSION:
        return None
    return limit


# --- What the store keeps from recovery, and its steps over the file adapter -
# Here, not in store_recovery.py, because the store keeps using them after
# it opened: store_recovery is needed only to open a store, and a board
# drops it then (its functions are ~1 KiB of a 32-bit board's heap). The
# report is what the ``last-recovery`` file holds (``to_map``).


class Discard:
    """Bytes recovery could not keep, or corruption it stepped over."""

    __slots__ = ("lane", "name", "offset", "nbytes", "reason", "kept_after")

    def __init__(self, lane, name, offset, nbytes, reason, kept_after=False):
        self.lane = lane
        self.name = name
        self.offset = offset
        self.nbytes = nbytes
        self.reason = reason
        # True for a corrupt stretch in the middle (valid records follow),
        # False for a torn tail or a whole file.
        self.kept_after = kept_after

    def to_map(self):
        return {
            "lane": self.lane,
            "file": self.name,
            "offset": self.offset,
            "bytes": self.nbytes,
            "reason": self.reason,
            "middle": self.kept_after,
        }

    def __repr__(self):
        return "Discard(%s@%d, %d bytes, %s)" % (self.name, self.offset, self.nbytes, self.reason)



class RecoveryReport:
    """What opening the store found: kept segments and records, and every
    discarded stretch. ``scanned`` counts segments read record by record."""

    __slots__ = ("segments", "records", "scanned", "discards", "removed_tmp", "unrepaired")

    def __init__(self):
        self.segments = 0
        self.records = 0
        self.scanned = 0
        self.discards = []
        self.removed_tmp = 0
        # Segments left unsealed because the disk was full: kept and read
        # as scanned (their valid prefix), sealed at a later open.
        self.unrepaired = 0

    @property
    def discarded_bytes(self):
        return sum(d.nbytes for d in self.discards)

    def to_map(self):
        return {
            "segments": self.segments,
            "records": self.records,
            "scanned": self.scanned,
            "discarded_bytes": self.discarded_bytes,
            "discards": [d.to_map() for d in self.discards],
            "unrepaired": self.unrepaired,
        }

    def summary(self):
        if not self.discards:
            return "recovered %d records in %d segments, nothing discarded" % (self.records, self.segments)
        return "recovered %d records in %d segments; discarded %d stretches, %d bytes (%s)" % (
            self.records,
            self.segments,
            len(self.discards),
            self.discarded_bytes,
            ", ".join(sorted(set(d.reason for d in self.discards))),
        )



def remove_quietly(fs, name):
    try:
        fs.remove(name)
    except OSError:
        pass


def summarize_lane(segments, ack):
    """(unacknowledged records, bytes, segments, first_ms of the oldest
    segment or None) for a lane's segments (oldest first; any objects with
    segno, end, count and first_ms) and its acknowledged position. Bytes
    count each segment with its seal, as the store's bound does."""
    depth = 0
    nbytes = 0
    for seg in segments:
        nbytes += seg.end + SEAL_SIZE
        depth += unacked_in(seg, ack)
    oldest = segments[0].first_ms if segments else None
    return depth, nbytes, len(segments), oldest


def wholly_acked(seg, ack):
    """True when every record of ``seg`` is at or before ``ack``."""
    return ack[0] > seg.segno or (ack[0] == seg.segno and ack[1] >= seg.end)


def acked_bytes(segments, ack):
    """Bytes (with seals) of the lane's wholly acknowledged segments, the
    oldest ones: with a replay window, what it keeps (store.md)."""
    total = 0
    for seg in segments:
        if not wholly_acked(seg, ack):
            break
        total += seg.end + SEAL_SIZE
    return total


def unacked_in(seg, ack):
    """How many of ``seg``'s records come after the acknowledged position
    ``ack`` (none in an older segment: it awaits compaction)."""
    if seg.segno > ack[0]:
        return seg.count
    if seg.segno == ack[0]:
        return max(0, seg.count - ack[2])
    return 0


def replace(fs, name, data):
    """Replace ``name`` atomically: write a temporary file and make it
    durable, then rename it over ``name``. The caller makes the rename
    durable with ``fs.sync_dir()`` (one call can cover several renames)."""
    temp = name + TMP_SUFFIX
    fs.write_file(temp, data)
    fs.rename(temp, name)
