"""Receiver-driven gap repair (issue 21): ask devices for the signals the
broker lost, with a signed ``replay`` command (docs/wire-format.md,
"Gap repair"; docs/receiver.md, "Gap repair").

A device numbers its signals 1, 2, 3, ...; one dropped from its store at
PUBACK and then lost by the broker (a queue over ``max_queued_messages``, a
restart without persistence) is a gap in (device, seq). The device keeps
acknowledged records in a replay window; this module asks for them back.

Each device's missing seqs are kept as ranges in ``repair_ranges``:

    pending   a gap (not a restart skip: storage.missing()), first seen at
              ``found_ms``; asked for once ``due_ms`` has come: the settle
              delay after it was found (a backlog still arriving fills most
              gaps on its own), then the timeout after each request, doubled
              per attempt up to MAX_BACKOFF_MS
    repaired  seqs that arrived after a request asked for them
    lost      seqs the device answered "gone" for, with its reason
              (outside-window, not-held): never asked for again

A pass (``RepairLoop.pass_``, every TICK_S) looks at the devices that had
fresh signals or have ranges due, each in its own transaction under the
storage's per-device repair lock (receivers sharing a PostgreSQL database:
one decides a device at a time, from the state in the database). It turns
the device's gaps into pending ranges, the asked ranges that arrived into
repaired ones, and, when ranges are due and the device's last request is
served, writes one request (at most MAX_RANGES ranges and MAX_SEQS seqs, the
protocol's bounds) with the next command counter of (signer, device),
signs it, and publishes it on the device's command topic after the commit.

The device's answer is a signed ``repair`` signal (kind 8) stored like any
other; ``observe`` reads it inside the receiver's transaction: "gone"
ranges become lost, "sending" ranges get time to arrive (their count at the
device's replay rate). A device's audit of a refused request is kept on the
request (and logged once per reason).
"""

import asyncio
import json
import logging
import time

from edge_agent.core import operator as op
from edge_agent.core import repair as core
from edge_agent.core import signals as sg

log = logging.getLogger("edge_agent.receiver.repair")

REQUEST_PREFIX = "repair-"
# One request's bounds (docs/wire-format.md): a device refuses more.
MAX_RANGES = core.MAX_RANGES
MAX_SEQS = core.MAX_SEQS
# A device accepts at most one replay per 10 s, by its clock, from when the
# last one reached it: never ask sooner, with a margin for a first request
# that took longer to arrive than the next (seen: refused "the last was
# accepted 9,988 ms ago" for a request sent 10,057 ms after the last).
MIN_INTERVAL_MS = core.REPLAY_EVERY_MS + 2000
DEFAULT_SETTLE_MS = 10_000
DEFAULT_TIMEOUT_MS = 30_000
MAX_BACKOFF_MS = 10 * 60 * 1000
# The devices' default replay rates (records/s): a range of n seqs needs
# n / rate seconds to arrive, on top of the timeout. An HMAC device is a board.
GATEWAY_RATE = 200
BOARD_RATE = 20
TICK_S = 2.0
# After a pass fails unexpectedly (a bug, a damaged table): the receiver
# keeps storing signals, and the loop tries again this much later.
FAILED_PASS_PAUSE_S = 60.0
MAX_SEQ = 2 ** 63 - 1  # the storage's largest integer
# A request sat undelivered this long is refused by the device (expired):
# by then the receiver has asked again.
COMMAND_TTL_S = 300

PENDING = "pending"
REPAIRED = "repaired"
LOST = "lost"


def now_ms():
    return time.time_ns() // 1_000_000


class RepairError(Exception):
    """A request that cannot be signed (the message says why)."""


# -- seq ranges: sorted lists of (first, last) ------------------------------------


def subtract(ranges, holes):
    """The seqs of ``ranges`` not in ``holes``, as ranges."""
    out = []
    for first, last in ranges:
        start = first
        for hole_first, hole_last in holes:
            if hole_last < start or hole_first > last:
                continue
            if hole_first > start:
                out.append((start, hole_first - 1))
            start = hole_last + 1
            if start > last:
                break
        if start <= last:
            out.append((start, last))
    return out


def intersect(ranges, others):
    out = []
    for first, last in ranges:
        for other_first, other_last in others:
            low, high = max(first, other_first), min(last, other_last)
            if low <= high:
                out.append((low, high))
    return sorted(out)


def seq_count(ranges):
    return sum(last - first + 1 for first, last in ranges)


class Piece:
    """One pending range and where its repair stands."""

    __slots__ = ("first", "last", "found_ms", "due_ms", "attempts", "request")

    def __init__(self, first, last, found_ms, due_ms, attempts=0, request=None):
        self.first = first
        self.last = last
        self.found_ms = found_ms
        self.due_ms = due_ms
        self.attempts = attempts
        self.request = request

    def part(self, first, last):
        """The same repair, over a part of this range."""
        return Piece(first, last, self.found_ms, self.due_ms, self.attempts, self.request)

    def row(self):
        return (self.first, self.last, self.found_ms, self.due_ms, self.attempts, self.request)


class RepairLoop:
    """``registry``: the receiver's; ``storage``: its storage (the same
    connection as the receiver's: every call here is synchronous between
    BEGIN and COMMIT, so the two never interleave); ``operator``: the
    repair key (keys.operators.Operator) that signs the requests."""

    def __init__(self, registry, storage, operator, settle_ms=DEFAULT_SETTLE_MS, timeout_ms=DEFAULT_TIMEOUT_MS,
                 clock=now_ms):
        if settle_ms < 0 or timeout_ms <= 0:
            raise ValueError("--repair-settle must be >= 0 and --repair-timeout positive")
        self.registry = registry
        self.storage = storage
        self.operator = operator
        self.settle_ms = settle_ms
        self.timeout_ms = timeout_ms
        self.clock = clock
        # Devices to look at in the next pass: every one at the start (gaps
        # from before), then those with fresh signals.
        self.dirty = set(registry.devices)
        # device -> (the highest seq its last committed pass read, the
        # restart skips below it: a late signal from before the restart
        # can turn part of one into a gap).
        self.scanned = {}
        self.requests_sent = 0
        self._warned = set()

    # -- inside the receiver's transaction -------------------------------------------

    def observe(self, signal, received_ms):
        """A fresh, verified signal (inside the receiver's transaction)."""
        self.dirty.add(signal.device)
        if signal.kind == sg.KIND_REPAIR:
            self._answer(signal, received_ms)
        elif signal.kind == sg.KIND_AUDIT and signal.body.get(sg.U_ACTION) == core.COMMAND:
            self._audit(signal)

    def _answer(self, signal, received_ms):
        device = signal.device
        answer = parse_answer(signal.body)
        if isinstance(answer, str):
            log.warning("device %s: repair answer #%d ignored: %s", device, signal.seq, answer)
            return
        request, sending, gone = answer
        self.storage.repair_lock(device)
        request_id = request_number(request)
        if request_id is not None:
            self.storage.execute("UPDATE repair_requests SET answered_ms = ?, sending = ?, gone = ? "
                                 "WHERE id = ? AND device = ?",
                                 (received_ms, seq_count(sending), seq_count([g[:2] for g in gone]), request_id,
                                  device))
        pieces = self._pending(device)
        lost = []
        for first, last, reason in gone:
            lost += [(f, l, reason) for f, l in intersect([(p.first, p.last) for p in pieces], [(first, last)])]
        kept = []
        for piece in pieces:
            kept += [piece.part(f, l) for f, l in subtract([(piece.first, piece.last)], [g[:2] for g in gone])]
        # What the device republishes needs its time to arrive.
        rate = BOARD_RATE if self.registry.devices[device].secret is not None else GATEWAY_RATE
        arrival_ms = received_ms + seq_count(sending) * 1000 // rate
        for piece in kept:
            if intersect([(piece.first, piece.last)], sending):
                piece.due_ms = max(piece.due_ms or 0, arrival_ms + self._backoff(piece.attempts))
        self._write_pending(device, kept)
        for first, last, reason in lost:
            self.storage.execute(
                "INSERT INTO repair_ranges (device, state, first_seq, last_seq, found_ms, attempts, request, reason, "
                "done_ms) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)", (device, LOST, first, last, received_ms, request_id,
                                                                reason, received_ms))
        if lost:
            log.warning("device %s no longer holds %s: lost for good", device,
                        ", ".join("%s (%s)" % (_range_text(f, l), reason) for f, l, reason in lost))

    def _audit(self, signal):
        body = signal.body
        if body.get(sg.U_RESULT) != "refused":
            return
        request_id = request_number(body.get(sg.U_TARGET))
        reason = body.get(sg.U_REASON) if isinstance(body.get(sg.U_REASON), str) else "?"
        if request_id is not None:
            self.storage.execute("UPDATE repair_requests SET refused = ? WHERE id = ? AND device = ?",
                                 (reason[:200], request_id, signal.device))
        key = (signal.device, reason.split(":")[0])
        if key not in self._warned:
            self._warned.add(key)
            log.warning("device %s refused a repair request: %s (asked again after the timeout)", signal.device,
                        reason[:200])

    # -- the pass ----------------------------------------------------------------------

    def pass_(self, now):
        """Look at the devices that may need it; returns the requests to
        publish, [(request id, topic, payload)], each already committed."""
        devices = self.dirty | {row[0] for row in self.storage.query(
            "SELECT DISTINCT device FROM repair_ranges WHERE state = ? AND due_ms <= ?", (PENDING, now))}
        self.dirty = set()
        outgoing = []
        for device in sorted(devices):
            if device not in self.registry.devices:
                continue
            self.storage.begin()
            try:
                if not self.storage.repair_lock(device, wait=False):
                    self.storage.rollback()
                    self.dirty.add(device)  # another receiver is on it: next time
                    continue
                request, scanned = self._plan(device, now)
                self.storage.commit()
            except self.storage.RETRY_ERRORS:
                self.storage.rollback()
                self.dirty.add(device)
                continue
            except RepairError as exc:
                self.storage.rollback()
                log.error("device %s: no repair request: %s", device, exc)
                continue
            except BaseException:
                self.storage.rollback()
                raise
            if scanned[0] is not None:
                self.scanned[device] = scanned  # committed: the next pass starts there
            if request is not None:
                outgoing.append(request)
        return outgoing

    def _plan(self, device, now):
        """Update ``device``'s ranges and maybe write a request; returns
        (request or None, the highest seq scanned)."""
        lost = self._lost(device)
        pieces = self._pending(device)
        gaps, skipped, top = self._gaps(device, [(p.first, p.last) for p in pieces] + [r[:2] for r in lost])
        # A lost seq that arrived after all (in flight when the device
        # answered), or turned out skipped at a restart, is not lost.
        still_lost = [(f, l, reason) for first, last, reason in lost for f, l in intersect([(first, last)], gaps)]
        if still_lost != lost:
            self._rewrite_lost(device, lost, still_lost)
        wanted = subtract(gaps, [r[:2] for r in still_lost])
        kept, repaired = [], []
        for piece in pieces:
            span = [(piece.first, piece.last)]
            kept += [piece.part(f, l) for f, l in intersect(span, wanted)]
            if piece.attempts:  # asked for and arrived: repaired (filled on its own: nothing to say)
                repaired += [(f, l, piece) for f, l in subtract(subtract(span, wanted), skipped)]
        for first, last in subtract(wanted, [(p.first, p.last) for p in pieces]):
            kept.append(Piece(first, last, now, now + self.settle_ms))
        kept.sort(key=lambda p: p.first)
        request = self._ask(device, kept, now)
        if [p.row() for p in kept] != [p.row() for p in pieces]:
            self._write_pending(device, kept)
        for first, last, piece in repaired:
            self.storage.execute(
                "INSERT INTO repair_ranges (device, state, first_seq, last_seq, found_ms, attempts, request, done_ms) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (device, REPAIRED, first, last, piece.found_ms, piece.attempts,
                                                    piece.request, now))
        return request, (top, skipped)

    def _gaps(self, device, known):
        """(lost, skipped, highest seq stored): the device's gaps as
        storage.missing() judges them, within the ``known`` ranges (pending
        and lost) and above the highest seq the last pass scanned. A stored
        seq stays stored, so what lies below that and outside ``known`` was
        judged already, but for the restart skips: a pass reads those and the
        signals that came since, not the device's whole history."""
        since, skips = self.scanned.get(device, (None, []))
        if since is None:
            lost, skipped = self.storage.missing(device)
            top = self.storage.query("SELECT MAX(seq) FROM signals WHERE device = ?", (device,))[0][0]
            return lost, skipped, top
        lost, skipped = [], []
        rows = self.storage.query(
            "SELECT seq, next, next_kind FROM (SELECT seq, LEAD(seq) OVER (ORDER BY seq) AS next, "
            "LEAD(kind) OVER (ORDER BY seq) AS next_kind FROM signals WHERE device = ? AND seq >= ?) AS g "
            "WHERE next IS NULL OR next - seq > 1 ORDER BY seq", (device, since))
        top = since
        for seq, after, after_kind in rows:
            if after is None:
                top = seq
            else:
                (skipped if after_kind == sg.KIND_BIRTH else lost).append((seq + 1, after - 1))
        for first, last in known + skips:
            # Above ``since`` the scan found them already: a range another
            # receiver found (several on one database) may lie there.
            if first > since:
                continue
            within_lost, within_skipped = self._gaps_within(device, first, min(last, since))
            lost += within_lost
            skipped += within_skipped
        return sorted(lost), sorted(skipped), top

    def _gaps_within(self, device, first, last):
        """(lost, skipped): the seqs of [first, last] not stored, as ranges; a
        range right below a stored birth is skipped."""
        rows = self.storage.query("SELECT seq, kind FROM signals WHERE device = ? AND seq >= ? AND seq <= ? "
                                  "ORDER BY seq", (device, first, last + 1 if last < MAX_SEQ else last))
        lost, skipped = [], []
        start = first
        for seq, kind in rows + [(last + 1, None)]:
            if seq > start:
                (skipped if kind == sg.KIND_BIRTH else lost).append((start, min(seq - 1, last)))
            start = seq + 1
            if start > last:
                break
        return lost, skipped

    def _ask(self, device, pieces, now):
        """Write and sign a request for the due ``pieces`` (updated in place,
        split where a request ends inside one); None if nothing is due or the
        device's last request is still being served."""
        due = [p for p in pieces if p.due_ms <= now]
        if not due:
            return None
        last = self.storage.query("SELECT id, created_ms FROM repair_requests WHERE device = ? ORDER BY id DESC "
                                  "LIMIT 1", (device,))
        if last:
            last_id, created_ms = last[0]
            if now - created_ms < MIN_INTERVAL_MS:
                return None
            if any(p.request == last_id and p.due_ms > now for p in pieces):
                return None  # being served: the device refuses more than it can serve at once
        asked, total = [], 0
        for piece in due:
            if len(asked) == MAX_RANGES or total == MAX_SEQS:
                break
            take = min(piece.last - piece.first + 1, MAX_SEQS - total)
            if take < piece.last - piece.first + 1:
                pieces.append(piece.part(piece.first + take, piece.last))
                piece.last = piece.first + take - 1
            asked.append(piece)
            total += take
        pieces.sort(key=lambda p: p.first)
        signer = self.operator.name
        counter = (self.storage.query("SELECT MAX(counter) FROM repair_requests WHERE device = ? AND signer = ?",
                                      (device, signer))[0][0] or 0) + 1
        ranges = [[p.first, p.last] for p in asked]
        request_id = self.storage.execute(
            "INSERT INTO repair_requests (device, signer, counter, ranges, seqs, created_ms) VALUES (?, ?, ?, ?, ?, ?) "
            "RETURNING id", (device, signer, counter, json.dumps(ranges), total, now)).fetchone()[0]
        for piece in asked:
            piece.attempts += 1
            piece.request = request_id
            piece.due_ms = now + self._backoff(piece.attempts)
        from edge_agent.keys.operators import OperatorError

        try:
            payload = self.operator.replay_command(device, ranges, REQUEST_PREFIX + str(request_id), counter,
                                                   COMMAND_TTL_S, now_ms=now,
                                                   device_secret=self.registry.devices[device].secret)
        except OperatorError as exc:
            raise RepairError(str(exc)) from None
        log.info("device %s: asking for %d seqs (%s), request %d, attempt %d", device, total,
                 ", ".join(_range_text(f, l) for f, l in ranges[:5]) + (" ..." if len(ranges) > 5 else ""),
                 request_id, max(p.attempts for p in asked))
        return request_id, op.command_topic(device), payload

    def _backoff(self, attempts):
        return min(self.timeout_ms * 2 ** max(attempts - 1, 0), MAX_BACKOFF_MS)

    def mark_sent(self, request_ids, sent_ms):
        self.storage.begin()
        for request_id in request_ids:
            self.storage.execute("UPDATE repair_requests SET sent_ms = ? WHERE id = ?", (sent_ms, request_id))
        self.storage.commit()

    async def run(self, client):
        """Pass after pass, publishing each pass's requests (QoS 1), until cancelled."""
        while True:
            await asyncio.sleep(TICK_S)
            dirty = set(self.dirty)
            try:
                outgoing = self.pass_(self.clock())
            except self.storage.LOST_ERRORS as exc:
                # The receive loop reconnects the storage; pending ranges wait
                # in the database, and the devices marked dirty are kept.
                self.dirty |= dirty
                log.warning("gap repair: pass skipped, database lost (%s)", self.storage.describe_error(exc))
                continue
            except Exception:
                # The loop runs beside the message loop and ends the session if
                # it raises: a fault of repair must not stop the intake.
                self.dirty |= dirty
                log.exception("gap repair: a pass failed (signals are still received and stored); trying again "
                              "in %.0f s", FAILED_PASS_PAUSE_S)
                await asyncio.sleep(FAILED_PASS_PAUSE_S)
                continue
            if outgoing:
                await asyncio.gather(*(client.publish(topic, payload, qos=1) for _, topic, payload in outgoing))
                self.mark_sent([request_id for request_id, _, _ in outgoing], self.clock())
                self.requests_sent += len(outgoing)

    # -- rows ------------------------------------------------------------------------------

    def _pending(self, device):
        return [Piece(*row) for row in self.storage.query(
            "SELECT first_seq, last_seq, found_ms, due_ms, attempts, request FROM repair_ranges "
            "WHERE device = ? AND state = ? ORDER BY first_seq", (device, PENDING))]

    def _lost(self, device):
        return [tuple(row) for row in self.storage.query(
            "SELECT first_seq, last_seq, reason FROM repair_ranges WHERE device = ? AND state = ? ORDER BY first_seq",
            (device, LOST))]

    def _write_pending(self, device, pieces):
        self.storage.execute("DELETE FROM repair_ranges WHERE device = ? AND state = ?", (device, PENDING))
        for piece in pieces:
            self.storage.execute(
                "INSERT INTO repair_ranges (device, state, first_seq, last_seq, found_ms, due_ms, attempts, request) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (device, PENDING) + piece.row())

    def _rewrite_lost(self, device, before, after):
        rows = dict(((r[0], r[1]), r) for r in self.storage.query(
            "SELECT first_seq, last_seq, found_ms, attempts, request, done_ms FROM repair_ranges "
            "WHERE device = ? AND state = ?", (device, LOST)))
        self.storage.execute("DELETE FROM repair_ranges WHERE device = ? AND state = ?", (device, LOST))
        for first, last, reason in after:
            old = next(row for (f, l), row in rows.items() if f <= first and last <= l)
            self.storage.execute(
                "INSERT INTO repair_ranges (device, state, first_seq, last_seq, found_ms, attempts, request, reason, "
                "done_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (device, LOST, first, last, old[2], old[3], old[4],
                                                                reason, old[5]))


# -- the answer --------------------------------------------------------------------------


def parse_answer(body):
    """(request, sending [(first, last)], gone [(first, last, reason)]) from
    a repair signal's body, or why it cannot be read (a sentence)."""
    if not isinstance(body, dict):
        return "the body is not a map"
    request = body.get(sg.R_REQUEST)
    if not isinstance(request, str):
        return "request (key 0) is not text"
    sending = _ranges(body.get(sg.R_SENDING, []), 2)
    gone = _ranges(body.get(sg.R_GONE, []), 3)
    if sending is None:
        return "sending (key 1) is not a list of [first, last]"
    if gone is None:
        return "gone (key 2) is not a list of [first, last, reason]"
    return request, sending, gone


def _ranges(value, width):
    if not isinstance(value, list):
        return None
    out = []
    for item in value:
        if not (isinstance(item, list) and len(item) == width and all(_uint(v) for v in item[:2])
                and item[0] <= item[1]):
            return None
        if width == 3 and not isinstance(item[2], str):
            return None
        out.append(tuple(item[:2]) + ((item[2][:40],) if width == 3 else ()))
    return sorted(out)


def _uint(value):
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2 ** 63


def request_number(text):
    """The repair_requests id in "repair-<id>", or None."""
    if not isinstance(text, str) or not text.startswith(REQUEST_PREFIX):
        return None
    number = text[len(REQUEST_PREFIX):]
    return int(number) if number.isdigit() and len(number) <= 18 else None


def _range_text(first, last):
    return str(first) if first == last else "%d-%d" % (first, last)


# -- queries for reports and metrics ------------------------------------------------


STATUS_KEY = "repair"


def set_status(storage, text):
    """What `receiver report` says of repair: on (and the key), or off and why."""
    storage.begin()
    storage.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (STATUS_KEY, text))
    storage.commit()


def status(storage):
    rows = storage.query("SELECT value FROM meta WHERE key = ?", (STATUS_KEY,))
    return rows[0][0] if rows else None


def ranges(storage):
    """{device: {"pending": [(first, last, attempts)], "repaired": [(first, last)],
    "lost": [(first, last, reason)]}}, ranges in seq order; adjacent repaired
    ranges are shown as one."""
    out = {}
    for device, state, first, last, attempts, reason in storage.query(
            "SELECT device, state, first_seq, last_seq, attempts, reason FROM repair_ranges "
            "ORDER BY device, state, first_seq"):
        lists = out.setdefault(device, {PENDING: [], REPAIRED: [], LOST: []})
        if state == PENDING:
            lists[PENDING].append((first, last, attempts))
        elif state == LOST:
            lists[LOST].append((first, last, reason))
        elif lists[REPAIRED] and lists[REPAIRED][-1][1] + 1 == first:
            lists[REPAIRED][-1] = (lists[REPAIRED][-1][0], last)
        else:
            lists[REPAIRED].append((first, last))
    return out


def repaired_by_device(storage):
    """{device: seqs repaired} (the web view's fleet page)."""
    return dict((device, int(seqs)) for device, seqs in storage.query(
        "SELECT device, SUM(last_seq - first_seq + 1) FROM repair_ranges WHERE state = ? GROUP BY device",
        (REPAIRED,)))


def counts(storage):
    """Counters for metrics: seqs repaired, pending and lost for good, and
    requests sent, answered and refused (the whole database)."""
    totals = {PENDING: 0, REPAIRED: 0, LOST: 0}
    for state, seqs in storage.query("SELECT state, SUM(last_seq - first_seq + 1) FROM repair_ranges GROUP BY state"):
        totals[state] = int(seqs or 0)
    requests, sent, answered, refused = storage.query(
        "SELECT COUNT(*), COUNT(sent_ms), COUNT(answered_ms), COUNT(refused) FROM repair_requests")[0]
    return {"repaired": totals[REPAIRED], "pending": totals[PENDING], "lost": totals[LOST], "requests": requests,
            "requests_sent": sent, "requests_answered": answered, "requests_refused": refused}


# -- from `receiver run`'s options (edge_agent/cli/receiver.py) --------------------------

OFF_NO_KEY = "off: the receiver runs without --repair-key, so gaps are reported, never asked for"


def from_args(args, registry, storage):
    """A RepairLoop for `receiver run`, or None without --repair-key (said
    once in the log and kept for `receiver report`). Raises ValueError with
    a message for the command line."""
    if not args.repair_key:
        log.warning("gap repair %s", OFF_NO_KEY)
        set_status(storage, OFF_NO_KEY)
        return None
    from edge_agent.keys.operators import OperatorError, load_operator, parse_duration

    try:
        settle_ms = int(parse_duration(args.repair_settle) * 1000)
        timeout_ms = int(parse_duration(args.repair_timeout) * 1000)
    except OperatorError as exc:
        raise ValueError("--repair-settle/--repair-timeout: %s" % exc) from None
    try:
        operator = load_operator(args.repair_key)
    except OperatorError as exc:
        raise ValueError("--repair-key: %s" % exc) from None
    loop = RepairLoop(registry, storage, operator, settle_ms, timeout_ms)
    set_status(storage, "on: requests signed by %s (devices trust it with scopes = [\"replay\"]), settle %s, "
                        "timeout %s" % (operator.name, args.repair_settle, args.repair_timeout))
    return loop
