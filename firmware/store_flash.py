"""The durable store's file adapter for MicroPython (littlefs on the ESP32).

The same surface as edge_agent/gateway/store_posix.py, so the core store
(edge_agent/core/store.py) and sequencer (store_seq.py) run unchanged.

Durability on MicroPython: there is no os.fsync. What replaces it:

- littlefs is copy-on-write. A file's new data and its metadata (size,
  block list) are written to fresh blocks and become visible atomically
  when littlefs *commits* the file: at ``f.flush()`` (MicroPython's
  VfsLfs2 file flush calls lfs_file_sync) or ``f.close()``. A power cut
  before the commit leaves the file as it was at the previous commit; a
  cut during it leaves either the old or the new version, never a mix.
  So ``sync()`` here is ``flush()``, and it is as strong as fsync on a
  journaling file system for that file.
- Directory operations (create, rename, remove) are atomic littlefs
  metadata commits, durable when the call returns: ``sync_dir`` has
  nothing left to do. ``rename`` over an existing name replaces it
  atomically (lfs_rename), which the store's marker replacement needs.
- What a cut *can* leave behind: on littlefs, nothing torn (the last
  commit wins). On other file systems (FAT on an SD card, or the unix
  port's VfsPosix used by the tests, where flush reaches only the OS)
  a segment can end in a half-written record. The record format
  (edge_agent/core/store_format.py) detects that: every record carries
  a CRC-32 over its length word *and* its payload, so a record cut at
  any byte, or a zero-filled tail, never checks out; recovery truncates
  the segment at the last valid record and reports it
  (tests/firmware/test_flash_store.py cuts a segment at every byte).

All or nothing. The store needs ``write`` to append all of its bytes or
raise leaving the file as it was (a full disk), and MicroPython files
have no truncate(). How each file system gets there after a failed or
short write (the handle is closed first, then the file checked):

- littlefs: a failed write leaves the file as it was at its last commit
  once the handle is closed, but only then: written on through the same
  handle, the failed write's torn bytes would be committed at the next
  flush. Each write commits, so the last commit is exactly the file
  before the failed write. That holds when littlefs saw the error code
  (it marks the file failed). The ESP32's flash (esp32.Partition) raises
  instead, and the exception unwinds through littlefs without it: closing
  then commits what the file had, torn bytes too, cut off as follows.
- VfsPosix or FAT: the torn bytes are in the file; it is cut back by
  copying its valid part to ``<name>.tmp`` and renaming that over it. On
  a full disk the copy can fail too: the handle then stays closed and the
  cut is retried before anything else is written, so nothing ever lands
  after torn bytes.
- A commit can fail too (on littlefs, a full disk met by the metadata,
  or a flash program or erase error): so ``write`` commits what it wrote
  and fails whole if the commit does, leaving the bytes with the store,
  which writes them again later. (Keeping them in the handle to write
  again was wrong: the store reads its segment meanwhile, through
  another handle, which sees only what is committed.)
- A flash error reaches the store as OSError(EIO) (or esp32.Partition's
  code), not a full disk, and the store rides it out the same way:
  records held in RAM, the write retried (a block that failed once is
  relocated by littlefs, a brown-out passes). tests/firmware/test_flash_store.py
  fails each flash op in turn, each way, goes on on the same mount, and
  finds every durable record after a remount.
- A file found shorter than what was committed to it (the flash lost
  bytes) is ``ShortFile``, not EIO: retrying could never mend it, so the
  store raises it, firmware/main.py resets the board, and the store's
  recovery at the next boot keeps every whole record.

A short write (fewer bytes taken than given) counts as a full disk:
OSError 28, ENOSPC, the number store_format.is_disk_full knows.

What a power cut costs, then: records appended since the last sync
(the store's group commit: ``sync_every`` records or ``sync_ms``), as on
the gateway. Alerts are appended with ``urgent=True`` and synced at once.
Flash wear: each sync rewrites the file's last block; keep ``sync_ms``
at the default 500 ms or above on flash (see docs/firmware.md).
"""

import os

from micropython import const

# const() with a leading underscore: inlined, no heap on MicroPython.
_SEEK_SET = const(0)
_ENOSPC = const(28)  # numbers: MicroPython's errno module lacks ENOSPC
_ENAMETOOLONG = const(36)


class ShortFile(OSError):
    """A file shorter than what was committed to it: the flash lost bytes
    that were written and synced. Not a write failure to retry (no errno
    the store rides out): it would fail the same way forever."""


def _write_all(file, data):
    """Write ``data`` to ``file``; a short write is a full disk."""
    if file.write(data) != len(data):
        raise OSError(_ENOSPC)


def _create(path, mode):
    """open() for a file that may be created. littlefs reports a full disk
    met while creating a file as ENAMETOOLONG (lfs2_file_opencfg: a name
    that fits no metadata block); the store's short names always fit."""
    try:
        return open(path, mode)
    except OSError as exc:
        if exc.args[0] == _ENAMETOOLONG:
            raise OSError(_ENOSPC)
        raise


def _close_quietly(file):
    # Closing after a failed write can fail again (a full disk); the file
    # is checked and repaired after this anyway.
    try:
        file.close()
    except OSError:
        pass


def _cut(path, size):
    """Keep only the first ``size`` bytes of ``path`` (no truncate() on
    MicroPython): copy them to a temporary file, rename it over ``path``."""
    temp = path + ".tmp"
    try:
        with open(path, "rb") as source:
            with _create(temp, "wb") as target:
                chunk = bytearray(256)
                left = size
                while left:
                    n = source.readinto(chunk)
                    if not n:
                        raise ShortFile("%s: shorter than %d bytes while being cut back" % (path, size))
                    n = min(n, left)
                    _write_all(target, memoryview(chunk)[:n])
                    left -= n
                target.flush()
        os.rename(temp, path)
    except OSError:
        try:
            os.remove(temp)
        except OSError:
            pass
        raise


class AppendHandle:
    """A segment open for appending; ``write`` commits (see the module
    doc), so ``flush`` and ``sync`` have nothing left to do but repair
    after a failure. ``size``: the bytes the store has written to it."""

    __slots__ = ("path", "file", "size")

    def __init__(self, path):
        self.path = path
        self.file = _create(path, "ab")
        self.size = self.file.seek(0, 2)  # (os.stat would allocate a tuple)

    def write(self, data):
        file = self.file or self._reopen()
        try:
            _write_all(file, data)
            file.flush()
        except OSError:
            self._restore()
            raise
        self.size += len(data)

    def flush(self):
        if self.file is None:
            self._reopen()  # a failed write's repair, retried

    sync = flush

    def _restore(self):
        """After a failed write or commit: close the file (littlefs then
        drops what was not committed) and bring it back to ``size`` bytes
        now if the disk lets us, else before the next write."""
        _close_quietly(self.file)
        self.file = None
        try:
            self._reopen()
        except OSError:
            pass

    def _reopen(self):
        """Open the file again at exactly ``size`` bytes: cut off torn
        bytes (VfsPosix, FAT; littlefs when the error was raised through
        it, so it could not mark the file failed, and close committed)."""
        have = os.stat(self.path)[6]
        if have < self.size:
            raise ShortFile("%s: %d committed bytes missing" % (self.path, self.size - have))
        if have > self.size:
            _cut(self.path, self.size)
        self.file = open(self.path, "ab")
        return self.file

    def close(self):
        if self.file is not None:
            self.file.close()
            self.file = None


class UpdateHandle:
    """A file overwritten in place (the ack journal's slots, the seq
    marker). The store syncs after every write_at, so on littlefs a failed
    write or commit is undone by closing the handle (the file goes back
    to its last commit); the next write_at opens it again. On VfsPosix
    and FAT an overwrite needs no new space, so no full disk can tear it."""

    __slots__ = ("path", "file")

    def __init__(self, path):
        self.path = path
        self.file = open(path, "r+b")

    def write_at(self, offset, data):
        file = self.file
        if file is None:
            file = self.file = open(self.path, "r+b")
        try:
            file.seek(offset, _SEEK_SET)
            _write_all(file, data)
        except OSError:
            self._drop()
            raise

    def sync(self):
        if self.file is None:
            return  # nothing written since the handle was dropped
        try:
            self.file.flush()
        except OSError:
            self._drop()
            raise

    def _drop(self):
        _close_quietly(self.file)
        self.file = None

    def close(self):
        if self.file is not None:
            self.file.close()
            self.file = None


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


class FlashDir:
    """A store directory on the device's file system. One process only:
    the firmware is the only writer on a board (no lock file needed)."""

    def __init__(self, path):
        self.path = path.rstrip("/") or "/"
        self._makedirs(self.path)
        self._read_file = None  # the last file read, kept open (see read)
        self._read_name = None

    def _makedirs(self, path):
        parts = [p for p in path.split("/") if p]
        current = "/" if path.startswith("/") else ""
        for part in parts:
            current = current + part if current in ("", "/") else current + "/" + part
            if not _exists(current):
                os.mkdir(current)

    def _p(self, name):
        return self.path + "/" + name

    def list(self):
        return os.listdir(self.path)

    def size(self, name):
        return os.stat(self._p(name))[6]

    def read_file(self, name, limit):
        """A whole small file (the command counters), read in one block of
        its own size: MicroPython's ``f.read(n)`` takes an n-byte block
        first, whatever the file holds, and a board's heap has no 64 KiB
        block to give. ValueError if it is larger than ``limit`` bytes."""
        size = self.size(name)
        if size > limit:
            raise ValueError("%d bytes, more than the %d a board reads" % (size, limit))
        return self.read(name, 0, size)

    def read(self, name, offset, n):
        # The store reads a segment in batches: keep the last file open.
        # But on littlefs an open file keeps the size it had when opened:
        # what another handle appended and committed since reads as b"".
        # The store never reads past what it wrote, so a short read is such
        # a stale file: open it again.
        f = self._read_file
        if f is not None and name == self._read_name:
            f.seek(offset, _SEEK_SET)
            data = f.read(n)
            if len(data) == n:
                return data
        self._forget(None)
        f = self._read_file = open(self._p(name), "rb")
        self._read_name = name
        f.seek(offset, _SEEK_SET)
        return f.read(n)

    def _forget(self, name):
        if self._read_file is not None and (name is None or name == self._read_name):
            self._read_file.close()
            self._read_file = None
            self._read_name = None

    def open_append(self, name):
        self._forget(name)
        return AppendHandle(self._p(name))

    def open_update(self, name):
        self._forget(name)
        return UpdateHandle(self._p(name))

    def write_file(self, name, data):
        """Create or overwrite ``name``, committed on return. On failure
        (a full disk) the partial file is removed, as store_posix does: the
        store writes only temporaries and the fresh ack journal this way."""
        self._forget(name)
        path = self._p(name)
        try:
            with _create(path, "wb") as f:
                _write_all(f, data)
                f.flush()
        except OSError:
            try:
                os.remove(path)
            except OSError:
                pass
            raise

    def rename(self, old, new):
        self._forget(old)
        self._forget(new)
        # littlefs (lfs_rename) and POSIX replace the target atomically.
        # FAT does not (it refuses an existing target): the store needs an
        # atomic replace for its seq marker, so FAT is not supported.
        os.rename(self._p(old), self._p(new))

    def remove(self, name):
        self._forget(name)
        os.remove(self._p(name))

    def sync_dir(self):
        """Nothing to do: littlefs commits directory changes as they happen."""

    def close(self):
        self._forget(None)
