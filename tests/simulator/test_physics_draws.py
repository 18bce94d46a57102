"""The sensor models' shortcuts give the numbers of the plain code, bit for
bit (a scenario's signal log digest depends on every one of them):

- normals drawn a block at a time are Random.gauss's, in the same order;
- a faultless steady sensor's sampler (a closure, the sine skipped when
  there is no daily cycle) reads what _steady reads with rng.gauss;
- faulted sensors (noise bursts, weather, noise) read the same either way;
- round3 is round(x, 3), bit for bit.
"""

import random

import hypothesis
import pytest

from simulator.hardware import physics

HOUR = physics.HOUR_MS


def test_blocks_are_random_gauss():
    assert physics.BLOCK_NORMALS  # CPython's Random.gauss: the shortcut is on
    for seed in (0, 7, 2 ** 40):
        plain, ahead = random.Random(seed), random.Random(seed)
        expected = [plain.gauss(0, 1.0) for _ in range(1001)]
        drawn = physics._normal_block(ahead, 1000) + physics._normal_block(ahead, 2)
        assert [repr(0 + z * 1.0) for z in drawn[:1001]] == [repr(x) for x in expected]


def _plain(monkeypatch):
    """Models as they were: every draw a rng.gauss call."""
    monkeypatch.setattr(physics, "BLOCK_NORMALS", False)


PARAMS = [
    {"level": 34.25, "noise": 0.66},
    {"level": 34.25, "noise": 0.66, "weather": 0.3, "cycle": 2.5, "peak_hour": 9.0},
    {"level": 2400.0, "noise": 15.0, "quantum": 1.0},
    {"level": 0.0, "noise": 0.0},
    {"level": -0.0, "noise": 0.1, "cycle": 0.0},
    {"level": 12.0, "cycle": 0, "weather": 0.0},
    {"level": 5.0, "noise": 1e-9, "quantum": 0.25, "cycle": -3.0},
]


def _times(period_ms, n):
    # Across hour boundaries (a weather step draws too) and a few days.
    return [physics.T0 + 3 + k * period_ms for k in range(n)]


@pytest.mark.parametrize("params", PARAMS)
def test_the_steady_sampler_reads_what_steady_did(params, monkeypatch):
    fast = physics.PhysicalSensor("s", 1000, "steady", params, 99)
    sampler = fast.sampler()
    got = [sampler(t) for t in _times(997_000, 900)]
    _plain(monkeypatch)
    plain = physics.PhysicalSensor("s", 1000, "steady", params, 99)
    expected = [plain._steady(t) for t in _times(997_000, 900)]
    assert [(r.time_ms, repr(r.value)) for r in got] == [(r.time_ms, repr(r.value)) for r in expected]


def test_faulted_sensors_read_the_same_with_blocks(monkeypatch):
    def run():
        model = physics.PhysicalSensor("s", 1000, "steady", {"level": 20.0, "noise": 0.5, "weather": 0.2}, 5)
        model.add_fault("noise_burst", physics.T0 + 2 * HOUR, physics.T0 + 5 * HOUR, sd=3.0)
        model.add_fault("drift", physics.T0 + 4 * HOUR, None, per_day=1.5)
        sampler = model.sampler()
        return [repr(r.value) for r in (sampler(t) for t in _times(61_000, 800)) if r is not None]

    fast = run()
    _plain(monkeypatch)
    assert fast == run()


def _same_as_round(values):
    for x in values:
        assert repr(physics.round3(x)) == repr(round(x, 3)), x


def test_round3_is_round_to_3_digits_bit_for_bit():
    rng = random.Random(3)
    # Readings of every scale and sign, the halves between two thousandths
    # (as near as a double gets: the cases the shortcut hands to round()),
    # their neighbours, zeros of both signs, and what is not a number.
    values = [rng.uniform(-200.0, 200.0) for _ in range(20000)]
    values += [rng.gauss(0, 1) * 10 ** rng.randint(-6, 12) for _ in range(20000)]
    halves = [(2 * k + 1) / 2000.0 for k in range(-30000, 30000, 7)]
    values += halves + [h + d for h in halves for d in (1e-12, -1e-12, 1e-7, -1e-7)]
    values += [0.0, -0.0, 0.0004, -0.0004, 0.0005, -0.0005, 0.0006, -0.0006, 1e-300, -1e-300,
               999999.9995, -999999.9995, 1e6 + 0.0005, 2.0 ** 52, -(2.0 ** 53) - 2]
    _same_as_round(values)
    assert repr(physics.round3(float("inf"))) == "inf" and repr(physics.round3(float("-inf"))) == "-inf"
    assert physics.round3(float("nan")) != physics.round3(float("nan"))


@hypothesis.given(hypothesis.strategies.floats(allow_nan=False, allow_infinity=False))
def test_round3_matches_round_on_any_double(x):
    _same_as_round([x])
