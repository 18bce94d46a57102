"""A door switch on a (simulated) GPIO input, read by the firmware as a
sensor at its board period: flipping the pin's level shows up in the
telemetry the receiver verifies, in order."""

import sqlite3
import time

import pytest
from fw_support import BOARD, Rig, stop_firmware

from edge_agent.core import cbor
from edge_agent.core import signals as sg

pytestmark = pytest.mark.integration

DOOR = """
[sensors.door_open]
bus = "uart0"
component = "cabinet_fan"
unit = "bool"
valid_range = [0, 1]
period_ms = 100
"""


def test_door_switch_on_an_input_pin(pki, broker, pty, tmp_path):
    board = tmp_path / "door.toml"
    board.write_text(open(BOARD).read() + DOOR)
    rig = Rig(tmp_path, pki, "fw-pins-1", board=str(board))
    door = tmp_path / "door.pin"
    door.write_text("0")
    try:
        rig.start_receiver(broker.port)
        firmware = rig.start_firmware(pty.path, broker.port, "--input-pin", "door_open=%s" % door,
                                      "--telemetry-interval-ms", "200", "--heap-log-ms", "0")
        firmware.wait_for("connected to broker", 20)
        time.sleep(0.5)
        door.write_text("1")  # the door opens
        time.sleep(0.5)
        door.write_text("0")
        time.sleep(0.5)
        last = stop_firmware(firmware)
        rig.wait_seq(last, 20)
    finally:
        rig.stop_all()
    with sqlite3.connect(rig.db) as db:
        bodies = [cbor.loads(row[0]) for row in db.execute(
            "SELECT body FROM signals WHERE device=? AND kind=? ORDER BY seq", (rig.device_id, sg.KIND_TELEMETRY))]
    levels = [value for body in bodies for _, sensor, value, _ in body[sg.T_READINGS] if sensor == "door_open"]
    changes = [levels[0]] + [b for a, b in zip(levels, levels[1:]) if a != b]
    assert changes == [0.0, 1.0, 0.0], levels
    assert len(levels) >= 8  # sampled every 100 ms for ~1.5 s
