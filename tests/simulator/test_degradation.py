"""A slice of the degradation corpus (simulator/scenarios/degradation.py)
through the real Device: one run per wear shape and two healthy 120-day
runs, with the issue-18 goals asserted on them; the peer (the linear
predictor before issue 18, bench/peer_predict.py) runs alongside to show the
exponential run is the one it warns late. The whole corpus is
bench/bench_prediction.py."""

import os
import sys

from simulator.scenarios import degradation as dg

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "bench"))

import peer_predict  # noqa: E402


def test_corpus_slice_meets_the_prediction_goals():
    wear, healthy = dg.slice_of_corpus()
    assert [r.shape for r in wear] == ["linear", "exponential", "knee", "step"]
    peers = {}
    for spec in wear:
        ours, peer = dg.run(spec, peer_predict.Predictor)
        assert ours.crossing_ms is not None, spec.name
        # Every run warned at least 7 days before the first reading over
        # the limit, and the alert's interval held that reading.
        assert ours.lead_days() >= 7.0, (spec.name, ours.lead_days())
        assert ours.covered(), (spec.name, ours.first_raise(), ours.crossing_ms)
        assert len(ours.raises) == 1, (spec.name, ours.raises)
        peers[spec.shape] = peer
    # The old linear fit is late on exponential wear, and its interval
    # (the mean curve's crossing) misses the first reading.
    assert peers["exponential"].lead_days() < 6.0, peers["exponential"].lead_days()
    assert not [p for p in peers.values() if p.covered()]
    for spec in healthy:
        ours, _ = dg.run(spec)
        assert ours.false_alarms() == 0, (spec.name, ours.raises)


def test_corpus_is_the_size_the_issue_asks_for():
    runs = dg.degradation_runs()
    assert len(runs) >= 30
    assert set(r.shape for r in runs) == {"linear", "exponential", "knee", "step"}
    healthy = dg.healthy_runs()
    assert len(healthy) >= 20 and min(r.days for r in healthy) >= 365
    assert set(r.direction for r in healthy) == {"above", "below"}


def test_a_noisy_knee_whose_first_reading_beats_every_past_peak():
    # Its noise brought the first reading over the limit higher above the
    # trend than any of the 14 days before: without a tail past the highest
    # past peak, the interval started 0.5 days late and the alert came 6.6
    # days ahead.
    spec = [r for r in dg.degradation_runs() if r.name == "knee, high noise, small cycle, seed 1"][0]
    ours, _ = dg.run(spec)
    assert ours.lead_days() >= 7.0, ours.lead_days()
    assert ours.covered(), (ours.first_raise(), ours.crossing_ms)
