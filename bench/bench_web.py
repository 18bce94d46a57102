"""The fleet web view's page load times (issue 22): the fleet page with
1,000 devices, and a device page over 30 days of 1 Hz readings (2,592,000
readings of one sensor), whose chart downsamples to min/max per pixel
column (edge_agent/receiver/web/chart.py), against a naive page that draws
every reading.

The database is a SQLite receiver database filled through the receiver's
storage (store_signal, as the receiver stores verified signals; signing
and verifying are the receiver bench's subject, not this one): each device
a birth, telemetry bundles of 60 readings (a minute at 1 Hz), and for one
device in ten an active alert, for one in twenty a quarantined component.

Measured, medians of --rounds:
- server work per page (the handler's queries and HTML), in CPU time of
  this process (time.process_time: the machine is shared);
- the page over HTTP from `edge-agent receiver web` (a process of its own)
  in wall time, and its size.
- where Debian's chromium is installed, the browser's own page load time
  (headless Chromium, from navigation start to the second animation frame
  after the load event: the page laid out and painted): the view's pages
  from the server, the naive page from a file.
The naive device page is measured once (it takes long).

Run: .venv/bin/python bench/bench_web.py [--devices 1000] [--days 30] [--rounds 3]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from edge_agent.core import signals as sg  # noqa: E402
from edge_agent.receiver.storage import Storage  # noqa: E402
from edge_agent.receiver.web import pages, queries, routes, series  # noqa: E402
from simulator.fixtures import browser  # noqa: E402
from simulator.fixtures.web_view import serve_view  # noqa: E402

T0 = 1767225600000  # 2026-01-01
BUNDLE = 60
TOKEN = "bench-" + "t" * 32
CHART_DEVICE = "bench-0000"


def fill(path, devices, days):
    storage = Storage(path, durable=False)
    storage.begin()
    seqs = {}

    def store(device, kind, time_ms, body, priority=sg.PRIORITY_NORMAL):
        seqs[device] = seqs.get(device, 0) + 1
        storage.store_signal(sg.Signal(kind, priority, time_ms, body, device, seqs[device]), 0, time_ms)
        storage.seen(device, time_ms)

    for n in range(devices):
        device = "bench-%04d" % n
        store(device, sg.KIND_BIRTH, T0, {sg.B_AGENT: "edge-agent 0.1.0", sg.B_MODEL: "EA-BENCH-%d" % (n % 3),
                                          sg.B_BOARD: "bench", sg.B_FORMAT: 1})
        for minute in range(10):
            start = T0 + minute * 60_000
            store(device, sg.KIND_TELEMETRY, start + 59_000,
                  {sg.T_READINGS: [[start + i * 1000, "temp", 20.0 + (i % 10) * 0.1, 0] for i in range(BUNDLE)]},
                  sg.PRIORITY_LOW)
        if n % 10 == 0:
            store(device, sg.KIND_ALERT, T0 + 300_000, {
                sg.A_CONDITION: "out_of_range", sg.A_COMPONENT: "pump", sg.A_SENSOR: "temp", sg.A_VALUE: 99.0,
                sg.A_LIMITS: [0.0, 90.0], sg.A_SEVERITY: "critical", sg.A_TEXT: "temp over 90", sg.A_ACTIVE: True},
                sg.PRIORITY_CRITICAL)
        if n % 20 == 0:
            store(device, sg.KIND_STATE, T0 + 400_000, {sg.S_COMPONENT: "fan", sg.S_FROM: "healthy",
                                                        sg.S_TO: "quarantined", sg.S_EVENT: "stuck"})
    # The chart device: 30 days at 1 Hz after its first ten minutes, a daily cycle and a slow drift.
    start = T0 + 600_000
    for bundle in range(days * 86400 // BUNDLE):
        first = start + bundle * BUNDLE * 1000
        rows = [[first + i * 1000, "temp", 20.0 + ((first // 1000 + i) % 86400) / 8640.0 + bundle * 1e-4, 0]
                for i in range(BUNDLE)]
        store(CHART_DEVICE, sg.KIND_TELEMETRY, rows[-1][0], {sg.T_READINGS: rows}, sg.PRIORITY_LOW)
        if bundle % 5000 == 4999:
            storage.commit()
            storage.begin()
    storage.commit()
    return storage


def cpu(function, *args):
    started = time.process_time()
    result = function(*args)
    return time.process_time() - started, result


def fleet_page(storage):
    rows = queries.fleet(storage)
    return pages.page("fleet", pages.fleet(pages.sort_fleet(rows, "device", False), len(rows), "", "", "device",
                                           False), "fleet")


def device_page(storage, cache):
    """The view's device page: ``cache`` a fresh BundleCache (cold: every bundle decoded) or a used one (warm)."""
    info, span, charts, alerts, timeline, audit, tickets = routes.device_data(storage, CHART_DEVICE, "30d", cache)
    return pages.page("device", pages.device_page(CHART_DEVICE, info, "30d", span, charts, alerts, timeline, audit,
                                                  tickets), "device")


def naive_device_page(storage):
    """The same page drawing every reading: no downsampling, no cache."""
    info, span, _, alerts, timeline, audit, tickets = routes.device_data(storage, CHART_DEVICE, "30d",
                                                                          series.BundleCache())
    every = {sensor: (len(points), points) for sensor, points in series.readings(storage, CHART_DEVICE, *span).items()}
    return pages.page("device", pages.device_page(CHART_DEVICE, info, "30d", span, every, alerts, timeline, audit,
                                                  tickets), "device")


def http(url):
    request = urllib.request.Request(url, headers={"Authorization": "Bearer " + TOKEN})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as response:
        size = len(response.read())
    return time.perf_counter() - started, size


def browser_loads(base, naive_file, rounds):
    """{page: median load ms} in headless Chromium, or the reason it cannot run."""
    try:
        driver = browser.chromium()
    except browser.BrowserUnavailable as exc:
        return str(exc)
    try:
        from selenium.webdriver.common.by import By

        driver.set_page_load_timeout(900)
        driver.set_script_timeout(900)
        driver.get(base + "/login")
        driver.find_element(By.ID, "token").send_keys(TOKEN)
        driver.find_element(By.ID, "login").click()
        pages_ms = {"fleet": [browser.load_ms(driver, base + "/") for _ in range(rounds)],
                    "device": [browser.load_ms(driver, base + "/device/%s?window=30d" % CHART_DEVICE)
                               for _ in range(rounds)],
                    "naive": [browser.load_ms(driver, "file://" + naive_file)]}
        return {page: statistics.median(values) for page, values in pages_ms.items()}
    finally:
        driver.quit()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench-web-")
    db = os.path.join(work, "receiver.sqlite")
    started = time.monotonic()
    storage = fill(db, args.devices, args.days)
    readings = storage.query("SELECT COUNT(*) FROM signals WHERE device = ? AND kind = ?",
                             (CHART_DEVICE, sg.KIND_TELEMETRY))[0][0] * BUNDLE
    print("database: %d devices, %s readings of %s over %d days (filled in %.0f s)"
          % (args.devices, format(readings, ","), CHART_DEVICE, args.days, time.monotonic() - started))

    fleet_cpu = [cpu(fleet_page, storage)[0] for _ in range(args.rounds)]
    cold_cpu = [cpu(device_page, storage, series.BundleCache())[0] for _ in range(args.rounds)]
    warm = series.BundleCache()
    device_page(storage, warm)
    warm_cpu = [cpu(device_page, storage, warm)[0] for _ in range(args.rounds)]
    naive_cpu, naive_html = cpu(naive_device_page, storage)
    storage.close()

    web, base = serve_view(db, TOKEN, os.path.join(work, "token"), timeout_s=60)
    try:
        fleet_http = [http(base + "/") for _ in range(args.rounds)]
        # The first load decodes every bundle; the next ones find their summaries cached.
        device_http = [http(base + "/device/%s?window=30d" % CHART_DEVICE) for _ in range(args.rounds + 1)]
        naive_file = os.path.join(work, "naive.html")
        with open(naive_file, "w") as f:
            f.write(naive_html)
        in_browser = browser_loads(base, naive_file, args.rounds)
    finally:
        web.stop()

    def median(values):
        return statistics.median(values)

    print("fleet page, %d devices: server CPU %.3f s, over HTTP %.3f s, %s bytes"
          % (args.devices, median(fleet_cpu), median(t for t, _ in fleet_http), format(fleet_http[0][1], ",")))
    print("device page, %d days at 1 Hz, downsampled: server CPU %.3f s first load (cold cache), %.3f s after; "
          "over HTTP %.3f s first, %.3f s after; %s bytes"
          % (args.days, median(cold_cpu), median(warm_cpu), device_http[0][0],
             median(t for t, _ in device_http[1:]), format(device_http[0][1], ",")))
    print("device page, naive (every reading drawn): server CPU %.3f s, %s bytes"
          % (naive_cpu, format(len(naive_html.encode()), ",")))
    print("naive / downsampled: server CPU %.1fx (first load), %.0fx (cached); page size %.0fx"
          % (naive_cpu / median(cold_cpu), naive_cpu / median(warm_cpu), len(naive_html.encode()) / device_http[0][1]))
    if isinstance(in_browser, str):
        print("in the browser: not measured (%s)" % in_browser)
    else:
        print("in the browser (headless Chromium, loaded and painted): fleet %.0f ms, device page (cached) %.0f ms, "
              "naive device page %.0f ms (%.0fx)" % (in_browser["fleet"], in_browser["device"], in_browser["naive"],
                                                     in_browser["naive"] / in_browser["device"]))


if __name__ == "__main__":
    main()
