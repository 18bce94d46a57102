"""Durable store benchmark: this store against its peers, side by side.

    .venv/bin/python bench/bench_store.py [--records N] [--recovery-records N]

Every contender gets the same N small CBOR signals (telemetry envelopes of
~60 bytes, built once) and the same durability bound: data is fsynced at
least every 100 records. Two phases each:

- put:     append all N (timed until the last one is durable);
- get+ack: read them back in batches of 100 and acknowledge each batch
           durably before the next.

Contenders (docs/benchmarks.md discusses each):

- edge-agent store: sync_every=100, acks made durable per batch (sync()).
- persist-queue SQLiteAckQueue: its defaults; it commits on every put and
  every ack (it forces auto_commit), so it cannot batch.
- persist-queue Queue (file): chunksize=100, so it fsyncs every 100 puts;
  task_done() per batch of 100 gets.
- raw SQLite: WAL, synchronous=FULL, one transaction per 100 records.
- CRC log (the floor): the least code that meets the bound: length+CRC
  frames appended, fsync every 100; reads verify CRCs and persist the read
  offset (12 bytes, overwritten in place, fsync) per batch. It creates its
  files in the timed phases and fsyncs the directory after each, as the
  store does.

Then the store alone: open time over 1M records across the 4 lanes (after
a clean close, and after a kill that left every lane's active segment
unsealed), bytes on disk per record against payload bytes, and the cost
per signal when every signal is acked at once (a healthy link), with the
segment files that made.
"""

import argparse
import os
import shutil
import sqlite3
import statistics
import struct
import sys
import tempfile
import time
import zlib

import cbor2
from rich.console import Console
from rich.table import Table

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from edge_agent.atomic_file import sync_directory  # noqa: E402
from edge_agent.core.store import READ_AHEAD, Store  # noqa: E402
from edge_agent.store_posix import PosixDir  # noqa: E402

BATCH = 100
TELEMETRY_LANE = 3


def make_signals(count):
    """Small CBOR telemetry envelopes, as the device pipeline makes them."""
    signals = []
    for seq in range(1, count + 1):
        t = 1700000000000 + seq * 1000
        envelope = {0: 1, 1: 2, 2: "pump-07", 3: seq, 4: t, 5: 3, 6: {0: [[t, "coolant_temp", 21.5 + seq % 7, 0]]}}
        signals.append(cbor2.dumps(envelope))
    return signals


def _now_ms():
    return time.monotonic_ns() // 1000000


# -- contenders: each has put(signals) and get_ack(count) -> records read --


class EdgeAgentStore:
    name = "edge-agent store"

    def __init__(self, directory):
        self.store = Store(PosixDir(directory), _now_ms(), sync_every=BATCH, sync_ms=60000, max_bytes=1 << 30)

    def put(self, signals):
        append = self.store.append
        now = _now_ms()
        for payload in signals:
            append(TELEMETRY_LANE, payload, now)
        self.store.sync()

    def get_ack(self, count):
        store = self.store
        got = 0
        while got < count:
            batch = store.read(BATCH)
            if batch is None:
                break
            got += len(batch.records)
            store.ack(batch.lane, batch.end)
            store.sync()
        return got

    def close(self):
        self.store.close()


class _PersistQueue:
    """The persist-queue contenders put alike: one call per signal."""

    def put(self, signals):
        put = self.queue.put
        for payload in signals:
            put(payload)


class PersistQueueSQLiteAck(_PersistQueue):
    name = "persist-queue SQLiteAckQueue"

    def __init__(self, directory):
        import persistqueue

        self.queue = persistqueue.SQLiteAckQueue(directory, multithreading=False)

    def get_ack(self, count):
        got = 0
        while got < count:
            items = [self.queue.get(block=False) for _ in range(min(BATCH, count - got))]
            for item in items:
                self.queue.ack(item)
            got += len(items)
        return got

    def close(self):
        self.queue.close() if hasattr(self.queue, "close") else None


class PersistQueueFile(_PersistQueue):
    name = "persist-queue Queue (file)"

    def __init__(self, directory):
        import persistqueue

        self.queue = persistqueue.Queue(directory, chunksize=BATCH)

    def get_ack(self, count):
        got = 0
        get = self.queue.get
        while got < count:
            for _ in range(min(BATCH, count - got)):
                get(block=False)
                got += 1
            for _ in range(BATCH):
                self.queue.task_done()
        return got

    def close(self):
        pass


class RawSQLite:
    name = "raw SQLite (WAL, FULL, batch 100)"

    def __init__(self, directory):
        self.db = sqlite3.connect(os.path.join(directory, "q.db"), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE q (id INTEGER PRIMARY KEY, data BLOB)")

    def put(self, signals):
        execute = self.db.execute
        for i, payload in enumerate(signals):
            if i % BATCH == 0:
                execute("BEGIN")
            execute("INSERT INTO q (data) VALUES (?)", (payload,))
            if i % BATCH == BATCH - 1:
                execute("COMMIT")
        if self.db.in_transaction:
            self.db.execute("COMMIT")

    def get_ack(self, count):
        got = 0
        while got < count:
            rows = self.db.execute("SELECT id, data FROM q ORDER BY id LIMIT ?", (BATCH,)).fetchall()
            if not rows:
                break
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM q WHERE id <= ?", (rows[-1][0],))
            self.db.execute("COMMIT")
            got += len(rows)
        return got

    def close(self):
        self.db.close()


class CrcLogFloor:
    """The floor: the least code with the same bound and no features (no
    lanes, no segments, no eviction, no recovery).

    It does the same file-system work as the store where durability needs
    it: it creates its log in the timed put and its ack file in the timed
    get+ack, and fsyncs the directory after creating each (POSIX makes a new
    name durable only that way; the store does the same for its segment and
    its ack journal). It reads READ_AHEAD bytes per batch, as the store
    does (it used to read 64 KiB for each batch of ~7 KiB)."""

    name = "CRC log, fsync per 100 (floor)"

    def __init__(self, directory):
        self.directory = directory
        self.path = os.path.join(directory, "log")
        self.log = None
        self.ack = None

    def put(self, signals):
        self.log = open(self.path, "ab", buffering=65536)
        write = self.log.write
        pack = struct.pack
        crc32 = zlib.crc32
        for i, payload in enumerate(signals):
            write(pack("<II", len(payload), crc32(payload)) + payload)
            if i % BATCH == BATCH - 1:
                self.log.flush()
                os.fsync(self.log.fileno())
                if i == BATCH - 1:
                    sync_directory(self.directory)
        self.log.flush()
        os.fsync(self.log.fileno())

    def get_ack(self, count):
        got = 0
        offset = 0
        crc32 = zlib.crc32
        unpack_from = struct.unpack_from
        self.ack = open(os.path.join(self.directory, "ack"), "wb", buffering=0)
        with open(self.path, "rb") as log:
            while got < count:
                log.seek(offset)
                data = log.read(READ_AHEAD)
                view = memoryview(data)
                pos = 0
                records = []
                while len(records) < BATCH and pos + 8 <= len(data):
                    length, crc = unpack_from("<II", data, pos)
                    end = pos + 8 + length
                    if end > len(data) or crc32(view[pos + 8 : end]) != crc:
                        break
                    records.append(bytes(view[pos + 8 : end]))
                    pos = end
                if not records:
                    break
                offset += pos
                got += len(records)
                self.ack.seek(0)
                self.ack.write(pack_ack(offset))
                os.fsync(self.ack.fileno())
                if got == len(records):
                    sync_directory(self.directory)
        return got

    def close(self):
        for f in (self.log, self.ack):
            if f is not None:
                f.close()


def pack_ack(offset):
    body = struct.pack("<Q", offset)
    return body + struct.pack("<I", zlib.crc32(body))


CONTENDERS = [EdgeAgentStore, PersistQueueSQLiteAck, PersistQueueFile, RawSQLite, CrcLogFloor]
# The fast contenders run this many times (--repeat, 9), interleaved, and
# the median counts: on a shared 2-core VM one round's ratio ranges over
# 0.6-1.2x, and a median of 5 still moved by 0.15x between runs. The
# persist-queue contenders take tens of seconds per run and differ by 40x
# or more, so once is enough for them.
REPEATED = (EdgeAgentStore, RawSQLite, CrcLogFloor)


def run_contender(cls, signals, scratch):
    directory = tempfile.mkdtemp(prefix="bench-", dir=scratch)
    try:
        contender = cls(directory)
        start = time.perf_counter()
        contender.put(signals)
        put_s = time.perf_counter() - start
        start = time.perf_counter()
        got = contender.get_ack(len(signals))
        get_s = time.perf_counter() - start
        contender.close()
        if got != len(signals):
            raise RuntimeError("%s returned %d of %d records" % (cls.name, got, len(signals)))
        return len(signals) / put_s, len(signals) / get_s
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def recovery_figures(records, scratch):
    """(open seconds after clean close, after a kill, bytes per record,
    payload bytes per record) for ``records`` spread over the four lanes."""
    directory = tempfile.mkdtemp(prefix="bench-recovery-", dir=scratch)
    try:
        signals = make_signals(1000)
        store = Store(PosixDir(directory), 0, sync_every=1000, max_bytes=1 << 34)
        payload_bytes = 0
        for i in range(records):
            payload = signals[i % 1000]
            payload_bytes += len(payload)
            store.append(i % 4, payload, 0)
        store.sync()
        # A kill: the active segments stay unsealed.
        for lane in store._lanes:
            lane.active.handle.close()
        store.fs.close()
        disk = sum(os.path.getsize(os.path.join(directory, n)) for n in os.listdir(directory) if n.endswith(".seg"))
        start = time.perf_counter()
        store = Store(PosixDir(directory), 1)
        after_kill = time.perf_counter() - start
        scanned = store.recovery.scanned
        assert store.recovery.records == records, store.recovery.summary()
        store.close()
        start = time.perf_counter()
        store = Store(PosixDir(directory), 2)
        after_close = time.perf_counter() - start
        assert store.recovery.records == records and store.recovery.scanned == 0
        store.close()
        return after_close, after_kill, scanned, disk / records, payload_bytes / records
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def prompt_ack_figures(count, scratch):
    """A receiver that acks at once (a healthy link, as in the scenario
    simulator): append, flush, read, ack, sync per signal, 64 KiB segments.
    (microseconds per signal, segment files started)."""
    directory = tempfile.mkdtemp(prefix="bench-prompt-", dir=scratch)
    try:
        store = Store(PosixDir(directory), 0, segment_bytes=64 * 1024, max_bytes=4 << 20)
        payload = make_signals(1)[0]
        start = time.perf_counter()
        for i in range(count):
            store.append(TELEMETRY_LANE, payload, i)
            store.flush()
            store.ack(TELEMETRY_LANE, store.read().end)
            store.sync()
        elapsed = time.perf_counter() - start
        segments = store.stats["segments"]
        store.close()
        return elapsed / count * 1e6, segments
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20000, help="signals per contender (default 20000)")
    parser.add_argument("--recovery-records", type=int, default=1000000, help="records for the open-time test")
    parser.add_argument("--prompt-records", type=int, default=1000, help="signals for the acked-at-once figure")
    parser.add_argument("--dir", default=None, help="scratch directory (default: the system temp dir)")
    parser.add_argument("--repeat", type=int, default=9, help="runs of the fast contenders (median counts)")
    args = parser.parse_args(argv)
    console = Console(width=120)
    signals = make_signals(args.records)
    console.print(
        "%d CBOR signals of %d-%d bytes; every contender fsyncs at least every %d records"
        % (len(signals), min(map(len, signals)), max(map(len, signals)), BATCH)
    )
    runs = {cls: [] for cls in CONTENDERS}
    for cls in CONTENDERS:
        if cls not in REPEATED:
            console.print("  running %s ..." % cls.name)
            runs[cls].append(run_contender(cls, signals, args.dir))
    for attempt in range(args.repeat):
        console.print("  running the store, raw SQLite and the floor (%d of %d) ..." % (attempt + 1, args.repeat))
        for cls in REPEATED:
            runs[cls].append(run_contender(cls, signals, args.dir))
    results = {}
    for cls, measured in runs.items():
        results[cls] = (statistics.median(m[0] for m in measured), statistics.median(m[1] for m in measured))

    ours = results[EdgeAgentStore]
    table = Table(title="Durable store: put and get+ack throughput (records/s, median of %d runs where repeated)" % args.repeat)
    table.add_column("contender")
    table.add_column("put/s", justify="right")
    table.add_column("get+ack/s", justify="right")
    table.add_column("store put ratio", justify="right")
    table.add_column("store get+ack ratio", justify="right")
    for cls in CONTENDERS:
        put, get = results[cls]
        ratio = "" if cls is EdgeAgentStore else "%.2fx" % (ours[0] / put)
        ratio_get = "" if cls is EdgeAgentStore else "%.2fx" % (ours[1] / get)
        table.add_row(cls.name, "{:,.0f}".format(put), "{:,.0f}".format(get), ratio, ratio_get)
    console.print(table)

    targets = [
        (PersistQueueSQLiteAck, 40.0, ">= 40x persist-queue SQLiteAckQueue"),
        (RawSQLite, 1.2, ">= 1.2x raw SQLite batched"),
        (CrcLogFloor, 0.8, ">= 0.8x the CRC-log floor"),
    ]
    verdicts = Table(title="Targets (ratio of medians; in brackets the lowest and highest ratio of one round)")
    verdicts.add_column("target")
    verdicts.add_column("put")
    verdicts.add_column("get+ack")
    for cls, target, label in targets:
        cells = []
        for phase in (0, 1):
            ratio = ours[phase] / results[cls][phase]
            cell = "%.2fx %s" % (ratio, "met" if ratio >= target else "MISSED")
            if cls in REPEATED:
                # Rounds are interleaved, so a round's ratio compares runs
                # made moments apart under the same load.
                rounds = [a[phase] / b[phase] for a, b in zip(runs[EdgeAgentStore], runs[cls])]
                cell += " [%.2f-%.2f]" % (min(rounds), max(rounds))
            cells.append(cell)
        verdicts.add_row(label, *cells)
    console.print(verdicts)

    console.print("  opening a store of %d records ..." % args.recovery_records)
    after_close, after_kill, scanned, disk_per_record, payload_per_record = recovery_figures(
        args.recovery_records, args.dir
    )
    figures = Table(title="Recovery and space (%d records across 4 lanes)" % args.recovery_records)
    figures.add_column("measure")
    figures.add_column("value", justify="right")
    figures.add_row("open after clean close (all sealed)", "%.3f s" % after_close)
    figures.add_row("open after a kill (%d unsealed segments scanned)" % scanned, "%.3f s" % after_kill)
    figures.add_row("payload bytes per record", "%.1f" % payload_per_record)
    figures.add_row(
        "disk bytes per record (overhead)",
        "%.1f (+%.1f%%)" % (disk_per_record, 100.0 * (disk_per_record / payload_per_record - 1)),
    )
    prompt_us, prompt_segments = prompt_ack_figures(args.prompt_records, args.dir)
    figures.add_row(
        "acked at once: append+read+ack+sync per signal (%d signals)" % args.prompt_records,
        "%.0f us, %d segment files" % (prompt_us, prompt_segments),
    )
    console.print(figures)
    console.print("target: open < 1 s: %s" % ("met" if max(after_close, after_kill) < 1.0 else "MISSED"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
