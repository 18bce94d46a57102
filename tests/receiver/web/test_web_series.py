"""Chart downsampling (edge_agent/receiver/web/series.py): each pixel
column's lowest and highest reading, the same whether the bundles come
decoded or from the cache of their summaries, checked against a brute
force over every reading, on real receiver storage (both backends)."""

import random

import pytest

from edge_agent.core import signals as sg
from edge_agent.receiver.storage import open_storage
from edge_agent.receiver.web import series

T0 = 1_790_000_000_000


def _fill(db, bundles=300, per_bundle=60, seed=5):
    """One device, two sensors, bundles of ``per_bundle`` 1 Hz readings with
    spikes; a fault (null), a bool and a malformed row mixed in."""
    rng = random.Random(seed)
    storage = open_storage(db)
    storage.begin()
    every = {"temp": [], "flow": []}
    for n in range(bundles):
        rows = []
        for i in range(per_bundle):
            t = T0 + (n * per_bundle + i) * 1000
            for sensor in every:
                value = rng.gauss(20, 2) + (50 if rng.random() < 0.002 else 0)
                rows.append([t, sensor, value, 0])
                every[sensor].append((t, value))
        rows += [[T0, "temp", None, 1], [T0, "temp", True, 0], ["x", "temp", 1.0, 0], [T0]]
        signal = sg.Signal(sg.KIND_TELEMETRY, sg.PRIORITY_LOW, rows[per_bundle * 2 - 1][0], {sg.T_READINGS: rows},
                           "dev-1", n + 1)
        storage.store_signal(signal, 0, T0)
    storage.commit()
    return storage, every


def _brute(points, start, end, count):
    low, high = {}, {}
    span = end - start
    for t, v in points:
        if start <= t <= end:
            b = min(count - 1, (t - start) * count // span)
            low[b] = min(low.get(b, v), v)
            high[b] = max(high.get(b, v), v)
    return low, high


COLUMNS = 100


# 5 h in 100 columns: 3 min a column, a bundle (1 min) inside one column mostly (its summary is used);
# 100 min: 1 min a column, most bundles across two; 10 min and 90 s: every bundle across several.
@pytest.mark.parametrize("window_s", [18_000, 6_000, 600, 90])
def test_min_and_max_per_column_match_every_reading(db_url, window_s):
    storage, every = _fill(db_url)
    try:
        end = T0 + 18_000 * 1000 - 1
        start = end - window_s * 1000
        cache = series.BundleCache()
        for attempt in ("cold", "warm"):
            bundles = storage.query("SELECT seq, time_ms FROM signals WHERE device = 'dev-1'")
            charts = series.chart_series(storage, cache, "dev-1", bundles, start, end, COLUMNS)
            assert sorted(charts) == ["flow", "temp"]
            for sensor, chart in charts.items():
                low, high = _brute(every[sensor], start, end, COLUMNS)
                points = chart.points()
                assert len(points) <= 2 * COLUMNS
                assert chart.readings == sum(1 for t, _ in every[sensor] if start <= t <= end), attempt
                assert points == sorted(points, key=lambda p: p[0]), "out of time order"
                drawn = {}
                for t, v in points:
                    drawn.setdefault(chart.index(t), []).append(v)
                assert {b: min(v) for b, v in drawn.items()} == low, (attempt, sensor)
                assert {b: max(v) for b, v in drawn.items()} == high, (attempt, sensor)
        assert len(cache.entries) > 0
    finally:
        storage.close()


def test_the_cache_is_bounded_and_drops_the_least_recently_used():
    cache = series.BundleCache(limit=2)
    cache.put(("d", 1), {})
    cache.put(("d", 2), {})
    cache.get(("d", 1))
    cache.put(("d", 3), {})
    assert list(cache.entries) == [("d", 1), ("d", 3)]
