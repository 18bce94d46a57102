"""`make demo`: the simulated device end to end, on real parts.

1. a throwaway CA and certificates (mutual TLS);
2. a real mosquitto on a free loopback port, TLS with client certificates;
3. the virtual sensor board on a pseudo-terminal;
4. the agent (`edge-agent run`) reading that pty and publishing to the broker;
5. a subscriber (`edge-agent watch`) that decodes what arrives;
6. the reference receiver (`edge-agent receiver run`, started first so it
   sees the device's birth) verifying every signature, storing in SQLite;
7. line noise on the serial port (the agent counts it and carries on), then
   the coolant temperature sensor fails high: the alert arrives at the
   subscriber, signature verified, and is shown as a table;
8. the cabinet fan's speed sensor sticks: the health engine quarantines the
   fan and cuts its power pin (simulated GPIO), the product runs on;
9. the receiver's report: every signal verified and stored, none missing;
10. prediction, on a virtual clock: the library scenario
    simulator/scenarios/bearing_wear.toml (75 simulated days of a bearing
    wearing out, through the real health engine, store, sealing and
    receiver); its expectations are checked and its PNG report written to
    .demo/bearing_wear.png, whose path is the demo's last line.

Everything started is stopped at the end (process groups, so nothing is
left behind), and the exit status is 0 only if the alert arrived.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

from simulator.broker import Mosquitto
from simulator.pki import DevPKI
from simulator.processes import Child, edge_agent_argv, print_lock, say

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOARD = os.path.join(ROOT, "boards", "demo-gateway.toml")
DEVICE_ID = "demo-001"
FAILING_SENSOR = "coolant_temp"
ALERT_TIMEOUT_S = 30
# The demo's reports stay after it ends (a file to open, unlike the work dir).
REPORT_DIR = os.path.join(ROOT, ".demo")
QUARANTINE_TIMEOUT_S = 60


def run_quietly(argv):
    """Run a short edge-agent command; return its stdout, raise on failure."""
    env = dict(os.environ, COLUMNS="110")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    if result.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(argv[2:]), result.stderr.strip()))
    return result.stdout


def run_library_scenario(name, report_path):
    """Run one scenario of simulator/scenarios/ on the virtual clock through
    the real pipeline (health engine, store, sealing, receiver), print its
    expectations with their evidence, and write its PNG report."""
    from rich.console import Console

    from simulator import scenario, scenario_expect, scenario_report, scenario_run

    spec = scenario.load(os.path.join(ROOT, "simulator", "scenarios", name))
    result = scenario_run.run(spec, quiet=True)
    result.outcomes = scenario_expect.evaluate(spec, result)
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
    png_report = None
    children = []
    broker = None
    ok = False
    try:
        step("making a throwaway CA, broker and client certificates in %s" % workdir)
        pki = DevPKI(os.path.join(workdir, "pki"))
        agent_cert, agent_key = pki.client(DEVICE_ID)
        watch_cert, watch_key = pki.client("demo-watch")
        receiver_cert, receiver_key = pki.client("demo-receiver")

        step("making the device's signing identity (Ed25519) and the receiver's registry")
        identity_dir = os.path.join(workdir, "identity")
        run_quietly(edge_agent_argv("keys", "init", "--dir", identity_dir, "--device-id", DEVICE_ID))
        registry = os.path.join(workdir, "devices.toml")
        with open(registry, "w") as f:
            f.write(run_quietly(edge_agent_argv("keys", "registry-entry", identity_dir, "--model", "EA-DEMO-1")))
        say("registry %s: device %s, Ed25519 public key only" % (registry, DEVICE_ID))

        step("starting mosquitto with mutual TLS on a free loopback port")
        broker = Mosquitto(os.path.join(workdir, "broker"), pki=pki).start()
        address = "127.0.0.1:%d" % broker.port
        tls = ["--broker", address, "--ca", pki.ca_cert]
        say("broker listening on %s (config %s)" % (address, broker.config_path))

        step("starting the reference receiver (verifies, drops duplicates, finds gaps, stores in SQLite)")
        database = os.path.join(workdir, "receiver.sqlite")
        receiver = Child(
            "receiver",
            edge_agent_argv("receiver", "run", "--registry", registry, "--db", database, "--no-live",
                            *tls, "--cert", receiver_cert, "--key", receiver_key),
        )
        children.append(receiver)
        receiver.wait_for("receiving", 15)

        step("starting the virtual sensor board (%s)" % os.path.relpath(BOARD, ROOT))
        sim = Child("simulator", edge_agent_argv("sim", "sensors", "--board", BOARD, "--seed", "7"), stdin=True)
        children.append(sim)
        pty = sim.wait_for("pty ", 10).split(" ", 1)[1]

        step("starting the agent on %s, device id %s" % (pty, DEVICE_ID))
        agent = Child(
            "agent",
            edge_agent_argv("run", "--board", BOARD, "--port", pty, "--identity", identity_dir,
                       "--telemetry-interval-ms", "2000", "--gpio", "simulated",
                       *tls, "--cert", agent_cert, "--key", agent_key),
        )
        children.append(agent)
        agent.wait_for("connected to broker", 20)

        step("starting a subscriber that verifies every signature (edge-agent watch --registry)")
        watch = Child(
            "watch",
            edge_agent_argv("watch", "--device", DEVICE_ID, "--registry", registry,
                            "--count", "1", "--timeout", str(ALERT_TIMEOUT_S),
                       *tls, "--cert", watch_cert, "--key", watch_key),
            prefix=False,
        )
        children.append(watch)
        watch.wait_for("watching", 15)

        step("injecting 64 bytes of line noise on the serial port (the agent counts it and carries on)")
        sim.send("garbage 64")
        agent.wait_for("bus uart0: ", 10)

        step("making %s fail high" % FAILING_SENSOR)
        sim.send("fail %s high" % FAILING_SENSOR)
        code = watch.process.wait(ALERT_TIMEOUT_S + 5)
        watch.stop()
        if code != 0:
            say("\nno alert reached the subscriber within %d s (watch exit %d)" % (ALERT_TIMEOUT_S, code))
            return 1
        step("the alert arrived, signature verified; now the cabinet fan's speed sensor sticks")
        say("(the board declares: fan_speed stuck for 10 s -> cabinet_fan failed -> quarantine = cut_power)")
        mark = agent.mark()
        sim.send("fail fan_speed stuck")
        agent.wait_for("gpio: ", QUARANTINE_TIMEOUT_S, since=mark)
        receiver.wait_for("alert %s" % DEVICE_ID, 10, since=0)

        step("stopping the agent cleanly (it seals and syncs its store), then the receiver's report")
        agent.stop()
        time.sleep(1.0)  # let the receiver commit what was in flight
        receiver.stop()
        report = run_quietly(edge_agent_argv("receiver", "report", "--db", database, "--fail-on-gaps"))
        say(report.rstrip())

        step("predicting a failure days ahead: scenario simulator/scenarios/bearing_wear.toml, "
             "75 simulated days on a virtual clock")
        png_report = run_library_scenario("bearing_wear.toml", os.path.join(REPORT_DIR, "bearing_wear.png"))
        ok = True
        step("signed alerts verified and stored, the failing fan quarantined and its power cut, "
             "nothing missing, a failure predicted days ahead: the device works end to end")
        return 0
    except Exception as exc:  # report any failure plainly, then clean up
        print("\ndemo failed: %s" % exc, file=sys.stderr)
        return 1
    finally:
        step("stopping everything the demo started")
        for child in reversed(children):
            child.stop()
        if broker is not None:
            broker.stop()
        left = [c.name for c in children if c.process.poll() is None]
        if broker is not None and broker.process.poll() is None:
            left.append("mosquitto")
        if os.environ.get("EA_DEMO_KEEP"):
            kept = "kept %s (EA_DEMO_KEEP)" % workdir
        else:
            shutil.rmtree(workdir, ignore_errors=True)
            kept = "removed %s (EA_DEMO_KEEP=1 keeps it)" % workdir
        say("stopped %d processes%s; %s" % (
            len(children) + 1, (", still running: " + ", ".join(left)) if left else "", kept))
        say("demo %s" % ("passed" if ok and not left else "FAILED"))
        if ok:
            say("scenario report: %s" % png_report)


if __name__ == "__main__":
    sys.exit(main())
