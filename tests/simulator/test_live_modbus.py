"""Live mode's Modbus slaves (simulator/scenarios/live/modbus.py): pymodbus's RTU
server on a pty, its registers fed by scenario physics, read by the
agent's own bus task (serial_source.bus_source, pyserial opening the link
by path) and the core's Modbus master. Every register type of the field
cabinet board comes back as the physics value; a cut cable silences the
bus and reconnecting brings it back. The whole path with the agent
process is simulator/scenarios/live_modbus.toml (make scenarios)."""

import asyncio
import contextlib
import os

import pytest

from edge_agent.core import device as dv
from edge_agent.gateway.serial_source import bus_source
from simulator.hardware import physics
from simulator.scenarios import spec as sc
from simulator.scenarios.live.modbus import LiveModbus
from simulator import ROOT

LEVELS = {"cabinet_temp": -12.3, "cabinet_humidity": 45.6, "door_open": 1.0, "active_power": 5200.25}

pytestmark = pytest.mark.integration


def _spec():
    return sc.from_dict({
        "scenario": {"name": "modbus", "board": os.path.join(ROOT, "boards", "field-cabinet.toml"), "duration": "1m"},
        "sensors": dict((sid, {"level": level, "noise": 0.0}) for sid, level in LEVELS.items()),
        "expect": [{"kind": "delivered"}],
    })


def test_registers_carry_the_physics_and_a_cut_cable_silences_the_bus(tmp_path):
    spec = _spec()
    board = spec.board
    for sensor in board.sensors.values():
        sensor.period_ms = 100  # poll fast: this test is about values, not rates
    slaves = LiveModbus(board, spec.models(1), lambda: physics.T0, str(tmp_path)).start()

    async def main():
        loop = asyncio.get_running_loop()
        device = dv.Device(board, "live-modbus-test", telemetry_interval_ms=60000)

        def clock():
            return int(loop.time() * 1000)

        task = asyncio.create_task(bus_source(device, board.buses["rs485"], slaves.path("rs485"), clock,
                                              lambda outputs: None).run())

        async def until(predicate, timeout_s=8.0):
            deadline = loop.time() + timeout_s
            while not predicate():
                assert not task.done(), task.exception()
                assert loop.time() < deadline, "timed out; stats %r" % device.stats
                await asyncio.sleep(0.02)

        def value(sensor):
            reading = device.latest.get(sensor)
            return None if reading is None else reading.value

        try:
            await until(lambda: all(value(s) is not None for s in LEVELS))
            assert value("cabinet_temp") == pytest.approx(-12.3)  # int16 x 0.1
            assert value("cabinet_humidity") == pytest.approx(45.6)  # uint16 x 0.1
            assert value("door_open") == 1.0  # a discrete input bit
            assert value("active_power") == 5200.25  # float32, low word first
            assert device.stats["bad_frames"] == 0
            slaves.disconnect("rs485")
            await asyncio.sleep(0.5)
            cut = device.latest["active_power"].time_ms
            await asyncio.sleep(1.0)
            assert device.latest["active_power"].time_ms == cut  # nothing answers
            slaves.reconnect("rs485")
            await until(lambda: device.latest["active_power"].time_ms > cut)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    try:
        asyncio.run(main())
    finally:
        slaves.stop()
    assert slaves.updates > 0
