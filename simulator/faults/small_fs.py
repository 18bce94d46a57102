"""A small file system of the store's own, filled to the last byte: the
live ``disk_full`` fault's mechanism (simulator/scenarios/live/faults.py), shared by
the tests that run the store and the agent on a really full disk. The
ENOSPC is the kernel's. Mounting a tmpfs needs root (CAP_SYS_ADMIN)."""

import os
import subprocess

# Down to single bytes: the last page of a tmpfs takes a partial write.
_CHUNKS = (65536, 4096, 512, 1)


def mount_tmpfs(mount_point, size_bytes):
    """Mount a tmpfs of ``size_bytes`` at ``mount_point`` (an existing
    directory). None when mounted, else why not."""
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d" % size_bytes, "tmpfs", mount_point],
                              capture_output=True, text=True)
    except OSError as exc:  # no mount(8) at all
        return str(exc)
    if done.returncode != 0:
        return done.stderr.strip() or "mount exited %d" % done.returncode
    return None


def unmount(mount_point):
    subprocess.run(["umount", "-l", mount_point], capture_output=True)


def fill(path):
    """Append zeros to the file ``path`` until its file system refuses a
    single byte more; (bytes written, bytes free after)."""
    written = 0
    with open(path, "ab", buffering=0) as f:
        for size in _CHUNKS:
            block = b"\0" * size
            try:
                while True:
                    written += f.write(block)
            except OSError:
                pass
    stat = os.statvfs(os.path.dirname(path) or ".")
    return written, stat.f_bavail * stat.f_frsize
