"""Modbus slaves of a live scenario: pymodbus's RTU server (a stack we did
not write) on a pty per Modbus bus, its registers fed by the scenario's
physics.

    agent --(link)-- pty A ==relay== pty B -- pymodbus ModbusSerialServer
                                                (one SimDevice per slave id)

Each Modbus sensor of the board ([sensors.ID.modbus]: slave, function,
address, type, word order, scale, offset) gets its register(s) rewritten at
the board's sample period with its physics value at the scenario time of
that moment, encoded as the agent will decode it (raw = (value - offset) /
scale, then the type's words; a bit for functions 1 and 2: bit address N is
bit N % 16 of register N // 16, pymodbus's mapping). What a register
cannot say is not said: a dropout or a sensor's own fault code leaves the
last value in place (a real transmitter keeps answering); silence on the
bus is ``disconnect(bus)``, which cuts the cable (the relay stops: requests
go unanswered, the agent's poller counts no-replies and its dropout rules
fire).
"""

import asyncio
import logging
import os
import threading

from edge_agent.core import modbus as mb
from ...hardware.modbus_slave import NullModem


class LiveModbus:
    def __init__(self, board, models, clock, workdir, record=None):
        self.board = board
        self.models = models
        self.clock = clock
        self.record = record or (lambda sensor, t, value: None)
        self.workdir = workdir
        self.sensors = {}  # bus -> [sensor]
        for bus_id in sorted(board.buses):
            if board.buses[bus_id].protocol == "modbus":
                self.sensors[bus_id] = sorted(board.sensors_on(bus_id), key=lambda s: s.id)
        self.links = dict((b, os.path.join(workdir, "tty-%s" % b)) for b in self.sensors)
        self.cables = {}
        self.servers = {}
        self.cut = set()
        self.updates = 0
        self._loop = None
        self._thread = None
        self._tasks = []

    def path(self, bus_id):
        return self.links[bus_id]

    def start(self):
        if not self.sensors:
            return self
        ready = threading.Event()
        errors = []

        def main():
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._start())
            except Exception as exc:  # reported to the caller below
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=main, name="live-modbus", daemon=True)
        self._thread.start()
        ready.wait(15)
        if errors:
            raise errors[0]
        return self

    async def _start(self):
        logging.getLogger("pymodbus").setLevel(logging.WARNING)  # not its start/stop chatter on our console
        from pymodbus import FramerType
        from pymodbus.server import ModbusSerialServer
        from pymodbus.simulator import DataType, SimData, SimDevice

        loop = asyncio.get_running_loop()
        for bus_id, sensors in self.sensors.items():
            cable = NullModem()
            self._connect(loop, cable)
            self.cables[bus_id] = cable
            os.symlink(cable.a_path, self.links[bus_id])
            sizes = {}
            for sensor in sensors:
                src = sensor.source
                words = 1 + src.address // 16 if src.function in mb.BIT_FUNCTIONS else (
                    src.address + mb.TYPE_REGISTERS[src.type])
                sizes[src.slave] = max(sizes.get(src.slave, 0), words)
            devices = [SimDevice(slave, simdata=[SimData(0, values=[0] * size, datatype=DataType.REGISTERS)])
                       for slave, size in sorted(sizes.items())]
            server = ModbusSerialServer(devices, framer=FramerType.RTU, port=cable.b_path,
                                        baudrate=self.board.buses[bus_id].baud)
            self.servers[bus_id] = server
            self._tasks.append(asyncio.ensure_future(server.serve_forever()))
            for sensor in sensors:
                await self._update(server, sensor)  # a value before the first poll
                self._tasks.append(asyncio.ensure_future(self._feed(server, sensor)))
        await asyncio.sleep(0.3)  # the servers open their ports in the background

    @staticmethod
    def _connect(loop, cable):
        loop.add_reader(cable.a_master, cable._move, cable.a_master, cable.b_master)
        loop.add_reader(cable.b_master, cable._move, cable.b_master, cable.a_master)

    async def _feed(self, server, sensor):
        while True:
            await asyncio.sleep(sensor.period_ms / 1000.0)
            await self._update(server, sensor)

    async def _update(self, server, sensor):
        t = self.clock()
        reading = self.models[sensor.id].sample(t)
        if reading is None or reading.value is None:
            return  # the register keeps its last value
        self.record(sensor.id, t, reading.value)
        src = sensor.source
        raw = (reading.value - src.offset) / src.scale
        if src.function in mb.BIT_FUNCTIONS:
            register = src.address // 16
            word = (await server.async_getValues(src.slave, 3, register, 1))[0]
            bit = 1 << (src.address % 16)
            word = (word | bit) if round(raw) else (word & ~bit)
            await server.async_setValues(src.slave, 3, register, [word])
        else:
            if src.type != "float32":
                low, high = {"int16": (-0x8000, 0x7FFF), "uint16": (0, 0xFFFF), "int32": (-0x80000000, 0x7FFFFFFF),
                             "uint32": (0, 0xFFFFFFFF)}[src.type]
                raw = min(high, max(low, int(round(raw))))  # the converter saturates
            await server.async_setValues(src.slave, 3, src.address, mb.encode_value(raw, src.type, src.word_order))
        self.updates += 1

    # -- faults ---------------------------------------------------------------

    def disconnect(self, bus_id):
        """Cut the cable: requests go unanswered."""
        cable = self.cables[bus_id]
        self._loop.call_soon_threadsafe(self._loop.remove_reader, cable.a_master)
        self._loop.call_soon_threadsafe(self._loop.remove_reader, cable.b_master)

    def reconnect(self, bus_id):
        self._loop.call_soon_threadsafe(self._connect, self._loop, self.cables[bus_id])

    def stop(self):
        if self._loop is None:
            return

        async def shutdown():
            for server in self.servers.values():
                try:
                    await server.shutdown()
                except Exception:  # a server that never opened its port
                    pass
            for task in self._tasks:
                task.cancel()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        except Exception:
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        for bus_id, cable in self.cables.items():
            for fd in (cable.a_master, cable.a_slave, cable.b_master, cable.b_slave):
                try:
                    os.close(fd)
                except OSError:
                    pass
            if os.path.lexists(self.links[bus_id]):
                os.unlink(self.links[bus_id])
        self._loop = None
