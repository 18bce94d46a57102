"""`make demo`'s console step: a technician session on a running agent.

Starts what a console needs, on real parts: mosquitto with mutual TLS and
the shipped ACL (docs/deploy/), the demo gateway's virtual sensor board on
a pty, and `edge-agent run` with its console on a Unix socket
(`--console-socket`) trusting one operator key (`--operators`). Then,
through the same client code as `edge-agent console`, it types a session
and prints the transcript: status, components, a login with a technician
token made by `edge-agent keys technician-token`, a forced quarantine of
the cabinet fan and its release (each audited), logout. Everything it
started is stopped before it returns.

    python -m simulator.demo.console     # on its own
"""

import os
import sys
import tempfile

from ..fixtures.broker import Acl, Mosquitto
from ..fixtures.pki import DevPKI
from ..fixtures.processes import Child, edge_agent_argv, print_lock, say
from .. import ROOT

BOARD = os.path.join(ROOT, "boards", "demo-gateway.toml")
DEVICE_ID = "demo-console"
MODEL = "EA-DEMO-1"  # the demo gateway's (boards/demo-gateway.toml)
AUDITS = 4  # login, quarantine.force, quarantine.release, logout


def _quiet(argv):
    import subprocess

    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT)
    if result.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(argv[3:5]), result.stderr.strip()))
    return result.stdout


def run(workdir):
    """Run the console session; print its transcript. Returns the lines of
    the transcript; raises RuntimeError if a step did not do what it should."""
    os.makedirs(workdir, exist_ok=True)
    children = []
    broker = None
    try:
        pki = DevPKI(os.path.join(workdir, "pki"))
        cert, key = pki.client(DEVICE_ID)
        identity = os.path.join(workdir, "identity")
        _quiet(edge_agent_argv("keys", "init", "--dir", identity, "--device-id", DEVICE_ID))
        operator_dir = os.path.join(workdir, "operator")
        _quiet(edge_agent_argv("keys", "operator-init", operator_dir, "--name", "ops-team"))
        operators = os.path.join(workdir, "operators.toml")
        with open(operators, "w") as f:
            f.write(_quiet(edge_agent_argv("keys", "operator-entry", operator_dir)))
        say("operator ops-team made (edge-agent keys operator-init); the device trusts its public key (--operators)")
        # The broker's ACL: the device writes only as itself and reads its own
        # and its model's commands; the operator reads the audits (watch).
        acl = Acl()
        acl.device(DEVICE_ID, MODEL)
        acl.operator("ops-team")
        broker = Mosquitto(os.path.join(workdir, "broker"), pki=pki, acl=acl).start()
        sim = Child("simulator", edge_agent_argv("sim", "sensors", "--board", BOARD, "--seed", "11"), stdin=True,
                    relay=False)
        children.append(sim)
        pty = sim.wait_for("pty ", 10).split(" ", 1)[1]
        socket_path = os.path.join(workdir, "console.sock")
        agent = Child("agent", edge_agent_argv(
            "run", "--board", BOARD, "--port", pty, "--identity", identity, "--gpio", "simulated",
            "--broker", "127.0.0.1:%d" % broker.port, "--ca", pki.ca_cert, "--cert", cert, "--key", key,
            "--console-socket", socket_path, "--operators", operators), relay=False)
        children.append(agent)
        agent.wait_for("connected to broker", 30)
        agent.wait_for("console: socket", 10)
        registry = os.path.join(workdir, "devices.toml")
        with open(registry, "w") as f:
            f.write(_quiet(edge_agent_argv("keys", "registry-entry", identity)))
        watch_cert, watch_key = pki.operator("ops-team")
        watch = Child("watch", edge_agent_argv(
            "watch", "--device", DEVICE_ID, "--kind", "audit", "--registry", registry, "--count", str(AUDITS),
            "--timeout", "30", "--broker", "127.0.0.1:%d" % broker.port, "--ca", pki.ca_cert,
            "--cert", watch_cert, "--key", watch_key), relay=False)
        children.append(watch)
        watch.wait_for("watching", 15)
        token = _quiet(edge_agent_argv("keys", "technician-token", "--operator", operator_dir, "--device", DEVICE_ID,
                                       "--subject", "alice", "--scopes", "read,override", "--ttl", "30m")).strip()
        say("technician token for alice (scopes read, override; 30 min), from edge-agent keys technician-token: "
            "%d characters" % len(token))
        say("$ edge-agent console %s" % os.path.relpath(socket_path, workdir))
        transcript = _session(socket_path, token, agent)
        if watch.process.wait(35) != 0:
            raise RuntimeError("console: the %d audit signals did not all reach the broker verified:\n%s"
                               % (AUDITS, "\n".join(watch.lines[-10:])))
        say("the subscriber (edge-agent watch --kind audit --registry) received and verified %d audit signals: "
            "login, force, release, logout" % AUDITS)
        return transcript
    finally:
        for child in reversed(children):
            child.stop()
        if broker is not None:
            broker.stop()


def _session(socket_path, token, agent):
    import time

    from edge_agent.cli.console import Connection, Session

    session = Session(Connection(socket_path), colour=False)
    transcript = list(session.start())
    time.sleep(1.5)  # let the sensor board's readings reach the agent
    checks = [
        ("status", "link        online"),
        ("components", "cabinet_fan"),
        ("login " + token, "logged in as alice"),
        ("quarantine force cabinet_fan", "cabinet_fan: ok -> forced"),
        ("components", "forced into quarantine by alice"),
        ("quarantine release cabinet_fan", "cabinet_fan: forced -> ok"),
        ("logout", "logged out alice"),
    ]
    try:
        for command, wanted in checks:
            prompt = session.screen.prompt
            shown = command if not command.startswith("login ") else "login %s...%s" % (token[:12], token[-6:])
            answer = session.ask(command)
            transcript.append(prompt + shown)
            transcript.extend(answer)
            if not any(wanted in line for line in answer):
                raise RuntimeError("console: %r did not answer %r:\n%s" % (command, wanted, "\n".join(answer)))
    finally:
        session.leave()
        session.connection.close()
    with print_lock:
        for line in transcript:
            print("    " + line)
        sys.stdout.flush()
    agent.wait_for("gpio fan_power (/dev/gpiochip0 line 17) -> on", 5)
    return transcript


if __name__ == "__main__":
    run(tempfile.mkdtemp(prefix="edge-agent-console-demo-"))
