"""The firmware as a Modbus RTU master (the UART source's request/response
path): pymodbus's real server on a pty, polled by the firmware on the unix
port; scaled readings reach the receiver, verified."""

import sqlite3
import sys

import pytest
from fw_support import Rig, stop_firmware

from edge_agent.core import cbor
from edge_agent.core import signals as sg
from simulator.fixtures.processes import Child

pytestmark = pytest.mark.integration

BOARD = """
schema = 1

[board]
name = "modbus-rig"
model = "EA-MB-1"

[buses.rs485]
port = "/dev/ttyUSB1"
protocol = "modbus"
baud = 115200
timeout_ms = 60
retries = 1

[components.climate]
part = "THT-485"

[sensors.cabinet_temp]
bus = "rs485"
component = "climate"
unit = "degC"
valid_range = [-40.0, 80.0]
period_ms = 200
[sensors.cabinet_temp.modbus]
slave = 7
function = 4
address = 0
type = "int16"
scale = 0.1

[sensors.cabinet_humidity]
bus = "rs485"
component = "climate"
unit = "%RH"
valid_range = [0.0, 100.0]
period_ms = 200
[sensors.cabinet_humidity.modbus]
slave = 7
function = 3
address = 1
type = "uint16"
scale = 0.1
"""


def test_firmware_polls_a_pymodbus_slave(pki, broker, tmp_path):
    board = tmp_path / "modbus-rig.toml"
    board.write_text(BOARD)
    rig = Rig(tmp_path, pki, "fw-modbus-1", board=str(board), bus="rs485", output=None)
    slave = Child("slave", [sys.executable, "-m", "simulator.hardware.modbus_slave", "--slave", "7",
                            "--input", "0=-125,1=563"], relay=False)
    rig.children.append(slave)
    try:
        port = slave.wait_for("pty ", 15).split(" ", 1)[1]
        rig.start_receiver(broker.port)
        firmware = rig.start_firmware(port, broker.port, "--telemetry-interval-ms", "300", "--heap-log-ms", "300")
        firmware.wait_for("connected to broker", 20)
        mark = firmware.mark()
        firmware.wait_for("readings=1", 10, since=mark)  # polled readings are coming in
        last = stop_firmware(firmware)
        rig.wait_seq(last, 20)
    finally:
        rig.stop_all()
    got = rig.summary()
    assert got["lost"] == [] and got["count"] == last and got["rejections"] == {}
    values = {}
    with sqlite3.connect(rig.db) as db:
        for (body,) in db.execute("SELECT body FROM signals WHERE device=? AND kind=?",
                                  (rig.device_id, sg.KIND_TELEMETRY)):
            for _, sensor, value, quality in cbor.loads(body)[sg.T_READINGS]:
                values.setdefault(sensor, []).append(value)
    assert values["cabinet_temp"] and values["cabinet_temp"] == pytest.approx([-12.5] * len(values["cabinet_temp"]))
    assert values["cabinet_humidity"] == pytest.approx([56.3] * len(values["cabinet_humidity"]))
