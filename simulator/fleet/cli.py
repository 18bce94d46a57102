"""`edge-agent sim fleet FILE`: load a fleet file with the command line's
overrides, run it, print and save the figures. The options are in
edge_agent/cli/sim.py; the run is run.py."""

import json
import os
import sys

from ..fixtures.broker import BrokerError
from . import run
from . import spec as fleet_spec
from ..scenarios.spec import ScenarioError


def load_with_overrides(path, count=None, jitter=None, seed=None):
    spec = fleet_spec.load(path)
    if count is not None:
        if count < 1:
            raise ScenarioError(path, [_problem("--count", "must be at least 1", "give a positive count")])
        spec.count = count
        spec.faulty = min(spec.faulty, sum(1 for i in range(count) if spec.model_of(i) == spec.faulty_model))
    if jitter is not None:
        spec.jitter = jitter
    if seed is not None:
        spec.scenario.seed = seed
    return spec


def _problem(key, reason, fix):
    from edge_agent.core.board import Problem

    return Problem(key, reason, fix)


def main_from_args(args):
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    try:
        spec = load_with_overrides(args.file, args.count, False if args.no_jitter else None, args.seed)
    except ScenarioError as exc:
        print("edge-agent sim fleet: %s" % exc, file=sys.stderr)
        return run.EXIT_BAD_FILE
    workdir = None
    if args.workdir:
        workdir = os.path.abspath(args.workdir)
        os.makedirs(workdir, exist_ok=True)
        if os.listdir(workdir):
            print("edge-agent sim fleet: --workdir %s is not empty; give a new or empty directory" % workdir,
                  file=sys.stderr)
            return run.EXIT_BAD_FILE
    try:
        result = run.FleetRun(spec, workdir=workdir, console=console, quiet=args.quiet).run()
    except (BrokerError, RuntimeError, OSError) as exc:
        # No mosquitto, a receiver that would not start, a full disk: the
        # fleet did not run, so nothing can be judged.
        print("edge-agent sim fleet: could not run the fleet: %s" % exc, file=sys.stderr)
        return run.EXIT_FAILED
    except KeyboardInterrupt:
        # Broker, receiver and devices are stopped by then (FleetRun.run's
        # finally); an interrupted run proved nothing, so it is no pass.
        print("edge-agent sim fleet: interrupted; nothing was judged", file=sys.stderr)
        return run.EXIT_FAILED
    run.print_result(result, console)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(run.result_json(result), f, indent=1)
    return run.EXIT_OK if result.passed else run.EXIT_FAILED
