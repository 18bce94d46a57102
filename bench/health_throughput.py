"""Health engine throughput on one interpreter (run by bench/bench_health.py
under CPython and the MicroPython unix port; runs on both unchanged).

32 sensors, one component each, every rule kind declared on every sensor
and a predictor each (tests/core/health_support.py many_sensor_board).
Readings arrive round-robin, one per sensor per simulated second, healthy
with a wobble, with one sensor in 64 stuck so the state machine and triage
also work. Prints one line: ``health-throughput <impl> <readings/s engine>
<readings/s device>``.
"""

import sys

sys.path.insert(0, "tests/core")

try:
    from time import ticks_diff, ticks_ms  # MicroPython

    def elapsed_s(start):
        return ticks_diff(ticks_ms(), start) / 1000.0

    def now():
        return ticks_ms()
except ImportError:
    from time import perf_counter

    def elapsed_s(start):
        return perf_counter() - start

    def now():
        return perf_counter()

from health_support import many_sensor_board

from edge_agent.core import device as dv
from edge_agent.core import reading as rd
from edge_agent.core.health import HealthEngine
from edge_agent.core.triage import Triage

SENSORS = 32


IDS = ["s_%02d" % n for n in range(SENSORS)]


def reading(i):
    """The i-th reading, made on the fly (a list of them does not fit a
    small heap). Its cost is measured alone and subtracted."""
    n = i % SENSORS
    second = i // SENSORS
    value = 40.0 + ((second * 7 + n * 3) % 11) * 0.5
    if n == 5 and second > 100:
        value = 42.0  # stuck
    return rd.Reading(1700000000000 + second * 1000 + n, IDS[n], value)


def run_stream_only(count):
    start = now()
    for i in range(count):
        reading(i)
    return elapsed_s(start)


def run_engine(count, board):
    engine = HealthEngine(board)
    triage = Triage(board)
    start = now()
    for i in range(count):
        r = reading(i)
        for item in engine.on_reading(r):
            if getattr(item, "kind", None) == 1:
                triage.submit(item, r.time_ms)
    return elapsed_s(start)


def run_device(count, board):
    device = dv.Device(board, "bench-1")
    start = now()
    for i in range(count):
        r = reading(i)
        device.ingest(r, r.time_ms)
    return elapsed_s(start)


def main(count):
    board = many_sensor_board(SENSORS)
    base = run_stream_only(count)
    engine_rate = count / max(1e-9, run_engine(count, board) - base)
    device_rate = count / max(1e-9, run_device(count, board) - base)
    print("health-throughput %s %.0f %.0f" % (sys.implementation.name, engine_rate, device_rate))


main(int(sys.argv[1]) if len(sys.argv) > 1 else 64000)
