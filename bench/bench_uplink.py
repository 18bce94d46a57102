"""Uplink benchmark: our store-draining uplink vs plain aiomqtt, side by side.

One run, one local mosquitto (loopback, plaintext for every contender, so
only the publishing strategy differs), arrivals counted by a real
subscriber in its own process:

  naive       aiomqtt QoS 1, one publish per signal, each awaited in turn
  pipelined   aiomqtt QoS 1, one publish per signal, 100 in flight
  batched     aiomqtt QoS 1, 100 signals per publish, awaited in turn
  ours        the agent's Uplink draining a durable store (fsync group
              commit) with Ed25519 signing on: alerts alone, the rest bundled

Then alert latency, from store append to subscriber, while a 100k telemetry
backlog drains: our priority lanes vs a FIFO (the same uplink with alerts
queued behind telemetry in one lane), p50/p99. And the backlog drain rate.

    .venv/bin/python bench/bench_uplink.py [--signals 20000] [--backlog 100000]
"""

import argparse
import asyncio
import logging
import multiprocessing
import os
import queue
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import aiomqtt  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from edge_agent.core import bundle, cbor, cose  # noqa: E402
from edge_agent.core import signals as sg  # noqa: E402
from edge_agent.core.store import Store  # noqa: E402
from edge_agent.keys.identity import create_identity  # noqa: E402
from edge_agent.gateway.store_posix import PosixDir  # noqa: E402
from edge_agent.broker import BrokerSettings  # noqa: E402
from edge_agent.gateway.uplink import Uplink  # noqa: E402
from simulator.fixtures.broker import Mosquitto  # noqa: E402

console = Console()


def make_signal(device, seq, kind=sg.KIND_TELEMETRY, priority=sg.PRIORITY_LOW):
    """A small telemetry signal (~60 bytes), the unit every contender sends."""
    body = {sg.T_READINGS: [[1700000000000 + seq, "coolant_temp", 21.5, 0]]}
    if kind == sg.KIND_ALERT:
        body = {sg.A_CONDITION: "out_of_range", sg.A_SENSOR: "coolant_temp", sg.A_ACTIVE: True}
    return sg.Signal(kind, priority, 1700000000000 + seq, body, device, seq).encode()


# --- the subscriber, in its own process -----------------------------------

def count_signals(payload):
    """Signals in a message: COSE-sealed or raw, single or bundled."""
    if payload[:1] in (b"\xd2", b"\xd1"):  # tags 18 and 17: COSE
        payload = cose.parse(payload).payload
    head = payload[0]
    if head >> 5 != 4:  # a map: one signal
        return 1
    # An array (a bundle or a batch): its length is in the head. Decoding
    # hundreds of signals in Python would make the subscriber the bottleneck
    # and every message, alerts too, would queue behind it.
    info = head & 0x1F
    if info < 24:
        return info
    if info == 24:
        return payload[1]
    if info == 25:
        return int.from_bytes(payload[1:3], "big")
    return int.from_bytes(payload[1:5], "big")


def subscriber_main(port, device, expected, ready, done, alert_times):
    async def run():
        async with aiomqtt.Client("127.0.0.1", port, max_queued_incoming_messages=0) as client:
            await client.subscribe("ea/v1/%s/#" % device, qos=1)
            ready.set()
            received = 0
            first = None
            async for message in client.messages:
                now = time.time()
                first = first or now
                payload = bytes(message.payload)
                topic = str(message.topic)
                if topic.endswith("/status"):  # retained online flag, not a signal
                    continue
                if topic.endswith("/alert"):
                    for signal in bundle.decode(cose.parse(payload).payload):
                        alert_times.put((signal.seq, now))
                received += count_signals(payload)
                if received >= expected:
                    done.put((received, first, now))
                    return

    try:
        asyncio.run(run())
    except Exception as exc:  # report instead of leaving the benchmark waiting
        done.put(exc)


class Subscriber:
    def __init__(self, port, device, expected):
        ctx = multiprocessing.get_context("spawn")
        self.ready = ctx.Event()
        self.done = ctx.Queue()
        self.alert_times = ctx.Queue()
        self.process = ctx.Process(target=subscriber_main,
                                   args=(port, device, expected, self.ready, self.done, self.alert_times))
        self.process.start()
        if not self.ready.wait(30):
            raise RuntimeError("subscriber did not subscribe")

    def wait(self, timeout_s=300):
        result = self.done.get(timeout=timeout_s)
        if isinstance(result, Exception):
            raise RuntimeError("subscriber failed: %r" % result)
        received, first, last = result
        self.process.join(10)
        return received, last

    def alerts(self):
        # Queue.empty() races the child's feeder thread: read until a get
        # times out instead.
        times = {}
        while True:
            try:
                seq, at = self.alert_times.get(timeout=1)
            except queue.Empty:
                return times
            times.setdefault(seq, at)


# --- the peers: plain aiomqtt -----------------------------------------------

async def peer(port, device, signals, mode):
    topic = "ea/v1/%s/telemetry" % device
    async with aiomqtt.Client("127.0.0.1", port, max_inflight_messages=100) as client:
        if mode == "naive":
            for payload in signals:
                await client.publish(topic, payload, qos=1)
        elif mode == "pipelined":
            for i in range(0, len(signals), 100):
                await asyncio.gather(*(client.publish(topic, p, qos=1) for p in signals[i:i + 100]))
        else:  # batched: 100 signals per publish
            for i in range(0, len(signals), 100):
                chunk = signals[i:i + 100]
                await client.publish(topic, cbor._head(4, len(chunk)) + b"".join(chunk), qos=1)


def run_peer(port, mode, n):
    device = "bench-%s" % mode
    signals = [make_signal(device, seq) for seq in range(1, n + 1)]
    sub = Subscriber(port, device, n)
    start = time.time()
    asyncio.run(peer(port, device, signals, mode))
    received, last = sub.wait()
    return received / (last - start)


# --- ours: the agent's uplink draining a durable store ----------------------

def fill_store(directory, device, n, first_seq=1):
    store = Store(PosixDir(directory), 0)
    for seq in range(first_seq, first_seq + n):
        store.append(sg.PRIORITY_LOW, make_signal(device, seq), 0)
    store.close()


async def drain(port, identity, directory, expected, alerts=0, alert_lane=sg.PRIORITY_CRITICAL):
    """Run the Uplink until the subscriber has everything; during the drain,
    append ``alerts`` alerts 20 ms apart. Returns {seq: append time}."""
    fs = PosixDir(directory)
    store = Store(fs, 0)
    uplink = Uplink(BrokerSettings("127.0.0.1", port), identity, store)
    task = asyncio.create_task(uplink.run())
    appended = {}
    try:
        await asyncio.wait_for(uplink.online.wait(), 30)
        seq = 10_000_000
        for _ in range(alerts):
            await asyncio.sleep(0.02)
            seq += 1
            appended[seq] = time.time()
            urgent = alert_lane <= sg.PRIORITY_HIGH
            store.append(alert_lane, make_signal(identity.device_id, seq, sg.KIND_ALERT, alert_lane), 0, urgent=urgent)
            uplink.notify()
        while uplink.published < expected + alerts:
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        store.close()
    return appended


def run_ours(port, workdir, n):
    identity = create_identity(os.path.join(workdir, "id-ours"), "bench-ours")
    directory = os.path.join(workdir, "store-ours")
    fill_store(directory, identity.device_id, n)
    sub = Subscriber(port, identity.device_id, n)
    start = time.time()
    asyncio.run(drain(port, identity, directory, n))
    received, last = sub.wait()
    return received / (last - start)


def run_latency(port, workdir, backlog, alerts, fifo):
    name = "bench-%s" % ("fifo" if fifo else "lanes")
    identity = create_identity(os.path.join(workdir, "id-" + name), name)
    directory = os.path.join(workdir, "store-" + name)
    fill_store(directory, identity.device_id, backlog)
    sub = Subscriber(port, identity.device_id, backlog + alerts)
    start = time.time()
    appended = asyncio.run(drain(port, identity, directory, backlog, alerts,
                                 alert_lane=sg.PRIORITY_LOW if fifo else sg.PRIORITY_CRITICAL))
    received, last = sub.wait()
    arrived = sub.alerts()
    latencies = sorted((arrived[s] - t) * 1000 for s, t in appended.items() if s in arrived)
    return latencies, received / (last - start)


def pct(values, p):
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main():
    # aiomqtt warns once per publish beyond its threshold in the pipelined
    # peer ("There are N pending publish calls"): expected here, not news.
    logging.getLogger("mqtt").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=20000)
    parser.add_argument("--naive-signals", type=int, default=5000,
                        help="the naive loop is slow: time it on fewer signals (rate is what is compared)")
    parser.add_argument("--backlog", type=int, default=100000)
    parser.add_argument("--alerts", type=int, default=100)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="bench-uplink-")
    broker = Mosquitto(os.path.join(workdir, "broker")).start()
    try:
        console.print("mosquitto on 127.0.0.1:%d; %d signals per contender (naive: %d)"
                      % (broker.port, args.signals, args.naive_signals))
        rates = {}
        for mode, n in (("naive", args.naive_signals), ("pipelined", args.signals), ("batched", args.signals)):
            console.print("  running %s ..." % mode)
            rates[mode] = run_peer(broker.port, mode, n)
        console.print("  running ours ...")
        rates["ours"] = run_ours(broker.port, workdir, args.signals)
        console.print("  alert latency while a %d backlog drains: priority lanes ..." % args.backlog)
        lanes, drain_rate = run_latency(broker.port, workdir, args.backlog, args.alerts, fifo=False)
        console.print("  ... and FIFO")
        fifo, _ = run_latency(broker.port, workdir, args.backlog, args.alerts, fifo=True)
    finally:
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    table = Table(title="uplink throughput (signals/s arriving at a subscriber)", title_justify="left")
    for column in ("contender", "signals/s", "ours vs it"):
        table.add_column(column, justify="right" if column != "contender" else "left")
    labels = {"naive": "aiomqtt QoS 1, one awaited publish per signal",
              "pipelined": "aiomqtt QoS 1, 100 in flight",
              "batched": "aiomqtt QoS 1, 100 signals per publish",
              "ours": "edge-agent uplink (store fsync + Ed25519)"}
    for mode in ("ours", "naive", "pipelined", "batched"):
        ratio = "" if mode == "ours" else "%.1fx" % (rates["ours"] / rates[mode])
        table.add_row(labels[mode], "{:,.0f}".format(rates[mode]), ratio)
    console.print(table)
    latency = Table(title="alert latency, store append -> subscriber, during a %d-signal backlog drain"
                    % args.backlog, title_justify="left")
    for column in ("queueing", "alerts", "p50 ms", "p99 ms", "max ms"):
        latency.add_column(column, justify="right" if column != "queueing" else "left")
    for name, values in (("edge-agent priority lanes", lanes), ("FIFO (peer)", fifo)):
        latency.add_row(name, str(len(values)), "%.1f" % pct(values, 50), "%.1f" % pct(values, 99),
                        "%.1f" % (max(values) if values else float("nan")))
    console.print(latency)
    console.print("backlog drain rate after an outage: {:,.0f} signals/s".format(drain_rate))
    target = rates["ours"] / rates["naive"]
    console.print("target >= 20x naive: %.1fx %s; alert p99 < 50 ms: %.1f ms %s" % (
        target, "met" if target >= 20 else "MISSED", pct(lanes, 99), "met" if pct(lanes, 99) < 50 else "MISSED"))


if __name__ == "__main__":
    main()
