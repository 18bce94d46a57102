"""The predictor on short generated streams (the long scenarios, with noise
and 90-day runs, are in tests/simulator/test_health_scenarios.py)."""

import math

from edge_agent.core import predict as pr

DAY = pr.DAY_MS
T0 = 1700000000000
STEP = 600000  # a reading every 10 minutes


def _stream(predictor, days, level, start_day=0.0, cycle=0.0):
    """Feed ``level(day)`` (+ a daily sine of amplitude ``cycle``); return
    [(day, change)] for every raise/clear."""
    changes = []
    t = int(start_day * DAY)
    while t < days * DAY:
        day = t / DAY
        value = level(day) + cycle * math.sin(2 * math.pi * day)
        change = predictor.add(T0 + t, value)
        if change:
            changes.append((day, change, predictor.last))
        t += STEP
    return changes


def _first_over(level, limit, days, cycle=0.0):
    """The day the stream _stream feeds first reads above ``limit``."""
    t = 0
    while t < days * DAY:
        day = t / DAY
        if level(day) + cycle * math.sin(2 * math.pi * day) > limit:
            return day
        t += STEP
    return None


def test_linear_drift_is_predicted_a_week_ahead():
    p = pr.Predictor(90.0, "above", 7 * DAY, 14)
    changes = _stream(p, 40, lambda d: 50.0 + 1.5 * d, cycle=2.0)
    # The mean plus the cycle's amplitude reaches 90 on day 25.33, but the
    # readings peak at a quarter past each day: the first reading over 90
    # is on day 26.05. The alert must come >= 7 days before it, and stay up
    # past the crossing (the limit is reached, not withdrawn).
    first = _first_over(lambda d: 50.0 + 1.5 * d, 90.0, 40, cycle=2.0)
    assert 26.0 < first < 26.1, first
    assert changes and changes[0][1] == "raise", changes
    raised_day = changes[0][0]
    assert first - raised_day >= 7.0, raised_day
    forecast = changes[0][2]
    crossing_day = (forecast.crossing_ms - T0) / DAY
    assert abs(crossing_day - first) < 0.75, crossing_day
    # The interval is for the first reading over the limit, and holds it.
    assert forecast.early_ms <= T0 + first * DAY <= forecast.late_ms, forecast
    assert forecast.early_ms <= forecast.crossing_ms <= forecast.late_ms
    assert forecast.model == "linear"
    assert abs(forecast.slope_per_day - 1.5) < 0.05
    assert [c[1] for c in changes] == ["raise"]


def test_falling_level_toward_a_lower_limit():
    p = pr.Predictor(10.0, "below", 7 * DAY, 7)
    changes = _stream(p, 30, lambda d: 60.0 - 2.0 * d)
    assert changes and changes[0][1] == "raise" and 25.0 - changes[0][0] >= 7.0


def test_flat_sensor_with_a_daily_cycle_never_raises():
    p = pr.Predictor(90.0, "above", 7 * DAY, 14)
    assert _stream(p, 30, lambda d: 70.0, cycle=10.0) == []
    assert p.evaluations > 100


def test_not_before_four_days_of_data():
    p = pr.Predictor(90.0, "above", 7 * DAY, 14)
    assert _stream(p, 3.9, lambda d: 80.0 + 3.0 * d) == []


def test_raise_then_clear_when_the_trend_turns():
    p = pr.Predictor(80.0, "above", 7 * DAY, 7)

    def level(d):
        return 50.0 + 2.0 * d if d < 12 else 74.0 - 1.0 * (d - 12)

    changes = _stream(p, 30, level)
    assert [c[1] for c in changes] == ["raise", "clear"], changes
    assert changes[1][0] > 12


def test_gaps_are_unknown_hours_not_zeros():
    p = pr.Predictor(90.0, "above", 7 * DAY, 7)
    _stream(p, 5, lambda d: 60.0)
    # Two silent days, then the same flat level: no phantom trend.
    assert _stream(p, 12, lambda d: 60.0, start_day=7) == []


def test_memory_is_fixed_by_history_days():
    p = pr.Predictor(90.0, "above", 7 * DAY, 14)
    assert len(p.means) == 14 * pr.BUCKETS_PER_DAY and len(p.peaks) == 14 * pr.BUCKETS_PER_DAY
    _stream(p, 30, lambda d: 60.0)
    assert len(p.means) == 14 * pr.BUCKETS_PER_DAY


def test_history_up_to_four_weeks_and_a_clear_error_beyond():
    from support import copy_board, raises

    from edge_agent.core import board as bd

    data = copy_board()
    sensor = data["sensors"][sorted(data["sensors"])[0]]
    sensor["predict"] = {"above": 90.0, "history_days": 28}
    board = bd.board_from_dict(data, "history.toml")
    assert [s.predict.history_days for s in board.sensors.values() if s.predict] == [28]
    sensor["predict"]["history_days"] = 29
    error = raises(bd.BoardError, bd.board_from_dict, data, "history.toml")
    assert "history_days" in str(error) and "history.toml" in str(error)
    p = pr.Predictor(90.0, "above", 7 * DAY, 28)
    assert len(p.means) == 28 * pr.BUCKETS_PER_DAY  # 2.7 KB of float32 rings with the peaks
