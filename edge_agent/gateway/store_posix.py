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

from edge_agent.atomic_file import sync_directory
from edge_agent.core.store import StoreError

LOCK_NAME = "lock"


class StoreLockedError(StoreError):
    """Another process has the store open."""


class AppendHandle:
    """An open segment file. The core hands it whole batches (its own RAM
    buffer, up to PosixDir.write_buffer), so writes go straight to the OS,
    and each is all or nothing: on a full disk write(2) may take part of a
    batch before ENOSPC, and that torn piece is cut off again (truncating
    needs no space) so the batch can be retried whole when space returns."""

    __slots__ = ("fd", "size")

    def __init__(self, path):
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        self.size = os.fstat(self.fd).st_size

    def write(self, data):
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError:
            os.ftruncate(self.fd, self.size)
            raise
        self.size += len(data)

    def flush(self):
        """Nothing to do: write() went to the OS."""

    def sync(self):
        os.fsync(self.fd)

    def close(self):
        os.close(self.fd)


class UpdateHandle:
    """A file overwritten in place (the ack journal): it never grows after
    it was created, so fdatasync (data, no metadata) makes a write durable."""

    __slots__ = ("fd",)

    def __init__(self, path):
        self.fd = os.open(path, os.O_WRONLY)

    def write_at(self, offset, data):
        view = memoryview(data)
        while view:
            written = os.pwrite(self.fd, view, offset)
            view = view[written:]
            offset += written

    def sync(self):
        _fdatasync(self.fd)

    def close(self):
        os.close(self.fd)


# fdatasync where the OS has it (Linux); fsync elsewhere (macOS).
_fdatasync = getattr(os, "fdatasync", os.fsync)


class PosixDir:
    # Bytes of appended records the core store keeps in RAM per active
    # segment before writing them (its WRITE_BUFFER, 8 KiB, is sized for
    # an ESP32): 64 KiB makes a sync of 100 signals of up to ~650 bytes one
    # write(2), as CPython's own file buffer did. Durability is unchanged:
    # flush() and every sync write them out.
    write_buffer = 65536

    def __init__(self, path, lock=True, create=True):
        self.path = os.path.abspath(path)
        if create:
            os.makedirs(self.path, exist_ok=True)
        elif not os.path.isdir(self.path):
            raise StoreError("no store directory at %s" % self.path)
        self._lock_file = None
        self._read_fd = None  # the last file read, kept open (see read)
        self._read_name = None
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
        # The last file read stays open: the store reads a segment in
        # batches, and an open+close per batch cost ~5 us. Renaming,
        # removing or rewriting that name closes it.
        if name != self._read_name:
            self._forget(None)
            self._read_fd = os.open(self._p(name), os.O_RDONLY)
            self._read_name = name
        return os.pread(self._read_fd, n, offset)

    def _forget(self, name):
        """Close the cached read descriptor (of ``name``, or whatever it is)."""
        if self._read_fd is not None and (name is None or name == self._read_name):
            os.close(self._read_fd)
            self._read_fd = None
            self._read_name = None

    def open_append(self, name):
        return AppendHandle(self._p(name))

    def open_update(self, name):
        return UpdateHandle(self._p(name))

    def write_file(self, name, data):
        """Create or overwrite ``name``, durable on return. On failure (a
        full disk) the partial file is removed: the store writes only
        temporaries and the fresh ack journal this way."""
        self._forget(name)
        path = self._p(name)
        try:
            with open(path, "wb", buffering=0) as f:
                f.write(data)
                os.fsync(f.fileno())
        except OSError:
            try:
                os.remove(path)
            except OSError:
                pass
            raise

    def rename(self, old, new):
        self._forget(old)
        self._forget(new)
        os.replace(self._p(old), self._p(new))

    def remove(self, name):
        self._forget(name)
        os.remove(self._p(name))

    def sync_dir(self):
        sync_directory(self.path)

    def close(self):
        """Release the lock (the store itself is closed with Store.close)."""
        self._forget(None)
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None


def open_store(path, now_ms, **options):
    """A Store on ``path`` (created if missing), locked for this process."""
    from edge_agent.core.store import Store

    return Store(PosixDir(path), now_ms, **options)
