"""Crash-test writer: appends to a store as fast as it can until killed.

    python tests/gateway/store_writer.py DIR SEED

tests/gateway/test_store_crash.py starts this, kills it with SIGKILL at a random
moment, reopens the store and checks it against what this process claimed.
It only ever claims what the store has promised, one line per claim, written
after the promise was made (a line cut short by the kill is ignored):

    ready FIRST           the store is open (recovery done); seqs start at FIRST
    durable SEQ           every record appended so far, up to SEQ, is synced
    acked LANE SEQ        lane LANE is acknowledged through SEQ, durably

Record ``seq`` goes to lane ``lane_of(seq)``. Payloads are ``b"SEQ:LANE:"`` plus padding of random length, so records
straddle the append buffer and a kill often tears one.
"""

import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from edge_agent.core.store import Store  # noqa: E402
from edge_agent.core.store_seq import DurableSequencer  # noqa: E402
from edge_agent.gateway.store_posix import PosixDir  # noqa: E402

SEGMENT_BYTES = 8192  # small, so segments rotate and seal under fire
SEQ_BLOCK = 64  # small, so the seq marker is rewritten under fire
MAX_BATCH = 30  # records per read: the test allows one unclaimed ack of this many


def main(directory, seed):
    rng = random.Random(seed)
    fs = PosixDir(directory)
    store = Store(
        fs,
        _now(),
        max_bytes=1 << 30,  # no eviction: every durable record must survive
        segment_bytes=SEGMENT_BYTES,
        sync_every=rng.randint(1, 40),
        sync_ms=rng.choice((0, 5, 50)),
    )
    sequencer = DurableSequencer(fs, block=SEQ_BLOCK)
    out = sys.stdout
    out.write("ready %d\n" % sequencer.next_seq)
    out.flush()
    while True:
        seq = sequencer.take()
        lane = lane_of(seq)
        payload = b"%d:%d:" % (seq, lane) + b"p" * rng.randint(0, 300)
        store.append(lane, payload, _now(), urgent=lane == 0 and rng.random() < 0.2)
        if store.unsynced == 0:
            out.write("durable %d\n" % seq)
            out.flush()
        if rng.random() < 0.05:
            batch = store.read(rng.randint(1, MAX_BATCH))
            if batch is not None:
                store.ack(batch.lane, batch.end)
                store.sync()
                last = int(batch.records[-1].split(b":")[0])
                out.write("durable %d\nacked %d %d\n" % (seq, batch.lane, last))
                out.flush()


def lane_of(seq):
    """The lane of record ``seq``: a fixed mix, half of it telemetry, that
    the test can recompute for records it never saw."""
    return (0, 1, 2, 3, 3, 3)[(seq * 2654435761 >> 8) % 6]


def _now():
    return time.monotonic_ns() // 1000000


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
