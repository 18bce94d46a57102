"""The firmware's flash store adapter (firmware/store_flash.py) when
writes fail, on the real MicroPython unix port: tests/firmware/
mp_flash_store.py does the work and says what it checks. A failed or
short write must leave the segment holding exactly the records before it
(MicroPython files have no truncate()), the store must report the disk
full, and nothing it took may be lost.

(The torn-write sweep, every cut of a segment, is
test_firmware_build.py's test_flash_store_detects_every_torn_write.)"""

import os
import resource
import signal
import subprocess

import pytest
from fw_support import FIRMWARE_PATH, MICROPYTHON

from simulator.processes import ROOT


def mp_flash_store(*args, file_size_limit=None):
    def limit_file_size():
        # The kernel then takes the part of a write below the limit and
        # fails the rest with EFBIG (SIGXFSZ ignored: an error, not death).
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.run([MICROPYTHON, "tests/firmware/mp_flash_store.py", *args], capture_output=True, text=True,
                          cwd=ROOT, env=dict(os.environ, MICROPYPATH=FIRMWARE_PATH),
                          preexec_fn=limit_file_size if file_size_limit else None, timeout=120)


def test_a_full_littlefs_leaves_no_torn_record_and_loses_nothing(tmp_path):
    """A real littlefs (VfsLfs2, as on the ESP32) on a RAM flash chip,
    filled to 57 levels so the disk fills at a different byte each time:
    after the failed write the segment holds the records before it, the
    held records land once there is room, the next append reads back, and
    a remount returns everything appended."""
    result = mp_flash_store(str(tmp_path), "littlefs")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split()[:3] == ["ok", "57", "runs"]


@pytest.mark.parametrize("limit", [700, 2001, 3003])
def test_a_write_the_kernel_tears_is_cut_back_on_vfsposix(tmp_path, limit):
    """VfsPosix under a file size limit: the kernel really writes part of
    a record, at 40 different bytes per limit. The adapter cuts the torn
    part off (copy and rename), on every retry too, and the store reopened
    reads back every record that reached the file."""
    result = mp_flash_store(str(tmp_path), "posix", str(limit), file_size_limit=limit)
    assert result.returncode == 0, result.stdout + result.stderr
    words = result.stdout.split()
    assert words[:3] == ["ok", "40", "runs"] and int(words[3]) >= 40, result.stdout
