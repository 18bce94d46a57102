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

from simulator.fixtures.processes import ROOT


def mp_flash_store(*args, file_size_limit=None, timeout=120):
    def limit_file_size():
        # The kernel then takes the part of a write below the limit and
        # fails the rest with EFBIG (SIGXFSZ ignored: an error, not death).
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.run([MICROPYTHON, "tests/firmware/mp_flash_store.py", *args], capture_output=True, text=True,
                          cwd=ROOT, env=dict(os.environ, MICROPYPATH=FIRMWARE_PATH),
                          preexec_fn=limit_file_size if file_size_limit else None, timeout=timeout)


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


def test_a_flash_op_that_fails_loses_nothing_durable(tmp_path):
    """A real littlefs on a RAM flash chip whose Nth program or erase
    fails, for every N of a workload (705 ops: appends, syncs, seals,
    compaction, acks), in one of five ways (each N one way): raised
    through littlefs as the ESP32's partition does, with nothing or part
    programmed; returned as LFS_ERR_IO; or a part-programmed block
    reported as done, once or by a worn block at every later op too
    (littlefs reads it back and relocates: the store must not notice). Once
    the store is open nothing escapes it: an EIO is ridden out like a full
    disk (records held in RAM, retried on the same mount; it used to escape
    and the firmware reset the board); only opening the store at boot may
    fail. After a remount every durable record is back, in order, none
    damaged, and the next append lands."""
    result = mp_flash_store(str(tmp_path), "faults", "raise,torn,code,silent,worn", "5", timeout=60)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    # (Above it, the gc's "OSError: [Errno 5] EIO" lines: files a crashed
    # run left open, whose finalizers find the chip gone, as after a reset.)
    last = result.stdout.splitlines()[-1]
    words = last.split()
    assert words[:4] == ["ok", "706", "runs", "705"], result.stdout[-2000:]
    assert int(words[5]) > 705, last  # failures injected (a worn block fails again)
    assert int(words[7]) < 10, last  # only while the store opened at boot
    assert int(words[9]) > 100, last  # runs where the store rode out an EIO (or a full disk) and came back
    print(last)


def test_a_commit_that_fails_on_a_full_littlefs_is_held_and_written_later(tmp_path):
    """littlefs failing a commit for lack of space (LFS_ERR_NOSPC from the
    chip's Nth program or erase, every N of the same workload: a real
    fill reaches this too rarely to test). The store must hold the records
    in RAM and write them later, not hang (a failed commit's bytes kept in
    the adapter's handle were invisible to the store's reads: it read its
    segment forever) and not raise ENAMETOOLONG (littlefs's report of a
    full disk met creating a file). After a remount every record is back."""
    result = mp_flash_store(str(tmp_path), "faults", "nospc", "1", timeout=30)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    last = result.stdout.splitlines()[-1]
    words = last.split()
    assert words[:4] == ["ok", "706", "runs", "705"], result.stdout[-2000:]
    assert int(words[9]) > 100, last  # runs where the store went disk-full and came back
    print(last)


def test_a_file_that_lost_committed_bytes_is_a_clear_error_never_a_retry_loop(tmp_path):
    """Issue 19 (from issue 10's notes): the flash adapter finds a segment
    shorter than what was committed to it. That is ShortFile, which the
    store raises (the board resets, and recovery keeps every whole record),
    not an EIO it would ride out and retry forever."""
    result = mp_flash_store(str(tmp_path / "short"), "short", timeout=30)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert result.stdout.strip().startswith("ok short file:"), result.stdout


def test_a_small_state_file_is_read_in_a_block_of_its_size(tmp_path):
    """The command counters are read in a block of the file's size: asking
    f.read(65536), as the firmware did, takes a 64 KiB block first on
    MicroPython, whatever the file holds, and a board's heap has none (on
    the unix port in 48 KiB: MemoryError). A file larger than the limit is
    a clear ValueError."""
    script = (
        "import store_flash\n"
        "d = store_flash.FlashDir(%r)\n"
        "d.write_file('counters.cbor', b'\\xa0')\n"
        "print(d.read_file('counters.cbor', 65536))\n"
        "try:\n"
        "    d.read_file('counters.cbor', 0)\n"
        "except ValueError as exc:\n"
        "    print('refused:', exc)\n"
        "try:\n"
        "    d.read('counters.cbor', 0, 65536)\n"
        "except MemoryError:\n"
        "    print('read(65536): MemoryError')\n" % str(tmp_path))
    result = subprocess.run([MICROPYTHON, "-X", "heapsize=48k", "-c", script], capture_output=True, text=True,
                            cwd=ROOT, env=dict(os.environ, MICROPYPATH=FIRMWARE_PATH), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == ["b'\\xa0'", "refused: 1 bytes, more than the 0 a board reads",
                                          "read(65536): MemoryError"]
