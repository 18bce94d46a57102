"""The durable store's file adapter for MicroPython (littlefs on the ESP32).

The same surface as edge_agent/store_posix.py, so the core store
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

What a power cut costs, then: records appended since the last sync
(the store's group commit: ``sync_every`` records or ``sync_ms``), as on
the gateway. Alerts are appended with ``urgent=True`` and synced at once.
Flash wear: each sync rewrites the file's last block; keep ``sync_ms``
at the default 500 ms or above on flash (see docs/firmware.md).
"""

import os

_SEEK_SET = 0


class AppendHandle:
    """A segment open for appending; ``sync`` commits it (littlefs)."""

    __slots__ = ("file", "write")

    def __init__(self, path):
        self.file = open(path, "ab")
        self.write = self.file.write

    def flush(self):
        self.file.flush()

    def sync(self):
        self.file.flush()

    def close(self):
        self.file.close()


class UpdateHandle:
    """A file overwritten in place (the ack journal's slots)."""

    __slots__ = ("file",)

    def __init__(self, path):
        self.file = open(path, "r+b")

    def write_at(self, offset, data):
        self.file.seek(offset, _SEEK_SET)
        self.file.write(data)

    def sync(self):
        self.file.flush()

    def close(self):
        self.file.close()


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

    def read(self, name, offset, n):
        # The store reads a segment in batches: keep the last file open.
        f = self._read_file
        if f is None or name != self._read_name:
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
        self._forget(name)
        with open(self._p(name), "wb") as f:
            f.write(data)
            f.flush()

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
