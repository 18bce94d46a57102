"""The flash store adapter under MicroPython: a torn write is always
detected. Run by tests/firmware/test_firmware_build.py:

    MICROPYPATH=firmware:.:.frozen micropython tests/firmware/mp_flash_store.py DIR

Writes a store through firmware/store_flash.py's FlashDir, leaves the
segment unsealed (as a power cut does), then for every byte length of
that segment opens a copy cut there, and for a set of offsets a copy
whose tail is zeros (a block allocated but not written): recovery must
return exactly the records wholly written before the damage, in order,
and never a damaged one. Prints "ok N cuts" on success.
"""

import os
import sys

from edge_agent.core import store_format as fmt
from edge_agent.core.store import Store
from store_flash import FlashDir

RECORDS = 24


def payload(n):
    return b"signal-%03d-" % n + bytes([n]) * (n % 9)


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


main(sys.argv[1])
