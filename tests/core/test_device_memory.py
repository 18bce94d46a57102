"""Memory: a whole core Device for a 32-sensor board stays inside a stated
budget through a simulated day (measured on MicroPython with gc.mem_alloc,
the ESP32 stand-in), and does not grow from one day to the next (both
interpreters; tracemalloc on CPython).

The board is what an ESP32 product carries: 32 sensors on 16 components,
each with range, fault, stuck, jump, dropout and a threshold, and a failure
predictor (14 days of history) on 4 of them. The budget covers the Device
and everything it holds (health engine, triage, decoders, the last reading
of every sensor, telemetry between batches), not the parsed board
(configuration: 45 KB for this board, measured separately). Measured on
the 64-bit unix port: ~38 KB new, ~50 KB after a day without predictors,
~58 KB with the 4 (the budget leaves ~15% headroom); each predicted sensor
costs ~1.9 KB more (two float32 rings of history_days * 12 buckets).
Pointers and object headers are half that size on a 32-bit ESP32.
"""

import gc

from edge_agent.core import board as bd
from edge_agent.core import device as dv
from edge_agent.core import reading as rd

SENSORS = 32
PREDICTED = 4
DEVICE_BUDGET_BYTES = 66 * 1024
DAY_MS = 86400000
T0 = 1767225600000

try:
    import tracemalloc
except ImportError:
    tracemalloc = None
# A simulated day on the unix port; on CPython, where tracemalloc makes every
# allocation ten times slower and only growth is checked, two hours.
MINUTES = 1440 if tracemalloc is None else 120


def esp32_board():
    sensors = {}
    components = {}
    for i in range(SENSORS):
        component = "part_%02d" % (i // 2)
        components[component] = {"part": "P-%02d" % (i // 2)}
        sensors["s%02d" % i] = {
            "bus": "uart0", "component": component, "unit": "degC", "valid_range": [-40, 125], "period_ms": 60000,
            "rules": [{"kind": "stuck", "epsilon": 0.0, "for_s": 600}, {"kind": "jump", "max_step": 30.0},
                      {"kind": "dropout", "for_s": 300}, {"kind": "threshold", "above": 100.0, "clear": 95.0}],
        }
        if i < PREDICTED:
            sensors["s%02d" % i]["predict"] = {"above": 110.0}
    return bd.board_from_dict({"schema": 1, "board": {"name": "esp32-32", "model": "EA-E32"},
                               "buses": {"uart0": {"port": "/dev/null"}}, "components": components,
                               "sensors": sensors}, "esp32-32.toml")


def _used():
    gc.collect()
    if hasattr(gc, "mem_alloc"):
        return gc.mem_alloc()
    return tracemalloc.get_traced_memory()[0]


def _day(device, start_ms, day):
    """Every sensor reads once a minute for a day: a slow wobble, no faults."""
    t = start_ms
    for step in range(MINUTES):
        for i in range(SENSORS):
            value = 40.0 + ((step * 7 + i + day) % 13) * 0.5
            device.ingest(rd.Reading(t + i, "s%02d" % i, value), t + i)
        t += 60000
        due = device.next_deadline()
        if due is not None and due <= t:
            device.poll(t)
    return t


def _measure():
    if tracemalloc is not None:
        tracemalloc.start()
    try:
        board = esp32_board()
        before = _used()
        device = dv.Device(board, "esp32-1", telemetry_interval_ms=60000, telemetry_max_readings=64)
        new = _used() - before
        t = _day(device, T0, 0)
        device.flush(t)
        one_day = _used() - before
        t = _day(device, t, 1)
        device.flush(t)
        two_days = _used() - before
        assert device.stats["readings"] == 2 * MINUTES * SENSORS
        return new, one_day, two_days
    finally:
        if tracemalloc is not None:
            tracemalloc.stop()


def test_a_32_sensor_device_stays_in_its_budget_through_a_day():
    new, one_day, two_days = _measure()
    print("device memory: %d B new, %d B after %d min of readings, %d B after twice that" % (new, one_day, MINUTES, two_days))
    # Bounded: a second day adds nothing but objects in flight.
    assert two_days - one_day < 2048, (one_day, two_days)
    if hasattr(gc, "mem_alloc"):
        assert one_day < DEVICE_BUDGET_BYTES, one_day
        assert new > SENSORS * 600, new  # the measurement measures something: ~6 rule objects a sensor
