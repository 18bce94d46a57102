"""Whole-file atomic replace on POSIX: a crash leaves the old file or the
new one, never a torn one."""

import os
import tempfile


def atomic_write(path, data, mode=0o644):
    """Replace ``path`` with ``data``: write a temp file beside it, fsync,
    rename over, fsync the directory (without that a power cut can lose
    the rename even though the file's data was synced)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise
    sync_directory(directory)


def sync_directory(directory):
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_rename(old, new):
    """Rename and make the rename durable."""
    os.replace(old, new)
    sync_directory(os.path.dirname(os.path.abspath(new)))


def atomic_remove(path):
    """Remove ``path`` if present, durably. True if it was there."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    sync_directory(os.path.dirname(os.path.abspath(path)))
    return True
