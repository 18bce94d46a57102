"""What one prediction estimate costs (run by bench/bench_health.py under
the MicroPython unix port; runs on CPython unchanged).

A stream that makes every estimate do all its work: 10-minute readings
rising 0.8 degC/day from day 10 under a +-3 degC daily cycle and noise,
toward a limit far off, so each estimate fits every model and walks the
whole way. After ``history + 16`` days, 20 estimates are timed at 14 and
at 28 days of history. Prints one line per history: ``predict-cost
<days> <ms per estimate>``.
"""

import math

from edge_agent.core import predict as pr

try:
    from time import ticks_diff, ticks_us  # MicroPython

    def elapsed_us(start):
        return ticks_diff(ticks_us(), start)

    def now():
        return ticks_us()
except ImportError:
    from time import perf_counter

    def elapsed_us(start):
        return (perf_counter() - start) * 1e6

    def now():
        return perf_counter()

DAY = pr.DAY_MS
ESTIMATES = 20


def feed(predictor, days):
    seed = 7
    t = 0
    while t < days * DAY:
        seed = (1103515245 * seed + 12345) % 2147483648
        d = t / DAY
        value = 50.0 + (0.8 * (d - 10) if d > 10 else 0.0) + 3.0 * math.sin(2 * math.pi * d) + (seed / 2147483648.0 - 0.5)
        predictor.add(t, value)
        t += 600000


for history in (14, 28):
    predictor = pr.Predictor(200.0, "above", 7 * DAY, history)
    feed(predictor, history + 16)
    last = predictor.bucket - 1
    start = now()
    for _ in range(ESTIMATES):
        predictor.estimate(last, last * pr.BUCKET_MS)
    print("predict-cost %d %.2f" % (history, elapsed_us(start) / ESTIMATES / 1000.0))
