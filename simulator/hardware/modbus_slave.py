"""A virtual Modbus RTU slave on a pseudo-terminal: pymodbus's real server
(a stack we did not write) behind a null-modem cable.

Both the agent and the server open a serial device *by path*, as on
hardware, so two pty pairs are joined by a byte relay (the "cable"):

    agent --(path A)-- pty A ==relay== pty B --(path B)-- pymodbus RTU server

    python -m simulator.hardware.modbus_slave --slave 1 --holding 0=215,1=-40 [--input ...]

prints ``pty PATH`` (the agent's end) and serves until stopped. Registers
are 16-bit words; a negative value is stored as its two's complement.
Addresses not given answer Modbus exception 2 (illegal data address).
"""

import argparse
import asyncio
import os
import sys
import tty


def _words(spec):
    """'0=215,1=-40' -> {0: 215, 1: 65496}."""
    words = {}
    for item in filter(None, (spec or "").split(",")):
        address, value = item.split("=")
        words[int(address)] = int(value) & 0xFFFF
    return words


def _block(words):
    """A contiguous register block covering the given addresses (gaps 0)."""
    if not words:
        return 0, []
    first, last = min(words), max(words)
    return first, [words.get(a, 0) for a in range(first, last + 1)]


class NullModem:
    """Two pty pairs joined by a byte relay on the running event loop."""

    def __init__(self):
        self.a_master, self.a_slave = os.openpty()
        self.b_master, self.b_slave = os.openpty()
        for fd in (self.a_master, self.a_slave, self.b_master, self.b_slave):
            tty.setraw(fd)
        os.set_blocking(self.a_master, False)
        os.set_blocking(self.b_master, False)
        self.a_path = os.ttyname(self.a_slave)
        self.b_path = os.ttyname(self.b_slave)

    def start(self, loop):
        loop.add_reader(self.a_master, self._move, self.a_master, self.b_master)
        loop.add_reader(self.b_master, self._move, self.b_master, self.a_master)

    @staticmethod
    def _move(src, dst):
        try:
            data = os.read(src, 4096)
        except (BlockingIOError, OSError):
            return
        try:
            os.write(dst, data)
        except (BlockingIOError, OSError):
            pass  # the far end is not reading: a UART drops it too


async def serve(slave_id, holding, inputs, baud):
    from pymodbus import FramerType
    from pymodbus.server import ModbusSerialServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    cable = NullModem()
    cable.start(asyncio.get_running_loop())
    simdata = []
    for words in (holding, inputs):
        start, values = _block(words)
        if values:
            simdata.append(SimData(start, values=values, datatype=DataType.REGISTERS))
    device = SimDevice(slave_id, simdata=simdata)
    server = ModbusSerialServer(device, framer=FramerType.RTU, port=cable.b_path, baudrate=baud)
    task = asyncio.create_task(server.serve_forever())
    await asyncio.sleep(0.3)  # the server opens its port in the background
    print("pty %s" % cable.a_path, flush=True)
    await task


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slave", type=int, default=1, help="slave id (1-247)")
    parser.add_argument("--holding", help="holding registers, ADDR=VALUE,... (function 03)")
    parser.add_argument("--input", help="input registers, ADDR=VALUE,... (function 04; shares the map here)")
    parser.add_argument("--baud", type=int, default=115200)
    args = parser.parse_args(argv)
    holding = _words(args.holding)
    holding.update(_words(args.input))
    try:
        asyncio.run(serve(args.slave, holding, {}, args.baud))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
