"""A really full disk under a running agent (the live `disk_full` fault's
mechanism, without the rest of a scenario): the agent's store on a small
tmpfs of its own, filled to the last byte while readings stream in.

Today the agent exits: the store's flush raises OSError ENOSPC out of the
bus task (docs/simulator.md, "Findings the live faults made"). This test
says what should happen, a full disk is a condition to ride out like a
full store, and is marked xfail(strict): when the agent is fixed it
passes, strict turns that into a failure, and the marker comes off."""

import os
import subprocess
import threading
import time

import pytest

from edge_agent.core import frames as fr

pytestmark = pytest.mark.integration


@pytest.fixture
def small_fs(tmp_path):
    mount_point = tmp_path / "storefs"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip("needs root to mount a tmpfs: %s" % done.stderr.strip())
    yield str(mount_point)
    subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def _fill(directory):
    with open(os.path.join(directory, "filler"), "wb", buffering=0) as f:
        for size in (65536, 512):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError:
                pass
    stat = os.statvfs(directory)
    return stat.f_bavail * stat.f_frsize


@pytest.mark.xfail(strict=True, reason="agent exits on ENOSPC from the store's flush (a known bug, see docstring)")
def test_the_agent_rides_out_a_really_full_disk(broker, start_agent, pty, small_fs):
    os.set_blocking(pty.master, False)
    agent = start_agent(broker.port, "disk-full-1", pty.path,
                        extra=("--store-dir", os.path.join(small_fs, "store"), "--telemetry-interval-ms", "200",
                               "--store-max-bytes", "524288", "--store-segment-bytes", "16384"))
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
        assert _fill(small_fs) == 0
        time.sleep(4.0)
        alive = agent.child.process.poll() is None
    finally:
        stop.set()
        thread.join(2)
    assert alive, "the agent exited (code %s): %s" % (
        agent.child.process.returncode, [l for l in agent.child.lines if "Error" in l][-1:])
