"""Hardware stand-ins for the MicroPython unix port (the test vehicle).

No ESP32 emulator is available to the project (docs/firmware.md, "The
unix-port vehicle"), so the firmware runs on the unix port with these in
place of machine.UART and machine.Pin:

- ``pty_uart(path)``: a pseudo-terminal opened like a UART: raw mode, and
  VMIN=0 so ``read(n)`` returns what has arrived instead of blocking until
  n bytes (MicroPython's stream read loops until n or end of data, and a
  VMIN=0 tty reports "no more data" at once). asyncio polls it like a UART.
- ``SimPin``: a ``machine.PinBase`` subclass (the unix port's machine
  module has no Pin). An output pin records its level and, when given a
  file, writes it there ("0"/"1") so a test in another process sees the
  physical line; an input pin reads its level from its file, so a test
  flips a door switch by writing one byte.

The flash partition for ``--flash`` is in unix_flash.py, imported only
then (this module is on the heap of every unix run).
"""

import machine
import termios

_CC = 6  # index of the control characters in tcgetattr's list
_VMIN = 6  # Linux: cc[VMIN]
_VTIME = 5  # Linux: cc[VTIME]


def pty_uart(path):
    uart = open(path, "r+b")
    fd = uart.fileno()
    termios.setraw(fd)
    attrs = termios.tcgetattr(fd)
    attrs[_CC][_VMIN] = 0
    attrs[_CC][_VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, attrs)
    return uart


class SimPin(machine.PinBase):
    def __init__(self, name, path=None, level=1):
        super().__init__()
        self.name = name
        self.path = path
        self.level = level
        self.changes = 0
        if path is not None:
            try:
                self._load()
            except OSError:
                self._store()

    def _load(self):
        with open(self.path, "rb") as f:
            self.level = 1 if f.read(1) == b"1" else 0

    def _store(self):
        with open(self.path, "wb") as f:
            f.write(b"1" if self.level else b"0")

    def value(self, v=None):
        if v is None:
            if self.path is not None:
                try:
                    self._load()
                except OSError:
                    pass
            return self.level
        level = 1 if v else 0
        if level != self.level:
            self.changes += 1
        self.level = level
        if self.path is not None:
            self._store()
        return None
