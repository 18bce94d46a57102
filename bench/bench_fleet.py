"""Fleet mode at full size: 1,000 devices on this machine, end to end.

Each run is `edge-agent sim fleet simulator/scenarios/fleet/fleet_1000.toml`
in its own process: 1,000 agents (core Device, durable store, TLS uplink,
signed downlink each) in one asyncio process, one mosquitto restarted
mid-run, the reference receiver process; a common fault on 60 devices
escalates to a fleet incident and a signed advisory to the model's 500
devices. Reported: signals issued and verified-and-stored at the receiver
(lost must be 0), the reconnect storm after the broker restart, the CPU
the whole thing took, and how late the physics ticker ran at worst (the
fleet process keeping real time: at 2,000 devices here it stalls for
seconds during the storm).

The peer is the same fleet without jitter (`--no-jitter`): the uplink's
exponential backoff with the whole wait instead of a uniform draw from it,
the thundering herd. Every device lost the broker at the same instant, so
without jitter they retry at the same instants and arrive together; the
ratio is the herd's peak connects per second over the jittered peak.

Run: .venv/bin/python bench/bench_fleet.py [--count N] [--runs 1]   (part of `make bench`)
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLEET = os.path.join(ROOT, "simulator", "scenarios", "fleet", "fleet_1000.toml")


def cpu_of_children():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(count, jitter):
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        out = os.path.join(tmp, "fleet.json")
        argv = [sys.executable, "-m", "edge_agent", "sim", "fleet", FLEET, "--quiet", "--json", out]
        if count:
            argv += ["--count", str(count)]
        if not jitter:
            argv.append("--no-jitter")
        cpu = cpu_of_children()
        started = time.monotonic()
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
        wall = time.monotonic() - started
        if not os.path.exists(out):
            sys.exit("bench_fleet: the fleet run failed (exit %d):\n%s%s" % (proc.returncode, proc.stdout, proc.stderr))
        with open(out) as f:
            figures = json.load(f)
        figures["cpu_s"] = cpu_of_children() - cpu  # fleet, receiver and mosquitto (all reaped children)
        figures["exit"] = proc.returncode
        figures["run_wall_s"] = wall
        if proc.returncode != 0:
            print(proc.stdout)
        return figures


def row(name, f):
    return "%-22s %7d %8d %8d %5d %7.0f %9.1f %7.1f %10s %8s %8s %9s" % (
        name, f["devices"], f["issued"], f["stored"], f["lost"], f["run_wall_s"], f["cpu_s"], f["max_stall_ms"] / 1000,
        f["storm_peak_broker"], f["storm_peak_clients"], "%.1f s" % (f["storm_spread_ms"] / 1000),
        "%.1f s" % (f["storm_last_after_up_ms"] / 1000) if f["storm_last_after_up_ms"] is not None else "-")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, help="devices (default: the file's 1000)")
    args = parser.parse_args()
    print("fleet: %s, %d cores" % (os.path.relpath(FLEET, ROOT), os.cpu_count()))
    jittered = run(args.count, jitter=True)
    herd = run(args.count, jitter=False)
    print("%-22s %7s %8s %8s %5s %7s %9s %7s %10s %8s %8s %9s" % (
        "run", "devices", "issued", "stored", "lost", "wall s", "CPU s", "late s", "peak/s", "peak/s", "spread",
        "last back"))
    print("%-22s %7s %8s %8s %5s %7s %9s %7s %10s %8s %8s %9s" % (
        "", "", "signals", "verified", "", "", "all procs", "ticker", "at broker", "clients", "", "after up"))
    print(row("full jitter (ours)", jittered))
    print(row("no jitter (herd)", herd))
    for name, f in (("full jitter", jittered), ("no jitter", herd)):
        print("%s: connects per second at the broker after the restart: %s" % (
            name, " ".join(str(c) for c in f["storm_per_second"])))
        model = f["advisory"].get("EA-FLEET-1", {})
        print("%s: incident %s, advisory applied by %d of %d EA-FLEET-1 devices; expectations %s" % (
            name, "raised" if f["incidents"] else "NOT raised", model.get("applied", 0), model.get("devices", 0),
            "all held" if f["passed"] else "FAILED: " + "; ".join(n for n, ok, _ in f["outcomes"] if not ok)))
    if jittered["storm_peak_broker"]:
        print("herd / jitter peak connects per second: %.1fx (broker log), %.1fx (clients' CONNACKs)" % (
            herd["storm_peak_broker"] / jittered["storm_peak_broker"],
            herd["storm_peak_clients"] / max(1, jittered["storm_peak_clients"])))
    ok = jittered["lost"] == 0 and herd["lost"] == 0 and jittered["passed"]
    print("fleet of %d sustained end to end: %s" % (jittered["devices"], "yes, 0 lost" if ok else "NO"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
