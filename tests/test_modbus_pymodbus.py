"""Our Modbus RTU poller against a slave we did not write: pymodbus's RTU
server on a pseudo-terminal. The server opens the pty's slave end by path
(as it would a USB adapter); our bus task holds the master end. Register
values are packed here with struct, independently of our codec."""

import asyncio
import contextlib
import os
import struct
import tty

import pytest
from pymodbus import FramerType
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from edge_agent.core import board as bd
from edge_agent.core import device as dv
from edge_agent.core import modbus_master as mm
from edge_agent.core import reading as rd
from edge_agent.gateway.serial_source import FdPort, bus_source

from support import copy_sources_board


def _f32(value, word_order="big"):
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return [high, low] if word_order == "big" else [low, high]


def _i32(value):
    return list(struct.unpack(">HH", struct.pack(">i", value)))


# Slave 1: a temperature transmitter; slave 2: an energy meter (float32,
# low word first). Undefined addresses answer exception 2.
SLAVE_1 = [0xFF38, 0, 0, 0b1000, 1234] + [0] * 5  # -200 at 0 (int16, 0.1 -> -20.0); bit 0 of register 3 set
SLAVE_2 = [0] * 12 + _f32(1500.25, "little") + _i32(-70000) + [0] * 4


def _board(extra_sensors=None, timeout_ms=40, retries=1):
    data = copy_sources_board()
    data["buses"]["rs485"]["timeout_ms"] = timeout_ms
    data["buses"]["rs485"]["retries"] = retries
    sensors = data["sensors"]
    for sensor in sensors.values():
        sensor["period_ms"] = 50
    sensors["door_open"]["modbus"] = {"slave": 1, "function": 2, "address": 3}
    sensors["energy"] = {"bus": "rs485", "component": "meter", "unit": "Wh", "valid_range": [-1e6, 1e6],
                         "period_ms": 50, "modbus": {"slave": 2, "function": 3, "address": 14, "type": "int32"}}
    sensors.update(extra_sensors or {})
    return bd.board_from_dict(data, "pymodbus-rig.toml")


class Slave:
    """pymodbus's serial RTU server on ``path``; stop() and start() again
    to restart it (the port closes and reopens, as a rebooting device)."""

    def __init__(self, path, devices):
        self.path = path
        self.devices = devices
        self.server = None
        self.task = None

    async def start(self):
        self.server = ModbusSerialServer(self.devices, framer=FramerType.RTU, port=self.path, baudrate=115200)
        self.task = asyncio.create_task(self.server.serve_forever())
        await asyncio.sleep(0.3)  # the server opens the port in the background

    async def stop(self):
        await self.server.shutdown()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


class Rig:
    """A Device reading the pty's master end through the agent's own bus
    task (serial_source.bus_source), on a real wall clock."""

    def __init__(self, board, fd, bus_id="rs485"):
        self.loop = asyncio.get_running_loop()
        self.device = dv.Device(board, "rig-1", telemetry_interval_ms=60000)
        self.outputs = []
        self.source = bus_source(self.device, board.buses[bus_id], "pty", self.clock, self.outputs.extend,
                                 opener=lambda: FdPort(fd))
        self.task = asyncio.create_task(self.source.run())

    def clock(self):
        return int(self.loop.time() * 1000)

    async def until(self, predicate, timeout_s=5.0):
        deadline = self.loop.time() + timeout_s
        while not predicate():
            if self.task.done():
                self.task.result()
            assert self.loop.time() < deadline, "timed out; stats %r bad %r" % (self.device.stats, self.device.bad_by_reason)
            await asyncio.sleep(0.01)

    def value(self, sensor):
        reading = self.device.latest.get(sensor)
        return None if reading is None else (reading.value if reading.quality == rd.GOOD else reading.code)

    async def close(self):
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@pytest.fixture
def pty_pair():
    master, slave = os.openpty()
    tty.setraw(slave)
    # The test keeps the slave end open too, so the master never sees EIO
    # while the server restarts.
    yield master, os.ttyname(slave)
    for fd in (master, slave):
        with contextlib.suppress(OSError):
            os.close(fd)


def _devices():
    return [SimDevice(1, simdata=[SimData(0, values=SLAVE_1, datatype=DataType.REGISTERS)]),
            SimDevice(2, simdata=[SimData(0, values=SLAVE_2, datatype=DataType.REGISTERS)])]


def test_register_map_read_and_scaled(pty_pair):
    async def main():
        master_fd, path = pty_pair
        slave = Slave(path, _devices())
        await slave.start()
        rig = Rig(_board(), master_fd)
        try:
            await rig.until(lambda: all(rig.value(s) is not None for s in ("air_temp", "power", "door_open", "energy")))
            assert rig.value("air_temp") == pytest.approx(-20.0)
            assert rig.value("power") == 1500.25
            assert rig.value("door_open") == 1.0
            assert rig.value("energy") == -70000.0
            assert rig.device.stats["bad_frames"] == 0
        finally:
            await rig.close()
            await slave.stop()

    asyncio.run(main())


def test_exception_response_is_a_sensor_fault(pty_pair):
    extra = {"missing": {"bus": "rs485", "component": "meter", "unit": "x", "valid_range": [0, 1], "period_ms": 50,
                         "modbus": {"slave": 1, "function": 3, "address": 500}}}

    async def main():
        master_fd, path = pty_pair
        slave = Slave(path, _devices())
        await slave.start()
        rig = Rig(_board(extra), master_fd)
        try:
            await rig.until(lambda: rig.value("missing") is not None and rig.value("air_temp") is not None)
            assert rig.value("missing") == "illegal-data-address"
            assert rig.device.latest["missing"].quality == rd.FAULT
        finally:
            await rig.close()
            await slave.stop()

    asyncio.run(main())


def test_silence_is_a_dropout_and_a_restarted_slave_is_read_again(pty_pair):
    async def main():
        master_fd, path = pty_pair
        slave = Slave(path, _devices())
        await slave.start()
        rig = Rig(_board(timeout_ms=30, retries=1), master_fd)
        try:
            await rig.until(lambda: rig.value("power") is not None)
            await slave.stop()
            before = rig.device.stats["readings"]
            # Every request now goes unanswered: counted, never a crash or a hung bus.
            await rig.until(lambda: rig.device.bad_by_reason.get(mm.NO_REPLY, 0) >= 4)
            assert rig.device.stats["readings"] <= before + 1  # at most one reply was in flight
            master = rig.device.decoders["rs485"].master
            assert master.stats["retries"] >= 4
            # The slave comes back (a reboot): readings resume by themselves.
            rig.device.latest.clear()
            await slave.start()
            await rig.until(lambda: rig.value("power") == 1500.25 and rig.value("air_temp") is not None)
        finally:
            await rig.close()
            with contextlib.suppress(Exception):
                await slave.stop()

    asyncio.run(main())


def test_write_then_read_back(pty_pair):
    extra = {"setpoint": {"bus": "rs485", "component": "cabinet", "unit": "degC", "valid_range": [0, 100],
                          "period_ms": 50, "modbus": {"slave": 1, "function": 3, "address": 4, "scale": 0.1}}}

    async def main():
        master_fd, path = pty_pair
        slave = Slave(path, _devices())
        await slave.start()
        rig = Rig(_board(extra), master_fd)
        try:
            await rig.until(lambda: rig.value("setpoint") is not None)
            assert rig.value("setpoint") == pytest.approx(123.4)
            rig.device.write_registers("rs485", 1, 4, [215], tag="setpoint")
            await rig.until(lambda: rig.value("setpoint") == pytest.approx(21.5))
            texts = [o.text for o in rig.outputs if isinstance(o, dv.Notice)]
            assert "bus rs485: write 'setpoint' done" in texts
            rig.device.write_registers("rs485", 1, 900, [1, 2], tag="bad-address")
            await rig.until(lambda: rig.device.stats["writes_failed"] == 1)
        finally:
            await rig.close()
            await slave.stop()

    asyncio.run(main())
