"""The ESP32's flash partition on the MicroPython unix port (the test
vehicle), for unix_main.py --flash.

``FilePartition`` is the flash partition (``esp32.Partition``) as a file,
for ``vfs.VfsLfs2``: the same extended block protocol (4096-byte blocks,
``readblocks``/``writeblocks`` with a byte offset, ``ioctl`` erase), so
littlefs runs on it exactly as on the board. Every block write is one
unbuffered ``write(2)`` (MicroPython's unix files are not buffered), so a
SIGKILL leaves the file as a power cut leaves flash: every completed
write there, nothing after. (Unlike NOR flash, programming here replaces
bytes instead of clearing bits; littlefs erases before it programs, so it
never relies on either.) ``mount_flash`` mounts it as the ESP32's boot
does (see its doc). A module of its own: imported only with --flash, so
the other unix runs' heap figures do not pay for it.
"""

import os
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
        """True if the first block is erased: never formatted. Read 512
        bytes at a time: the start's heap may have no free 4 KiB block (the
        64-bit port's, once the store stopped building its CRC table)."""
        head = bytearray(_ERASED)
        for offset in range(0, BLOCK, _ERASED):
            self.readblocks(0, head, offset)
            if head != self.erased:
                return False
        return True


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
