"""Crash tests with real processes: a writer killed with SIGKILL at random moments.

Each round starts tests/gateway/store_writer.py on the same directory, kills it
with SIGKILL after a random delay (sometimes before it has even finished
opening the store, so recovery itself gets interrupted), reopens the store
here and checks it against every claim the writer printed:

- every record the writer was told is durable is present, unless it was
  durably acknowledged;
- no record is present twice, records of a lane come in seq order, and no
  durably acknowledged record comes back;
- the next writer's first seq exceeds every seq seen so far (no reuse);
- after reopening, `verify` finds nothing damaged.

What this does not prove: power loss (the page cache survives SIGKILL).
The torn-write tests in tests/core/test_store.py cover lost and damaged
tails byte by byte.
"""

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from edge_agent.core import store_recovery as recovery
from edge_agent.core.store import Store
from edge_agent.gateway.store_posix import PosixDir
from store_writer import MAX_BATCH, SEGMENT_BYTES, lane_of

WRITER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "store_writer.py")
LANES = 4


class Ledger:
    """What the writers have claimed, across rounds."""

    def __init__(self):
        self.must_have = {}  # seq -> lane: durable, so it must come back
        self.acked = [0] * LANES  # lane -> highest seq durably acknowledged
        self.max_seq = 0  # highest seq seen anywhere
        self.kills = 0
        self.killed_before_ready = 0
        self.unclaimed_acks = 0  # acks made durable just before the kill


def _run_round(directory, rng, ledger):
    proc = subprocess.Popen(
        [sys.executable, WRITER, directory, str(rng.getrandbits(32))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    if rng.random() < 0.15:
        # Anywhere from interpreter start-up to the middle of recovery.
        time.sleep(rng.uniform(0.0, 0.08))
    else:
        first = proc.stdout.readline()
        assert first.startswith(b"ready"), proc.stderr.read().decode()
        time.sleep(rng.uniform(0.0, 0.03))
    proc.send_signal(signal.SIGKILL)
    rest, err = proc.communicate()
    if proc.returncode != -signal.SIGKILL:
        pytest.fail("writer exited by itself (%s): %s" % (proc.returncode, err.decode()))
    ledger.kills += 1
    lines = rest.split(b"\n")[:-1]  # a line cut by the kill is no claim
    try:
        lines.insert(0, first)
    except UnboundLocalError:
        ledger.killed_before_ready += 1
    _apply_claims(lines, ledger)


def _apply_claims(lines, ledger):
    first = None
    for line in lines:
        words = line.split()
        if not words:
            continue
        if words[0] == b"ready":
            first = int(words[1])
            assert first > ledger.max_seq, "seq %d reused (already saw %d)" % (first, ledger.max_seq)
        elif words[0] == b"durable":
            last = int(words[1])
            for seq in range(first, last + 1):
                ledger.must_have[seq] = lane_of(seq)
            ledger.max_seq = max(ledger.max_seq, last)
        elif words[0] == b"acked":
            lane, seq = int(words[1]), int(words[2])
            ledger.acked[lane] = max(ledger.acked[lane], seq)


def _check_store(directory, ledger):
    fs = PosixDir(directory)
    store = Store(fs, 0, max_bytes=1 << 30, segment_bytes=SEGMENT_BYTES)
    found = {}
    last_in_lane = [0] * LANES
    while True:
        batch = store.read(500)
        if batch is None:
            break
        for payload in batch.records:
            seq, lane = (int(x) for x in payload.split(b":")[:2])
            assert lane == batch.lane == lane_of(seq)
            assert seq not in found, "seq %d present twice" % seq
            assert seq > last_in_lane[lane], "lane %d out of order at seq %d" % (lane, seq)
            assert seq > ledger.acked[lane], "seq %d came back after a durable ack" % seq
            found[seq] = lane
            last_in_lane[lane] = seq
    unclaimed = 0
    for lane in range(LANES):
        missing = sorted(
            s for s, in_lane in ledger.must_have.items() if in_lane == lane and s not in found and s > ledger.acked[lane]
        )
        if not missing:
            continue
        # The writer may die between making an ack durable and saying so:
        # one batch of at most MAX_BATCH records acknowledged without a
        # claim. Such records are the oldest of their lane, never a gap.
        assert len(missing) <= MAX_BATCH, "lane %d: durable records lost: %r" % (lane, missing[:20])
        first_found = min([s for s, found_lane in found.items() if found_lane == lane] or [missing[-1] + 1])
        assert missing[-1] < first_found, "lane %d: durable records lost: %r" % (lane, missing[:20])
        ledger.acked[lane] = missing[-1]
        ledger.unclaimed_acks += 1
        unclaimed += 1
    assert unclaimed <= 1, "records missing from %d lanes: only one ack can be unclaimed" % unclaimed
    store.close()
    records, problems = recovery.verify(PosixDir(directory, lock=False), LANES)
    assert problems == [], problems
    assert records >= len(found)
    # Everything found is durable now (recovery sealed it), so it must
    # survive the next rounds too.
    ledger.must_have = found
    if found:
        ledger.max_seq = max(ledger.max_seq, max(found))


def _torture(directory, rounds, budget_s, seed):
    rng = random.Random(seed)
    ledger = Ledger()
    deadline = time.monotonic() + budget_s
    for _ in range(rounds):
        _run_round(str(directory), rng, ledger)
        _check_store(str(directory), ledger)
        if time.monotonic() > deadline:
            break
    return ledger


def test_sigkill_at_random_moments_loses_nothing_durable(tmp_path):
    # A few hundred kills in about a minute on a shared 2-core machine.
    ledger = _torture(tmp_path / "store", rounds=300, budget_s=75, seed=20240501)
    print(
        "kills: %d (%d before ready, %d unclaimed acks)"
        % (ledger.kills, ledger.killed_before_ready, ledger.unclaimed_acks)
    )
    assert ledger.kills >= 150, "too slow: only %d kills in the time budget" % ledger.kills
    assert ledger.killed_before_ready > 0
    assert ledger.max_seq > 1000  # the writers really wrote


@pytest.mark.torture
def test_sigkill_torture(tmp_path):
    rounds = int(os.environ.get("EA_STORE_KILLS", "3000"))
    ledger = _torture(tmp_path / "store", rounds=rounds, budget_s=3600, seed=int(time.time()))
    print("kills: %d (%d before ready)" % (ledger.kills, ledger.killed_before_ready))
    assert ledger.kills == rounds


FLUSH_WRITER = r"""
import sys
sys.path.insert(0, %r)
from edge_agent.core.store import Store
from edge_agent.gateway.store_posix import PosixDir

store = Store(PosixDir(sys.argv[1]), 0, sync_every=10**6, sync_ms=10**9)
for seq in range(1, 501):
    store.append(3, b"%%d:3:flushed" %% seq, seq)
store.flush()
print("flushed", flush=True)
sys.stdin.read()  # wait for the kill: nothing was synced
"""


def test_a_killed_process_loses_nothing_it_flushed(tmp_path):
    """flush() hands records to the OS: SIGKILL of the writer (not a power
    cut) loses none of them, though none was synced."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    directory = str(tmp_path / "store")
    proc = subprocess.Popen([sys.executable, "-c", FLUSH_WRITER % root, directory],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"flushed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = Store(PosixDir(directory), 0)
    seqs = []
    while True:
        batch = store.read(500)
        if batch is None:
            break
        seqs += [int(p.split(b":")[0]) for p in batch.records]
    store.close()
    assert seqs == list(range(1, 501))
