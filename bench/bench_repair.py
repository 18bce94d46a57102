"""Gap repair (issue 21): time to repair N missing signals per device, and
for a fleet.

    .venv/bin/python bench/bench_repair.py [--quick] [--no-fleet]

1. The receiver's side, in process (SQLite, as `receiver run` writes it):
   D devices (real Ed25519 identities), each with N signals missing out of
   its stream; the repair loop (receiver/repair.py) finds the gaps, signs a
   request per device, then each device's repair answer (kind 8, sealed)
   and the N republished signals go through the receiver's own handling
   and the next pass marks them repaired. CPU time (process_time) of the
   receiver's work per repaired signal, with and without the pass's share
   (storing the republished signals is the receiver's ordinary hot path).
   And the cost of one pass over a device with a long history (its gap
   scan reads every seq the device has).
2. End to end (simulator/fleet/repair_run.py): 50 devices publishing a
   message a second each through a stock-like mosquitto (no persistence,
   max_queued_messages 100), the receiver process stopped for S seconds:
   wall time from its restart to every seq stored, and how many were
   repaired. Includes the settle delay (2 s here) and the devices' pacing
   (200 records/s a gateway, 20/s a board).

No peer closes this loop (issue 21), so there is no ratio: the figures
stand alone.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from edge_agent.core import signals as sg  # noqa: E402
from edge_agent.keys.identity import create_identity  # noqa: E402
from edge_agent.keys.operators import create_operator  # noqa: E402
from edge_agent.receiver import repair  # noqa: E402
from edge_agent.receiver.registry import Registry  # noqa: E402
from edge_agent.receiver.service import Receiver  # noqa: E402
from edge_agent.receiver.storage import open_storage  # noqa: E402

T0 = 1_800_000_000_000


class Bench:
    def __init__(self, workdir, devices):
        self.identities = [create_identity(os.path.join(workdir, "ids", "bench-%03d" % i), "bench-%03d" % i)
                           for i in range(devices)]
        self.registry = Registry()
        self.registry.add_entries("".join(i.registry_entry() for i in self.identities))
        self.storage = open_storage(os.path.join(workdir, "receiver.sqlite"))
        self.operator = create_operator(os.path.join(workdir, "repair-key"), "rx-repair")
        self.now = T0
        self.loop = repair.RepairLoop(self.registry, self.storage, self.operator, clock=lambda: self.now)
        self.receiver = Receiver(None, self.registry, self.storage, repair=self.loop)

    def sealed(self, identity, seq, kind=sg.KIND_TELEMETRY, body=None):
        signal = sg.Signal(kind, sg.PRIORITY_LOW, T0 + seq, {0: [[0, seq, 20.5]]} if body is None else body,
                           identity.device_id, seq)
        return sg.topic(identity.device_id, kind), identity.seal(signal.encode())

    def deliver(self, messages, batch=200):
        for start in range(0, len(messages), batch):
            self.storage.begin()
            for topic, payload in messages[start:start + batch]:
                self.receiver.handle(topic, payload, self.now)
            self.storage.commit()


def receiver_side(devices, missing, history, workdir):
    """CPU seconds: (pass that asks, answers + republished, pass that marks
    repaired), and the seqs repaired."""
    bench = Bench(workdir, devices)
    # Each device: `history` signals, of which `missing` in the middle never arrived.
    lost_first = history // 2
    stream = []
    for identity in bench.identities:
        stream += [bench.sealed(identity, seq) for seq in range(1, history + 1)
                   if not lost_first <= seq < lost_first + missing]
        stream.append(bench.sealed(identity, history + 1))
    bench.deliver(stream)
    bench.loop.pass_(bench.now)  # the gaps are found, settling
    bench.now += repair.DEFAULT_SETTLE_MS
    started = time.process_time()
    requests = bench.loop.pass_(bench.now)
    ask_s = time.process_time() - started
    assert len(requests) == devices, requests
    # The devices' answers and the records they republish (sealed beforehand:
    # a device's work, not the receiver's).
    answers = []
    for (request_id, _, _), identity in zip(requests, bench.identities):
        last = lost_first + missing - 1
        body = {sg.R_REQUEST: repair.REQUEST_PREFIX + str(request_id), sg.R_SENDING: [[lost_first, last]],
                sg.R_GONE: []}
        answers.append(bench.sealed(identity, history + 2, sg.KIND_REPAIR, body))
        answers += [bench.sealed(identity, seq) for seq in range(lost_first, last + 1)]
    bench.now += 1000
    started = time.process_time()
    bench.deliver(answers)
    store_s = time.process_time() - started
    started = time.process_time()
    bench.loop.pass_(bench.now)
    mark_s = time.process_time() - started
    counts = repair.counts(bench.storage)
    assert counts["repaired"] == devices * missing and counts["pending"] == 0, counts
    bench.storage.close()
    return ask_s, store_s, mark_s, counts["repaired"]


def pass_over_history(history, workdir, fresh=10):
    """CPU seconds of a device's first pass (a full scan of its ``history``
    signals) and of a later one after ``fresh`` new signals (the cost a pass
    pays per device with fresh signals)."""
    bench = Bench(workdir, 1)
    identity = bench.identities[0]
    bench.deliver([bench.sealed(identity, seq) for seq in range(1, history + 1)], batch=2000)
    started = time.process_time()
    bench.loop.pass_(bench.now)
    first = time.process_time() - started
    rounds = 20
    spent = 0.0
    for round_ in range(rounds):
        start = history + round_ * fresh + 1
        bench.deliver([bench.sealed(identity, seq) for seq in range(start, start + fresh)])
        started = time.process_time()
        bench.loop.pass_(bench.now)
        spent += time.process_time() - started
    bench.storage.close()
    return first, spent / rounds


def fleet(down_s, workdir):
    from simulator import ROOT
    from simulator.fleet import spec as fleet_spec
    from simulator.fleet.repair_run import RepairRun

    import tomllib

    path = os.path.join(ROOT, "simulator", "scenarios", "fleet", "repair_50.toml")
    text = open(path).read().replace('duration = "40s"', 'duration = "%ds"' % (down_s + 10))
    spec = fleet_spec.from_dict(tomllib.loads(text), path)
    run = RepairRun(spec, [("receiver_down", 6000, down_s * 1000)], workdir=workdir, quiet=True)
    result = run.run()
    figures = result.repair
    up_ms = run.receiver_up_ms[0]
    return {"passed": result.passed, "issued": result.issued, "lost": result.lost, "repaired": figures["repaired"],
            "requests": figures["requests"], "devices": result.devices,
            "first_request_s": (figures["first_asked_ms"] - up_ms) / 1000 if figures["first_asked_ms"] else None,
            "repaired_s": (figures["last_repaired_ms"] - up_ms) / 1000 if figures["last_repaired_ms"] else None,
            "all_stored_s": (run.accounted_ms - up_ms) / 1000}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a check that it runs)")
    parser.add_argument("--no-fleet", action="store_true", help="the receiver's side only")
    args = parser.parse_args()
    sizes = [(1, 100), (1, 4096), (50, 100)] if args.quick else [(1, 100), (1, 1000), (1, 4096), (50, 100),
                                                                   (50, 1000)]
    history = 2000
    print("receiver side (SQLite), %d signals of history per device, CPU time:" % history)
    print("%8s %8s %10s %10s %10s %14s %14s" % ("devices", "missing", "ask ms", "store ms", "mark ms",
                                               "repair us/seq", "total us/seq"))
    for devices, missing in sizes:
        workdir = tempfile.mkdtemp(prefix="ea-bench-repair-")
        try:
            ask_s, store_s, mark_s, repaired = receiver_side(devices, missing, max(history, missing * 2), workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        # repair: the loop's own work (finding, asking, marking); total: with
        # storing the answers and republished signals (the ordinary hot path).
        print("%8d %8d %10.1f %10.1f %10.1f %14.2f %14.1f" % (
            devices, missing, ask_s * 1000, store_s * 1000, mark_s * 1000, (ask_s + mark_s) * 1e6 / repaired,
            (ask_s + store_s + mark_s) * 1e6 / repaired))
    print("a pass over one device with no gap, by its history, CPU time:")
    for length in ([10000] if args.quick else [10000, 100000]):
        workdir = tempfile.mkdtemp(prefix="ea-bench-repair-")
        try:
            first, later = pass_over_history(length, workdir)
            print("%10d signals: first pass (full scan) %.1f ms, later passes (10 fresh signals) %.2f ms"
                  % (length, first * 1000, later * 1000))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.no_fleet:
        return 0
    down_s = 10 if args.quick else 30
    workdir = tempfile.mkdtemp(prefix="ea-bench-repair-fleet-")
    try:
        figures = fleet(down_s, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("fleet: %d devices, receiver down %d s behind a stock broker (max_queued_messages 100): %d signals "
          "issued, %d repaired in %d requests; after the restart: first request %.1f s, last range marked "
          "repaired %.1f s, every seq stored %.1f s; %d missing at the end%s" % (
              figures["devices"], down_s, figures["issued"], figures["repaired"], figures["requests"],
              figures["first_request_s"] or -1, figures["repaired_s"] or -1, figures["all_stored_s"], figures["lost"],
              "" if figures["passed"] else " (FAILED)"))
    return 0 if figures["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
