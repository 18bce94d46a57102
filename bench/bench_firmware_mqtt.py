"""Firmware MQTT client benchmark: ours on the MicroPython unix port (the
ESP32 stand-in) and on CPython, against paho-mqtt on CPython, same workload.

One local mosquitto pair (plain TCP, and mutual TLS), loopback:

  publish rate   N messages of 64 bytes: QoS 1 one at a time (each waits
                 for its PUBACK), QoS 1 with 8 in flight, QoS 0
  heap           MicroPython free heap (gc.mem_free after collect) before
                 the client, with it, connected over TLS, steady; the
                 smallest -X heapsize that runs TLS connect + publish (peak)
  reconnects     1,000 TLS reconnects (connect, QoS 1 publish, disconnect)
                 at -X heapsize=96k and 1,000 plain ones at 64k: free heap
                 every 100, growth from the first sample after warm-up

    .venv/bin/python bench/bench_firmware_mqtt.py [--count 5000] [--reconnects 1000]
    .venv/bin/python bench/bench_firmware_mqtt.py --m32 [--reconnects 1000] [--heap 96k]

``--m32``: only the reconnects, on the 32-bit stand-in's stock interpreter
(`make micropython32`, build/micropython32/micropython-romfs, with Mbed TLS
allocating from the C heap as from the IDF heap on an ESP32), at
``--heap`` (TLS; plain runs at the same).

The unix port's select() polls objects without a file descriptor (a TLS
socket) once per millisecond, so each scheduler pass that waits on a TLS
socket costs ~1 ms there; ESP32 builds poll without that period. TLS QoS 1
rates on the unix port are therefore a floor, not the board's figure.
"""

import argparse
import asyncio
import os
import re
import ssl
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))  # mqtt_stream, which mqtt_support uses
sys.path.insert(0, os.path.join(ROOT, "tests", "firmware"))

import paho.mqtt.client as paho  # noqa: E402
from mqtt_support import Interpreter, Scenario, compile_mpy  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from simulator.fixtures.broker import Mosquitto  # noqa: E402
from simulator.fixtures.pki import DevPKI  # noqa: E402

console = Console(width=150)
WORKLOADS = (("QoS 1, one at a time", 1, 1), ("QoS 1, 8 in flight", 1, 8), ("QoS 0", 0, 1))


def run_scenario(interp, scenario, heap=None, timeout_s=600, **options):
    async def go():
        process = await Scenario.start(interp, scenario, heap=heap, **options)
        try:
            return await process.finish(timeout_s)
        finally:
            process.kill()

    return asyncio.run(go())


def ours_rate(interp, port, qos, window, count, tls):
    lines = run_scenario(interp, "throughput", heap="2048k", port=port, id="bench-ours", topic="bench/ours",
                         qos=qos, window=window, count=count, **tls)
    match = re.search(r"RATE (\d+) msg/s \d+ ms (\d+) bytes/publish", "\n".join(lines))
    return int(match.group(1)), int(match.group(2))


def paho_rate(port, qos, window, count, context):
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-paho")
    if context is not None:
        client.tls_set_context(context)
    client.max_inflight_messages_set(window)
    client.max_queued_messages_set(0)
    connected = threading.Event()
    client.on_connect = lambda *args: connected.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert connected.wait(10), "paho did not connect"
        payload = b"x" * 64
        start = time.perf_counter()
        if window == 1 and qos == 1:
            for _ in range(count):
                client.publish("bench/paho", payload, qos=1).wait_for_publish(10)
        else:
            infos = [client.publish("bench/paho", payload, qos=qos) for _ in range(count)]
            for info in infos:
                info.wait_for_publish(30)
        elapsed = time.perf_counter() - start
    finally:
        client.disconnect()
        client.loop_stop()
    return int(count / elapsed)


def heap_figures(interp, port, tls):
    lines = run_scenario(interp, "footprint", heap="96k", port=port, id="bench-heap", topic="bench/heap", **tls)
    values = {}
    for line in lines:
        match = re.match(r"FOOTPRINT (\w+) (\d+)", line)
        if match:
            values.setdefault(match.group(1), []).append(int(match.group(2)))
    return values


def smallest_heap(interp, port, tls):
    """The smallest -X heapsize (4 KB steps) that runs the footprint scenario
    (three TLS connects, 150 QoS 1 publishes of 200 bytes): the peak need."""
    low, high = 32, 128
    while high - low > 4:
        middle = (low + high) // 2 // 4 * 4
        try:
            run_scenario(interp, "footprint", heap="%dk" % middle, timeout_s=60, port=port, id="bench-peak",
                         topic="bench/peak", **tls)
            high = middle
        except AssertionError:
            low = middle
    return high


def reconnects(interp, port, count, heap, tls):
    start = time.perf_counter()
    lines = run_scenario(interp, "reconnects", heap=heap, port=port, id="bench-reconnect", topic="bench/reconnect",
                         count=count, every=100, **tls)
    elapsed = time.perf_counter() - start
    samples = [int(m.group(2)) for m in (re.match(r"HEAP (\d+) (\d+)", line) for line in lines) if m]
    return samples, elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=5000, help="messages per publish-rate run")
    parser.add_argument("--reconnects", type=int, default=1000)
    parser.add_argument("--m32", action="store_true", help="only the reconnects, on the 32-bit stand-in")
    parser.add_argument("--heap", default="96k", help="with --m32: the heap (-X heapsize) for both links")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        pki = DevPKI(os.path.join(work, "pki"))
        cert, key = pki.client("bench-device")
        for path in (pki.ca_cert, cert, key):
            pki.der(path)
        tls = {"ca": pki.ca_cert, "cert": cert, "key": key}
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=pki.ca_cert)
        context.load_cert_chain(cert, key)
        os.makedirs(os.path.join(work, "mpy"))
        mpy = compile_mpy(os.path.join(work, "mpy"))
        micropython = Interpreter("micropython", mpy)
        cpython = Interpreter("cpython", mpy)
        if args.m32:
            from edge_agent.tools import micropython32 as mp32

            binary = mp32.binary("romfs")
            if binary is None or not mp32.has_tls(binary):
                raise SystemExit("--m32: no 32-bit MicroPython with TLS in %s: build it with `make micropython32 "
                                 "MICROPYTHON_SRC=DIR` (docs/firmware.md, \"A 32-bit stand-in\")" % mp32.out_dir())
            micropython = Interpreter("micropython", mpy, binary=binary)
        with Mosquitto(os.path.join(work, "plain")) as plain, Mosquitto(os.path.join(work, "tls"), pki=pki) as secure:
            if args.m32:
                reconnect_table(micropython, args.reconnects, (("plain", plain.port, {}, args.heap),
                                                               ("TLS", secure.port, tls, args.heap)), "32-bit ")
                return
            rates = Table(title="publish rate, %d messages of 64 bytes (msg/s, loopback mosquitto)" % args.count)
            for column in ("link", "workload", "ours, MicroPython", "ours, CPython", "paho, CPython",
                           "MicroPython / paho", "bytes allocated per publish (MicroPython)"):
                rates.add_column(column, justify="right")
            for link, port, options, ctx in (("plain", plain.port, {}, None), ("TLS", secure.port, tls, context)):
                for label, qos, window in WORKLOADS:
                    console.print("  %s, %s ..." % (link, label))
                    mp_rate, garbage = ours_rate(micropython, port, qos, window, args.count, options)
                    cp_rate, _ = ours_rate(cpython, port, qos, window, args.count, options)
                    peer = paho_rate(port, qos, window, args.count, ctx)
                    rates.add_row(link, label, "{:,}".format(mp_rate), "{:,}".format(cp_rate), "{:,}".format(peer),
                                  "%.2fx" % (mp_rate / peer), "{:,}".format(garbage))
            console.print(rates)

            console.print("  heap footprint and peak (TLS) ...")
            heap = heap_figures(micropython, secure.port, tls)
            peak = smallest_heap(micropython, secure.port, tls)
            client_bytes = heap["start"][0] - heap["client"][0]
            connected_bytes = heap["client"][0] - min(heap["connected"])
            console.print("MicroPython heap (-X heapsize=96k, TLS, max_packet=2048): the client object with its TLS "
                          "context {:,} B; a TLS connection {:,} B more; free after 3 connect/publish/disconnect rounds "
                          "{:,} -> {:,} B (steady); smallest heap that runs it: {} KB (mqtt_as: 27.4 KB free on "
                          "ESP8266 with the module frozen)".format(client_bytes, connected_bytes,
                                                                   heap["disconnected"][0], heap["disconnected"][-1],
                                                                   peak))

            reconnect_table(micropython, args.reconnects, (("plain", plain.port, {}, "64k"),
                                                           ("TLS", secure.port, tls, "96k")))


def reconnect_table(micropython, count, links, label=""):
    table = Table(title="%d reconnects on %sMicroPython (connect, QoS 1 publish, disconnect)" % (count, label))
    for column in ("link", "heap", "free after 100", "free at the end", "heap lost", "ms per reconnect"):
        table.add_column(column, justify="right")
    for link, port, options, size in links:
        console.print("  %d %s reconnects ..." % (count, link))
        samples, elapsed = reconnects(micropython, port, count, size, options)
        table.add_row(link, size, "{:,}".format(samples[1]), "{:,}".format(samples[-1]),
                      "{:+,} B".format(samples[1] - samples[-1]), "%.1f" % (elapsed * 1000 / count))
        console.print("    free heap every 100: %s" % samples)
    console.print(table)


if __name__ == "__main__":
    main()
