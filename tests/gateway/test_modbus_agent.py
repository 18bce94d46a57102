"""The real agent process on a Modbus RTU board: pymodbus's server (a stack we
did not write) on a pty, the agent polling it by path, signed signals at a
real mosquitto. Readings arrive scaled; a slave that goes silent becomes a
link_lost alert while the agent keeps running, and its readings flow again
from its first answer."""

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
                           lambda ms: any(s.body.get(sg.A_CONDITION) == "link_lost" and s.body.get(sg.A_ACTIVE)
                                          for t, p in ms for s in registry.open_signals(p, t)),
                           timeout_s=30, action=silenced)
        # Issue 18: silence is a lost link (this was a dropout alert).
        lost = [s for t, p in alerts for s in registry.open_signals(p, t)
                if s.body.get(sg.A_CONDITION) == "link_lost"][0]
        # One incident for the slave (its humidity register has the
        # board's default dropout too), named by the component both serve.
        assert (lost.body[sg.A_SENSOR], lost.body[sg.A_COMPONENT]) == ("", "climate")
        assert lost.body[sg.A_AFFECTED] == ["cabinet_temp"]  # the first to time out (2 s; humidity 30 s)
        assert lost.body[sg.A_ELEMENT] == "bus:rs485/slave:7"
        assert "link lost on bus:rs485 slave:7 (sensors cabinet_humidity, cabinet_temp on climate)" in lost.body[sg.A_TEXT]
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


class _Slave:
    """pymodbus's RTU server on a null-modem pty, in a thread of this test,
    so it can fall silent and answer again on the same port the agent keeps
    open: ``silence`` shuts the server down (``task.cancel()`` alone leaves
    pymodbus 3.16's serial transport answering) and ``answer`` serves the
    same registers again."""

    def __init__(self, slave_id, words):
        import asyncio
        import threading

        from simulator.hardware.modbus_slave import NullModem

        self.slave_id = slave_id
        self.words = words
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.cable = NullModem()
        self.loop.call_soon_threadsafe(self.cable.start, self.loop)
        self.server = None
        self.answer()

    def _run(self, coro, timeout=10):
        import asyncio

        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def answer(self):
        async def start():
            import asyncio

            from pymodbus import FramerType
            from pymodbus.server import ModbusSerialServer
            from pymodbus.simulator import DataType, SimData, SimDevice

            first = min(self.words)
            values = [self.words.get(a, 0) for a in range(first, max(self.words) + 1)]
            device = SimDevice(self.slave_id, simdata=[SimData(first, values=values, datatype=DataType.REGISTERS)])
            self.server = ModbusSerialServer(device, framer=FramerType.RTU, port=self.cable.b_path, baudrate=115200)
            asyncio.ensure_future(self.server.serve_forever())
            await asyncio.sleep(0.3)  # the server opens its port in the background

        self._run(start())

    def silence(self):
        import termios

        self._run(self.server.shutdown())
        self.server = None
        # Requests sent while it was down wait in the pty: a powered-off
        # transmitter never saw them.
        termios.tcflush(self.cable.b_slave, termios.TCIOFLUSH)

    def close(self):
        import os

        if self.server is not None:
            self._run(self.server.shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        for fd in (self.cable.a_master, self.cable.a_slave, self.cable.b_master, self.cable.b_slave):
            try:
                os.close(fd)
            except OSError:
                pass


LINK_BOARD = BOARD.replace('''action = "check the RS-485 wiring and the transmitter's power"''',
                           '''action = "check the RS-485 wiring and the transmitter's power"
reraise_s = 2                     # the default 60 s, scaled down with the outages''')


def test_a_silent_slave_is_a_lost_link_and_its_first_answer_is_read_and_sent(broker, start_agent, subscribe, registry, tmp_path):
    """Issue 18, against pymodbus's real server: the slave falls silent (a
    link_lost alert within the dropout window, the component never
    quarantined), answers again (its readings reach the receiver from the
    first answer: nothing discarded, no probe, no service), and falls silent
    again shortly after (a new alert, not folded into the first)."""
    import time

    board = tmp_path / "modbus-link.toml"
    board.write_text(LINK_BOARD)
    slave = _Slave(7, {0: -125 & 0xFFFF, 1: 563})
    try:
        agent = start_agent(broker.port, "modbus-3", slave.cable.a_path, board=str(board),
                            extra=("--telemetry-interval-ms", "300"))
        agent.child.wait_for("connected to broker", 20)
        subscribe(broker.port, ["ea/v1/modbus-3/telemetry"],
                  lambda ms: len(_readings(ms, registry).get("cabinet_temp", [])) >= 3)
        marks = {}

        def script():
            marks["silent1"] = time.time() * 1000
            slave.silence()
            time.sleep(5)  # dropout for_s = 2
            marks["answer"] = time.time() * 1000
            slave.answer()
            time.sleep(5)
            marks["silent2"] = time.time() * 1000
            slave.silence()

        def lost(messages):
            return [s for t, p in messages if t.endswith("/alert") for s in registry.open_signals(p, t)
                    if s.body.get(sg.A_CONDITION) == "link_lost"]

        messages = subscribe(broker.port, ["ea/v1/modbus-3/alert", "ea/v1/modbus-3/telemetry", "ea/v1/modbus-3/state"],
                             lambda ms: len([s for s in lost(ms) if s.body[sg.A_ACTIVE]]) >= 2,
                             timeout_s=20, action=script)
        signals = [(t, s) for t, p in messages for s in registry.open_signals(p, t)]
        links = [(s.time_ms, s.body[sg.A_ACTIVE], s.body[sg.A_SENSOR], s.body[sg.A_ELEMENT]) for s in lost(messages)]
        # one incident for the slave (humidity has the default dropout): no sensor named
        temp = [row for row in links if row[2] == ""]
        assert [(a, e) for _, a, _, e in temp] == [
            (True, "bus:rs485/slave:7"), (False, "bus:rs485/slave:7"), (True, "bus:rs485/slave:7")], links
        # within the dropout window (2 s) of the silence, plus a poll period and a retry
        # (counted from the last answer, up to a poll period before the silence)
        assert marks["silent1"] + 2000 - 200 <= temp[0][0] <= marks["silent1"] + 3000, (marks, temp)
        assert marks["silent2"] + 2000 - 200 <= temp[2][0] <= marks["silent2"] + 3000, (marks, temp)
        # no component alert, no state change: never quarantined, probed or in service
        assert [t for t, _ in signals if t.endswith("/state")] == []
        assert [s.body[sg.A_CONDITION] for t, s in signals if t.endswith("/alert")
                and s.body[sg.A_CONDITION] != "link_lost"] == []
        # readings flow from the first answer: the first within a poll
        # period (200 ms, plus a timed-out request's 60 ms) of the server
        # being back, then every period, none discarded
        back = sorted(row[0] for t, s in signals if t.endswith("/telemetry") for row in s.body[sg.T_READINGS]
                      if row[1] == "cabinet_temp" and row[3] == 0 and marks["answer"] <= row[0] < marks["silent2"])
        assert back and back[0] - marks["answer"] <= 200 + 60 + 300, (marks["answer"], back[:3])
        assert max(b - a for a, b in zip(back, back[1:])) < 600, back
        assert agent.child.process.poll() is None
    finally:
        slave.close()
