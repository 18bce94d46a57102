"""The peer for bench/bench_prediction.py: edge_agent/core/predict.py as it was at
5c29ccd (before issue 18), verbatim below this docstring: a linear fit through
daily block means, the crossing of the mean curve plus the largest peak, and
an interval from the slope's 99% bounds."""

from array import array

DAY_MS = 86400000
# Readings fold into 2-hour buckets: 12 a day still resolve a daily cycle's
# peak, and 14 days of them cost 168 floats per array (half of hourly).
BUCKETS_PER_DAY = 12
BUCKET_MS = DAY_MS // BUCKETS_PER_DAY
# A day needs 9 of its 12 buckets: a few missing hours (a dropout, a reboot)
# do not lose the day, but a mostly-empty day would bias its mean.
MIN_BUCKETS_PER_BLOCK = 9
# Fewer than 4 days cannot tell a trend from a warm week.
MIN_BLOCKS = 4
# The short fit's window: the last week; it is consulted only when the
# whole history puts the crossing within this many horizons (1.5: a week's
# slope decides the last days, not the alert's first weeks).
SHORT_BLOCKS = 7
SHORT_GATE = 1.5
# Raise after 3 consecutive estimates (6 hours) within the horizon; clear
# after 36 without (3 days): a warm afternoon cannot raise it, and a cool
# spell in the middle of real wear does not withdraw it (it would only come
# back a few days later, as a second page for the same wear).
CONFIRM_ESTIMATES = 3
CLEAR_ESTIMATES = 36
# One-sided 99% Student t quantiles by degrees of freedom (n blocks - 2).
T99 = (0.0, 31.82, 6.965, 4.541, 3.747, 3.365, 3.143, 2.998, 2.896, 2.821, 2.764, 2.718, 2.681)

_NAN = float("nan")


class Forecast:
    """One estimate. Times in ms since epoch: expected, earliest and latest
    crossing (from the slope's 99% interval)."""

    __slots__ = ("crossing_ms", "early_ms", "late_ms", "threshold", "level", "slope_per_day", "direction")

    def __init__(self, crossing_ms, early_ms, late_ms, threshold, level, slope_per_day, direction):
        self.crossing_ms = crossing_ms
        self.early_ms = early_ms
        self.late_ms = late_ms
        self.threshold = threshold
        self.level = level
        self.slope_per_day = slope_per_day
        self.direction = direction  # "above" or "below"

    def __repr__(self):
        return "Forecast(%s %s at %d, level %.3g, slope %.3g/d)" % (
            self.direction, self.threshold, self.crossing_ms, self.level, self.slope_per_day)


class Predictor:
    """Watches one sensor against one limit (``above`` or ``below``)."""

    __slots__ = (
        "threshold", "direction", "horizon_ms", "slots", "means", "peaks", "origin", "t0_ms", "bucket",
        "n", "mean", "peak", "streak", "quiet", "active", "last", "evaluations",
    )

    def __init__(self, threshold, direction, horizon_ms, history_days):
        self.threshold = threshold
        self.direction = direction  # "above": the peak is the max; "below": the min
        self.horizon_ms = horizon_ms
        self.slots = history_days * BUCKETS_PER_DAY
        self.means = array("f", [_NAN] * self.slots)
        self.peaks = array("f", [_NAN] * self.slots)
        self.origin = None  # first value: everything is stored relative to it
        self.t0_ms = None
        self.bucket = 0  # index of the bucket being accumulated, since t0
        self.n = 0
        self.mean = 0.0
        self.peak = 0.0
        self.streak = 0  # consecutive estimates meeting the condition
        self.quiet = 0  # consecutive estimates clearly not meeting it
        self.active = False
        self.last = None  # the latest Forecast meeting the condition
        self.evaluations = 0

    def add(self, time_ms, value):
        """Fold one good reading in. Returns None, or "raise"/"clear" when
        the predicted-failure condition changes (``self.last`` holds the
        forecast behind a raise)."""
        if self.t0_ms is None:
            self.t0_ms = time_ms
            self.origin = value
        bucket = (time_ms - self.t0_ms) // BUCKET_MS
        change = None
        if bucket > self.bucket:
            change = self._close(bucket, time_ms)
        elif bucket < self.bucket:
            return None  # the clock went back: ignore rather than corrupt a bucket
        v = value - self.origin
        self.n += 1
        self.mean += (v - self.mean) / self.n
        if self.n == 1 or (v > self.peak if self.direction == "above" else v < self.peak):
            self.peak = v
        return change

    def _close(self, new_bucket, now_ms):
        slots = self.slots
        if self.n:
            self.means[self.bucket % slots] = self.mean
            self.peaks[self.bucket % slots] = self.peak
        else:
            self.means[self.bucket % slots] = _NAN
            self.peaks[self.bucket % slots] = _NAN
        # Buckets with no reading at all (a gap) are unknown, not zero.
        gap_end = min(new_bucket, self.bucket + 1 + slots)
        for h in range(self.bucket + 1, gap_end):
            self.means[h % slots] = _NAN
            self.peaks[h % slots] = _NAN
        last_closed = self.bucket
        self.bucket = new_bucket
        self.n = 0
        self.mean = 0.0
        self.peak = 0.0
        if new_bucket - last_closed > 1:
            return self._judge(None, now_ms)  # the newest buckets are missing: no estimate
        return self._judge(self.estimate(last_closed, now_ms), now_ms)

    def estimate(self, last, now_ms):
        """Fit the days ending with bucket ``last``; return a Forecast when
        the trend is confident and heads for the limit, else None."""
        self.evaluations += 1
        slots = self.slots
        per_day = BUCKETS_PER_DAY
        xs = []
        ys = []
        oldest = []  # first bucket of each block used
        for j in range(slots // per_day):
            first = last - per_day * (j + 1) + 1
            total = 0.0
            count = 0
            for h in range(max(0, first), last - per_day * j + 1):
                m = self.means[h % slots]
                if m == m:  # not NaN
                    total += m
                    count += 1
            if count >= MIN_BUCKETS_PER_BLOCK:
                xs.append(-(j + 0.5))  # block centre, days before now
                ys.append(total / count)
                oldest.append(first)
        if len(xs) < MIN_BLOCKS:
            return None
        # Two fits: the whole history decides whether there is a trend (it
        # does not mistake a warm week for one); the last week, if it is
        # confident too, may bring the crossing closer (it reacts to wear
        # that sped up). A week that is not confident changes nothing: a
        # cool spell in the middle of real wear must not withdraw the alert.
        # The week may only speak once the whole history already sees the
        # crossing within 1.5 horizons: on its own, a warm-up of the weather
        # (two days from cold to warm is +3 degC on a bearing) looks like
        # steep, confident wear and raised the alert weeks early (the
        # library's bearing_wear.toml: a week's slope of 1.35 degC/day for
        # 0.5 of real wear, 29 days ahead of a 7-day horizon).
        best = self._fit(xs, ys, oldest[-1], last, now_ms)
        if best is not None and len(xs) > SHORT_BLOCKS + 1 and best.crossing_ms - now_ms <= SHORT_GATE * self.horizon_ms:
            k = SHORT_BLOCKS
            short = self._fit(xs[:k], ys[:k], oldest[k - 1], last, now_ms)
            if short is not None and short.crossing_ms < best.crossing_ms:
                best = short
        return best

    def _fit(self, xs, ys, first, last, now_ms):
        above = self.direction == "above"
        n = len(xs)
        xbar = sum(xs) / n
        ybar = sum(ys) / n
        sxx = 0.0
        sxy = 0.0
        for i in range(n):
            dx = xs[i] - xbar
            sxx += dx * dx
            sxy += dx * (ys[i] - ybar)
        slope = sxy / sxx
        level = ybar - slope * xbar  # the trend's value now (x = 0)
        rss = 0.0
        for i in range(n):
            r = ys[i] - level - slope * xs[i]
            rss += r * r
        se = (rss / (n - 2) / sxx) ** 0.5
        t = T99[n - 2] if n - 2 < len(T99) else T99[-1]
        toward = slope if above else -slope  # positive: heading for the limit
        # How far the readings reach beyond the trend: the largest peak above
        # it (below it, for a lower limit) in the window. Measured against
        # the trend line, not the day's mean, so a rising day's late peak is
        # not counted twice.
        excursion = 0.0
        for h in range(max(0, first), last + 1):
            p = self.peaks[h % self.slots]
            if p != p:
                continue
            trend = level + slope * (h - last - 0.5) / BUCKETS_PER_DAY
            swing = p - trend if above else trend - p
            if swing > excursion:
                excursion = swing
        peak_level = level + excursion if above else level - excursion
        distance = (self.threshold - self.origin - peak_level) if above else (peak_level - (self.threshold - self.origin))
        if distance <= 0:
            # The peaks already reach the limit: the crossing is now (the
            # threshold rules speak for the readings; the prediction stays).
            return Forecast(now_ms, now_ms, now_ms, self.threshold, peak_level + self.origin, slope, self.direction)
        if toward - t * se <= 0:
            return None
        days = distance / toward
        early = distance / (toward + t * se)
        late = distance / (toward - t * se)
        return Forecast(
            now_ms + int(days * DAY_MS),
            now_ms + int(early * DAY_MS),
            now_ms + int(late * DAY_MS),
            self.threshold,
            peak_level + self.origin,
            slope,
            self.direction,
        )

    def _judge(self, forecast, now_ms):
        # Judged against the horizon plus the confirmation time (and one
        # estimate of slack): confirming must not eat into the promised lead.
        ahead = self.horizon_ms + (CONFIRM_ESTIMATES + 1) * BUCKET_MS
        if forecast is not None and forecast.crossing_ms - now_ms <= ahead:
            self.last = forecast
            self.streak += 1
            self.quiet = 0
            if not self.active and self.streak >= CONFIRM_ESTIMATES:
                self.active = True
                return "raise"
            return None
        self.streak = 0
        if forecast is not None and forecast.crossing_ms - now_ms <= 2 * self.horizon_ms:
            return None  # between one and two horizons: neither raise nor withdraw (hysteresis)
        self.quiet += 1
        if self.active and self.quiet >= CLEAR_ESTIMATES:
            self.active = False
            return "clear"
        return None
