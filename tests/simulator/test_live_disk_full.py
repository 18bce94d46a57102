"""A really full disk under a running agent (the live `disk_full` fault's
mechanism, without the rest of a scenario): the agent's store on a small
tmpfs of its own, filled to the last byte while readings stream in.

The agent rides it out like a full store (docs/store.md, "A full disk"):
one log line when the disk fills, no traceback, records held in RAM and
sent from there; stopped and restarted while the disk is still full it
recovers what is on disk and runs; when space returns it says so."""

import os
import threading
import time

import pytest

from edge_agent.core import frames as fr
from simulator.faults import small_fs

pytestmark = pytest.mark.integration


@pytest.fixture
def store_fs(tmp_path):
    mount_point = tmp_path / "storefs"
    mount_point.mkdir()
    why = small_fs.mount_tmpfs(str(mount_point), 1024 * 1024)
    if why:
        pytest.skip("needs root to mount a tmpfs: %s" % why)
    yield str(mount_point)
    small_fs.unmount(str(mount_point))


def test_the_agent_rides_out_a_really_full_disk(broker, start_agent, pty, store_fs):
    os.set_blocking(pty.master, False)
    extra = ("--store-dir", os.path.join(store_fs, "store"), "--telemetry-interval-ms", "200",
             "--store-max-bytes", "524288", "--store-segment-bytes", "16384")
    agent = start_agent(broker.port, "disk-full-1", pty.path, extra=extra)
    agent.child.wait_for("connected to broker", 20)
    stop = threading.Event()

    def stream():
        n = 0
        while not stop.is_set():
            n += 1
            try:
                os.write(pty.master, fr.encode_frame(fr.READING, "coolant_temp", 40 + n % 7))
            except OSError:
                pass
            time.sleep(0.003)

    thread = threading.Thread(target=stream, daemon=True)
    thread.start()
    try:
        time.sleep(1.0)
        assert small_fs.fill(os.path.join(store_fs, "filler"))[1] == 0
        agent.child.wait_for("store: disk full at", 10)
        time.sleep(2.0)
        _assert_running(agent)
        # Stopped (cleanly) and started again while the disk is still full.
        agent.stop()
        assert agent.child.process.returncode == 0, agent.child.text()[-2000:]
        again = start_agent(broker.port, "disk-full-1", pty.path, extra=extra)
        again.child.wait_for("connected to broker", 20)
        again.child.wait_for("store: disk full at", 10)
        time.sleep(1.0)
        _assert_running(again)
        os.remove(os.path.join(store_fs, "filler"))
        again.child.wait_for("takes writes again", 15)
        _assert_running(again)
        # One line when the disk filled, one when it had room again.
        disk_lines = [line for line in again.child.lines if "store: disk" in line]
        assert len(disk_lines) == 2, disk_lines
    finally:
        stop.set()
        thread.join(2)


def _assert_running(agent):
    alive = agent.child.process.poll() is None
    text = agent.child.text()
    assert alive, "the agent exited (code %s): %s" % (agent.child.process.returncode, text[-2000:])
    assert "Traceback" not in text, text[-3000:]
