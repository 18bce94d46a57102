"""`make demo`: the simulated device end to end, on real parts.

1. a throwaway CA and certificates (mutual TLS);
2. a real mosquitto on a free loopback port, TLS with client certificates;
3. the virtual sensor board on a pseudo-terminal;
4. the agent (`edge-agent run`) reading that pty and publishing to the broker;
5. a subscriber (`edge-agent watch`) that decodes what arrives;
6. line noise on the serial port (the agent counts it and carries on), then
   the coolant temperature sensor fails high: the alert arrives at the
   subscriber and is shown as a table.

Everything started is stopped at the end (process groups, so nothing is
left behind), and the exit status is 0 only if the alert arrived.
"""

import os
import shutil
import subprocess
import sys
import tempfile

from simulator.broker import Mosquitto
from simulator.pki import DevPKI
from simulator.processes import Child, edge_agent_argv, say

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOARD = os.path.join(ROOT, "boards", "demo-gateway.toml")
DEVICE_ID = "demo-001"
FAILING_SENSOR = "coolant_temp"
ALERT_TIMEOUT_S = 30


def run_quietly(argv):
    """Run a short edge-agent command; return its stdout, raise on failure."""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(argv[2:]), result.stderr.strip()))
    return result.stdout


def step(text):
    say("\n==> " + text)


def main():
    workdir = tempfile.mkdtemp(prefix="edge-agent-demo-")
    children = []
    broker = None
    ok = False
    try:
        step("making a throwaway CA, broker and client certificates in %s" % workdir)
        pki = DevPKI(os.path.join(workdir, "pki"))
        agent_cert, agent_key = pki.client(DEVICE_ID)
        watch_cert, watch_key = pki.client("demo-watch")

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
        say("broker listening on %s (config %s)" % (address, broker.config_path))

        step("starting the virtual sensor board (%s)" % os.path.relpath(BOARD, ROOT))
        sim = Child("simulator", edge_agent_argv("sim", "sensors", "--board", BOARD, "--seed", "7"), stdin=True)
        children.append(sim)
        pty = sim.wait_for("pty ", 10).split(" ", 1)[1]

        step("starting the agent on %s, device id %s" % (pty, DEVICE_ID))
        tls = ["--broker", address, "--ca", pki.ca_cert]
        agent = Child(
            "agent",
            edge_agent_argv("run", "--board", BOARD, "--port", pty, "--identity", identity_dir,
                       "--telemetry-interval-ms", "2000", *tls, "--cert", agent_cert, "--key", agent_key),
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
        ok = True
        step("the alert arrived at the subscriber, decoded above: the device works end to end")
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
        shutil.rmtree(workdir, ignore_errors=True)
        say("stopped %d processes%s; removed %s" % (
            len(children) + 1, (", still running: " + ", ".join(left)) if left else "", workdir))
        say("demo %s" % ("passed" if ok and not left else "FAILED"))


if __name__ == "__main__":
    sys.exit(main())
