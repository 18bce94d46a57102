"""Reading a store directory back: recovery on open, inspection, verification.

Theory of operation. Every segment the store closes ends in a SEAL record,
so a sealed segment is trusted after reading its header and its last
SEAL_SIZE bytes: that is what keeps opening a store of a million records
well under a second. Only segments without a valid seal (the ones being
written when the process died, normally one per lane) are scanned record by
record. In such a scan:

- a record that fails its checks and is followed by no valid record is a
  torn tail: everything from it on is discarded;
- a record that fails its checks but is followed by valid records is
  corruption in the middle: it is skipped (reported), never fatal;
- with ``repair`` the segment is then rewritten (valid prefix plus a seal,
  through a temporary file and a rename) or just sealed if it was clean, so
  the next open trusts it. Without ``repair`` nothing on disk changes (the
  CLI inspects a live store that way).

A segment whose header is damaged keeps its records if any scan as valid
(the header is rewritten); one with no valid record is removed. Every
discarded or skipped stretch becomes a ``Discard`` in the report.

``fs`` is the file adapter described in store.py.
"""

from edge_agent.core import store_format as fmt

MISSING = "missing"  # a marker that is absent (not an error)
EMPTY = "empty-segment"  # a segment with no valid record (e.g. died right after creating it)


class SegmentState:
    """One segment as recovery found it."""

    __slots__ = ("lane", "segno", "name", "first_ms", "end", "count", "sealed")

    def __init__(self, lane, segno, first_ms, end, count, sealed):
        self.lane = lane
        self.segno = segno
        self.name = fmt.segment_name(lane, segno)
        self.first_ms = first_ms
        self.end = end  # offset just after the last record (a seal follows when sealed)
        self.count = count
        self.sealed = sealed


class DirectoryState:
    """The result of ``load``: per lane, segments (oldest first) and the
    acknowledged position; the report; any files the store does not know."""

    __slots__ = ("lanes", "acks", "marker_acks", "journal", "report", "foreign", "max_segno")

    def __init__(self, lanes):
        self.lanes = [[] for _ in range(lanes)]
        self.marker_acks = [(0, 0, 0) for _ in range(lanes)]  # from the .ack files alone
        self.journal = False  # an ack journal exists
        # The highest segment number found per lane, removed ones included:
        # numbers never go back, so no position can point into a new file.
        self.max_segno = [0] * lanes
        self.acks = [(0, 0, 0) for _ in range(lanes)]
        self.report = fmt.RecoveryReport()
        self.foreign = []


def load(fs, lanes, repair):
    """Read the directory behind ``fs``; with ``repair`` make it clean
    (every segment sealed, torn tails cut, temporaries removed)."""
    state = DirectoryState(lanes)
    report = state.report
    segments = []
    for name in fs.list():
        parsed = fmt.parse_segment_name(name)
        if parsed is not None and parsed[0] < lanes:
            segments.append(parsed)
            continue
        lane = fmt.parse_ack_name(name)
        if lane is not None and lane < lanes:
            _load_ack(fs, name, lane, state)
        elif name == fmt.JOURNAL_NAME:
            state.journal = True
        elif name.endswith(fmt.TMP_SUFFIX):
            if repair:
                # A replacement that never got renamed: the old file is valid.
                fs.remove(name)
                report.removed_tmp += 1
        elif name not in (fmt.SEQ_NAME, fmt.RECOVERY_NAME):
            state.foreign.append(name)
    for lane in range(lanes):
        state.marker_acks[lane] = state.acks[lane]
    if state.journal:
        _load_journal(fs, state)
    segments.sort()
    for lane, segno in segments:
        state.max_segno[lane] = max(state.max_segno[lane], segno)
        seg = _load_segment(fs, lane, segno, repair, report)
        if seg is not None:
            state.lanes[lane].append(seg)
            report.segments += 1
            report.records += seg.count
    return state


def _load_ack(fs, name, lane, state):
    data = fs.read(name, 0, fmt.ACK_SIZE + 1)
    position = fmt.decode_ack(data, lane)
    if position is None:
        # Unreadable: start from the beginning of the lane. At-least-once
        # makes that safe (records are sent again, receivers drop dups).
        state.report.discards.append(fmt.Discard(lane, name, 0, len(data), fmt.BAD_MARKER))
    else:
        state.acks[lane] = position


def _load_journal(fs, state):
    """Positions in the ack journal newer than the markers win. A torn
    last entry is an ack that never became durable (reported; the records
    it covered are sent again)."""
    data = fs.read(fmt.JOURNAL_NAME, 0, fs.size(fmt.JOURNAL_NAME))
    for position, lane, problem in scan_journal(data):
        if problem is not None:
            state.report.discards.append(fmt.Discard(-1, fmt.JOURNAL_NAME, problem[0], problem[1], problem[2]))
        elif lane < len(state.acks) and position > state.acks[lane]:
            state.acks[lane] = position


def scan_journal(data):
    """(position, lane, None) per valid entry, then (None, None, (offset,
    bytes, reason)) if the journal ends in a bad entry. Entries after a bad
    one are not trusted: the journal is written front to back, so damage
    can only be at its end unless the disk itself is failing. Zeros to the
    end are slots not written yet (the store creates the journal zeroed and
    overwrites one slot per entry): the clean end, not damage. A journal
    of appended entries (no zeros) reads the same."""
    entries = []
    view = memoryview(data)
    pos = 0
    end = len(data)
    while pos < end:
        reason, start, length, record_type = fmt.check_record(view, pos, end)
        payload = bytes(view[start : start + length]) if reason is None else b""
        position = fmt.decode_ack(payload) if reason is None and record_type == fmt.TYPE_DATA else None
        if position is None:
            if bytes(view[pos:end]) != bytes(end - pos):
                entries.append((None, None, (pos, end - pos, reason or fmt.BAD_MARKER)))
            break
        entries.append((position, payload[5], None))
        pos = start + length
    return entries


def _load_segment(fs, lane, segno, repair, report):
    name = fmt.segment_name(lane, segno)
    size = fs.size(name)
    header = fmt.decode_segment_header(fs.read(name, 0, fmt.SEGMENT_HEADER))
    header_ok = header is not None and header[0] == lane and header[1] == segno
    if header_ok and size >= fmt.SEGMENT_HEADER + fmt.SEAL_SIZE:
        seal_at = size - fmt.SEAL_SIZE
        count = fmt.decode_seal(fs.read(name, seal_at, fmt.SEAL_SIZE), seal_at)
        if count is not None:
            return SegmentState(lane, segno, header[2], seal_at, count, True)
    # Not sealed (or the header is damaged): read it record by record.
    report.scanned += 1
    data = fs.read(name, 0, size)
    scan = fmt.scan_segment(data)
    for offset, nbytes, reason in scan.skipped:
        report.discards.append(fmt.Discard(lane, name, offset, nbytes, reason, True))
    if scan.torn is not None:
        offset, nbytes, reason = scan.torn
        report.discards.append(fmt.Discard(lane, name, offset, nbytes, reason))
    if scan.count == 0:
        if size > 0 and scan.torn is None:
            report.discards.append(fmt.Discard(lane, name, 0, size, EMPTY))
        if repair:
            fs.remove(name)
        return None
    first_ms = header[2] if header_ok else 0
    if not header_ok:
        report.discards.append(fmt.Discard(lane, name, 0, fmt.SEGMENT_HEADER, fmt.BAD_HEADER, True))
    sealed = scan.sealed
    if repair and not (sealed and header_ok):
        try:
            _repair_segment(fs, name, lane, segno, first_ms, header_ok, data, scan)
            sealed = True
        except OSError as exc:
            # A full disk: keep the segment as scanned (the store never
            # writes to an old segment, and reads stop at scan.end); the
            # next open seals it. Anything else is not ours to ride out.
            if not fmt.is_write_failure(exc):
                raise
            report.unrepaired += 1
    return SegmentState(lane, segno, first_ms, scan.end, scan.count, sealed)


def _repair_segment(fs, name, lane, segno, first_ms, header_ok, data, scan):
    """Seal a clean segment in place; rewrite a torn or header-damaged one
    (valid part plus a seal) through a temporary file and a rename."""
    seal = fmt.encode_seal(scan.count, scan.end)
    if header_ok and scan.torn is None:
        handle = fs.open_append(name)
        try:
            handle.write(seal)
            handle.sync()
        finally:
            handle.close()
    else:
        body = fmt.encode_segment_header(lane, segno, first_ms) + bytes(data[fmt.SEGMENT_HEADER : scan.end])
        try:
            fmt.replace(fs, name, body + seal)
        except OSError:
            fmt.remove_quietly(fs, name + fmt.TMP_SUFFIX)
            raise


class VerifyProblem:
    __slots__ = ("name", "offset", "nbytes", "reason")

    def __init__(self, name, offset, nbytes, reason):
        self.name = name
        self.offset = offset
        self.nbytes = nbytes
        self.reason = reason

    def __repr__(self):
        return "%s at offset %d: %s (%d bytes)" % (self.name, self.offset, self.reason, self.nbytes)


def verify(fs, lanes):
    """Check every record of every segment and every marker, changing
    nothing. Returns (records checked, list of VerifyProblem).

    A segment without a seal is only a problem if its tail is damaged: the
    store writes to unsealed segments while it runs."""
    problems = []
    records = 0
    for name in sorted(fs.list()):
        parsed = fmt.parse_segment_name(name)
        if parsed is not None and parsed[0] < lanes:
            lane, segno = parsed
            data = fs.read(name, 0, fs.size(name))
            header = fmt.decode_segment_header(data)
            if header is None or header[0] != lane or header[1] != segno:
                problems.append(VerifyProblem(name, 0, fmt.SEGMENT_HEADER, fmt.BAD_HEADER))
            scan = fmt.scan_segment(data)
            records += scan.count
            for offset, nbytes, reason in scan.skipped:
                problems.append(VerifyProblem(name, offset, nbytes, reason))
            if scan.torn is not None:
                problems.append(VerifyProblem(name, scan.torn[0], scan.torn[1], scan.torn[2]))
            continue
        lane = fmt.parse_ack_name(name)
        if lane is not None and lane < lanes:
            data = fs.read(name, 0, fmt.ACK_SIZE + 1)
            if fmt.decode_ack(data, lane) is None:
                problems.append(VerifyProblem(name, 0, len(data), fmt.BAD_MARKER))
        elif name == fmt.JOURNAL_NAME:
            data = fs.read(name, 0, fs.size(name))
            for _, _, problem in scan_journal(data):
                # A torn last entry may be an ack being written right now.
                if problem is not None and problem[2] != fmt.TORN:
                    problems.append(VerifyProblem(name, problem[0], problem[1], problem[2]))
        elif name == fmt.SEQ_NAME:
            data = fs.read(name, 0, fmt.SEQ_SIZE + 1)
            if fmt.decode_seq(data) is None:
                problems.append(VerifyProblem(name, 0, len(data), fmt.BAD_MARKER))
    return records, problems
