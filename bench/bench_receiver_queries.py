"""Time-range queries on the receiver's database at a year of data (issue 20).

Generates a fleet's year of telemetry in the receiver's own schema (the
storage creates the tables, so the (device, time_ms) index is the one the
receiver ships), then times ``storage.signals_between``: one device's
telemetry over an hour, a day, a week, a 30-day month and the whole year,
for random devices and start times, on SQLite and on PostgreSQL (a real
server started for the run).

The dataset: each device sends one telemetry signal an hour holding 6
readings (a reading every 10 minutes): 8,760 signals and 52,560 readings a
device-year. Rows are inserted hour by hour across the fleet, the order
they arrive in, so a device's rows are spread over the whole table as they
would be. Bodies are canonical CBOR as a device signs them (~150 bytes).
The envelopes table is left empty: the query never reads it. Loading skips
the per-commit sync (a generated dataset, nothing acknowledged on it).

Run: .venv/bin/python bench/bench_receiver_queries.py [--devices N ...] [--days 365] [--queries 200]
     [--backend sqlite|postgresql]   (about 15 minutes and 3 GB of temporary disk at the defaults)
Latencies are wall time with the data in the page cache (this machine has
the memory for it), medians and 95th percentiles of ``--queries`` queries.
"""

import argparse
import os
import random
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import cbor2  # noqa: E402  (C encoder: the core's codec would take minutes for 50M readings)

from edge_agent.core import signals as sg  # noqa: E402
from edge_agent.receiver.storage import open_storage  # noqa: E402
from edge_agent.receiver.storage_sql import SIGNALS_BETWEEN  # noqa: E402
from simulator.fixtures.postgres import Postgres, PostgresUnavailable  # noqa: E402

T0 = 1767225600000  # 2026-01-01
HOUR_MS = 3600 * 1000
READINGS_PER_SIGNAL = 6
SENSORS = 4
RANGES = (("hour", HOUR_MS), ("day", 24 * HOUR_MS), ("week", 7 * 24 * HOUR_MS), ("month", 30 * 24 * HOUR_MS),
          ("year", 365 * 24 * HOUR_MS))
LOAD_BATCH = 50000


def device_name(i):
    return "q-%04d" % i


def rows(devices, hours):
    """(device, seq, kind, priority, time_ms, received_ms, body, envelope)
    rows, hour by hour across the fleet."""
    for hour in range(hours):
        t = T0 + hour * HOUR_MS
        for i in range(devices):
            readings = [[t + r * 600000, "s%d" % (r % SENSORS), round(20.0 + ((i + hour + r) % 97) * 0.13, 2), 0]
                        for r in range(READINGS_PER_SIGNAL)]
            yield (device_name(i), hour + 1, sg.KIND_TELEMETRY, sg.PRIORITY_LOW, t, t + 1500,
                   cbor2.dumps({sg.T_READINGS: readings}, canonical=True), 0)


def load_sqlite(path, devices, hours):
    storage = open_storage(path)
    db = storage.db
    db.execute("PRAGMA synchronous=OFF")  # generated data: no acknowledgement depends on it
    db.execute("PRAGMA cache_size=-262144")  # 256 MiB: a device's insertion points stay cached
    batch = []
    for row in rows(devices, hours):
        batch.append(row)
        if len(batch) == LOAD_BATCH:
            _sqlite_insert(db, batch)
            batch = []
    if batch:
        _sqlite_insert(db, batch)
    db.execute("ANALYZE")
    storage.close()
    return os.path.getsize(path)


def _sqlite_insert(db, batch):
    db.execute("BEGIN")
    db.executemany("INSERT INTO signals VALUES (?, ?, ?, ?, ?, ?, ?, ?)", batch)
    db.execute("COMMIT")


def load_postgres(url, devices, hours):
    storage = open_storage(url)
    db = storage.db
    db.execute("SET synchronous_commit = off")  # generated data: no acknowledgement depends on it
    with db.cursor() as cursor:
        with cursor.copy("COPY signals (device, seq, kind, priority, time_ms, received_ms, body, envelope) "
                         "FROM STDIN") as copy:
            for row in rows(devices, hours):
                copy.write_row(row)
    db.execute("VACUUM ANALYZE signals")
    size = db.execute("SELECT pg_total_relation_size('signals')").fetchone()[0]
    storage.close()
    return size


def measure(storage, devices, hours, queries, seed=20):
    """{range name: (median ms, p95 ms, rows per query)}."""
    rng = random.Random(seed)
    results = {}
    for name, span in RANGES:
        span = min(span, hours * HOUR_MS)
        latencies = []
        counts = []
        for _ in range(queries):
            device = device_name(rng.randrange(devices))
            start = T0 + rng.randrange(0, hours * HOUR_MS - span + 1, HOUR_MS)
            began = time.perf_counter()
            found = storage.signals_between(device, start, start + span)
            latencies.append((time.perf_counter() - began) * 1000)
            counts.append(len(found))
        latencies.sort()
        results[name] = (statistics.median(latencies), latencies[int(len(latencies) * 0.95) - 1],
                         statistics.median(counts))
    return results


def plan(storage, backend):
    """The query plan of a day's query, one line."""
    params = (device_name(0), T0, T0 + 24 * HOUR_MS, sg.KIND_TELEMETRY)
    prefix = "EXPLAIN QUERY PLAN " if backend == "sqlite" else "EXPLAIN "
    return " | ".join(" ".join(str(c) for c in row) for row in storage.query(prefix + SIGNALS_BETWEEN, params))


def run(backend, devices, args, directory, postgres):
    hours = args.days * 24
    began = time.monotonic()
    if backend == "sqlite":
        db = os.path.join(directory, "year-%d.sqlite" % devices)
        size = load_sqlite(db, devices, hours)
    else:
        db = postgres.create_database("year")
        size = load_postgres(db, devices, hours)
    loaded = time.monotonic() - began
    storage = open_storage(db)
    try:
        measure(storage, devices, hours, max(args.queries // 10, 5))  # warm the cache
        results = measure(storage, devices, hours, args.queries)
        shown_plan = plan(storage, backend)
    finally:
        storage.close()
    if backend == "sqlite":
        os.remove(db)
    print("\n%s, %d devices x %d days: %s signals, %s readings, %.1f GB, loaded in %.0f s" % (
        backend, devices, args.days, "{:,}".format(devices * hours),
        "{:,}".format(devices * hours * READINGS_PER_SIGNAL), size / 1e9, loaded), flush=True)
    print("  plan: %s" % shown_plan)
    print("  %-6s %10s %14s %12s %12s" % ("range", "signals", "readings", "median ms", "p95 ms"))
    for name, _ in RANGES:
        median, p95, count = results[name]
        print("  %-6s %10s %14s %12.2f %12.2f" % (name, "{:,.0f}".format(count),
                                                 "{:,.0f}".format(count * READINGS_PER_SIGNAL), median, p95),
              flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, action="append",
                        help="fleet size (repeatable; default 100 and 1000: the size's effect, and the full fleet)")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--queries", type=int, default=200, help="queries per range")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), action="append",
                        help="only this backend (repeatable; default both)")
    args = parser.parse_args()
    sizes = args.devices or [100, 1000]
    backends = args.backend or ["sqlite", "postgresql"]
    print("%d readings a signal, one signal per device-hour; %d queries per range" % (
        READINGS_PER_SIGNAL, args.queries))
    with tempfile.TemporaryDirectory(prefix="bench-rx-queries-") as directory:
        for backend in backends:
            postgres = None
            if backend == "postgresql":
                try:
                    postgres = Postgres().start()
                except PostgresUnavailable as exc:
                    print("postgresql: skipped: %s" % exc)
                    continue
            try:
                for devices in sizes:
                    run(backend, devices, args, directory, postgres)
            finally:
                if postgres is not None:
                    postgres.stop()


if __name__ == "__main__":
    main()
