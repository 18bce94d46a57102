"""Prediction benchmark (docs/benchmarks.md, "Prediction"; issue 18).

    .venv/bin/python bench/bench_prediction.py
    .venv/bin/python bench/bench_prediction.py --corpus my_wear.toml other_runs/

Runs the degradation corpus, scenario files in the library
(simulator/scenarios/corpus/ by default; ``--corpus`` takes anyone's files
or folders of them, docs/simulator.md "The corpus"): each file says its
shape (linear, exponential, knee, step, ..., or healthy) and its [matrix]
expands into runs. Each run plays through the real pipeline on the virtual
clock (simulator/scenarios/virtual.py, what `edge-agent sim run` runs: the
core Device with its health engine and predictor, the store, signing and
the receiver, whose verified predicted-failure alerts are the ones counted;
simulator/scenarios/degradation.py), and the same good readings go to the
peer (bench/peer_predict.py: a verbatim copy of the linear predictor at
5c29ccd, before issue 18). Printed per shape, ours and the peer's:

- lead time: days from the first predicted-failure alert to the first
  reading past the limit (0 when no alert came before it): median and worst
  (goal: every run >= 7 days); a wear run stops a day after that reading;
- coverage: the share of runs whose first alert's [earliest, latest] holds
  that first reading (goal >= 90%);
- second alerts (raised, withdrawn, raised again) on the wear runs;
- false alarms per device-year on the healthy runs (goal <= 1);
- how many runs held every expectation of their own file (as played).

Progress goes to stderr, one line per run. Exit 0 (the goals are reported,
not enforced), 2 if a corpus file is invalid (every problem listed).
"""

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

import peer_predict  # noqa: E402
from simulator.scenarios import degradation as dg  # noqa: E402
from simulator.scenarios import spec as sc  # noqa: E402

LEAD_GOAL_DAYS = 7.0
COVERAGE_GOAL = 0.9
FALSE_ALARMS_GOAL = 1.0  # per device-year


def _summary(outcomes):
    leads = sorted(o.lead_days() for o in outcomes)
    return {
        "median": leads[len(leads) // 2],  # the upper of the middle two for an even count, as before
        "worst": leads[0],
        "met": len([x for x in leads if x >= LEAD_GOAL_DAYS]),
        "covered": len([o for o in outcomes if o.covered()]),
        "second": sum(max(0, len(o.raises) - 1) for o in outcomes),
        "runs": len(outcomes),
    }


def _ratio(a, b):
    return "%.2fx" % (a / b) if b else "-"


def _row(label, ours, peer):
    o = _summary(ours)
    p = _summary(peer)
    return "| %s | %d | %.1f / %.1f (%s) | %.1f / %.1f | %d / %d | %d%% / %d%% | %d / %d |" % (
        label, o["runs"], o["median"], p["median"], _ratio(o["median"], p["median"]), o["worst"], p["worst"],
        o["met"], p["met"], 100 * o["covered"] // o["runs"], 100 * p["covered"] // p["runs"], o["second"],
        p["second"])


def _day(t_ms):
    return (t_ms - dg.T0) / dg.DAY_MS


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", nargs="+", metavar="DIR_OR_FILE", default=[sc.CORPUS],
                        help="corpus files or folders of them (default %s)" % os.path.relpath(sc.CORPUS, ROOT))
    args = parser.parse_args(argv)
    started = time.time()
    try:
        runs = dg.load(args.corpus)
    except dg.CorpusError as exc:
        for error in exc.errors:
            print("bench_prediction: %s" % error, file=sys.stderr)
        return sc.EXIT_BAD_SCENARIO
    if not runs:
        print("bench_prediction: no corpus runs in %s" % " ".join(args.corpus), file=sys.stderr)
        return sc.EXIT_BAD_SCENARIO
    shapes = []
    for r in runs:
        if not r.healthy and r.shape not in shapes:
            shapes.append(r.shape)
    ours_by = dict((s, []) for s in shapes)
    peer_by = dict((s, []) for s in shapes)
    healthy = []
    held = 0
    for i, r in enumerate(runs, 1):
        t = time.time()
        ours, peer, result = dg.run(r, peer_predict.Predictor)
        held += result.passed
        if r.healthy:
            healthy.append((r, ours, peer))
            what = "false alarms %d ours, %d peer" % (ours.false_alarms(), peer.false_alarms())
        else:
            ours_by[r.shape].append(ours)
            peer_by[r.shape].append(peer)
            what = "lead %.1f days ours%s, %.1f peer" % (ours.lead_days(), "" if ours.covered() else " (not covered)",
                                                          peer.lead_days())
        print("[%d/%d] %s: %s; expectations %s (%.1f s)" % (i, len(runs), r.name, what,
                                                           "held" if result.passed else "FAILED", time.time() - t),
              file=sys.stderr, flush=True)

    wear = [r for r in runs if not r.healthy]
    print("## Prediction (bench/bench_prediction.py)\n")
    print("Corpus: %s: %d degradation runs and %d healthy, through the real pipeline on the virtual clock; "
          "peer: bench/peer_predict.py (the linear predictor at 5c29ccd, same readings).\n"
          % (", ".join(os.path.relpath(p, ROOT) if p.startswith(ROOT) else p for p in args.corpus), len(wear),
             len(healthy)))
    misses = []
    if wear:
        print("| shape | runs | lead median, days (ours / peer, ratio) | lead worst | >= 7 days | interval coverage"
              " | second alerts |")
        print("|---|---|---|---|---|---|---|")
        all_ours = []
        all_peer = []
        for shape in shapes:
            print(_row(shape, ours_by[shape], peer_by[shape]))
            all_ours += ours_by[shape]
            all_peer += peer_by[shape]
        print(_row("**all**", all_ours, all_peer))
        misses = [o for o in all_ours if o.lead_days() < LEAD_GOAL_DAYS or not o.covered()]
        o = _summary(all_ours)
        p = _summary(all_peer)
    if healthy:
        years = sum(r.days for r, _, _ in healthy) / 365.0
        fa_ours = sum(ours.false_alarms() for _, ours, _ in healthy)
        fa_peer = sum(peer.false_alarms() for _, _, peer in healthy)
        crossed = [r.name for r, ours, _ in healthy if ours.crossing_ms is not None]
        print("\nHealthy: %d runs, %.1f device-years: false alarms %d ours (%.2f per device-year), %d peer (%.2f per"
              " device-year)%s." % (len(healthy), years, fa_ours, fa_ours / years, fa_peer, fa_peer / years,
                                    "; %d runs had a reading past the limit (%s)" % (len(crossed), "; ".join(crossed))
                                    if crossed else ""))
    print("\nEach run's own expectations (`edge-agent sim run` verdicts, on the run as played): %d of %d held."
          % (held, len(runs)))
    goals = []
    if wear:
        goals.append("every degradation run >= %d days ahead: %d of %d (peer %d) %s" % (
            LEAD_GOAL_DAYS, o["met"], o["runs"], p["met"], "met" if o["met"] == o["runs"] else "NOT MET"))
        goals.append("coverage >= %d%%: %d%% (peer %d%%) %s" % (
            100 * COVERAGE_GOAL, 100 * o["covered"] // o["runs"], 100 * p["covered"] // p["runs"],
            "met" if o["covered"] >= COVERAGE_GOAL * o["runs"] else "NOT MET"))
    if healthy:
        goals.append("false alarms <= %d per device-year: %.2f (peer %.2f) %s" % (
            FALSE_ALARMS_GOAL, fa_ours / years, fa_peer / years,
            "met" if fa_ours / years <= FALSE_ALARMS_GOAL else "NOT MET"))
    print("Goals (issue 18): %s." % "; ".join(goals))
    if misses:
        print("\nRuns short of a goal (ours):")
        for m in misses:
            first = m.first_raise()
            print("- %s: lead %.1f days, first reading past the limit %s, interval %s" % (
                m.run.name, m.lead_days(), "on day %.2f" % _day(m.crossing_ms) if m.crossing_ms else "never",
                "none" if first is None else "[%.2f, %s]" % (
                    _day(first[2]), "open" if first[3] is None else "%.2f" % _day(first[3]))))
    print("\n(%.0f s)" % (time.time() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
