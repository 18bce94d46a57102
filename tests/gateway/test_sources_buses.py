"""Several buses per board, each its own task (the agent's bus_source):
a Modbus bus whose slave is silent, or whose port vanishes, never stalls a
line-protocol bus or an NMEA GPS on the same device."""

import asyncio
import contextlib
import os
import tty

from edge_agent.core import board as bd
from edge_agent.core import device as dv
from edge_agent.core import frames as fr
from edge_agent.core import modbus_master as mm
from edge_agent.core import nmea
from edge_agent.gateway.serial_source import FdPort, bus_source

from support import copy_sources_board


def _pty():
    master, slave = os.openpty()
    tty.setraw(slave)
    return master, slave


def test_a_silent_modbus_bus_does_not_stall_the_others():
    async def main():
        loop = asyncio.get_running_loop()

        def clock():
            return int(loop.time() * 1000)

        data = copy_sources_board()
        data["buses"]["rs485"]["timeout_ms"] = 200  # slow to give up: the worst case for its neighbours
        board = bd.board_from_dict(data, "three-buses.toml")
        device = dv.Device(board, "rig-3", telemetry_interval_ms=60000)
        ptys = {bus_id: _pty() for bus_id in ("uart0", "rs485", "gps")}
        # Nobody answers on rs485: its requests go to a pty nobody reads.
        sources = [bus_source(device, board.buses[b], "pty", clock, lambda out: None,
                              opener=(lambda fd=ptys[b][0]: FdPort(fd))) for b in ptys]
        tasks = [asyncio.create_task(s.run()) for s in sources]
        try:
            await asyncio.sleep(0.1)
            start = loop.time()
            for i in range(20):
                # The sensors' side writes into the slave ends.
                os.write(ptys["uart0"][1], fr.encode_frame(fr.READING, "cabinet_temp", 20 + i))
                os.write(ptys["gps"][1], nmea.sentence(["GPGGA", "1", "4807.038", "N", "01131.000", "E", "1", "08",
                                                        "0.9", str(500 + i), "M", "46.9", "M", "", ""]))
                await asyncio.sleep(0.02)
            while device.latest.get("altitude") is None or device.latest["altitude"].value != 519.0:
                assert loop.time() - start < 2, device.stats
                await asyncio.sleep(0.01)
            assert device.latest["cabinet_temp"].value == 39.0
            # Readings were stamped as they came: each within a poll of the write.
            assert device.latest["altitude"].time_ms - device.latest["cabinet_temp"].time_ms < 50
            assert device.decoders["rs485"].master.stats["requests"] >= 2
            assert device.stats["readings"] == 40
            # The Modbus bus is still working through its timeouts meanwhile.
            await asyncio.sleep(1.0)
            assert device.bad_by_reason.get(mm.NO_REPLY, 0) >= 1
            assert all(not t.done() for t in tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for master, slave in ptys.values():
                os.close(master)
                os.close(slave)

    asyncio.run(main())


def test_a_vanished_modbus_port_is_reopened_and_others_carry_on():
    async def main():
        loop = asyncio.get_running_loop()
        board = bd.board_from_dict(copy_sources_board(), "b.toml")
        device = dv.Device(board, "rig-4")
        line_master, line_slave = _pty()
        sources = [
            bus_source(device, board.buses["rs485"], "/nonexistent/ttyRS485", lambda: int(loop.time() * 1000),
                       lambda out: None),
            bus_source(device, board.buses["uart0"], "pty", lambda: int(loop.time() * 1000), lambda out: None,
                       opener=lambda: FdPort(line_master)),
        ]
        tasks = [asyncio.create_task(s.run()) for s in sources]
        try:
            await asyncio.sleep(0.1)
            os.write(line_slave, fr.encode_frame(fr.READING, "cabinet_temp", 12.5))
            for _ in range(100):
                if "cabinet_temp" in device.latest:
                    break
                await asyncio.sleep(0.01)
            assert device.latest["cabinet_temp"].value == 12.5
            assert sources[0].opens == 0 and not tasks[0].done()  # still retrying, not crashed
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(OSError):
                os.close(line_master)
                os.close(line_slave)

    asyncio.run(main())
