"""Prediction benchmark (docs/benchmarks.md, "Prediction"; issue 18).

    .venv/bin/python bench/bench_prediction.py

Runs the degradation corpus (simulator/scenarios/degradation.py: 32 runs,
linear, exponential, knee and step-then-drift wear under two noise levels,
two daily cycles and two seeds) and 20 healthy year-long runs through the
real Device on a virtual clock, and prints per shape, for ours
(edge_agent/core/predict.py) and the peer (bench/peer_predict.py: a verbatim
copy of the linear predictor at 5c29ccd, before issue 18, fed the same good
readings in the same runs):

- lead time: days from the first predicted-failure alert to the first
  reading over the limit (0 when no alert came before it): median and worst
  (goal: every run >= 7 days);
- coverage: the share of runs whose first alert's [earliest, latest] holds
  that first reading over the limit (goal >= 90%);
- false alarms per device-year on the healthy runs (goal <= 1), and early
  alarms (alerts before the crossing that were withdrawn) on the wear runs.
"""

import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

import peer_predict  # noqa: E402
from simulator.scenarios import degradation as dg  # noqa: E402

SHAPES = ("linear", "exponential", "knee", "step")


def _summary(outcomes):
    leads = sorted(o.lead_days() for o in outcomes)
    covered = len([o for o in outcomes if o.covered()])
    met = len([x for x in leads if x >= 7.0])
    return leads[len(leads) // 2], leads[0], met, covered, len(outcomes)


def main():
    started = time.time()
    ours_by = dict((s, []) for s in SHAPES)
    peer_by = dict((s, []) for s in SHAPES)
    misses = []
    for spec in dg.degradation_runs():
        ours, peer = dg.run(spec, peer_predict.Predictor)
        ours_by[spec.shape].append(ours)
        peer_by[spec.shape].append(peer)
        if ours.lead_days() < 7.0 or not ours.covered():
            misses.append(ours)
    healthy = [dg.run(spec, peer_predict.Predictor) for spec in dg.healthy_runs()]
    print("## Prediction (bench/bench_prediction.py)\n")
    print("Degradation corpus: %d runs through the real Device (10-minute readings, horizon 7 days, history"
          " 14 days); peer: bench/peer_predict.py (the linear predictor at 5c29ccd, same runs).\n"
          % sum(len(v) for v in ours_by.values()))
    print("| shape | runs | lead median (ours / peer) | lead worst (ours / peer) | >= 7 days (ours / peer) |"
          " interval coverage (ours / peer) |")
    print("|---|---|---|---|---|---|")
    all_ours = []
    all_peer = []
    for shape in SHAPES:
        o = _summary(ours_by[shape])
        p = _summary(peer_by[shape])
        all_ours += ours_by[shape]
        all_peer += peer_by[shape]
        print("| %s | %d | %.1f / %.1f | %.1f / %.1f | %d / %d | %d%% / %d%% |" % (
            shape, o[4], o[0], p[0], o[1], p[1], o[2], p[2], 100 * o[3] // o[4], 100 * p[3] // p[4]))
    o = _summary(all_ours)
    p = _summary(all_peer)
    print("| **all** | %d | %.1f / %.1f | %.1f / %.1f | %d / %d | %d%% / %d%% |" % (
        o[4], o[0], p[0], o[1], p[1], o[2], p[2], 100 * o[3] // o[4], 100 * p[3] // p[4]))
    early_ours = sum(max(0, len(x.raises) - 1) for x in all_ours)
    early_peer = sum(max(0, len(x.raises) - 1) for x in all_peer)
    days = sum(spec.days for spec in dg.healthy_runs())
    years = days / 365.0
    fa_ours = sum(ours.false_alarms() for ours, _ in healthy)
    fa_peer = sum(peer.false_alarms() for _, peer in healthy)
    print("\nHealthy: %d runs, %.0f device-years (daily cycles, load sags toward a lower limit, maintenance spikes"
          " within 3%% of the limit): false alarms %d ours (%.2f per device-year), %d peer (%.2f per device-year)."
          % (len(healthy), years, fa_ours, fa_ours / years, fa_peer, fa_peer / years))
    print("Second alerts on the wear runs (raised, withdrawn, raised again): %d ours, %d peer." % (
        early_ours, early_peer))
    if misses:
        print("\nRuns short of a goal (ours):")
        for m in misses:
            first = m.first_raise()
            print("- %s: lead %.1f days, first reading over on day %.1f, interval %s" % (
                m.run.name, m.lead_days(), (m.crossing_ms - dg.T0) / dg.DAY_MS,
                "none" if first is None else "[%.1f, %.1f]" % ((first[2] - dg.T0) / dg.DAY_MS,
                                                               (first[3] - dg.T0) / dg.DAY_MS)))
    print("\n(%.0f s)" % (time.time() - started))


if __name__ == "__main__":
    main()
