"""Webhook throughput from the outbox (issue 22): alerts delivered per
second, ours against a naive sender.

- ours: the receiver's path: each batch of alerts routed in its
  transaction (AlertRouting: ticket + outbox row, one commit per batch of
  200, SQLite synchronous=FULL), then the WebhookSender claims due rows
  under a lease, posts them (16 in flight) with aiohttp, signs each
  (HMAC-SHA256) and marks each delivered. The clock runs from the first
  enqueue to the last row marked delivered.
- naive: what a receiver without an outbox does: in its handler, build
  the same JSON, sign it and post it inline (aiohttp, awaited, one at a
  time), nothing stored: a target down loses the alert, a crash loses
  what was in flight.

The target is aiohttp's server in a process of its own, answering 200
after a set latency: 0 ms (loopback: the senders' own cost) and 50 ms (a
service across the internet). Printed: deliveries/s (median of the rounds),
the sender process's CPU per delivery (time.process_time: the machine is
shared), and the ratio ours/naive.

Run: .venv/bin/python bench/bench_webhooks.py [--alerts 500] [--rounds 3] [--latency-ms 0 50]
"""

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from edge_agent.core import signals as sg  # noqa: E402
from edge_agent.receiver import webhooks  # noqa: E402
from edge_agent.receiver.routes import Route, Routes  # noqa: E402
from edge_agent.receiver.routing import AlertRouting  # noqa: E402
from edge_agent.receiver.storage import open_storage  # noqa: E402
from edge_agent.receiver.webhook_sender import WebhookSender  # noqa: E402
from simulator.fixtures.broker import free_port  # noqa: E402

SECRET = b"bench-secret-0123456789abcdef"
BATCH = 200  # the receiver's BATCH_MAX: alerts committed together


def _serve(port, latency_s, ready):
    async def handle(request):
        await request.read()
        if latency_s:
            await asyncio.sleep(latency_s)
        return web.Response(text="ok")

    async def main():
        app = web.Application()
        app.router.add_post("/hook", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def _alerts(count):
    body = {sg.A_CONDITION: "out_of_range", sg.A_COMPONENT: "coolant_loop", sg.A_SENSOR: "coolant_temp",
            sg.A_ACTIVE: True, sg.A_SEVERITY: "critical", sg.A_TEXT: "coolant 97.5 C above 90 C (CP-7)",
            sg.A_ACTION: "check the coolant pump", sg.A_VALUE: 97.5, sg.A_LIMITS: [5, 90], sg.A_UNIT: "C"}
    # One device per alert: each opens its own ticket, as a fleet's would.
    return [sg.Signal(sg.KIND_ALERT, 0, 1_800_000_000_000 + i, body, "bench-%05d" % i, 1) for i in range(count)]


async def ours(url, alerts, directory):
    routes = Routes([Route("bench", url, "json", SECRET, {})])
    storage = open_storage(os.path.join(directory, "ours-%d.sqlite" % time.monotonic_ns()))
    routing = AlertRouting(storage, routes)
    sender = WebhookSender(storage, routes)
    cpu, wall = time.process_time(), time.perf_counter()
    async with aiohttp.ClientSession() as session:
        for start in range(0, len(alerts), BATCH):
            storage.begin()
            now = time.time_ns() // 1_000_000
            for signal in alerts[start:start + BATCH]:
                routing.observe(signal, now)
            storage.commit()
        while sender.delivered < len(alerts):
            if not await sender.deliver_due(session):
                raise RuntimeError("rows left undelivered: %s" % storage.query("SELECT last_error FROM outbox "
                                                                              "WHERE delivered_ms IS NULL LIMIT 1"))
    result = time.perf_counter() - wall, time.process_time() - cpu
    storage.close()
    return result


async def naive(url, alerts, _directory):
    cpu, wall = time.process_time(), time.perf_counter()
    async with aiohttp.ClientSession() as session:
        for signal in alerts:
            body = webhooks.payload("json", "alert.raised", signal.device, "", webhooks.alert_fields(signal), None)
            headers = {"Content-Type": "application/json",
                       webhooks.SIGNATURE_HEADER: webhooks.sign(SECRET, body, time.time())}
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                assert response.status == 200
    return time.perf_counter() - wall, time.process_time() - cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[0, 50])
    args = parser.parse_args()
    alerts = _alerts(args.alerts)
    print("webhook throughput: %d alerts, %d rounds, medians; CPU is the sender process's" % (args.alerts, args.rounds))
    with tempfile.TemporaryDirectory() as directory:
        for latency_ms in args.latency_ms:
            port = free_port()
            ready = multiprocessing.Event()
            target = multiprocessing.Process(target=_serve, args=(port, latency_ms / 1000, ready), daemon=True)
            target.start()
            ready.wait(10)
            url = "http://127.0.0.1:%d/hook" % port
            results = {"ours (outbox)": [], "naive (inline)": []}
            try:
                for _ in range(args.rounds):  # interleaved, so load on the machine hits both alike
                    results["ours (outbox)"].append(asyncio.run(ours(url, alerts, directory)))
                    results["naive (inline)"].append(asyncio.run(naive(url, alerts, directory)))
            finally:
                target.terminate()
                target.join(5)
            rates = {}
            print("\ntarget latency %g ms:" % latency_ms)
            for name, runs in results.items():
                wall = statistics.median(run[0] for run in runs)
                cpu = statistics.median(run[1] for run in runs)
                rates[name] = args.alerts / wall
                print("  %-15s %8.0f deliveries/s  %6.0f us CPU/delivery  (%.2f s)" % (
                    name, rates[name], cpu / args.alerts * 1e6, wall))
            print("  ratio ours/naive: %.2fx" % (rates["ours (outbox)"] / rates["naive (inline)"]))


if __name__ == "__main__":
    main()
