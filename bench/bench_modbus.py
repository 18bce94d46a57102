"""Modbus RTU polling benchmark: polls per second on one 115200-baud bus.

    .venv/bin/python bench/bench_modbus.py [--seconds S]

The peer is pymodbus's RTU server (a slave we did not write), in its own
process so it does not share an event loop or a core with the poller.
Two pseudo-terminals joined by a byte relay in that process stand in for
a USB-RS485 adapter and the cable: both contenders open a device path with
pyserial, exactly as on hardware, and see the same relay latency.

Contenders, one after the other, on the same server and the same frames
(read 1 holding register: an 8-byte request, a 7-byte reply):

- edge-agent: the agent's own bus task (serial_source.bus_source) driving
  the core Device and its Modbus master, with a board of 10 sensors each
  polled every 10 ms (more demand than the line can carry);
- pymodbus client: AsyncModbusSerialClient awaiting read_holding_registers
  in a loop, its defaults otherwise.

The theoretical line limit for those frames: (8 + 7) characters of 10 bits
(8N1) at 115200 baud, plus the silence between frames. Two limits are
printed: with 3.5-character gaps (what the wire itself needs), and with the
spec's fixed 1.75 ms gap above 19200 baud (what a compliant master must
leave). A pty has no baud rate (bytes move at memory speed), so a ratio
above 1 against the wire limit is possible here and would not be on a
real line; the ratios show how much each master adds to the line time.
"""

import argparse
import asyncio
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from edge_agent.core import board as bd  # noqa: E402
from edge_agent.core import device as dv  # noqa: E402
from edge_agent.gateway.serial_source import bus_source  # noqa: E402

BAUD = 115200
REQUEST_BYTES = 8
REPLY_BYTES = 7
BITS_PER_CHAR = 10  # 8N1

SERVER = r'''
import asyncio, os, sys, tty
from pymodbus import FramerType
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

async def main():
    a_master, a_slave = os.openpty()
    b_master, b_slave = os.openpty()
    for fd in (a_master, a_slave, b_master, b_slave):
        tty.setraw(fd)
    os.set_blocking(a_master, False)
    os.set_blocking(b_master, False)
    loop = asyncio.get_running_loop()

    def relay(src, dst):
        def move():
            try:
                data = os.read(src, 4096)
            except (BlockingIOError, OSError):
                return
            os.write(dst, data)
        return move

    loop.add_reader(a_master, relay(a_master, b_master))
    loop.add_reader(b_master, relay(b_master, a_master))
    device = SimDevice(1, simdata=[SimData(0, values=list(range(100, 120)), datatype=DataType.REGISTERS)])
    server = ModbusSerialServer(device, framer=FramerType.RTU, port=os.ttyname(b_slave), baudrate=%d)
    task = asyncio.create_task(server.serve_forever())
    await asyncio.sleep(0.5)
    print(os.ttyname(a_slave), flush=True)
    await task

asyncio.run(main())
''' % BAUD


def line_limits():
    char_s = BITS_PER_CHAR / BAUD
    frames_s = (REQUEST_BYTES + REPLY_BYTES) * char_s
    wire = 1 / (frames_s + 2 * 3.5 * char_s)
    spec = 1 / (frames_s + 2 * 0.00175)
    return wire, spec


def _board(path):
    sensors = {}
    for i in range(10):
        sensors["reg%d" % i] = {"bus": "rs485", "component": "slave", "unit": "x", "valid_range": [0, 1000],
                                "period_ms": 10, "modbus": {"slave": 1, "function": 3, "address": i}}
    return bd.board_from_dict({
        "schema": 1, "board": {"name": "bench", "model": "BENCH"},
        "buses": {"rs485": {"port": path, "baud": BAUD, "protocol": "modbus", "parity": "none",
                            "timeout_ms": 100, "retries": 0}},
        "components": {"slave": {}}, "sensors": sensors}, "bench.toml")


async def bench_edge_agent(path, seconds):
    loop = asyncio.get_running_loop()
    board = _board(path)
    device = dv.Device(board, "bench-1", telemetry_interval_ms=3600000, telemetry_max_readings=10 ** 9)
    source = bus_source(device, board.buses["rs485"], path, lambda: int(loop.time() * 1000), lambda out: None)
    task = asyncio.create_task(source.run())
    master = device.decoders["rs485"].master
    await asyncio.sleep(0.5)  # open the port, warm up
    replies, start = master.stats["replies"], time.perf_counter()
    await asyncio.sleep(seconds)
    done, elapsed = master.stats["replies"] - replies, time.perf_counter() - start
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert device.latest["reg3"].value == 103.0, device.latest
    return done / elapsed, master.stats


async def bench_pymodbus_client(path, seconds):
    from pymodbus import FramerType
    from pymodbus.client import AsyncModbusSerialClient

    client = AsyncModbusSerialClient(path, framer=FramerType.RTU, baudrate=BAUD, timeout=1, retries=0)
    await client.connect()
    for _ in range(20):  # warm up
        await client.read_holding_registers(3, count=1, device_id=1)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        reply = await client.read_holding_registers(count % 10, count=1, device_id=1)
        assert not reply.isError() and reply.registers == [100 + count % 10], reply
        count += 1
    elapsed = time.perf_counter() - start
    client.close()
    return count / elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        path = server.stdout.readline().strip()
        if not path:
            raise SystemExit("the pymodbus server did not start")
        ours, stats = asyncio.run(bench_edge_agent(path, args.seconds))
        theirs = asyncio.run(bench_pymodbus_client(path, args.seconds))
    finally:
        server.terminate()
        server.wait(10)
    wire, spec = line_limits()
    table = Table(title="Modbus RTU polls/s, one 115200-baud pty bus, pymodbus server as the slave")
    for column in ("master", "polls/s", "vs wire limit (%.0f/s)" % wire, "vs spec-gap limit (%.0f/s)" % spec):
        table.add_column(column, justify="right")
    table.add_row("edge-agent (core master + bus task)", "%.0f" % ours, "%.2f" % (ours / wire), "%.2f" % (ours / spec))
    table.add_row("pymodbus AsyncModbusSerialClient", "%.0f" % theirs, "%.2f" % (theirs / wire), "%.2f" % (theirs / spec))
    Console().print(table)
    print("edge-agent master stats: %s" % stats)
    print("line limits: %d-byte request + %d-byte reply, 8N1: wire %.0f polls/s (3.5-char gaps), "
          "spec %.0f polls/s (1.75 ms gaps)" % (REQUEST_BYTES, REPLY_BYTES, wire, spec))


if __name__ == "__main__":
    main()
