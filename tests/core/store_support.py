"""Real-file helpers for the store's core tests, on CPython and MicroPython.

``FilesDir`` is the store's file adapter surface written with only what
both interpreters have (open, os.listdir/stat/rename/remove): real files in
a fresh temporary directory. It cannot fsync (MicroPython has no
os.fsync), so these tests prove the logic and the format; durability
under SIGKILL is proved with the POSIX adapter in tests/gateway/test_store_crash.py.
"""

import os

from edge_agent.core import store as st


def _hex(data):
    return "".join("%02x" % b for b in data)


class AppendHandle:
    def __init__(self, path):
        self.file = open(path, "ab")

    def write(self, data):
        self.file.write(data)

    def flush(self):
        self.file.flush()

    def sync(self):
        self.file.flush()

    def close(self):
        self.file.close()


class UpdateHandle:
    def __init__(self, path):
        self.file = open(path, "r+b")

    def write_at(self, offset, data):
        self.file.seek(offset)
        self.file.write(data)
        self.file.flush()

    def sync(self):
        self.file.flush()

    def close(self):
        self.file.close()


class FilesDir:
    def __init__(self, path=None):
        if path is None:
            path = "/tmp/ea-store-test-" + _hex(os.urandom(6))
            os.mkdir(path)
        self.path = path

    def _p(self, name):
        return self.path + "/" + name

    def list(self):
        return os.listdir(self.path)

    def size(self, name):
        return os.stat(self._p(name))[6]

    def read(self, name, offset, n):
        with open(self._p(name), "rb") as f:
            f.seek(offset)
            return f.read(n)

    def open_append(self, name):
        return AppendHandle(self._p(name))

    def open_update(self, name):
        return UpdateHandle(self._p(name))

    def write_file(self, name, data):
        with open(self._p(name), "wb") as f:
            f.write(data)

    def rename(self, old, new):
        os.rename(self._p(old), self._p(new))

    def remove(self, name):
        os.remove(self._p(name))

    def sync_dir(self):
        pass

    def close(self):
        pass

    # -- test helpers (not part of the adapter surface) -------------------

    def whole(self, name):
        return self.read(name, 0, self.size(name))

    def overwrite(self, name, data):
        with open(self._p(name), "wb") as f:
            f.write(data)

    def segments(self, lane=None):
        names = []
        for name in sorted(self.list()):
            if name.endswith(".seg") and (lane is None or name.startswith("%d-" % lane)):
                names.append(name)
        return names

    def destroy(self):
        for name in self.list():
            os.remove(self._p(name))
        os.rmdir(self.path)


def crash(store):
    """The process dies: its open files close, nothing more is written
    (no seal, no sync, no checkpoint of the ack journal)."""
    for lane in store._lanes:
        seg = lane.active
        if seg is not None and seg.handle is not None:
            seg.handle.close()
    for seg in store._sealing:
        if seg.handle is not None:
            seg.handle.close()
    if store._journal is not None:
        store._journal.close()
    store.fs.close()


def open_store(fs, now_ms=0, **options):
    options.setdefault("segment_bytes", 1024)
    options.setdefault("max_bytes", 64 * 1024)
    return st.Store(fs, now_ms, **options)


def drain(store, max_records=1000):
    """Every unread record as (lane, payload), acknowledging as it goes."""
    out = []
    while True:
        batch = store.read(max_records)
        if batch is None:
            return out
        for record in batch.records:
            out.append((batch.lane, record))
        store.ack(batch.lane, batch.end)


def read_all(store):
    """Every unread record as (lane, payload), without acknowledging."""
    out = []
    while True:
        batch = store.read(1000)
        if batch is None:
            return out
        for record in batch.records:
            out.append((batch.lane, record))
