"""`make demo`: the simulated device end to end, on real parts, driven by
scenario files from the library.

1. live, on real time (simulator/scenarios/demo_live.toml, run by the
   engine behind `edge-agent sim run --live`, simulator/scenarios/live/run.py):
   a throwaway CA, mosquitto with mutual TLS and the shipped ACL
   (docs/deploy/: each client acts only as its certificate's CN), the
   reference receiver (verifies every signature, stores in SQLite), the
   TCP fault proxy, the demo gateway's physics on a pseudo-terminal and
   the agent (`edge-agent run`, simulated GPIO) reading it. On the scenario's
   timeline: line noise on the serial port (counted, skipped), the coolant
   probe failing high (a signed critical alert), the cabinet fan's
   tachometer sticking (the health engine quarantines the fan and cuts its
   power pin), a network partition (the store holds the signals), a power
   cut (SIGKILL; the store recovers). Its expectations are judged on the
   receiver's database: every signal arrived, none missing. PNG report:
   .demo/demo_live.png.
2. prediction, on a virtual clock: the library scenario
   simulator/scenarios/bearing_wear.toml (75 simulated days of a bearing
   wearing out, through the real health engine, store, sealing and
   receiver); its PNG report .demo/bearing_wear.png.
3. the fleet web view over the live run's receiver database (web.py): its
   URL (and token file) is the last line; open while the demo ends, and
   kept open until Ctrl-C with EA_DEMO_KEEP=1.

Everything started is stopped at the end (process groups, so nothing is
left behind), and the exit status is 0 only if every expectation held.
"""

import os
import shutil
import sys
import tempfile

from ..fixtures.processes import print_lock, say
from .. import ROOT

LIBRARY = os.path.join(ROOT, "simulator", "scenarios")
# The demo's reports stay after it ends (a file to open, unlike the work dir).
REPORT_DIR = os.path.join(ROOT, ".demo")


def run_live_scenario(name, report_path, workdir):
    """Run one scenario of simulator/scenarios/ live: real processes on real
    time, its faults really applied, its timeline printed as it happens."""
    from rich.console import Console

    from ..scenarios import spec as scenario
    from ..scenarios.live import run as scenario_live
    from ..scenarios import report as scenario_report

    console = Console(width=110, highlight=False)
    spec = scenario.load(os.path.join(LIBRARY, name))
    result = scenario_live.run(spec, console=console, quiet=False, workdir=workdir, show_agent=True)
    with print_lock:
        scenario_report.print_result(result, console)
    scenario_report.write_png(result, report_path)
    if not result.passed:
        raise RuntimeError("scenario %s: an expectation failed (see above)" % name)
    return report_path


def run_library_scenario(name, report_path):
    """Run one scenario of simulator/scenarios/ on the virtual clock through
    the real pipeline (health engine, store, sealing, receiver), print its
    expectations with their evidence, and write its PNG report."""
    from rich.console import Console

    from ..scenarios import spec as scenario
    from ..scenarios import report as scenario_report
    from ..scenarios import virtual as scenario_run

    spec = scenario.load(os.path.join(LIBRARY, name))
    result = scenario_run.run(spec, quiet=True)
    with print_lock:
        scenario_report.print_result(result, Console(width=110))
    scenario_report.write_png(result, report_path)
    if not result.passed:
        raise RuntimeError("scenario %s: an expectation failed (see above)" % name)
    return report_path


def step(text):
    say("\n==> " + text)


def main():
    workdir = tempfile.mkdtemp(prefix="edge-agent-demo-")
    os.makedirs(REPORT_DIR, exist_ok=True)
    reports = []
    view = None
    ok = False
    try:
        step("live: scenario simulator/scenarios/demo_live.toml on real processes: mosquitto (mutual TLS, ACL), the "
             "reference receiver, the fault proxy, the sensor board on a pty, the agent; faults on its timeline")
        reports.append(run_live_scenario("demo_live.toml", os.path.join(REPORT_DIR, "demo_live.png"),
                                         os.path.join(workdir, "live")))
        step("technician console: a session on a running agent (status, components, login with a technician "
             "token, a forced quarantine and its release, each audited)")
        from . import console as demo_console

        demo_console.run(os.path.join(workdir, "console"))
        step("predicting a failure days ahead: scenario simulator/scenarios/bearing_wear.toml, "
             "75 simulated days on a virtual clock")
        reports.append(run_library_scenario("bearing_wear.toml", os.path.join(REPORT_DIR, "bearing_wear.png")))
        step("the fleet web view (edge-agent receiver web) over the live run's receiver database")
        from . import web as demo_web

        view = demo_web.start(os.path.join(workdir, "live", "receiver.sqlite"), workdir, "demo-001")
        ok = True
        step("signed alerts verified and stored, the failing fan quarantined and its power cut, noise, a "
             "partition and a power cut ridden out with nothing missing, a failure predicted days ahead: "
             "the device works end to end")
        return 0
    except Exception as exc:  # report any failure plainly, then clean up
        print("\ndemo failed: %s" % exc, file=sys.stderr)
        return 1
    finally:
        if view is not None:
            if ok and os.environ.get("EA_DEMO_KEEP"):
                say("web view: %s (token in %s)" % (view[1], view[2]))
                demo_web.wait_for_ctrl_c(view[0])
            view[0].stop()
        if os.environ.get("EA_DEMO_KEEP"):
            kept = "kept %s (EA_DEMO_KEEP): certificates, store, receiver database, process logs" % workdir
        else:
            shutil.rmtree(workdir, ignore_errors=True)
            kept = "removed %s (EA_DEMO_KEEP=1 keeps it)" % workdir
        say(kept)
        say("demo %s" % ("passed" if ok else "FAILED"))
        for path in reports:
            say("scenario report: %s" % os.path.relpath(path, ROOT))
        if view is not None:
            say("web view of the live run: %s (token in %s; %s)" % (
                view[1], view[2], "stopped: Ctrl-C ended it" if os.environ.get("EA_DEMO_KEEP")
                else "stopped with the demo: EA_DEMO_KEEP=1 keeps it open"))


if __name__ == "__main__":
    sys.exit(main())
