"""`edge-agent sim run`: many scenario files, each run on a virtual clock
(virtual.py) or live (live/run.py), judged, printed, and reported as PNG
and JUnit XML. The command's options are in edge_agent/cli/sim.py."""

import os
import sys

from .spec import EXIT_BAD_SCENARIO, EXIT_FAILED, EXIT_OK, ScenarioError, load_runs


def main_from_args(args):
    from rich.console import Console

    from . import report, virtual

    console = Console(stderr=False, highlight=False)
    specs = []
    bad = []
    for path in args.scenarios:
        try:
            specs.extend(load_runs(path))  # a [matrix] file: one per run
        except ScenarioError as exc:
            bad.append(exc)
    for exc in bad:
        print("edge-agent sim run: %s" % exc, file=sys.stderr)
    if bad:
        return EXIT_BAD_SCENARIO
    results = []
    if args.speed is not None and not (args.live and args.speed > 0):
        print("edge-agent sim run: --speed %s: needs --live and a positive number" % args.speed, file=sys.stderr)
        return EXIT_BAD_SCENARIO
    skipped = 0
    for spec in specs:
        if not args.live and spec.live_only():
            skipped += 1
            console.print("[yellow]skipped[/] %s (%s): live-only faults (%s): run it with edge-agent sim run --live %s" % (
                spec.name, os.path.relpath(spec.path), ", ".join("%s %s" % (f.key, f.kind) for f in spec.live_only()),
                os.path.relpath(spec.path)))
            continue
        report_path = None
        if args.report:
            report_path = args.report
            if len(specs) > 1:
                base, ext = os.path.splitext(args.report)
                report_path = "%s-%s%s" % (base, spec.stem, ext or ".png")
        if args.live:
            from ..fixtures.broker import BrokerError
            from .live import run as live

            try:
                result = live.run(spec, seed=args.seed, speed=args.speed, console=console, quiet=args.quiet)
            except (live.LiveError, BrokerError) as exc:
                print("edge-agent sim run --live: %s" % exc, file=sys.stderr)
                return EXIT_BAD_SCENARIO
        else:
            result = virtual.run(spec, seed=args.seed, console=console, quiet=args.quiet)
        results.append(result)
        report.print_result(result, console, quiet=args.quiet)
        if report_path:
            report.write_png(result, report_path)
            console.print("report: %s" % report_path)
    if args.junit:
        report.write_junit(results, args.junit)
        if not args.quiet:
            console.print("junit: %s" % args.junit)
    failed = [r for r in results if not r.passed]
    console.print("%d scenario%s, %d failed%s" % (len(results), "" if len(results) == 1 else "s", len(failed),
                                                ", %d skipped (live only)" % skipped if skipped else ""))
    return EXIT_FAILED if failed else EXIT_OK
