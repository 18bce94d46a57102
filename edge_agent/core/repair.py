"""Receiver-driven gap repair, the device's side (issue 21): the signed
`replay` command, the answer (a repair signal, kind 8), and what is held.

    replay command (verified: operator.py, scope "replay")
        -> parse_request: bounds and shape, or op.Refused (bad-args, too-large)
        -> ReplayLimiter: one accepted request per 10 s, 4096 seqs in service
        -> Repair: a bitmap over the requested seqs, marked while the store's
           records are scanned (Store.scan), streaming, window and unsent
           records alike
        -> answer(): the repair signal: what will be sent, what is gone
        -> serve: the held records, republished unchanged (same bytes: same
           seq, same signature), paced by the platform's uplink

The bitmap is one bit per requested seq (at most 4096: 512 bytes), so a
board's heap never holds the request's records, only the one being sent.
A device that restarts mid-repair forgets it: the receiver asks again for
what is still missing. Pure logic, no clock: callers pass now_ms.
"""

from edge_agent.core import operator as op
from edge_agent.core import signals as sg

COMMAND = "replay"
MAX_RANGES = 32
MAX_SEQS = 4096
MAX_REQUEST_ID = 40
# At most one accepted request per this long: a repair republishes up to
# 4096 records, and a receiver re-asks after a timeout far longer than this.
REPLAY_EVERY_MS = 10000
GONE_OUTSIDE = "outside-window"  # older than the oldest record kept, or no window
GONE_NOT_HELD = "not-held"  # within the window's span, no such record (dropped, or a seq never used)


def _bad(detail):
    return op.Refused("bad-args", detail)


def parse_request(command):
    """(request id, [[first, last], ...]) of a verified replay Command, or
    raise op.Refused: bad-args (the target is a model, an argument is
    missing, extra or malformed), too-large (over MAX_RANGES ranges or
    MAX_SEQS seqs)."""
    if command.target.startswith(op.MODEL_PREFIX):
        raise _bad("replay is for one device: the target must be the device id, not %s" % op.shown(command.target))
    args = command.args
    for key in args:
        if key not in ("ranges", "request"):
            raise _bad("replay takes the arguments ranges and request, not %s" % op.shown(key))
    request = args.get("request")
    if not isinstance(request, str) or not 0 < len(request) <= MAX_REQUEST_ID:
        raise _bad("request must be text of 1-%d characters (the receiver's id for it)" % MAX_REQUEST_ID)
    ranges = args.get("ranges")
    if not isinstance(ranges, list) or not ranges:
        raise _bad("ranges must be an array of 1-%d [first, last] arrays" % MAX_RANGES)
    if len(ranges) > MAX_RANGES:
        raise op.Refused("too-large", "%d ranges; a request names at most %d" % (len(ranges), MAX_RANGES))
    total = 0
    previous = -1
    for item in ranges:
        if not isinstance(item, list) or len(item) != 2 or not op.is_uint(item[0]) or not op.is_uint(item[1]):
            raise _bad("each range must be an array [first, last] of unsigned integers, got %s" % op.shown(item))
        first, last = item
        if first > last:
            raise _bad("range [%d, %d]: first is above last" % (first, last))
        if first <= previous:
            raise _bad("range [%d, %d]: ranges must be ascending and must not overlap" % (first, last))
        previous = last
        total += last - first + 1
    if total > MAX_SEQS:
        raise op.Refused("too-large", "%s seqs; a request names at most %d" % (op.shown(total), MAX_SEQS))
    return request, [[first, last] for first, last in ranges]


def request_problem(ranges, request):
    """None if ``ranges`` and ``request`` make a valid replay request (the
    signer's check, the device's own rules), else the sentence why not."""
    probe = op.Command(COMMAND, {"ranges": ranges, "request": request}, 1, "", 0, 0, "")
    try:
        parse_request(probe)
    except op.Refused as exc:
        return exc.detail
    return None


class ReplayLimiter:
    """At most one accepted request per ``every_ms`` and ``max_seqs`` seqs
    in service at once; ``refusal`` says why not (None: accept)."""

    def __init__(self, every_ms=REPLAY_EVERY_MS, max_seqs=MAX_SEQS):
        self.every_ms = every_ms
        self.max_seqs = max_seqs
        self.last_ms = None

    def refusal(self, now_ms, seqs, serving):
        """Why a request of ``seqs`` seqs, with ``serving`` seqs still being
        served, is refused (op.Refused, reason rate-limited), or None; a
        None records the acceptance."""
        if self.last_ms is not None and now_ms - self.last_ms < self.every_ms:
            return op.Refused("rate-limited", "one replay per %d s; the last was accepted %d ms ago"
                              % (self.every_ms // 1000, now_ms - self.last_ms))
        if serving + seqs > self.max_seqs:
            return op.Refused("rate-limited", "%d seqs are still being served; at most %d at once"
                              % (serving, self.max_seqs))
        self.last_ms = now_ms
        return None


class Repair:
    """One accepted request: which of its seqs the store holds (``mark``
    while scanning), then the answer and the records to send (``wanted``)."""

    def __init__(self, request, ranges):
        self.request = request
        self.ranges = ranges
        self.starts = []  # bit index of each range's first seq
        total = 0
        for first, last in ranges:
            self.starts.append(total)
            total += last - first + 1
        self.total = total
        self.bits = bytearray((total + 7) // 8)
        self.held = 0
        self.floors = {}  # lane -> the lowest seq it holds

    def _index(self, seq):
        ranges = self.ranges
        if seq is None or seq < ranges[0][0] or seq > ranges[-1][1]:
            return -1
        low, high = 0, len(ranges) - 1
        while low < high:  # the last range whose first is <= seq
            middle = (low + high + 1) // 2
            if ranges[middle][0] <= seq:
                low = middle
            else:
                high = middle - 1
        first, last = ranges[low]
        if seq > last:
            return -1
        return self.starts[low] + seq - first

    def mark(self, record, lane=0):
        """Count one stored record (its bytes, its lane) during the scan."""
        seq = sg.seq_of(record)
        if seq is None:
            return
        if lane not in self.floors or seq < self.floors[lane]:
            self.floors[lane] = seq
        index = self._index(seq)
        if index >= 0 and not self.bits[index >> 3] & (1 << (index & 7)):
            self.bits[index >> 3] |= 1 << (index & 7)
            self.held += 1

    def claim(self, record):
        """True when ``record`` is one this repair republishes, the first
        time only (its bit is cleared: ``held`` counts what is left)."""
        index = self._index(sg.seq_of(record))
        if index < 0 or not self.bits[index >> 3] & (1 << (index & 7)):
            return False
        self.bits[index >> 3] &= ~(1 << (index & 7)) & 0xFF
        self.held -= 1
        return True

    def floor(self, rolled):
        """The seq below which a missing one is outside the window: the
        highest of the oldest seqs of the lanes in ``rolled`` (those with a
        sealed segment: the window rolls through them, so their oldest
        record is where it stops); with none, the oldest seq held. A lane
        of one young segment (a birth, the last few audits) says nothing
        about what the window let go."""
        floors = [self.floors[lane] for lane in rolled if lane in self.floors]
        if floors:
            return max(floors)
        return min(self.floors.values()) if self.floors else None

    def answer(self, now_ms, window_on, rolled=()):
        """The repair signal (unnumbered): every requested seq in one of
        sending or gone. Without a window nothing acknowledged is kept, so
        whatever is not held is outside it."""
        sending = []
        gone = []
        floor = self.floor(rolled) if window_on else None
        for number, (first, last) in enumerate(self.ranges):
            start = self.starts[number]
            for seq in range(first, last + 1):
                index = start + seq - first
                if self.bits[index >> 3] & (1 << (index & 7)):
                    _extend(sending, seq, None)
                else:
                    _extend(gone, seq, GONE_OUTSIDE if floor is None or seq < floor else GONE_NOT_HELD)
        body = {sg.R_REQUEST: self.request, sg.R_SENDING: sending, sg.R_GONE: gone}
        return sg.Signal(sg.KIND_REPAIR, sg.PRIORITY_HIGH, now_ms, body)


def _extend(runs, seq, reason):
    """Add ``seq`` to ``runs`` ([first, last] or [first, last, reason]),
    merging it into the last run when it follows on with the same reason."""
    if runs:
        run = runs[-1]
        if run[1] + 1 == seq and (reason is None or run[2] == reason):
            run[1] = seq
            return
    runs.append([seq, seq] if reason is None else [seq, seq, reason])


# Records republished per second at most (the protocol's replay_rate): a
# gateway's 200 repairs a full request (4096) in ~20 s, a fraction of a
# broker's usual per-client rate; a board's 20 keeps its Wi-Fi and heap
# for live signals.
RATE_GATEWAY = 200
RATE_BOARD = 20
# Stored records read per scan call: a gateway reads on through a window
# of megabytes; a board holds at most this many records in RAM at once.
SCAN_RECORDS_GATEWAY = 256
SCAN_RECORDS_BOARD = 4


class ReplayService:
    """The device's repairs over its ``store``: ``accept`` a verified
    replay command (its answer, the repair signal, comes back for the
    caller to number and store), then ``take`` the held records, at most
    ``rate`` per second, for the uplink to publish when nothing urgent
    waits. Several repairs in service (up to MAX_SEQS seqs) go in turn."""

    def __init__(self, store, rate=RATE_GATEWAY, scan_records=SCAN_RECORDS_GATEWAY, limiter=None):
        self.store = store
        self.rate = rate
        self.scan_records = scan_records
        self.limiter = limiter or ReplayLimiter()
        self.queue = []  # [repair, scan position] in service, oldest first
        self.allowance = 0.0
        self.last_ms = None
        self.served = 0  # records republished (handed to the uplink)

    @property
    def serving(self):
        """Seqs accepted and not yet handed to the uplink."""
        left = 0
        for repair, _ in self.queue:
            left += repair.held
        return left

    def accept(self, command, now_ms):
        """(repair signal, summary for the audit), or raise op.Refused
        (bad-args, too-large, rate-limited). Scans the whole store once,
        streaming (the answer must be complete: sending or gone)."""
        request, ranges = parse_request(command)
        repair = Repair(request, ranges)
        refusal = self.limiter.refusal(now_ms, repair.total, self.serving)
        if refusal is not None:
            raise refusal
        position = None
        while True:
            records, position = self.store.scan(position, self.scan_records)
            for lane, record in records:
                repair.mark(record, lane)
            if position is None:
                break
        signal = repair.answer(now_ms, self.store.window_bytes > 0, self.store.rolled_lanes())
        if repair.held:
            self.queue.append([repair, None])
            self.store.window_pinned = True  # what it promised stays until sent
            if self.last_ms is None:
                self.last_ms = now_ms
        return signal, "sending %d of %d seqs, %d gone" % (repair.held, repair.total, repair.total - repair.held)

    def take(self, now_ms):
        """Records due now, [(lane, record bytes)], and the ms to wait for
        more (0: more are due at once; None: nothing left to serve)."""
        if not self.queue:
            return [], None
        if self.last_ms is not None:
            # At most a second's worth at once: a quiet minute is no licence to burst.
            self.allowance = min(float(self.rate), self.allowance + (now_ms - self.last_ms) * self.rate / 1000.0)
        self.last_ms = now_ms
        if self.allowance < 1:
            return [], int((1 - self.allowance) * 1000 / self.rate) + 1
        out = []
        entry = self.queue[0]
        repair = entry[0]
        # No more records scanned than may be sent now: the pace holds
        # record by record, never a burst paid for by a long silence.
        due = int(self.allowance)
        records, entry[1] = self.store.scan(entry[1], due if due < self.scan_records else self.scan_records)
        for lane, record in records:
            if repair.claim(record):
                out.append((lane, record))
        if entry[1] is None:
            # Scanned through: what was not found meanwhile left the window
            # to make room for new records (the receiver asks again, and
            # hears "gone").
            self.queue.pop(0)
            self.store.window_pinned = bool(self.queue)
        self.allowance -= len(out)
        self.served += len(out)
        return out, (0 if self.queue else None)
