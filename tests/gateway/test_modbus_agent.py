"""The real agent process on a Modbus RTU board: pymodbus's server (a stack we
did not write) on a pty, the agent polling it by path, signed signals at a
real mosquitto. Readings arrive scaled; a slave that goes silent becomes a
dropout alert while the agent keeps running."""

import pytest

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
[[sensors.cabinet_temp.rules]]
kind = "dropout"
for_s = 2
action = "check the RS-485 wiring and the transmitter's power"

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


def _readings(messages, registry):
    out = {}
    for topic, payload in messages:
        if topic.endswith("/telemetry"):
            for signal in registry.open_signals(payload, topic):
                for _, sensor, value, quality in signal.body[sg.T_READINGS]:
                    if quality == 0:
                        out.setdefault(sensor, []).append(value)
    return out


def test_agent_reads_a_pymodbus_slave_and_reports_its_silence(broker, start_agent, subscribe, registry, tmp_path):
    import sys

    board = tmp_path / "modbus-rig.toml"
    board.write_text(BOARD)
    slave = Child("slave", [sys.executable, "-m", "simulator.hardware.modbus_slave", "--slave", "7",
                            "--input", "0=-125,1=563"], relay=False)
    try:
        port = slave.wait_for("pty ", 15).split(" ", 1)[1]
        agent = start_agent(broker.port, "modbus-1", port, board=str(board),
                            extra=("--telemetry-interval-ms", "300"))
        agent.child.wait_for("connected to broker", 20)
        messages = subscribe(broker.port, ["ea/v1/modbus-1/telemetry"],
                             lambda ms: len(_readings(ms, registry).get("cabinet_temp", [])) >= 3)
        readings = _readings(messages, registry)
        assert readings["cabinet_temp"] == pytest.approx([-12.5] * len(readings["cabinet_temp"]))  # int16 -125 x 0.1
        assert readings["cabinet_humidity"] == pytest.approx([56.3] * len(readings["cabinet_humidity"]))
        silenced = lambda: slave.stop()  # noqa: E731  the transmitter loses power
        alerts = subscribe(broker.port, ["ea/v1/modbus-1/alert"],
                           lambda ms: any(s.body.get(sg.A_CONDITION) == "dropout" and s.body.get(sg.A_ACTIVE)
                                          for t, p in ms for s in registry.open_signals(p, t)),
                           timeout_s=30, action=silenced)
        dropout = [s for t, p in alerts for s in registry.open_signals(p, t)
                   if s.body.get(sg.A_CONDITION) == "dropout"][0]
        assert dropout.body[sg.A_SENSOR] == "cabinet_temp"
        assert agent.child.process.poll() is None
    finally:
        slave.stop()


QUARANTINE_BOARD = BOARD.replace('''[components.climate]
part = "THT-485"
''', '''[components.climate]
part = "THT-485"
quarantine = ["write_register"]   # stop the transmitter's heater output
[components.climate.quarantine_write]
bus = "rs485"
slave = 7
address = 10
value = 0
release_value = 1
''')


def test_quarantine_writes_a_register_on_the_real_slave(broker, start_agent, tmp_path):
    """The transmitter reads 120 degC (outside -40..80): the component is
    quarantined and its quarantine writes holding register 10 on slave 7;
    pymodbus's server confirms the write."""
    import sys

    board = tmp_path / "modbus-quarantine.toml"
    board.write_text(QUARANTINE_BOARD)
    slave = Child("slave", [sys.executable, "-m", "simulator.hardware.modbus_slave", "--slave", "7",
                            "--input", "0=1200,1=500,10=1"], relay=False)
    try:
        port = slave.wait_for("pty ", 15).split(" ", 1)[1]
        agent = start_agent(broker.port, "modbus-2", port, board=str(board))
        line = agent.child.wait_for("modbus write bus rs485 slave 7 register 10 <- 0", 30)
        assert "quarantine:climate" in line
        done = agent.child.wait_for("write 'quarantine:climate'", 10)
        assert "done" in done, done  # the slave echoed the write: applied
    finally:
        slave.stop()
