"""The replay window's disk cost: bytes per day of the demo board's signals.

    .venv/bin/python bench/bench_window.py [--hours H]

The demo board (boards/demo-gateway.toml: coolant temperature and flow at
2 Hz, fan speed and cabinet temperature at 1 Hz, 6 readings/s) runs
through the real core Device on a virtual clock for ``--hours`` (default
6, scaled to a day: the steady state is linear, 1 h and 24 h agree within
0.2%; `--hours 24` takes ~5 min of CPU), fed its readings as line-protocol frames at each sensor's period,
values always moving (no alerts: the steady state), with the gateway's
telemetry settings (10 s interval, 200 readings a signal) and the
firmware's (10 s, 8 readings: firmware/app.py, unix_main's default).
Every signal is appended to a real store on disk (PosixDir) with a
window larger than the day, read and acknowledged as an uplink would,
and the window's bytes (segments with headers, framing and seals) are
what the day costs. Printed: bytes per day and how long each platform's
default window (store.py, firmware/app.py) holds.
"""

import argparse
import os
import shutil
import sys
import tempfile
import tomllib

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from edge_agent.core import board as bd  # noqa: E402
from edge_agent.core import device as dv  # noqa: E402
from edge_agent.core import frames as fr  # noqa: E402
from edge_agent.core import signals as sg  # noqa: E402
from edge_agent.core.store import Store  # noqa: E402
from edge_agent.gateway.store_posix import PosixDir  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOARD = os.path.join(ROOT, "boards", "demo-gateway.toml")
HOUR_MS = 3600 * 1000
# (platform, telemetry interval ms, readings per signal, segment bytes, default window bytes)
PLATFORMS = (
    ("gateway", 10000, 200, 1024 * 1024, 16 * 1024 * 1024),
    ("board", 10000, 8, 16 * 1024, 128 * 1024),
)


def values(sensor, n):
    """Always moving, always in range (the steady state: telemetry only)."""
    return {"coolant_temp": 40.0 + n % 7, "coolant_flow": 12.0 + (n % 5) * 0.1, "fan_speed": 2400 + n % 11,
            "cabinet_temp": 30.0 + (n % 3) * 0.5}[sensor]


def day_bytes(hours, interval_ms, max_readings, segment_bytes, scratch):
    """(window bytes for ``hours`` of the demo board, signals, readings)."""
    with open(BOARD, "rb") as f:
        board = bd.board_from_dict(tomllib.load(f), BOARD)
    device = dv.Device(board, "demo-gateway-1", telemetry_interval_ms=interval_ms,
                       telemetry_max_readings=max_readings)
    directory = tempfile.mkdtemp(prefix="bench-window-", dir=scratch)
    store = Store(PosixDir(directory), 0, segment_bytes=segment_bytes, max_bytes=1 << 34, window_bytes=1 << 33)
    signals = readings = 0
    periods = sorted((s.period_ms, sensor) for sensor, s in board.sensors.items())
    try:
        store.append(sg.PRIORITY_NORMAL, device.birth(0, "bench").encode(), 0)
        end = int(hours * HOUR_MS)
        for now in range(0, end, 500):  # every sensor's period is a multiple of 500 ms
            outputs = []
            for period, sensor in periods:
                if now % period == 0:
                    outputs += device.feed("uart0", fr.encode_frame(fr.READING, sensor, values(sensor, now // period)),
                                           now)
                    readings += 1
            outputs += device.poll(now)[0]
            for item in outputs:
                if isinstance(item, sg.Signal):
                    if item.seq is None:
                        device.number(item)
                    store.append(item.priority, item.encode(), now)
                    signals += 1
            if now % 60000 == 0:
                _drain(store)
        for item in device.flush(end):
            if isinstance(item, sg.Signal):
                store.append(item.priority, device.number(item).encode() if item.seq is None else item.encode(), end)
        _drain(store)
        store.close()  # seals the segments in use: all of it is the window now
        store = Store(PosixDir(directory), end, segment_bytes=segment_bytes, max_bytes=1 << 34, window_bytes=1 << 33)
        held = store.window_bytes_held()
        store.close()
        return held, signals, readings
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _drain(store):
    while True:
        batch = store.read(256)
        if batch is None:
            break
        store.ack(batch.lane, batch.end)
    store.sync()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=6.0, help="virtual hours to run, scaled to a day (default 6)")
    parser.add_argument("--dir", default=None, help="scratch directory (default: the system temp dir)")
    args = parser.parse_args(argv)
    for name, interval_ms, max_readings, segment_bytes, window in PLATFORMS:
        held, signals, readings = day_bytes(args.hours, interval_ms, max_readings, segment_bytes, args.dir)
        per_day = held * 24.0 / args.hours
        print("%-7s telemetry every %d s, <= %d readings a signal: %d readings in %d signals over %g h; window "
              "%d bytes: %.0f KiB per day (%.1f bytes a reading); the default window (%d KiB) holds %.1f h"
              % (name, interval_ms // 1000, max_readings, readings, signals, args.hours, held, per_day / 1024,
                 held / max(readings, 1), window // 1024, window / per_day * 24))
    return 0


if __name__ == "__main__":
    sys.exit(main())
