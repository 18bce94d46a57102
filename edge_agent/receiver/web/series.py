"""A device's readings for its charts, downsampled as they are read.

Readings travel in telemetry bundles (one signal: a device's readings over
its telemetry interval), stored as the device signed them (CBOR). A chart
keeps, per pixel column (bucket), the lowest and the highest reading, so
a month at 1 Hz (2.6 million readings, ~43,000 one-minute bundles) becomes
at most two points per column (chart.py says why min/max).

Decoding every bundle of a month costs seconds, so each bundle's summary
per sensor (count, first and last time, its lowest and highest reading
with their times) is kept in a bounded cache (``BundleCache``): a stored
signal never changes, so a summary never goes stale. A bundle whose
readings all fall in one bucket gives that bucket its summary's low and
high, exactly what its readings would give; one that spans several
buckets (short windows) is decoded and its readings bucketed one by one."""

from collections import OrderedDict

from edge_agent.core import cbor
from edge_agent.core import signals as sg

# A telemetry signal is dated when its bundle was made; its readings are
# older by up to the device's telemetry interval. A window's query reaches
# this far back so the first readings of the window are not lost.
BUNDLE_SPAN_MS = 10 * 60 * 1000
# Summaries kept: ~300 bytes each; 200,000 is ~60 MB, 4.6 months of one
# device's one-minute bundles, or a month of four devices.
CACHE_BUNDLES = 200_000
# Bodies fetched per query by seq (SQLite's default limit of host parameters is 999).
FETCH_CHUNK = 500


NUMBERS = (int, float)  # by type(): a bool is not a reading


def reading_rows(blob):
    """(time_ms, sensor, value) of a telemetry body's readings that can be
    drawn: a number at an integer time; a sensor fault (null) is left out
    (its alert marks it), and so is anything malformed."""
    try:
        body = cbor.loads(bytes(blob))
        rows = body.get(sg.T_READINGS) if isinstance(body, dict) else None
    except Exception:  # noqa: BLE001 (a verified device's odd body must not break the page)
        return
    for row in rows if type(rows) is list else ():
        # type() rather than isinstance: this runs per reading (millions per month-long chart)
        if type(row) is list and len(row) >= 3:
            time_ms, sensor, value = row[0], row[1], row[2]
            if type(value) in NUMBERS and type(time_ms) is int and type(sensor) is str:
                yield time_ms, sensor, value


def summarize(blob):
    """{sensor: [count, first_ms, last_ms, (t, low), (t, high)]} of one bundle."""
    summary = {}
    for time_ms, sensor, value in reading_rows(blob):
        s = summary.get(sensor)
        if s is None:
            summary[sensor] = [1, time_ms, time_ms, (time_ms, value), (time_ms, value)]
            continue
        s[0] += 1
        if time_ms < s[1]:
            s[1] = time_ms
        elif time_ms > s[2]:
            s[2] = time_ms
        if value < s[3][1]:
            s[3] = (time_ms, value)
        elif value > s[4][1]:
            s[4] = (time_ms, value)
    return summary


class BundleCache:
    """(device, seq) -> summarize(body), least recently used dropped first."""

    def __init__(self, limit=CACHE_BUNDLES):
        self.limit = limit
        self.entries = OrderedDict()

    def get(self, key):
        summary = self.entries.get(key)
        if summary is not None:
            self.entries.move_to_end(key)
        return summary

    def put(self, key, summary):
        self.entries[key] = summary
        if len(self.entries) > self.limit:
            self.entries.popitem(last=False)


class Buckets:
    """Min and max per bucket of [start_ms, end_ms] cut into ``count``."""

    def __init__(self, start_ms, end_ms, count):
        self.start_ms, self.end_ms, self.count = start_ms, end_ms, count
        self.span = max(1, end_ms - start_ms)
        self.low = {}
        self.high = {}
        self.readings = 0

    def index(self, time_ms):
        return min(self.count - 1, max(0, (time_ms - self.start_ms) * self.count // self.span))

    def add(self, time_ms, value, low=None):
        """One reading; or, with ``low``, a bundle's high (time_ms, value) and low point."""
        point = (time_ms, value)
        low = low or point
        b = self.index(time_ms)
        if b not in self.low or low[1] < self.low[b][1]:
            self.low[b] = low
        if b not in self.high or point[1] > self.high[b][1]:
            self.high[b] = point

    def points(self):
        """Each bucket's low and high, in time order (one point when they are one)."""
        out = []
        for b in sorted(self.low):
            low, high = self.low[b], self.high[b]
            if low == high:
                out.append(low)
            else:
                out.extend((low, high) if low[0] <= high[0] else (high, low))
        return out


def chart_series(storage, cache, device, bundles, start_ms, end_ms, buckets):
    """{sensor: Buckets} of ``device``'s readings in [start_ms, end_ms];
    ``bundles``: [(seq, time_ms)] of its telemetry signals (queries.History)."""
    seqs = [seq for seq, time_ms in bundles
            if start_ms - BUNDLE_SPAN_MS <= time_ms <= end_ms + BUNDLE_SPAN_MS]
    summaries = {seq: cache.get((device, seq)) for seq in seqs}
    for seq, blob in _bodies(storage, device, [seq for seq in seqs if summaries[seq] is None]):
        summaries[seq] = summarize(blob)
        cache.put((device, seq), summaries[seq])
    series = {}
    spanning = []
    for seq in seqs:
        for sensor, (count, first, last, low, high) in (summaries[seq] or {}).items():
            if last < start_ms or first > end_ms:
                continue
            chart = series.get(sensor)
            if chart is None:
                chart = series[sensor] = Buckets(start_ms, end_ms, buckets)
            if first >= start_ms and last <= end_ms and chart.index(first) == chart.index(last):
                chart.add(high[0], high[1], low)
                chart.readings += count
            else:
                spanning.append(seq)
    for _seq, blob in _bodies(storage, device, sorted(set(spanning))):
        for time_ms, sensor, value in reading_rows(blob):
            chart = series.get(sensor)
            if chart is not None and start_ms <= time_ms <= end_ms:
                chart.add(time_ms, value)
                chart.readings += 1
    return series


def readings(storage, device, start_ms, end_ms):
    """{sensor: [(time_ms, value), ...]}: every reading, undownsampled (the
    naive page of bench/bench_web.py)."""
    series = {}
    for (blob,) in storage.query(
            "SELECT body FROM signals WHERE device = ? AND kind = ? AND time_ms BETWEEN ? AND ? ORDER BY time_ms",
            (device, sg.KIND_TELEMETRY, start_ms - BUNDLE_SPAN_MS, end_ms + BUNDLE_SPAN_MS)):
        for time_ms, sensor, value in reading_rows(blob):
            if start_ms <= time_ms <= end_ms:
                series.setdefault(sensor, []).append((time_ms, value))
    for points in series.values():
        points.sort()
    return series


def _bodies(storage, device, seqs):
    for i in range(0, len(seqs), FETCH_CHUNK):
        chunk = seqs[i:i + FETCH_CHUNK]
        yield from storage.query("SELECT seq, body FROM signals WHERE device = ? AND seq IN (%s)"
                                 % ", ".join("?" * len(chunk)), (device, *chunk))
