"""The flash store adapter under MicroPython: a torn write is always
detected, and a failed write leaves nothing behind.

    MICROPYPATH=firmware:.:.frozen micropython tests/firmware/mp_flash_store.py DIR [MODE]

MODE ``cuts`` (the default; run by tests/firmware/test_firmware_build.py)
writes a store through firmware/store_flash.py's FlashDir, leaves the
segment unsealed (as a power cut does), then for every byte length of
that segment opens a copy cut there, and for a set of offsets a copy
whose tail is zeros (a block allocated but not written): recovery must
return exactly the records wholly written before the damage, in order,
and never a damaged one. Prints "ok N cuts" on success.

The other modes (run by tests/firmware/test_flash_store.py) make writes
fail for real and check that the segment then holds exactly the records
before the failed write, that the store reports the disk full, and that
nothing appended is lost:

- ``littlefs``: a real littlefs (MicroPython's VfsLfs2, as on the ESP32)
  on a flash chip in RAM, filled by a filler file to a different level
  in each run, so the disk fills at a different byte of the records each
  time; then the filler goes, and the held records must be written, the
  next append must land and read back, and a remount must return it all.
- ``faults WAYS STEP``: a real littlefs on a flash chip in RAM whose
  Nth program or erase fails (FaultyFlash: WAYS, comma-separated, say
  how), for every STEP-th N of a store workload, each way from another
  first N: the store rides out every failure once open (records held in
  RAM, retried); after a remount every durable record is back, in
  order, none damaged, and the next append lands.
- ``posix LIMIT``: the unix port's VfsPosix under a file size limit
  (RLIMIT_FSIZE, set by the caller), where the kernel takes part of a
  write and then fails it with EFBIG, at a different byte in each run.
"""

import os
import sys

from edge_agent.core import store_format as fmt
from edge_agent.core.store import DISK_ERROR, DISK_FULL, DISK_OK, Store
from store_flash import FlashDir

RECORDS = 24


def payload(n):
    return b"signal-%03d-" % n + bytes([n & 255]) * (n % 9)


def wipe(path):
    try:
        names = [e[0] for e in os.ilistdir(path)]
    except OSError:
        return
    for name in names:
        os.remove(path + "/" + name)
    os.rmdir(path)


def read_all(directory):
    fs = FlashDir(directory)
    store = Store(fs, 0, lanes=2, max_bytes=64 * 1024, segment_bytes=16 * 1024)
    got = []
    while True:
        batch = store.read(max_records=100)
        if batch is None:
            break
        got.extend(batch.records)
        store.ack(batch.lane, batch.end)
    store.close()
    return got


def copy_with(source, target, segment, data):
    wipe(target)
    os.mkdir(target)
    for name in [e[0] for e in os.ilistdir(source)]:
        with open(source + "/" + name, "rb") as f:
            content = f.read()
        if name == segment:
            content = data
        with open(target + "/" + name, "wb") as f:
            f.write(content)


def main(base):
    source = base + "/source"
    wipe(source)
    fs = FlashDir(source)
    store = Store(fs, 0, lanes=2, max_bytes=64 * 1024, segment_bytes=16 * 1024)
    ends = []
    for n in range(RECORDS):
        store.append(1, payload(n), n, urgent=(n % 5 == 0))
    store.sync()  # flushed, never sealed: what a power cut leaves
    segment = [name for name in fs.list() if name.endswith(fmt.SEGMENT_SUFFIX)][0]
    with open(source + "/" + segment, "rb") as f:
        whole = f.read()
    fs.close()
    offset = fmt.SEGMENT_HEADER
    for n in range(RECORDS):
        offset += fmt.RECORD_HEADER + len(payload(n))
        ends.append(offset)
    assert ends[-1] == len(whole), (ends[-1], len(whole))
    expected = [payload(n) for n in range(RECORDS)]
    target = base + "/cut"
    cuts = 0
    for cut in range(fmt.SEGMENT_HEADER, len(whole) + 1):
        copy_with(source, target, segment, whole[:cut])
        whole_records = len([e for e in ends if e <= cut])
        got = read_all(target)
        assert got == expected[:whole_records], "cut at %d: got %d records, want %d" % (cut, len(got), whole_records)
        cuts += 1
    for start in range(fmt.SEGMENT_HEADER, len(whole), 7):
        copy_with(source, target, segment, whole[:start] + bytes(len(whole) - start))
        whole_records = len([e for e in ends if e <= start])
        got = read_all(target)
        assert got == expected[:whole_records], "zeros from %d: got %d records, want %d" % (start, len(got), whole_records)
        cuts += 1
    wipe(target)
    wipe(source)
    print("ok %d cuts" % cuts)




# -- failing writes -------------------------------------------------------


class RamFlash:
    """A flash chip in RAM, as VfsLfs2 mounts it (MicroPython's extended
    block-device protocol: ioctl 6 erases a block, which sets it to 0xFF)."""

    def __init__(self, block_size, blocks):
        self.block_size = block_size
        self.blocks = blocks
        self.view = memoryview(bytearray(block_size * blocks))
        self.erased = b"\xff" * block_size

    def readblocks(self, block, buf, offset=0):
        start = block * self.block_size + offset
        buf[:] = self.view[start : start + len(buf)]

    def writeblocks(self, block, buf, offset=0):
        start = block * self.block_size + offset
        self.view[start : start + len(buf)] = buf

    def ioctl(self, op, arg):
        if op == 4:
            return self.blocks
        if op == 5:
            return self.block_size
        if op == 6:
            start = arg * self.block_size
            self.view[start : start + self.block_size] = self.erased
        return 0


def segment_records(fs):
    """The payloads in the store's segment files, in log order; every
    file must end in a whole record or its seal (no torn bytes)."""
    got = []
    names = sorted(name for name in fs.list() if name.endswith(fmt.SEGMENT_SUFFIX))
    for name in names:
        data = fs.read(name, 0, fs.size(name))
        scan = fmt.scan_segment(data)
        assert not scan.skipped and scan.torn is None, "%s: torn bytes: %r %r" % (name, scan.skipped, scan.torn)
        pos = fmt.SEGMENT_HEADER
        while pos < scan.end:
            reason, start, length, kind = fmt.check_record(data, pos, scan.end)
            if kind == fmt.TYPE_DATA:
                got.append(bytes(data[start : start + length]))
            pos = start + length
    return got


def read_unacked(store):
    got = []
    while True:
        batch = store.read(max_records=100)
        if batch is None:
            return got
        got.extend(batch.records)


def kinds(store):
    return [report.kind for report in store.take_reports()]


def fill_until_full(store, fs, clock, appended):
    """Append records (to the list ``appended`` too) until the store
    reports the disk full; check the files right then."""
    n = 0
    while not store.disk_full:
        assert n < 2000, "the disk never filled"
        clock[0] += 7
        assert store.append(1, payload(n), clock[0], urgent=(n % 4 == 0))
        appended.append(payload(n))
        store.flush()
        n += 1
    # The failed write left no byte behind: the files hold a prefix of
    # what was appended (the rest waits in RAM), whole records only.
    written = segment_records(fs)
    assert written == appended[: len(written)], "files hold other records than appended"
    assert len(written) < len(appended)
    assert DISK_FULL in kinds(store)


def littlefs_run(fill):
    flash = RamFlash(512, 48)
    vfs.VfsLfs2.mkfs(flash)
    vfs.mount(vfs.VfsLfs2(flash), "/flash")
    try:
        with open("/flash/filler", "wb") as f:
            f.write(b"f" * fill)
        fs = FlashDir("/flash/store")
        clock = [0]
        store = Store(fs, 0, lanes=2, max_bytes=1 << 20, segment_bytes=3000, sync_every=5)
        appended = []
        fill_until_full(store, fs, clock, appended)
        for n in range(1000, 1005):  # held in RAM while the disk is full
            clock[0] += 7
            assert store.append(1, payload(n), clock[0])
            appended.append(payload(n))
        os.remove("/flash/filler")  # room again: the held records go to flash
        clock[0] += 1000
        store.poll(clock[0])
        assert not store.disk_full
        clock[0] += 5000
        assert store.append(1, payload(2000), clock[0], urgent=True)  # the next append lands
        appended.append(payload(2000))
        reports = kinds(store)
        assert DISK_OK in reports, reports
        on_flash = segment_records(fs)
        assert on_flash == appended, (len(on_flash), len(appended), [p for p in appended if p not in on_flash])
        assert read_unacked(store) == appended
        store.close()
        fs.close()
    finally:
        vfs.umount("/flash")
    # A reboot: mount the chip again and open the store from flash.
    vfs.mount(vfs.VfsLfs2(flash), "/flash")
    try:
        fs = FlashDir("/flash/store")
        store = Store(fs, 0, lanes=2, max_bytes=1 << 20, segment_bytes=3000)
        assert read_unacked(store) == appended, "fill %d: lost or torn after a remount" % fill
        store.close()
    finally:
        vfs.umount("/flash")


def littlefs(base):
    runs = 0
    for fill in range(9000, 21000, 211):
        littlefs_run(fill)
        runs += 1
    print("ok %d runs" % runs)


def posix(base, limit):
    # Count the torn tails the adapter cut off, so the caller sees the
    # kernel did tear writes (its own function, wrapped, not replaced).
    import store_flash

    cuts = [0]
    cut = store_flash._cut

    def counting_cut(path, size):
        cuts[0] += 1
        cut(path, size)

    store_flash._cut = counting_cut
    runs = 0
    for shift in range(0, 40):
        directory = base + "/s%d" % shift
        wipe(directory)
        fs = FlashDir(directory)
        clock = [0]
        store = Store(fs, 0, lanes=2, max_bytes=1 << 20, segment_bytes=limit + 4096, sync_every=5)
        clock[0] += 1
        appended = [b"x" * (shift + 1)]  # moves where the limit cuts the records
        store.append(1, appended[0], clock[0])
        fill_until_full(store, fs, clock, appended)
        written = segment_records(fs)
        for n in range(3):  # retried while still full: never leaves torn bytes either
            clock[0] += 1000
            store.poll(clock[0])
            assert store.disk_full and segment_records(fs) == written
        store.close()
        fs.close()
        # Opened again: everything that reached the file, nothing torn.
        fs = FlashDir(directory)
        store = Store(fs, 0, lanes=2, max_bytes=1 << 20, segment_bytes=limit + 4096)
        assert read_unacked(store) == appended[: len(written)]
        store.close()
        fs.close()
        wipe(directory)
        runs += 1
    print("ok %d runs %d cuts" % (runs, cuts[0]))



# -- failing flash -------------------------------------------------------


class FaultyFlash(RamFlash):
    """A RamFlash whose ``fail_at``-th program or erase (counted from
    ``arm``) fails, as a worn block or a brown-out fails it, in one of
    these ways (``how``):

    - ``raise``: nothing written, OSError(EIO) raised, as the ESP32's
      esp32.Partition does (check_esp_err raises from writeblocks/ioctl):
      the exception unwinds straight through littlefs's C code.
    - ``torn``: part of the bytes programmed (the rest stays as it was:
      erased 0xFF), then OSError(EIO) raised the same way.
    - ``code``: nothing written, -5 returned (LFS_ERR_IO): littlefs sees
      the error code and unwinds itself, as with a C block device.
    - ``silent``: part of the bytes programmed (an erase not done), and
      success returned: only littlefs's read-back check can tell.
    - ``worn``: as ``silent``, and that block fails every later program
      and erase too (a worn-out block): littlefs must move off it for good.
    - ``nospc``: -28 returned (LFS_ERR_NOSPC, what littlefs's allocator
      returns with no free block): a commit failing as on a full disk, at
      any op, which a real fill reaches too rarely to test (the
      ``littlefs`` mode never did in ~4,000 runs).

    Otherwise later operations work again (a brown-out passes).
    ``failed`` counts the failures injected."""

    gone = False

    def arm(self, fail_at, how):
        self.ops = 0
        self.fail_at = fail_at
        self.how = how
        self.bad = None
        self.failed = 0

    def readblocks(self, block, buf, offset=0):
        if self.gone:
            return -5
        return RamFlash.readblocks(self, block, buf, offset)

    def reboot(self):
        """The same chip after a reset: this object goes dead, so the
        files the crashed run left open (their finalizers run at a later
        gc) cannot touch the chip, as RAM does not survive a reset."""
        self.gone = True
        chip = FaultyFlash(self.block_size, self.blocks)
        chip.view = self.view
        chip.arm(-1, None)
        return chip

    def _fails(self, block):
        if self.gone:
            return True
        self.ops += 1
        if self.ops == self.fail_at or block == self.bad:
            self.failed += 1
            if self.how == "worn":
                self.bad = block
            return True
        return False

    def writeblocks(self, block, buf, offset=0):
        if not self._fails(block):
            return RamFlash.writeblocks(self, block, buf, offset)
        how = self.how
        if how == "torn" or how == "silent" or how == "worn":
            start = block * self.block_size + offset
            part = (self.ops * 7) % len(buf)  # a different cut each time
            self.view[start : start + part] = buf[:part]
        return self._failure()

    def ioctl(self, op, arg):
        if op == 6 and self._fails(arg):
            return self._failure()  # (silent: the block keeps its old bytes)
        return RamFlash.ioctl(self, op, arg)

    def _failure(self):
        how = self.how
        if self.gone:
            return -5
        if how == "code":
            return -5
        if how == "nospc":
            return -28
        if how == "silent" or how == "worn":
            return 0
        raise OSError(5)  # EIO


# What may escape the store once it is open, by way: nothing. littlefs
# relocates a silently failed program, off a worn block too; the store
# holds records in RAM through a full disk, and keeps a segment whose
# removal the full disk refuses, retrying it at the next compaction
# (before issue 19 compaction's remove raised ENOSPC, at op 692 of this
# workload); the rest reach the store as OSError(EIO), which it rides out
# the same way (before issue 19 it raised them and firmware/main.py reset
# the board). The workload then goes on on the same mount, after EIO was
# raised through littlefs's C code, and the remount must still find every
# durable record. (Opening the store at boot has no held state: an error
# there still resets the board.)
ESCAPES = {"silent": (), "worn": (), "nospc": (), "raise": (), "torn": (), "code": ()}
FAULT_RECORDS = 40
STORE_SETUP = {"lanes": 2, "max_bytes": 1 << 20, "segment_bytes": 700, "sync_every": 5}


def fault_workload(log):
    """Append FAULT_RECORDS records through FlashDir and the core store
    (lane 1, every 4th urgent, a sync every 5), reading and acking every
    8th: segments are sealed, started and compacted, the ack journal
    written. ``log`` collects what happened; returns the OSError that
    escaped the store (the firmware resets the board on one), or None
    when it has made every record durable."""
    clock = 0
    try:  # (the firmware opens the store at boot: a failure resets it)
        fs = FlashDir("/flash/store")
        store = Store(fs, 0, **STORE_SETUP)
        log["opened"] = True
        for n in range(FAULT_RECORDS):
            clock += 50
            log["tried"].append(payload(n))
            assert store.append(1, payload(n), clock, urgent=(n % 4 == 0))
            store.flush()
            if store.unsynced == 0 and not store.disk_full:
                log["durable"] = len(log["tried"])
            if n % 8 == 7:
                batch = store.read(max_records=6)
                if batch is not None:
                    assert batch.records == log["tried"][log["acked"] : log["acked"] + len(batch.records)]
                    store.ack(batch.lane, batch.end)
                    log["acked"] += len(batch.records)
            store.poll(clock)
            log["reports"].extend(kinds(store))
        # What waits in RAM (a full disk) is retried by the deadlines.
        while store.unsynced or store.disk_full:
            assert clock < 60000, "the store never wrote what it held"
            clock += 1000
            store.poll(clock)
        log["reports"].extend(kinds(store))
        log["durable"] = len(log["tried"])
        store.close()
    except OSError as exc:
        return exc
    fs.close()
    return None


def check_after_remount(flash, log, label):
    """Mount the chip again (a reboot, faults off) and open the store:
    what it returns must be the records tried, in order, from an acked
    or earlier one on, and hold every durable one; then an append lands."""
    vfs.mount(vfs.VfsLfs2(flash), "/flash")
    try:
        fs = FlashDir("/flash/store")
        store = Store(fs, 0, **STORE_SETUP)
        for report in store.take_reports():
            assert report.kind != "corrupt", "%s: %r" % (label, report)
        got = read_unacked(store)
        tried = log["tried"]
        first = tried.index(got[0]) if got else log["acked"]
        assert got == tried[first : first + len(got)], "%s: not the records tried, in order" % label
        if log["durable"] > log["acked"]:  # durable records not yet acked: all back
            assert first <= log["acked"] and first + len(got) >= log["durable"], (
                "%s: records %d-%d back; %d acked, %d durable" % (
                    label, first, first + len(got), log["acked"], log["durable"]))
        assert store.append(1, b"after-the-fault", 10**6, urgent=True)
        store.close()
        fs.close()
        fs = FlashDir("/flash/store")
        store = Store(fs, 0, **STORE_SETUP)
        assert read_unacked(store) == got + [b"after-the-fault"], "%s: the append after the fault" % label
        store.close()
        fs.close()
        return len(got)
    finally:
        vfs.umount("/flash")


def fault_run(image, fail_at, how, stats):
    flash = FaultyFlash(512, 64)
    flash.view[:] = image
    vfs.mount(vfs.VfsLfs2(flash), "/flash")
    flash.arm(fail_at, how)
    log = {"tried": [], "durable": 0, "acked": 0, "reports": [], "opened": False}
    label = "%s fault at op %d" % (how, fail_at)
    try:
        error = fault_workload(log)
    finally:
        ops = flash.ops
        stats["injected"] += flash.failed
        flash.arm(-1, how)
        vfs.umount("/flash")
        flash = flash.reboot()
    if error is not None:
        # (Creating the store's directory at boot has no full-disk state:
        # any error there resets the board.)
        assert not log["opened"] or error.args[0] in ESCAPES[how], "%s: the store raised %r" % (label, error)
        stats["escaped"] += 1
    elif DISK_FULL in log["reports"] or DISK_ERROR in log["reports"]:  # (littlefs absorbs some)
        stats["full"] += 1  # ridden out: and the workload saw the state end
    stats["records"] += check_after_remount(flash, log, label)
    stats["runs"] += 1
    return ops


def flash_faults(ways, step):
    """The workload's program/erase ops failed in turn, each way: every
    ``step``-th op, from a different first one for each way (so with as
    many ways as ``step`` every op fails some way)."""
    flash = RamFlash(512, 64)
    vfs.VfsLfs2.mkfs(flash)
    image = bytes(flash.view)
    stats = {"runs": 0, "injected": 0, "escaped": 0, "full": 0, "records": 0}
    total = fault_run(image, -1, "raise", stats)  # no fault: how many ops
    for k, how in enumerate(ways):
        for fail_at in range(1 + k % step, total + 1, step):
            fault_run(image, fail_at, how, stats)
    print("ok %d runs %d ops %d failures %d escaped %d ridden-out %d records" % (
        stats["runs"], total, stats["injected"], stats["escaped"], stats["full"], stats["records"]))

def short(base):
    """A segment file that loses committed bytes under a running store: the
    store's next write meets ShortFile, which it raises (a clear error that
    resets the board), never EIO to retry forever; the next open keeps
    every whole record."""
    from store_flash import ShortFile

    wipe(base)
    os.mkdir(base)
    fs = FlashDir(base)
    store = Store(fs, 0, lanes=2, max_bytes=1 << 20, segment_bytes=4096, sync_every=1)
    for n in range(RECORDS):
        store.append(1, payload(n), n)
    store.sync()
    name = [e[0] for e in os.ilistdir(base) if e[0].endswith(".seg")][0]
    with open(base + "/" + name, "rb") as f:
        data = f.read()
    with open(base + "/" + name, "wb") as f:
        f.write(data[: len(data) // 2])  # the flash lost the second half
    store._lanes[1].active.handle.file.close()  # as after a failed write: reopened at the next
    store._lanes[1].active.handle.file = None
    try:
        store.append(1, payload(RECORDS), RECORDS, urgent=True)
        store.sync()
    except ShortFile as exc:
        assert "committed bytes missing" in str(exc), exc
    else:
        raise AssertionError("the short file went unnoticed")
    assert store.stats["disk_errors"] == 0  # not ridden out as an I/O error
    fs = FlashDir(base)
    again = Store(fs, 0, lanes=2, max_bytes=1 << 20, segment_bytes=4096, sync_every=1)
    got = []
    while True:
        batch = again.read(max_records=8)
        if batch is None:
            break
        got += batch.records
        again.ack(batch.lane, batch.end)
    assert got and got == [payload(n) for n in range(len(got))], len(got)
    again.close()
    print("ok short file: %d whole records kept" % len(got))


mode = sys.argv[2] if len(sys.argv) > 2 else "cuts"
if mode == "cuts":
    main(sys.argv[1])
elif mode == "littlefs":
    import vfs

    littlefs(sys.argv[1])
elif mode == "faults":
    import vfs

    flash_faults(sys.argv[3].split(","), int(sys.argv[4]))
elif mode == "posix":
    posix(sys.argv[1], int(sys.argv[3]))
elif mode == "short":
    short(sys.argv[1])
else:
    raise SystemExit("mode: cuts, littlefs, faults WAYS STEP, posix LIMIT or short")
