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

- ours x2: two `receiver run` processes in one shared-subscription group
  (two persistent sessions made first: mosquitto deals the backlog out
  between them), on one PostgreSQL database; on SQLite, which is one
  receiver per file, each on a file of its own.

Also printed: CPU per 1,000 readings (telemetry) or signals (alerts), from
/proc (user+system), of the consumer process(es), of mosquitto and of the
PostgreSQL server (every process of it); and, timed in this process over
the same messages, where the receiver's own time goes: COSE and Ed25519,
decoding and checking the signals, storing (the database and the
bookkeeping). From these it names where the next bottleneck sits, and
gives each consumer's rate per CPU second (its own and its database
server's) against the best naive variant's ("by CPU"): on a machine shared
with other work, wall-clock rates follow the others' load. Issue
20's targets on this VM: >= 1.5x the best naive variant on both workloads,
and >= 1,000,000 readings/s on SQLite, per instance.

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

from edge_agent.core import bundle, cose  # noqa: E402
from edge_agent.core import signals as sg  # noqa: E402
from edge_agent.keys.identity import create_identity  # noqa: E402
from edge_agent.receiver.registry import Registry, read_signals  # noqa: E402
from edge_agent.receiver.service import BATCH_MAX, Receiver  # noqa: E402
from edge_agent.receiver.storage import open_storage  # noqa: E402
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


async def prime(port, client_id, topic_filter):
    """The consumer's persistent session, subscribed, then disconnected:
    the broker queues what is published from now on for it."""
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 3600
    async with aiomqtt.Client("127.0.0.1", port, identifier=client_id, protocol=aiomqtt.ProtocolVersion.V5,
                              clean_start=False, properties=properties) as client:
        await client.subscribe(topic_filter, qos=1)


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


def machine_cpu_s():
    """CPU seconds every core of the machine has spent busy so far (every
    process: the other work on a shared machine too)."""
    with open("/proc/stat") as f:
        fields = [int(field) for field in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def tree_cpu_s(pid):
    """CPU seconds of ``pid`` and every process under it, with the children
    they have reaped (a PostgreSQL server is a process per connection)."""
    parents = {}
    ticks = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        parents[int(entry)] = int(fields[1])
        ticks[int(entry)] = sum(int(field) for field in fields[11:15])
    total = 0
    for process in ticks:
        ancestor = process
        while ancestor not in (pid, 0, 1) and ancestor in parents:
            ancestor = parents[ancestor]
        if ancestor == pid:
            total += ticks[process]
    return total / os.sysconf("SC_CLK_TCK")


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


GROUP = "bench"


def consumer_argv(kind, registry, db, port, client_id):
    if kind.startswith("ours"):
        return [sys.executable, "-m", "edge_agent", "receiver", "run", "--registry", registry, "--db", db,
                "--no-live", "--no-fleet", "--group", GROUP if kind == "ours x2" else "", "--client-id", client_id,
                "--broker", "127.0.0.1:%d" % port, "--insecure"]
    naive = [sys.executable, os.path.join(ROOT, "bench", "naive_receiver.py"), registry, db, str(port), client_id]
    return naive + (["--wal"] if kind == "naive WAL" else [])


def one_run(kind, workload, directory, identities, registry, size, round_number, postgres=None):
    """(seconds, consumer CPU s, signals, readings, broker CPU s, database
    server CPU s, the whole machine's CPU s) for ``kind`` to store a backlog of ``workload`` (in a
    fresh database on ``postgres`` when given)."""
    run_dir = os.path.join(directory, "%s-%s-%d-%s" % (kind.replace(" ", "-"), workload, round_number,
                                                      "pg" if postgres else "sqlite"))
    os.makedirs(run_dir)
    messages, signals, readings = telemetry(identities, size) if workload == "telemetry" else alerts(identities, size)
    instances = 2 if kind == "ours x2" else 1
    topic_filter = "$share/%s/ea/v1/+/+" % GROUP if instances > 1 else "ea/v1/+/+"
    with Mosquitto(os.path.join(run_dir, "broker")) as broker:
        client_ids = ["rx-bench-consumer-%d" % i for i in range(instances)]
        for client_id in client_ids:
            asyncio.run(prime(broker.port, client_id, topic_filter))
        asyncio.run(publish(broker.port, messages))
        # SQLite is one receiver per file: two instances write a file each.
        dbs = ([postgres.create_database("bench")] * instances if postgres else
               [os.path.join(run_dir, "rx-%d.sqlite" % i) for i in range(instances)])
        consumers = []
        try:
            # Started together; the clock from the first "receiving" line
            # (subscribed: the backlog starts to flow), each one's CPU from
            # its own (its start-up is not the work measured).
            logs = []
            for client_id, db in zip(client_ids, dbs):
                logs.append(os.path.join(run_dir, "%s.log" % client_id))
                # Its output to a file: a pipe nobody reads would fill with
                # its log lines (one per alert) and stop it.
                with open(logs[-1], "w") as log:
                    consumers.append(subprocess.Popen(consumer_argv(kind, registry, db, broker.port, client_id),
                                                      cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True))
            cpu0 = {}
            deadline = time.monotonic() + 60
            while len(cpu0) < len(consumers):
                for consumer, log_path in zip(consumers, logs):
                    if consumer.pid not in cpu0 and receiving(consumer, log_path, kind, deadline):
                        cpu0[consumer.pid] = cpu_s(consumer.pid)
                        if len(cpu0) == 1:
                            started = time.monotonic()
                            broker0 = tree_cpu_s(broker.process.pid)
                            machine0 = machine_cpu_s()
                            server0 = tree_cpu_s(postgres.process.pid) if postgres else 0
                time.sleep(0.01)
            deadline = started + 600
            while sum(stored(db) for db in set(dbs)) < signals:
                if time.monotonic() > deadline or any(consumer.poll() is not None for consumer in consumers):
                    sys.exit("bench_receiver: %s stored %d of %d signals" % (
                        kind, sum(stored(db) for db in set(dbs)), signals))
                time.sleep(0.05)
            elapsed = time.monotonic() - started
            cpu = sum(cpu_s(consumer.pid) - cpu0[consumer.pid] for consumer in consumers)
            broker_cpu = tree_cpu_s(broker.process.pid) - broker0
            server_cpu = tree_cpu_s(postgres.process.pid) - server0 if postgres else 0
            machine_cpu = machine_cpu_s() - machine0
        finally:
            for consumer in consumers:
                consumer.kill()
                consumer.wait()
    return elapsed, cpu, signals, readings, broker_cpu, server_cpu, machine_cpu


def receiving(consumer, log_path, kind, deadline):
    """Whether the consumer has printed its "receiving" line; exits the
    bench, with its log, if it stopped or did not in time."""
    with open(log_path) as f:
        if "receiving" in f.read():
            return True
    if consumer.poll() is not None or time.monotonic() > deadline:
        consumer.kill()
        with open(log_path) as f:
            sys.exit("bench_receiver: %s did not start receiving:\n%s" % (kind, f.read()[-3000:]))
    return False


def measure(backend, args, directory, identities, registry, postgres=None):
    """{(workload, kind): [one_run's tuple]} on ``backend``, and
    {(workload, "split"): split()}."""
    kinds = ("ours", "ours x2", "naive", "naive WAL") if backend == "sqlite" else ("ours", "ours x2", "naive")
    results = {}
    for workload, size in (("telemetry", args.bundles), ("alerts", args.alerts)):
        for round_number in range(args.rounds):
            # Interleaved, the order turned each round: load drifts on a shared machine.
            order = kinds if round_number % 2 == 0 else tuple(reversed(kinds))
            for kind in order:
                run = one_run(kind, workload, directory, identities, registry, size, round_number, postgres)
                results.setdefault((workload, kind), []).append(run)
                print("  %-10s %-9s %-9s round %d: %7.2f s, %5.2f CPU s (broker %.2f, server %.2f; machine %.2f)" % (
                    backend, workload, kind, round_number + 1, run[0], run[1], run[4], run[5], run[6]), flush=True)
        results[(workload, "split")] = split(workload, identities, registry, size, directory, postgres)
    return kinds, results


def split(workload, identities, registry_path, size, directory, postgres=None):
    """Where the receiver's own time goes, timed in this process over the
    same messages: {part: CPU s} for COSE and Ed25519 ("verify"), decoding
    and checking the signals ("decode"), and the rest of storing them in
    batches of BATCH_MAX, commits included ("store": the database and the
    bookkeeping); "server", the PostgreSQL server's CPU meanwhile, and
    "wall", handling's wall time."""
    registry = Registry.load(registry_path)
    messages = telemetry(identities, size)[0] if workload == "telemetry" else alerts(identities, size)[0]
    began = time.process_time()
    payloads = []
    for _, data in messages:
        envelope = cose.parse(data)
        payloads.append(envelope.verify_sign1(registry.devices[envelope.kid.decode()].verify))
    verify = time.process_time() - began
    began = time.process_time()
    for payload in payloads:
        read_signals(payload)  # the receiver's own: the telemetry shortcut, else the core's path
    decode = time.process_time() - began
    db = postgres.create_database("split") if postgres else os.path.join(directory, "split-%s.sqlite" % workload)
    storage = open_storage(db)
    receiver = Receiver(None, registry, storage)
    logging.getLogger("edge_agent.receiver").setLevel(logging.ERROR)  # its alert lines: not part of the split
    server0 = tree_cpu_s(postgres.process.pid) if postgres else 0
    batches = [[aiomqtt.Message(topic, data, 1, False, mid + 1, None)
                for mid, (topic, data) in enumerate(messages[first:first + BATCH_MAX])]
               for first in range(0, len(messages), BATCH_MAX)]
    began, wall = time.process_time(), time.monotonic()
    for batch in batches:
        receiver._store_batch(batch)  # as `receiver run` stores what the broker delivered
    handled, wall = time.process_time() - began, time.monotonic() - wall
    server = tree_cpu_s(postgres.process.pid) - server0 if postgres else 0
    storage.close()
    return {"verify": verify, "decode": decode, "store": max(handled - verify - decode, 0), "server": server,
            "wall": wall}


def report(backend, kinds, results):
    print("\n%-10s %-9s %-10s %12s %10s %9s %12s   %s" % (
        "backend", "workload", "consumer", "readings/s", "signals/s", "vs best", "by CPU",
        "CPU ms per 1,000 readings (alerts: signals): consumer, broker, server"))
    naives = [kind for kind in kinds if not kind.startswith("ours")]
    for workload in ("telemetry", "alerts"):
        rates = {}
        for kind in kinds:
            runs = results[(workload, kind)]
            elapsed = statistics.median(r[0] for r in runs)
            items = runs[0][3] or runs[0][2]  # readings, or signals for alerts
            rates[kind] = (runs[0][3] / elapsed, runs[0][2] / elapsed, elapsed,
                           [statistics.median(r[i] for r in runs) for i in (1, 4, 5, 6)], items)
        best_naive = max(rates[kind][1] for kind in naives)
        # By CPU: items per CPU second of the consumer and its database
        # server, against the best naive variant's: the comparison that
        # other work on a shared machine disturbs least.
        per_cpu = dict((kind, 1 / (rates[kind][3][0] + rates[kind][3][2])) for kind in kinds)
        best_naive_cpu = max(per_cpu[kind] for kind in naives)
        for kind in kinds:
            readings_s, signals_s, _, cpus, items = rates[kind]
            print("%-10s %-9s %-10s %12s %10s %8.2fx %11.2fx   %s" % (
                backend, workload, kind, "{:,.0f}".format(readings_s) if readings_s else "-",
                "{:,.0f}".format(signals_s), signals_s / best_naive, per_cpu[kind] / best_naive_cpu,
                ", ".join("%.3f" % (cpu / items * 1e6) for cpu in cpus[:3])))
        ratio = rates["ours"][1] / best_naive
        print("  %s %s: ours %.2fx the best naive variant (target >= %.1fx: %s); 2 instances %.2fx one" % (
            backend, workload, ratio, TARGET_RATIO, "met" if ratio >= TARGET_RATIO else "NOT met",
            rates["ours x2"][1] / rates["ours"][1]))
        if workload == "telemetry" and backend == "sqlite":
            print("  %s telemetry: %s readings/s (target >= %s: %s)" % (
                backend, "{:,.0f}".format(rates["ours"][0]), "{:,}".format(TARGET_READINGS_PER_S),
                "met" if rates["ours"][0] >= TARGET_READINGS_PER_S else "NOT met"))
        parts = results[(workload, "split")]
        items = rates["ours"][4]
        extra = ""
        if backend != "sqlite":
            extra = ", server %.3f ms, wall %.3f ms" % (parts["server"] / items * 1e6, parts["wall"] / items * 1e6)
        print("  in one process, CPU per 1,000 %s: verify (COSE, Ed25519) %.3f ms, decode and checks %.3f ms, "
              "store (%s, bookkeeping) %.3f ms%s" % (
                  "readings" if workload == "telemetry" else "signals", parts["verify"] / items * 1e6,
                  parts["decode"] / items * 1e6, backend, parts["store"] / items * 1e6, extra))
        for kind in ("ours", "ours x2"):
            print("  %s: %s" % (kind, bottleneck(rates[kind], parts)))


def bottleneck(rate, parts):
    """Where the next bottleneck sits, from a run's CPU (in cores: CPU
    seconds per second of the run) and the in-process split."""
    _, _, elapsed, (consumer, broker, server, machine), _ = rate
    busy = {"receiver": consumer / elapsed, "broker": broker / elapsed}
    if server:
        busy["database server"] = server / elapsed
    busy["other work on the machine"] = max(machine - consumer - broker - server, 0) / elapsed
    own = max(("verify", "decode", "store"), key=lambda part: parts[part])
    own_share = parts[own] / max(parts["verify"] + parts["decode"] + parts["store"], 1e-9)
    total = sum(busy.values())
    cores = os.cpu_count() or 1
    busiest = max(busy, key=busy.get)
    if total >= 0.85 * cores:
        where = "the machine's %d cores (%.0f%% busy), most of it the %s" % (cores, total / cores * 100, busiest)
    elif busy[busiest] >= 0.85:
        where = "the %s (a core busy)" % busiest
    else:
        where = "waiting, not CPU (commits, round trips)"
    return "%s (in cores); next bottleneck: %s; the receiver's own largest part: %s (%.0f%%)" % (
        ", ".join("%s %.2f" % item for item in busy.items()), where, own, own_share * 100)


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
