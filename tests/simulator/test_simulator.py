"""The virtual sensor board: real pty, real frames, faults on command."""

import os
import select
import time

import pytest

from edge_agent.core import frames as fr
from simulator.fixtures.processes import Child, edge_agent_argv

from conftest import BOARD

pytestmark = pytest.mark.integration


def read_frames(path, seconds):
    fd = os.open(path, os.O_RDONLY | os.O_NOCTTY)
    # Drop what the pty buffered before we looked (frames written before a
    # fault was commanded): read until the line has been quiet for 50 ms.
    while select.select([fd], [], [], 0.05)[0]:
        os.read(fd, 4096)
    decoder = fr.FrameDecoder()
    events = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                events += decoder.feed(os.read(fd, 4096))
    finally:
        os.close(fd)
    return events


@pytest.fixture
def sim():
    child = Child("sim", edge_agent_argv("sim", "sensors", "--board", BOARD, "--seed", "1"), stdin=True, relay=False)
    child.pty = child.wait_for("pty ", 10).split(" ", 1)[1]
    yield child
    child.stop()


def test_streams_valid_frames_for_every_sensor_in_range(sim):
    events = read_frames(sim.pty, 2.5)
    frames = [e for e in events if isinstance(e, fr.Frame)]
    by_sensor = {}
    for frame in frames:
        by_sensor.setdefault(frame.sensor, []).append(frame.value)
    assert set(by_sensor) == {"coolant_temp", "coolant_flow", "fan_speed", "cabinet_temp"}
    assert len(by_sensor["coolant_temp"]) >= 3  # 500 ms period
    assert -20 < min(by_sensor["coolant_temp"]) and max(by_sensor["coolant_temp"]) < 110
    # A leading partial frame is possible (we open mid-stream); nothing else is bad.
    assert sum(isinstance(e, fr.BadFrame) for e in events) <= 1


def test_faults_on_command(sim):
    sim.send("fail coolant_temp stuck")
    sim.send("fail fan_speed error")
    sim.send("fail cabinet_temp silent")
    sim.send("fail coolant_flow low")
    sim.wait_for("ok coolant_flow low", 5)
    events = read_frames(sim.pty, 2.5)
    frames = [e for e in events if isinstance(e, fr.Frame)]
    temps = {f.value for f in frames if f.sensor == "coolant_temp"}
    assert len(temps) == 1  # stuck
    assert {f.kind for f in frames if f.sensor == "fan_speed"} == {fr.SENSOR_ERROR}
    assert not [f for f in frames if f.sensor == "cabinet_temp"]
    assert all(f.value < 0 for f in frames if f.sensor == "coolant_flow")
    sim.send("heal coolant_flow")
    sim.wait_for("ok coolant_flow normal", 5)


def test_bad_commands_get_a_clear_reply(sim):
    sim.send("explode everything")
    line = sim.wait_for("error:", 5)
    assert "fail SENSOR MODE" in line and "coolant_temp" in line
    sim.send("status")
    assert "sensor coolant_temp normal sent=" in sim.wait_for("sensor coolant_temp", 5)
