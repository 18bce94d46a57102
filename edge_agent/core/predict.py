"""Failure prediction: warn days before a sensor's readings cross its limit.

Per predicted sensor, streaming and bounded in memory:

- readings fold into the current 2-hour bucket (count, running mean, peak);
- closed buckets go into a ring of ``history_days * 12`` bucket means and
  peaks (two float32 ``array``s: 14 days cost 1.3 KB per sensor);
- every closed bucket, the last whole days are summarised as rolling 24-hour
  blocks (block j covers the 24 hours ending j days ago). Averaging a
  full day cancels a daily cycle exactly (the seasonality is removed, not
  modelled), which keeps a day/night swing from looking like a trend;
- a level change followed by a trend (a flat level before, a line after,
  beating every one-piece model) restarts the history at the change
  (``restart_at``): a line through both sides would count the step as wear;
- three trend models are fitted to the block means, each a line in one
  basis function g(x) (x in days, 0 = now): linear (g = x), exponential
  (g = (exp(r x) - 1) / r, the rate r from a grid: e-folding in 2.5 to 40
  days) and knee (g = max(0, x - k): flat, then a straight rise from day k,
  k from the block centres). The one with the lowest AICc wins; the
  three-parameter models must beat the linear one by ``SELECT_MARGIN``;
- it is a trend only when the chosen model's coefficient is above zero at
  its one-sided 99% bound (Student t, n - p degrees of freedom);
- the crossing that matters is the first *reading* over the limit, not the
  trend's: each past day gives its peak above the fitted trend (cycle,
  noise and wander together; a bucket whose peak is a burst far above its
  own mean, a maintenance reading, is not its day's peak). Walking forward
  2 hours at a time, a day crosses with the share of past days whose peak
  would have reached the limit from that day's trend; the survival of
  those hazards, mixed over the models and the trend's uncertainty, gives
  the first crossing's distribution: the earliest crossing is its 2.5%
  point, the latest its 97.5% point, the expected one its median (a 95%
  prediction interval for the first reading over the limit);
- a "predicted failure" is raised after ``CONFIRM_ESTIMATES`` consecutive
  estimates (one per 2-hour bucket) whose *earliest* crossing is within the
  horizon, and withdrawn after ``CLEAR_ESTIMATES`` in which there is no
  trend or the earliest crossing is more than two horizons away.

Float32-safe (ESP32 floats are single precision): values are stored relative
to the first reading and time is in days relative to now, so every number
in the fit is small.
"""

import math
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
# The exponential and knee models need 7 days (4 degrees of freedom).
MIN_BLOCKS_CURVED = 7
# Exponential rates per day (e-folding 40, 29, 20, 14, 10, 6.7, 5 days): steps of
# at most 1.5x, since a rate between two grid points extrapolates with the
# slower one and warned the slowest corpus wear (0.07) 6.2 days ahead.
RATES = (0.025, 0.035, 0.05, 0.07, 0.1, 0.15, 0.2)
# A restart (restart_at) needs a jump of this many residual standard
# deviations at the change (the variance inflated for days that wander
# together).
RESTART_JUMP = 4.0
# Models whose Akaike weight is below this share of the best's are left out
# of the interval's mixture.
MIX_MIN_WEIGHT = 0.05
# AICc points a three-parameter model must gain over the line.
SELECT_MARGIN = 2.0
# The walk puts a day's crossing at the time of day past days peaked at; a
# trend rising fast against the daily cycle brings the first reading over
# the limit a few hours before that peak (and noise a few after): the
# interval's ends are moved out by 6 hours.
PHASE_SLACK_MS = DAY_MS // 4
# Walk at most this many horizons ahead for the crossing.
WALK_HORIZONS = 3
# The expected crossing must be within this many horizons to raise.
MEDIAN_HORIZONS = 2
# Raise after 3 consecutive estimates (6 hours) within the horizon; clear
# after 36 without (3 days): a warm afternoon cannot raise it, and a cool
# spell in the middle of real wear does not withdraw it.
CONFIRM_ESTIMATES = 12
CLEAR_ESTIMATES = 36
# One-sided 99% and 95% Student t quantiles by degrees of freedom.
T99 = (0.0, 31.82, 6.965, 4.541, 3.747, 3.365, 3.143, 2.998, 2.896, 2.821, 2.764, 2.718, 2.681)
T95 = (0.0, 6.314, 2.920, 2.353, 2.132, 2.015, 1.943, 1.895, 1.860, 1.833, 1.812, 1.796, 1.782)
LINEAR, EXPONENTIAL, KNEE, STEP = "linear", "exponential", "knee", "step"
# The first crossing's interval: its 2.5% and 97.5% points (and the median).
QUANTILES = (0.025, 0.5, 0.975)

_NAN = float("nan")


class Forecast:
    """One estimate. Times in ms since epoch: expected, earliest and latest
    first reading over the limit (a 95% prediction interval: docs/health.md)."""

    __slots__ = ("crossing_ms", "early_ms", "late_ms", "threshold", "level", "slope_per_day", "direction", "model")

    def __init__(self, crossing_ms, early_ms, late_ms, threshold, level, slope_per_day, direction, model=LINEAR):
        self.crossing_ms = crossing_ms
        self.early_ms = early_ms
        self.late_ms = late_ms
        self.threshold = threshold
        self.level = level
        self.slope_per_day = slope_per_day
        self.direction = direction
        self.model = model

    def __repr__(self):
        return "Forecast(%s %s %s at %d [%d, %d], level %.3g, slope %.3g/d)" % (
            self.model, self.direction, self.threshold, self.crossing_ms, self.early_ms, self.late_ms, self.level,
            self.slope_per_day)


def _g(kind, p, x):
    if kind == LINEAR:
        return x
    if kind == EXPONENTIAL:
        return (math.exp(p * x) - 1.0) / p
    if kind == STEP:
        return 1.0 if x > p else 0.0
    return x - p if x > p else 0.0


def _dg(kind, p, x):
    if kind == LINEAR:
        return 1.0
    if kind == EXPONENTIAL:
        return math.exp(p * x)
    if kind == STEP:
        return 0.0
    return 1.0 if x > p else 0.0


def _t(table, df):
    return table[df] if df < len(table) else table[-1]


def _line(xs, ys, kind, p):
    """Least squares y = a + b g(x): (rss, a, b, gbar, sgg), or None."""
    n = len(xs)
    gs = [_g(kind, p, x) for x in xs]
    gbar = sum(gs) / n
    ybar = sum(ys) / n
    sgg = 0.0
    sgy = 0.0
    for i in range(n):
        dg = gs[i] - gbar
        sgg += dg * dg
        sgy += dg * (ys[i] - ybar)
    if sgg <= 0.0:
        return None
    b = sgy / sgg
    a = ybar - b * gbar
    rss = 0.0
    for i in range(n):
        r = ys[i] - a - b * gs[i]
        rss += r * r
    return (rss, a, b, gbar, sgg)


def _aicc(rss, n, k):
    return n * math.log(max(rss, 1e-12) / n) + 2 * k + 2.0 * k * (k + 1) / max(1, n - k - 1)


def _variance(xs, ys, kind, p, a, b, rss, df):
    """The residual variance, inflated for days that are not independent
    (weather wanders for days): the residuals' lag-1 correlation rho
    multiplies it by (1 + rho) / (1 - rho)."""
    r0 = 0.0
    r1 = 0.0
    prev = None
    for i in range(len(xs)):
        r = ys[i] - a - b * _g(kind, p, xs[i])
        r0 += r * r
        if prev is not None and xs[i - 1] - xs[i] < 1.5:
            r1 += r * prev
        prev = r
    rho = r1 / r0 if r0 > 0.0 else 0.0
    rho = 0.0 if rho < 0.0 else (0.8 if rho > 0.8 else rho)
    return rss / df * (1.0 + rho) / (1.0 - rho)


def restart_at(xs, ys, one_piece=None):
    """A level change followed by a trend (a repair that left a
    misalignment, then the wear it causes): a line through both sides
    counts the step as trend and warns weeks early. Returns the index j of
    the newest block before which the level changed (blocks 0..j are after
    it) when a flat level before it and a line after it beat every
    one-piece model by SELECT_MARGIN (five parameters: the level, the
    line's two, the change's place, the variance); else None. The history
    then restarts at the change. ``one_piece``: their best AICc, if
    ``_select`` has fitted them already."""
    n = len(xs)
    if n < MIN_BLOCKS_CURVED + 1:
        return None
    if one_piece is None:
        fits = _select(xs, ys)
        if fits is None:
            return None
        one_piece = fits[2]
    stride = 1 if n <= 14 else 2  # as select(): past two weeks a day's precision matters less
    best = None
    # At least MIN_BLOCKS after it, and one before: a change about to leave
    # the history still tilts a line through all of it.
    for j in range(MIN_BLOCKS - 1, n - 1, stride):
        after = _line(xs[:j + 1], ys[:j + 1], LINEAR, 0.0)
        if after is None:
            continue
        level = 0.0
        for y in ys[j + 1:]:
            level += y
        level /= n - j - 1
        rss = after[0]
        for y in ys[j + 1:]:
            rss += (y - level) * (y - level)
        score = _aicc(rss, n, 5)
        if score < one_piece - SELECT_MARGIN and (best is None or score < best[0]):
            # The jump at the change must stand out of the days' scatter
            # by RESTART_JUMP standard deviations: weather that wanders
            # for days makes a broken line fit a little better by chance
            # (a false alarm on a healthy bearing), a step of a repair does
            # not wander back.
            a, b = after[1], after[2]
            jump = a + b * 0.5 * (xs[j] + xs[j + 1]) - level
            var = _variance(xs[:j + 1], ys[:j + 1], LINEAR, 0.0, a, b, rss, n - 5)
            if jump * jump > RESTART_JUMP * RESTART_JUMP * var:
                best = (score, j)
    return None if best is None else best[1]


def select(xs, ys):
    """The models for the block means (xs days, newest first). Returns
    (chosen, mixture) or None: ``chosen`` is (kind, param, a, b, gbar,
    sgg, residual variance, degrees of freedom); ``mixture`` the models the
    interval mixes, the same tuples with their Akaike weight in front."""
    fits = _select(xs, ys)
    return None if fits is None else fits[:2]


def _select(xs, ys):
    """``select``, and the best AICc of the one-piece models (the line, every
    exponential rate, every knee), which ``restart_at`` measures a change
    against: fitted once for both."""
    n = len(xs)
    fit = _line(xs, ys, LINEAR, 0.0)
    if fit is None:
        return None
    best = (LINEAR, 0.0) + fit
    scored = [(_aicc(fit[0], n, 3), best)]
    one_piece = scored[0][0]
    if n >= MIN_BLOCKS_CURVED:
        # In order of how boldly they extrapolate: a change (knee or step)
        # must beat the line by SELECT_MARGIN, an exponential the best so
        # far by as much.
        score = scored[0][0]
        # Knee: 5 blocks after it, 3 at or before. Step: between two blocks,
        # 1 after it and 3 before; a step is a change of level, not a trend
        # (nothing to extrapolate: a chosen step is not announced), so a
        # fault that shifts a reading once is not announced as wear the day
        # it happens.
        # Past two weeks, every other block (a day's precision matters less
        # than the heap the fits churn through on a board).
        stride = 1 if n <= 14 else 2
        changes = ([(KNEE, xs[j]) for j in range(5, n - 2, stride)]
                   + [(STEP, xs[j] - 0.5) for j in range(0, n - 3, stride)])
        for family in (changes, [(EXPONENTIAL, r) for r in RATES]):
            bar = score - SELECT_MARGIN
            pick = None
            top = None
            for kind, p in family:
                f = _line(xs, ys, kind, p)
                if f is None:
                    continue
                s = _aicc(f[0], n, 4)
                if kind != STEP and s < one_piece:
                    one_piece = s
                m = (kind, p) + f
                if family is not changes:
                    scored.append((s, m))  # every rate: the rate's uncertainty
                elif top is None or s < top[0]:
                    top = (s, m)
                if s < bar:
                    bar = s
                    pick = m
            if top is not None:
                scored.append(top)  # the best change only
                if pick is not None and pick is not top[1]:
                    scored.append((bar, pick))
            if pick is not None:
                best = pick
                score = bar
    low = scored[0][0]
    for s, m in scored:
        if s < low:
            low = s
    mixture = []
    total = 0.0
    for s, m in scored:
        w = math.exp(-0.5 * (s - low))
        if w < MIX_MIN_WEIGHT and m is not best:
            continue
        kind, p, rss, a, b, gbar, sgg = m
        df = n - (2 if kind == LINEAR else 3)
        entry = (w, kind, p, a, b, gbar, sgg, _variance(xs, ys, kind, p, a, b, rss, df), df)
        mixture.append(entry)
        total += w
        if m is best:
            chosen = entry[1:]
    mixture = [(e[0] / total,) + e[1:] for e in mixture]
    return chosen, mixture, one_piece


# A trend's uncertainty as five equally likely shifts (near the conditional
# means of the normal's quintiles, in prediction standard errors).
SHIFTS = (-1.4, -0.53, 0.0, 0.53, 1.4)


def _walk(models, tops, phase, n, limit, steps, high, beta):
    """Walk 2 hours at a time; return the steps (1..steps, or None) at which
    the chance that a reading has crossed reaches each of QUANTILES.

    The chance mixes the models by their Akaike weight and, within each,
    five shifts of its trend (its uncertainty, ``n`` blocks). Under each, a
    2-hour step crosses with the share of the ``n`` past days whose peak
    above the trend (``tops``: the chosen model's, sorted, filed by the time
    of day it came at; ``phase`` is the time of day of step 1) came at this
    time of day and would have reached the limit from this step's trend:
    the readings' spread, and the time of day they peak at."""
    logs = [[0.0] * len(SHIFTS) for _ in models]
    found = [None] * len(QUANTILES)
    per = 1.0 / len(SHIFTS)
    n_inv = 1.0 / n
    cap = 1.0 - 0.5 * n_inv
    tail = 1.0 / (n + 1)
    for f in range(1, steps + 1):
        x = (f - 0.5) / BUCKETS_PER_DAY
        here = tops[(phase + f - 1) % BUCKETS_PER_DAY]
        m = len(here)
        alive = 0.0
        for k in range(len(models)):
            w, kind, p, a, b, gbar, sgg, var, df = models[k]
            row = logs[k]
            if m:
                g0 = _g(kind, p, x)
                dg = g0 - gbar
                trend = a + b * g0
                se = math.sqrt(var * (n_inv + dg * dg / sgg))
                for i in range(len(SHIFTS)):
                    gap = limit - trend - SHIFTS[i] * se
                    # How many past days' peaks at this time reach the gap.
                    lo = 0
                    hi = m
                    while lo < hi:
                        mid = (lo + hi) // 2
                        if here[mid] > gap:
                            hi = mid
                        else:
                            lo = mid + 1
                    if lo < m:
                        share = (m - lo) * n_inv
                        row[i] += math.log(1.0 - (share if share < cap else cap))
                    elif beta > 0.0 and gap > high:
                        # Past the highest peak: the Gumbel tail, shared
                        # among the times of day as the peaks are.
                        row[i] += math.log(1.0 - m * n_inv * tail * math.exp((high - gap) / beta))
            for i in range(len(SHIFTS)):
                alive += w * per * math.exp(row[i])
        crossed = 1.0 - alive
        for q in range(len(QUANTILES)):
            if found[q] is None and crossed >= QUANTILES[q]:
                found[q] = f
        if found[-1] is not None:
            break
    return found


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
        the trend confidently heads for the limit, else None."""
        self.evaluations += 1
        slots = self.slots
        per_day = BUCKETS_PER_DAY
        s = 1.0 if self.direction == "above" else -1.0  # work as if every limit were above
        limit = s * (self.threshold - self.origin)
        xs = []
        ys = []
        firsts = []  # first bucket of each block used
        crossed = False
        for j in range(slots // per_day):
            first = last - per_day * (j + 1) + 1
            total = 0.0
            count = 0
            for h in range(max(0, first), last - per_day * j + 1):
                m = self.means[h % slots]
                if m == m:  # not NaN
                    total += m
                    count += 1
                    if s * self.peaks[h % slots] >= limit:
                        crossed = True
            if count >= MIN_BUCKETS_PER_BLOCK:
                xs.append(-(j + 0.5))  # block centre, days before now
                ys.append(s * total / count)
                firsts.append(first)
        n = len(xs)
        if n < MIN_BLOCKS:
            return None
        fits = _select(xs, ys)
        if fits is None:
            return None
        j = restart_at(xs, ys, fits[2])
        if j is not None:  # the level changed: what came before says nothing about the trend since
            xs, ys, firsts = xs[:j + 1], ys[:j + 1], firsts[:j + 1]
            n = j + 1
            fits = _select(xs, ys)
            if fits is None:
                return None
        kind, p, a, b, gbar, sgg, var, df = fits[0]
        t = _t(T99, df)
        if kind == STEP or b <= 0.0 or b * b * sgg <= t * t * var:
            return None  # not a trend: a step, or b's one-sided 99% bound does not clear zero
        level = a + b * _g(kind, p, 0.0)
        slope = s * b * _dg(kind, p, 0.0)
        if crossed:
            # A reading already reached the limit under a rising trend: the
            # crossing is now (the threshold rules speak for the readings;
            # the prediction stays).
            return Forecast(now_ms, now_ms, now_ms, self.threshold, s * level + self.origin, slope, self.direction,
                            kind)
        tops = self._tops(kind, p, a, b, firsts, last, s)
        # Beyond the highest past peak the shares say nothing: a new day
        # beats all n before it with chance 1 / (n + 1), and by more with a
        # Gumbel tail, its scale from the peaks' interquartile range (IQR /
        # 1.57: a maintenance spike among them does not widen it).
        every = []
        for phase in tops:
            every += phase
        every.sort()
        k = len(every)
        high = every[-1]
        beta = (every[(3 * k) // 4] - every[k // 4]) / 1.57
        steps = WALK_HORIZONS * self.horizon_ms // BUCKET_MS
        early, mid, late = _walk(fits[1], tops, (last + 1) % per_day, n, limit, steps, high, beta)
        if early is None:
            return None  # no credible crossing within the walk
        beyond = now_ms + (steps + 1) * BUCKET_MS + PHASE_SLACK_MS
        return Forecast(
            beyond if mid is None else now_ms + mid * BUCKET_MS,
            now_ms + (early - 1) * BUCKET_MS - PHASE_SLACK_MS,
            beyond if late is None else now_ms + late * BUCKET_MS + PHASE_SLACK_MS,
            self.threshold,
            s * level + self.origin,
            slope,
            self.direction,
            kind,
        )

    def _burst_fence(self, s):
        """How far a bucket's peak may stand above its own mean before it is
        a burst (a maintenance reading, a transient) rather than the
        readings' spread: Tukey's far-out fence, Q3 + 3 IQR, over the
        history's buckets."""
        bursts = []
        for h in range(self.slots):
            pk = self.peaks[h]
            if pk == pk:
                bursts.append(s * (pk - self.means[h]))
        bursts.sort()
        k = len(bursts)
        if k < 8:
            return None
        q1 = bursts[k // 4]
        q3 = bursts[(3 * k) // 4]
        return q3 + 3.0 * (q3 - q1)

    def _tops(self, kind, p, a, b, firsts, last, s):
        """Each day's peak above the trend (its cycle, noise and wander),
        filed by the 2-hour phase of the day it came at: 12 sorted lists.

        A bucket whose peak is a burst far above its own mean (a
        maintenance reading at 89 degC for 20 minutes) is not the day's
        peak: it says nothing about where the readings go as the trend
        rises, and counted as one day in fourteen it made every later day
        cross with that chance (a false alarm a year on a healthy
        bearing). The threshold rules speak for such readings."""
        per_day = BUCKETS_PER_DAY
        slots = self.slots
        fence = self._burst_fence(s)
        tops = [[] for _ in range(per_day)]
        for first in firsts:
            top = None
            at = 0
            for h in range(max(0, first), first + per_day):
                pk = self.peaks[h % slots]
                if pk != pk:
                    continue
                if fence is not None and s * (pk - self.means[h % slots]) > fence:
                    continue
                e = s * pk - a - b * _g(kind, p, (h - last - 0.5) / per_day)
                if top is None or e > top:
                    top = e
                    at = h % per_day
            if top is not None:
                tops[at].append(top)
        for phase in tops:
            phase.sort()
        return tops

    def _judge(self, forecast, now_ms):
        # The earliest credible crossing is judged against the horizon plus
        # the confirmation time (and one estimate of slack): confirming must
        # not eat into the promised lead.
        # The expected crossing must be within two horizons too: a wide
        # interval (a curve that fits a warm week as well as it fits wear)
        # is not yet a warning.
        ahead = self.horizon_ms + (CONFIRM_ESTIMATES + 1) * BUCKET_MS
        if (forecast is not None and forecast.early_ms - now_ms <= ahead
                and forecast.crossing_ms - now_ms <= MEDIAN_HORIZONS * self.horizon_ms):
            self.last = forecast
            self.streak += 1
            self.quiet = 0
            if not self.active and self.streak >= CONFIRM_ESTIMATES:
                self.active = True
                return "raise"
            return None
        self.streak = 0
        if forecast is not None and forecast.early_ms - now_ms <= 2 * self.horizon_ms:
            return None  # between one and two horizons: neither raise nor withdraw (hysteresis)
        self.quiet += 1
        if self.active and self.quiet >= CLEAR_ESTIMATES:
            self.active = False
            return "clear"
        return None
