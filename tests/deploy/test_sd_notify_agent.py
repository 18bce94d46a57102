"""The agent under systemd's notify protocol, with the real parts: a unix
datagram socket bound where $NOTIFY_SOCKET says, a real agent process
(configured by an agent.toml, its serial port given on the command line),
a TLS mosquitto. READY=1 comes once the store is open, WATCHDOG=1 at half
of $WATCHDOG_USEC, none while the process is stopped (SIGSTOP: a stalled
loop), and STATUS= says the link and the store's depth."""

import os
import signal
import socket
import time

import pytest

from edge_agent.keys.identity import create_identity
from simulator.fixtures.processes import Child, edge_agent_argv

from conftest import BOARD, board_model

pytestmark = pytest.mark.integration

WATCHDOG_S = 1.0  # WatchdogSec=1: a ping every 0.5 s


class NotifySocket:
    """What systemd listens on: datagrams, each parsed to {VAR: value}."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)

    def receive(self, timeout_s):
        """[(arrival monotonic time, {VAR: value})] of what arrives within ``timeout_s``."""
        got = []
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return got
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                return got
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if line)
            got.append((time.monotonic(), fields))

    def wait_for(self, key, timeout_s):
        deadline = time.monotonic() + timeout_s
        seen = []
        while time.monotonic() < deadline:
            for when, fields in self.receive(min(0.2, deadline - time.monotonic())):
                seen.append(fields)
                if key in fields:
                    return when, fields, seen
        raise AssertionError("no %s within %.0f s; got %r" % (key, timeout_s, seen))

    def close(self):
        self.sock.close()


def write_config(tmp_path, pki, broker_port, device_id):
    identity = tmp_path / device_id
    create_identity(str(identity), device_id, "EdDSA")
    cert, key = pki.client(device_id)
    pki.device_model(device_id, board_model(BOARD))
    config = tmp_path / "agent.toml"
    config.write_text(
        '[agent]\nboard = "%s"\nidentity = "%s"\ngpio = "simulated"\n'
        '[agent.ports]\nuart0 = "/dev/this-port-is-overridden"\n'
        '[broker]\naddress = "127.0.0.1:%d"\nca = "%s"\ncert = "%s"\nkey = "%s"\n'
        '[logging]\nlevel = "debug"\n' % (BOARD, identity.name, broker_port, pki.ca_cert, cert, key))
    return config, identity


def test_ready_after_the_store_opens_watchdog_pings_stop_when_the_loop_stalls(broker, pki, pty, tmp_path):
    device_id = "notify-1"
    config, identity = write_config(tmp_path, pki, broker.port, device_id)
    notify = NotifySocket(str(tmp_path / "notify.sock"))
    env = {"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": str(int(WATCHDOG_S * 1e6))}
    # The config file names a port that does not exist: the command line's --port wins.
    agent = Child("agent-notify", edge_agent_argv("run", "--config", str(config), "--port", pty.path), relay=False,
                  env=env)
    try:
        _, ready, before = notify.wait_for("READY", 30)
        assert ready["READY"] == "1" and len(before) == 1, before  # READY is the first datagram
        # READY only once the store is open (its lock is held) and the bus runs.
        assert os.path.exists(identity / "store" / "lock")
        assert "store: " in ready["STATUS"] and "broker" in ready["STATUS"], ready
        agent.wait_for("systemd: ready; watchdog ping every 0.5 s", 5)
        assert "this-port-is-overridden" not in agent.text()

        # STATUS follows the link and the bus: online and open once connected.
        deadline = time.monotonic() + 20
        status = ready
        while "broker online" not in status["STATUS"] or "uart0 open" not in status["STATUS"]:
            assert time.monotonic() < deadline, status
            _, status, _ = notify.wait_for("STATUS", 20)
        assert status["STATUS"].startswith("broker online (127.0.0.1:%d (TLS)); buses: uart0 open; store: " % broker.port)
        assert status["STATUS"].endswith(" signals waiting"), status

        pings = [when for when, fields in notify.receive(3.0) if fields.get("WATCHDOG") == "1"]
        assert 4 <= len(pings) <= 8, pings  # 3 s at one per 0.5 s
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        assert max(gaps) < WATCHDOG_S, gaps  # every ping inside the watchdog interval

        # A stalled agent sends nothing: systemd would restart it after WatchdogSec.
        os.kill(agent.process.pid, signal.SIGSTOP)
        notify.receive(0.2)  # anything already in flight
        try:
            stalled = notify.receive(2.5)
        finally:
            os.kill(agent.process.pid, signal.SIGCONT)
        assert stalled == [], stalled
        notify.wait_for("WATCHDOG", 5)  # and pings again once it runs

        agent.stop()
        stopping = [fields for _, fields in notify.receive(1.0) if "STOPPING" in fields]
        assert stopping and stopping[0]["STOPPING"] == "1"
        assert agent.process.returncode == 0, agent.text()[-2000:]
    finally:
        agent.stop()
        notify.close()


def test_without_notify_socket_the_agent_says_nothing_of_systemd(broker, pki, pty, tmp_path):
    config, _ = write_config(tmp_path, pki, broker.port, "notify-2")
    agent = Child("agent-plain", edge_agent_argv("run", "--config", str(config), "--port", pty.path), relay=False)
    try:
        agent.wait_for("connected", 30)
        assert "systemd" not in agent.text()
    finally:
        agent.stop()
