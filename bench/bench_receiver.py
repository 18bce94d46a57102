"""Receiver throughput from a broker backlog (issue 20): readings and
signals verified and stored per second, ours against a naive consumer.

Each round: a plaintext mosquitto (the same for every consumer); the
consumer's persistent session made first (subscribed, then gone), so the
broker queues a backlog for it: 100 Ed25519 devices' messages, either
telemetry bundles (8 signals of 100 readings each, as a gateway's uplink
bundles a backlog) or single alerts (one signal per message, as alerts
always travel). Then the consumer starts and the clock runs from its
"receiving" line until every signal is in its database (polled every
50 ms). Consumers, in interleaved rounds, medians reported:

- ours: `edge-agent receiver run` (verify, duplicates, gaps, alerts,
  durable before it acknowledges: one transaction and one sync per batch,
  synchronous=FULL);
- naive: bench/naive_receiver.py (aiomqtt + pycose + cbor2, one INSERT per
  signal and one commit per message, acknowledged on receipt), in SQLite's
  default rollback journal and in WAL mode.

On two backends: SQLite files, and a real PostgreSQL server started for the
run (simulator/fixtures/postgres.py; skipped, saying why, where it is not
installed), a fresh database per run; on PostgreSQL the naive consumer has
one variant (the server's default durability).

Also printed: the consumer process's CPU per 1,000 readings (user+system,
from /proc). Issue 20's targets on this VM: >= 1.5x the best naive variant
on both workloads, and >= 1,000,000 readings/s on SQLite.

Run: .venv/bin/python bench/bench_receiver.py [--rounds 3] [--bundles 1000] [--alerts 4000] [--backend sqlite|postgresql]
"""

import argparse
import asyncio
import logging
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import aiomqtt  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

from edge_agent.core import bundle  # noqa: E402
from edge_agent.core import signals as sg  # noqa: E402
from edge_agent.keys.identity import create_identity  # noqa: E402
from simulator.fixtures.broker import Mosquitto  # noqa: E402
from simulator.fixtures.postgres import Postgres, PostgresUnavailable  # noqa: E402

DEVICES = 100
SIGNALS_PER_BUNDLE = 8
READINGS_PER_SIGNAL = 100
T0 = 1767225600000
TARGET_RATIO = 1.5
TARGET_READINGS_PER_S = 1000000


def fleet(directory):
    identities = [create_identity(os.path.join(directory, "id-%03d" % i), "rx-bench-%03d" % i)
                  for i in range(DEVICES)]
    registry = os.path.join(directory, "devices.toml")
    with open(registry, "w") as f:
        f.write("\n".join(identity.registry_entry() for identity in identities))
    return identities, registry


def telemetry(identities, bundles):
    """(messages, signals, readings): bundles of telemetry signals."""
    messages = []
    seqs = {}
    for m in range(bundles):
        identity = identities[m % len(identities)]
        records = []
        for _ in range(SIGNALS_PER_BUNDLE):
            seq = seqs[identity.device_id] = seqs.get(identity.device_id, 0) + 1
            t = T0 + seq * 10000
            rows = [[t + r, "s%02d" % (r % 32), round(20.0 + (r % 50) * 0.37, 2), 0] for r in range(READINGS_PER_SIGNAL)]
            records.append(sg.Signal(sg.KIND_TELEMETRY, sg.PRIORITY_LOW, t, {sg.T_READINGS: rows},
                                     identity.device_id, seq).encode())
        messages.append((sg.topic(identity.device_id, sg.KIND_TELEMETRY), identity.seal(bundle.encode(records))))
    count = bundles * SIGNALS_PER_BUNDLE
    return messages, count, count * READINGS_PER_SIGNAL


def alerts(identities, count):
    messages = []
    for m in range(count):
        identity = identities[m % len(identities)]
        seq = m // len(identities) + 1
        body = {sg.A_CONDITION: "out_of_range", sg.A_COMPONENT: "pump", sg.A_SENSOR: "s01", sg.A_VALUE: 130.0,
                sg.A_SEVERITY: "critical", sg.A_TEXT: "s01 on pump reads 130 degC, outside -20 to 110",
                sg.A_ACTIVE: seq % 2 == 1, sg.A_SINCE: T0 + seq * 1000}
        signal = sg.Signal(sg.KIND_ALERT, sg.PRIORITY_HIGH, T0 + seq * 1000, body, identity.device_id, seq)
        messages.append((sg.topic(identity.device_id, sg.KIND_ALERT), identity.seal(signal.encode())))
    return messages, count, 0


async def prime(port, client_id):
    """The consumer's persistent session, subscribed, then disconnected:
    the broker queues what is published from now on for it."""
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 3600
    async with aiomqtt.Client("127.0.0.1", port, identifier=client_id, protocol=aiomqtt.ProtocolVersion.V5,
                              clean_start=False, properties=properties) as client:
        await client.subscribe("ea/v1/+/+", qos=1)


async def publish(port, messages):
    quiet = logging.getLogger("bench-receiver-publisher")  # aiomqtt warns of every pending publish
    quiet.setLevel(logging.ERROR)
    async with aiomqtt.Client("127.0.0.1", port, identifier="rx-bench-devices", max_inflight_messages=100,
                              logger=quiet) as client:
        for first in range(0, len(messages), 100):
            await asyncio.gather(*(client.publish(topic, payload, qos=1)
                                   for topic, payload in messages[first:first + 100]))


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stored(db):
    if db.startswith("postgresql://"):
        import psycopg

        try:
            with psycopg.connect(db, autocommit=True) as connection:
                return connection.execute("SELECT COUNT(*) FROM signals").fetchone()[0]
        except psycopg.errors.UndefinedTable:
            return 0
    try:
        with sqlite3.connect(db, timeout=30) as connection:
            return connection.execute("SELECT COUNT(*) FROM signals").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def consumer_argv(kind, registry, db, port, client_id):
    if kind == "ours":
        return [sys.executable, "-m", "edge_agent", "receiver", "run", "--registry", registry, "--db", db,
                "--no-live", "--no-fleet", "--group", "", "--client-id", client_id,
                "--broker", "127.0.0.1:%d" % port, "--insecure"]
    naive = [sys.executable, os.path.join(ROOT, "bench", "naive_receiver.py"), registry, db, str(port), client_id]
    return naive + (["--wal"] if kind == "naive WAL" else [])


def one_run(kind, workload, directory, identities, registry, size, round_number, postgres=None):
    """Seconds and CPU seconds for ``kind`` to store a backlog of ``workload``
    (in a fresh database on ``postgres`` when given)."""
    run_dir = os.path.join(directory, "%s-%s-%d-%s" % (kind.replace(" ", "-"), workload, round_number,
                                                      "pg" if postgres else "sqlite"))
    os.makedirs(run_dir)
    messages, signals, readings = telemetry(identities, size) if workload == "telemetry" else alerts(identities, size)
    with Mosquitto(os.path.join(run_dir, "broker")) as broker:
        client_id = "rx-bench-consumer"
        asyncio.run(prime(broker.port, client_id))
        asyncio.run(publish(broker.port, messages))
        db = postgres.create_database("bench") if postgres else os.path.join(run_dir, "rx.sqlite")
        # Its output to a file: a pipe nobody reads would fill with its log
        # lines (one per alert) and stop it.
        log_path = os.path.join(run_dir, "consumer.log")
        with open(log_path, "w") as log:
            consumer = subprocess.Popen(consumer_argv(kind, registry, db, broker.port, client_id), cwd=ROOT,
                                        stdout=log, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 60
            while True:  # its "receiving" line: subscribed, the backlog starts to flow
                with open(log_path) as f:
                    if "receiving" in f.read():
                        break
                if consumer.poll() is not None or time.monotonic() > deadline:
                    with open(log_path) as f:
                        sys.exit("bench_receiver: %s did not start receiving:\n%s" % (kind, f.read()[-3000:]))
                time.sleep(0.01)
            started = time.monotonic()
            cpu0 = cpu_s(consumer.pid)
            deadline = started + 600
            while stored(db) < signals:
                if time.monotonic() > deadline or consumer.poll() is not None:
                    sys.exit("bench_receiver: %s stored %d of %d signals" % (kind, stored(db), signals))
                time.sleep(0.05)
            elapsed = time.monotonic() - started
            cpu = cpu_s(consumer.pid) - cpu0
        finally:
            consumer.kill()
            consumer.wait()
    return elapsed, cpu, signals, readings


def measure(backend, args, directory, identities, registry, postgres=None):
    """{(workload, kind): [(seconds, cpu, signals, readings)]} on ``backend``."""
    kinds = ("ours", "naive", "naive WAL") if backend == "sqlite" else ("ours", "naive")
    results = {}
    for workload, size in (("telemetry", args.bundles), ("alerts", args.alerts)):
        for round_number in range(args.rounds):
            # Interleaved, the order turned each round: load drifts on a shared machine.
            order = kinds if round_number % 2 == 0 else tuple(reversed(kinds))
            for kind in order:
                elapsed, cpu, signals, readings = one_run(kind, workload, directory, identities, registry, size,
                                                          round_number, postgres)
                results.setdefault((workload, kind), []).append((elapsed, cpu, signals, readings))
                print("  %-10s %-9s %-9s round %d: %7.2f s, %5.2f CPU s" % (
                    backend, workload, kind, round_number + 1, elapsed, cpu), flush=True)
    return kinds, results


def report(backend, kinds, results):
    print("\n%-10s %-9s %-10s %14s %12s %22s %10s" % ("backend", "workload", "consumer", "readings/s", "signals/s",
                                                     "CPU s per 1,000 read.", "vs best"))
    naives = [kind for kind in kinds if kind != "ours"]
    for workload in ("telemetry", "alerts"):
        rates = {}
        for kind in kinds:
            runs = results[(workload, kind)]
            elapsed = statistics.median(r[0] for r in runs)
            rates[kind] = (runs[0][3] / elapsed, runs[0][2] / elapsed, statistics.median(
                r[1] for r in runs) / max(runs[0][3], 1) * 1000)
        best_naive = max(rates[kind][1] for kind in naives)
        for kind in kinds:
            readings_s, signals_s, cpu_k = rates[kind]
            print("%-10s %-9s %-10s %14s %12s %22s %9.2fx" % (
                backend, workload, kind, "{:,.0f}".format(readings_s) if readings_s else "-",
                "{:,.0f}".format(signals_s), "%.4f" % cpu_k if readings_s else "-", signals_s / best_naive))
        ratio = rates["ours"][1] / best_naive
        print("  %s %s: ours %.2fx the best naive variant (target >= %.1fx: %s)" % (
            backend, workload, ratio, TARGET_RATIO, "met" if ratio >= TARGET_RATIO else "NOT met"))
        if workload == "telemetry" and backend == "sqlite":
            print("  %s telemetry: %s readings/s (target >= %s: %s)" % (
                backend, "{:,.0f}".format(rates["ours"][0]), "{:,}".format(TARGET_READINGS_PER_S),
                "met" if rates["ours"][0] >= TARGET_READINGS_PER_S else "NOT met"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bundles", type=int, default=1000, help="telemetry bundles in the backlog")
    parser.add_argument("--alerts", type=int, default=4000, help="single alerts in the backlog")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), action="append",
                        help="only this backend (repeatable; default both)")
    args = parser.parse_args()
    backends = args.backend or ["sqlite", "postgresql"]
    reports = []
    with tempfile.TemporaryDirectory(prefix="bench-receiver-") as directory:
        identities, registry = fleet(directory)
        for backend in backends:
            if backend == "sqlite":
                reports.append(("sqlite",) + measure("sqlite", args, directory, identities, registry))
                continue
            try:
                postgres = Postgres().start()
            except PostgresUnavailable as exc:
                print("  postgresql: skipped: %s" % exc)
                continue
            try:
                reports.append(("postgresql",) + measure("postgresql", args, directory, identities, registry,
                                                         postgres))
            finally:
                postgres.stop()
    for backend, kinds, results in reports:
        report(backend, kinds, results)


if __name__ == "__main__":
    main()
