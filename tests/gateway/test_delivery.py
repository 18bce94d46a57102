"""Nothing lost, nothing silently duplicated: signals flow from a real agent
through a real mosquitto to the reference receiver while the broker and the
agent are killed with SIGKILL, several times each. At the end every seq the
agent issued is stored exactly once at the receiver, and no gap remains
(numbers skipped by the sequencer at a restart are told apart by the
device's birth signals)."""

import os
import re
import sqlite3
import threading
import time

import pytest

from edge_agent.core import frames as fr
from edge_agent.receiver.storage import Storage
from simulator.fixtures.broker import Mosquitto, free_port
from simulator.fixtures.processes import Child, edge_agent_argv

pytestmark = pytest.mark.integration

BROKER_KILLS = 3
AGENT_KILLS = 3


class SensorStream:
    """Writes frames into the agent's pty like a UART: what nobody reads is
    dropped. Every 50th reading is out of range, so alerts mix with telemetry."""

    def __init__(self, pty, rate_hz=400):
        self.pty = pty
        self.rate_hz = rate_hz
        self.stop = threading.Event()
        os.set_blocking(pty.master, False)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        n = 0
        while not self.stop.is_set():
            n += 1
            value = 150 if n % 50 == 0 else 40 + (n % 7)
            try:
                os.write(self.pty.master, fr.encode_frame(fr.READING, "coolant_temp", value))
            except (BlockingIOError, OSError):
                pass
            time.sleep(1 / self.rate_hz)

    def close(self):
        self.stop.set()
        self.thread.join(5)


def _max_seq(db):
    with sqlite3.connect(db) as connection:
        return connection.execute("SELECT COALESCE(MAX(seq), 0) FROM signals").fetchone()[0]


def _wait_growth(db, timeout_s=30):
    """Wait until the receiver stores something new."""
    start = _max_seq(db)
    deadline = time.monotonic() + timeout_s
    while _max_seq(db) <= start:
        assert time.monotonic() < deadline, "receiver stopped receiving (max seq %d)" % start
        time.sleep(0.2)


def test_no_loss_across_broker_and_agent_sigkill(pki, start_agent, pty, tmp_path):
    port = free_port()
    broker_dir = str(tmp_path / "broker")
    broker = Mosquitto(broker_dir, pki=pki, port=port, persistent=True).start()
    # The receiver subscribes before the device's first signal (its birth).
    from edge_agent.keys.identity import create_identity

    identity = create_identity(str(tmp_path / "delivery-1"), "delivery-1")
    registry_file = tmp_path / "devices.toml"
    registry_file.write_text(identity.registry_entry())
    db = str(tmp_path / "receiver.sqlite")
    cert, key = pki.client("delivery-receiver")
    receiver = Child("receiver", edge_agent_argv(
        "receiver", "run", "--registry", str(registry_file), "--db", db, "--no-live", "--group", "",
        "--client-id", "delivery-receiver",
        "--broker", "127.0.0.1:%d" % port, "--ca", pki.ca_cert, "--cert", cert, "--key", key), relay=False)
    stream = None
    agent = None
    try:
        receiver.wait_for("receiving", 15)
        agent = start_agent(port, "delivery-1", pty.path, extra=("--telemetry-interval-ms", "200"))
        agent.child.wait_for("connected to broker", 20)
        stream = SensorStream(pty)
        for round_ in range(max(BROKER_KILLS, AGENT_KILLS)):
            _wait_growth(db)
            if round_ < BROKER_KILLS:
                broker.kill()
                time.sleep(0.5)
                broker = Mosquitto(broker_dir, pki=pki, port=port, persistent=True).start()
            _wait_growth(db)
            if round_ < AGENT_KILLS:
                agent.child.kill()
                agent = start_agent(port, "delivery-1", pty.path, extra=("--telemetry-interval-ms", "200"))
        _wait_growth(db)
        stream.close()
        # Let the last telemetry batch form and drain, then stop cleanly: the
        # agent reports the last seq it issued.
        time.sleep(1.5)
        deadline = time.monotonic() + 30
        agent.child.stop()
        last = int(re.search(r"last seq issued (\d+)", agent.child.wait_for("last seq issued", 10)).group(1))
        while _max_seq(db) < last:
            assert time.monotonic() < deadline, "receiver has seq %d of %d" % (_max_seq(db), last)
            time.sleep(0.2)
    finally:
        if stream:
            stream.close()
        receiver.stop()
        broker.stop()
    storage = Storage(db)
    lost, skipped = storage.missing("delivery-1")
    count = storage.db.execute("SELECT COUNT(*) FROM signals WHERE device='delivery-1'").fetchone()[0]
    births = storage.db.execute("SELECT COUNT(*) FROM signals WHERE device='delivery-1' AND kind=5").fetchone()[0]
    alerts = storage.db.execute("SELECT COUNT(*) FROM alerts WHERE device='delivery-1'").fetchone()[0]
    duplicates = storage.db.execute("SELECT duplicates FROM devices WHERE device='delivery-1'").fetchone()[0]
    storage.close()
    print("delivery: last seq %d, stored %d, skipped at restarts %s, duplicates dropped %d, alerts %d, births %d"
          % (last, count, skipped, duplicates, alerts, births))
    assert lost == [], "lost seq ranges: %s" % lost
    assert count == last - sum(b - a + 1 for a, b in skipped)
    assert births == AGENT_KILLS + 1
    assert alerts > 0
