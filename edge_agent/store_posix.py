"""The durable store's file adapter for CPython on POSIX (the Pi gateway).

Everything the core store (edge_agent/core/store.py) needs from a disk, in
one directory: list, size, read, append with fsync, durable whole-file
write, rename, remove, and fsync of the directory itself (POSIX makes a
file's creation, rename or removal durable only when its directory is
fsynced; without it a power cut can lose a renamed marker or a new
segment even after fsyncing the file).

The MicroPython adapter (no os.fsync; flush() makes littlefs commit) has
the same surface and comes with the firmware.

Only one process may open a store for writing: ``PosixDir(path,
lock=True)`` takes an exclusive flock on ``path/lock`` and raises
StoreLockedError when another process holds it. Read-only tools (the CLI's
inspect and verify) pass ``lock=False``.
"""

import fcntl
import os

from edge_agent.core.store import StoreError

LOCK_NAME = "lock"
# Appends go through a userspace buffer: one write() syscall per 64 KiB
# instead of one per record. Records in the buffer are not durable yet
# anyway; sync() flushes and fsyncs.
APPEND_BUFFER = 65536


class StoreLockedError(StoreError):
    """Another process has the store open."""


class AppendHandle:
    """An open segment file. ``write`` is the buffered file's own method
    (no wrapper call on the hot path)."""

    __slots__ = ("file", "write")

    def __init__(self, path):
        self.file = open(path, "ab", buffering=APPEND_BUFFER)
        self.write = self.file.write

    def flush(self):
        self.file.flush()

    def sync(self):
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self):
        self.file.close()


class PosixDir:
    def __init__(self, path, lock=True, create=True):
        self.path = os.path.abspath(path)
        if create:
            os.makedirs(self.path, exist_ok=True)
        elif not os.path.isdir(self.path):
            raise StoreError("no store directory at %s" % self.path)
        self._lock_file = None
        if lock:
            self._lock_file = open(os.path.join(self.path, LOCK_NAME), "ab")
            try:
                fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._lock_file.close()
                raise StoreLockedError(
                    "store %s is in use by another process (lock file %s); stop it first"
                    % (self.path, os.path.join(self.path, LOCK_NAME))
                )

    def _p(self, name):
        return os.path.join(self.path, name)

    def list(self):
        return [name for name in os.listdir(self.path) if name != LOCK_NAME]

    def size(self, name):
        return os.stat(self._p(name)).st_size

    def read(self, name, offset, n):
        with open(self._p(name), "rb", buffering=0) as f:
            if offset:
                f.seek(offset)
            return f.read(n)

    def open_append(self, name):
        return AppendHandle(self._p(name))

    def write_file(self, name, data):
        with open(self._p(name), "wb", buffering=0) as f:
            f.write(data)
            os.fsync(f.fileno())

    def rename(self, old, new):
        os.replace(self._p(old), self._p(new))

    def remove(self, name):
        os.remove(self._p(name))

    def sync_dir(self):
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self):
        """Release the lock (the store itself is closed with Store.close)."""
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None


def open_store(path, now_ms, **options):
    """A Store on ``path`` (created if missing), locked for this process."""
    from edge_agent.core.store import Store

    return Store(PosixDir(path), now_ms, **options)
