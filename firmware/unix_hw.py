"""Hardware stand-ins for the MicroPython unix port (the test vehicle).

No ESP32 emulator exists here (platform-facts.md), so the firmware runs
on the unix port with these in place of machine.UART and machine.Pin:

- ``pty_uart(path)``: a pseudo-terminal opened like a UART: raw mode, and
  VMIN=0 so ``read(n)`` returns what has arrived instead of blocking until
  n bytes (MicroPython's stream read loops until n or end of data, and a
  VMIN=0 tty reports "no more data" at once). asyncio polls it like a UART.
- ``SimPin``: a ``machine.PinBase`` subclass (the unix port's machine
  module has no Pin). An output pin records its level and, when given a
  file, writes it there ("0"/"1") so a test in another process sees the
  physical line; an input pin reads its level from its file, so a test
  flips a door switch by writing one byte.
- ``FilePartition``: the flash partition (``esp32.Partition``) as a file,
  for ``vfs.VfsLfs2``: the same extended block protocol (4096-byte blocks,
  ``readblocks``/``writeblocks`` with a byte offset, ``ioctl`` erase), so
  littlefs runs on it exactly as on the board. Every block write is one
  unbuffered ``write(2)`` (MicroPython's unix files are not buffered), so
  SIGKILL leaves the file as a power cut leaves flash: every completed
  write there, nothing after. ``mount_flash`` mounts it as the ESP32's
  boot does (see its doc).
"""

import os

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


BLOCK = 4096  # esp32_partition.c: every partition speaks in 4 KiB erase blocks
_ERASED = 512  # bytes of 0xFF written per call while erasing (a small buffer)


class FilePartition:
    """A file holding a flash partition's bytes (see the module doc). A
    missing file is created erased (all 0xFF), ``size`` bytes, whole or
    not at all (written aside, then renamed)."""

    def __init__(self, path, size):
        self.erased = b"\xff" * _ERASED
        try:
            os.stat(path)
        except OSError:
            if size <= 0 or size % BLOCK:
                raise SystemExit("--flash-size %d: give a positive multiple of %d bytes" % (size, BLOCK))
            with open(path + ".tmp", "wb") as f:
                for _ in range(size // _ERASED):
                    f.write(self.erased)
            os.rename(path + ".tmp", path)
        self.file = open(path, "r+b")
        have = self.file.seek(0, 2)
        if have == 0 or have % BLOCK:
            raise SystemExit("--flash %s: %d bytes is not a partition of %d-byte blocks; delete it to start empty"
                             % (path, have, BLOCK))
        self.blocks = have // BLOCK

    def readblocks(self, block, buf, offset=0):
        self.file.seek(block * BLOCK + offset)
        self.file.readinto(buf)

    def writeblocks(self, block, buf, offset=None):
        if offset is None:  # the basic protocol: erase, then program
            self.ioctl(6, block)
            offset = 0
        self.file.seek(block * BLOCK + offset)
        self.file.write(buf)

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return self.blocks
        if op == 5:  # block size
            return BLOCK
        if op == 6:  # erase one block
            self.file.seek(arg * BLOCK)
            for _ in range(BLOCK // _ERASED):
                self.file.write(self.erased)
        return 0  # init, deinit, sync: nothing to do (writes are not buffered)

    def blank(self):
        """True if the first block is erased: never formatted."""
        head = bytearray(BLOCK)
        self.readblocks(0, head)
        return head == b"\xff" * BLOCK


def mount_flash(path, size, mount_point):
    """Mount the littlefs on the partition in ``path`` at ``mount_point``,
    as the ESP32's boot does (ports/esp32/modules/_boot.py, inisetup.py):
    mount with VfsLfs2's defaults (readsize, progsize, lookahead 32); if
    that fails and the partition is blank, format it and mount; if it
    fails on a partition that holds data, refuse (the board prints "The
    filesystem appears to be corrupted" and formats nothing). Returns a
    line for the log."""
    import vfs

    device = FilePartition(path, size)
    try:
        fs = vfs.VfsLfs2(device)
        done = "mounted littlefs"
    except OSError as exc:
        if not device.blank():
            raise SystemExit("--flash %s: holds data but no littlefs that mounts (littlefs error %s); the board would not "
                             "format it either: keep the file for a look, or delete it to start empty"
                             % (path, exc))
        vfs.VfsLfs2.mkfs(device)
        fs = vfs.VfsLfs2(device)
        done = "formatted littlefs"
    vfs.mount(fs, mount_point)
    free = os.statvfs(mount_point)[3]
    return "flash %s: %s (%d blocks of %d bytes, %d free)" % (path, done, device.blocks, BLOCK, free)
