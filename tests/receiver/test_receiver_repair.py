"""The receiver's side of gap repair (receiver/repair.py, issue 21) on both
storage backends: signals sealed by real device keys go through the
receiver's own handling, requests are signed by a real operator key and
verified by the devices' own core code (core/operator.py), answers are
repair signals (kind 8) sealed like any signal. The clock is injected."""

import json
import os
import subprocess
import sys

import pytest

from edge_agent.core import operator as op
from edge_agent.core import signals as sg
from edge_agent.keys.identity import HMAC256, create_identity, ed25519_verifier_from_hex
from edge_agent.keys.operators import create_operator
from edge_agent.receiver import repair
from edge_agent.receiver.registry import Registry
from edge_agent.receiver.service import Receiver
from edge_agent.receiver.storage import SCHEMA_VERSION, open_storage
from simulator import ROOT

T0 = 1_800_000_000_000
SETTLE = repair.DEFAULT_SETTLE_MS
TIMEOUT = repair.DEFAULT_TIMEOUT_MS


class Rig:
    """A receiver with a repair loop over one gateway (Ed25519) and one
    board (HMAC), on a real database."""

    def __init__(self, tmp_path, db_url, with_key=True):
        self.gateway = create_identity(str(tmp_path / "gw"), "gw-1")
        self.board = create_identity(str(tmp_path / "board"), "board-1", algorithm=HMAC256)
        self.registry = Registry()
        self.registry.add_entries(self.gateway.registry_entry() + self.board.registry_entry(include_secret=True))
        self.operator = create_operator(str(tmp_path / "repair-key"), "rx-repair") if with_key else None
        self.storage = open_storage(db_url)
        self.now = T0
        self.loop = repair.RepairLoop(self.registry, self.storage, self.operator, clock=lambda: self.now)
        self.receiver = Receiver(None, self.registry, self.storage, repair=self.loop)

    def identity(self, device):
        return self.gateway if device == "gw-1" else self.board

    def deliver(self, device, seqs, kind=sg.KIND_TELEMETRY, body=None):
        identity = self.identity(device)
        self.storage.begin()
        for seq in seqs:
            signal = sg.Signal(kind, sg.PRIORITY_LOW if kind == sg.KIND_TELEMETRY else sg.PRIORITY_HIGH,
                               T0 + seq, {0: []} if body is None else body, device, seq)
            outcome = self.receiver.handle(sg.topic(device, kind), identity.seal(signal.encode()), self.now)
            assert outcome == "accepted", outcome
        self.storage.commit()

    def answer(self, device, seq, request, sending=(), gone=()):
        self.deliver(device, [seq], sg.KIND_REPAIR,
                     {sg.R_REQUEST: request, sg.R_SENDING: [list(r) for r in sending],
                      sg.R_GONE: [list(g) for g in gone]})

    def step(self, ms):
        """Time passes; one pass: [(request id, topic, payload)]."""
        self.now += ms
        return self.loop.pass_(self.now)

    def ranges(self, device):
        return repair.ranges(self.storage).get(device, {repair.PENDING: [], repair.REPAIRED: [], repair.LOST: []})

    def open_command(self, device, payload, last_counter=0):
        """The request as the device's core code reads it."""
        if device == "gw-1":
            trusted = {b"rx-repair": ed25519_verifier_from_hex(self.operator.public_key_hex(), ValueError)}
        else:
            trusted = {b"rx-repair": self.registry.devices[device].secret}
        return op.verify_command(payload, trusted, device, None, self.now, last_counter, {"rx-repair": ("replay",)})


@pytest.fixture
def rig(tmp_path, db_url):
    rig = Rig(tmp_path, db_url)
    yield rig
    rig.storage.close()


def test_a_gap_is_asked_for_after_the_settle_delay_and_what_arrives_is_repaired(rig):
    rig.deliver("gw-1", [1, 2, 3, 6, 7, 9, 10])
    assert rig.step(0) == []  # found, settling
    assert rig.ranges("gw-1")[repair.PENDING] == [(4, 5, 0), (8, 8, 0)]
    rig.deliver("gw-1", [8])  # arrived on its own (late): never asked, not "repaired"
    assert rig.step(SETTLE - 1) == []
    assert rig.ranges("gw-1") == {repair.PENDING: [(4, 5, 0)], repair.REPAIRED: [], repair.LOST: []}
    [(request_id, topic, payload)] = rig.step(1)
    assert topic == "ea/v1/gw-1/cmd"
    command = rig.open_command("gw-1", payload)
    assert (command.name, command.target, command.counter, command.operator) == ("replay", "gw-1", 1, "rx-repair")
    assert command.args == {"ranges": [[4, 5]], "request": "repair-%d" % request_id}
    assert rig.ranges("gw-1")[repair.PENDING] == [(4, 5, 1)]
    rig.answer("gw-1", 11, "repair-%d" % request_id, sending=[(4, 5)])
    rig.deliver("gw-1", [4, 5])  # republished
    assert rig.step(1000) == []
    assert rig.ranges("gw-1") == {repair.PENDING: [], repair.REPAIRED: [(4, 5)], repair.LOST: []}
    assert rig.storage.gaps("gw-1") == []
    counts = repair.counts(rig.storage)
    assert (counts["repaired"], counts["pending"], counts["lost"], counts["requests"], counts["requests_answered"]) \
        == (2, 0, 0, 1, 1)


def test_gone_ranges_are_lost_for_good_with_the_devices_reason_and_never_asked_again(rig):
    rig.deliver("gw-1", [1, 5, 6, 20])
    rig.step(0)
    [(request_id, _, payload)] = rig.step(SETTLE)
    assert rig.open_command("gw-1", payload).args["ranges"] == [[2, 4], [7, 19]]
    rig.answer("gw-1", 21, "repair-%d" % request_id, sending=[(10, 19)],
               gone=[(2, 4, "outside-window"), (7, 9, "not-held")])
    assert rig.ranges("gw-1")[repair.LOST] == [(2, 4, "outside-window"), (7, 9, "not-held")]
    assert rig.ranges("gw-1")[repair.PENDING] == [(10, 19, 1)]
    rig.deliver("gw-1", range(10, 20))
    for _ in range(10):  # long after every timeout: nothing more to ask
        assert rig.step(repair.MAX_BACKOFF_MS) == []
    assert rig.ranges("gw-1") == {repair.PENDING: [], repair.REPAIRED: [(10, 19)],
                                  repair.LOST: [(2, 4, "outside-window"), (7, 9, "not-held")]}
    report = repair.counts(rig.storage)
    assert (report["repaired"], report["lost"], report["pending"]) == (10, 6, 0)


def test_what_does_not_come_is_asked_again_after_the_timeout_doubling_with_a_fresh_counter(rig):
    rig.deliver("gw-1", [1, 3])
    rig.step(0)
    [(first, _, payload)] = rig.step(SETTLE)
    assert rig.open_command("gw-1", payload).counter == 1
    assert rig.step(TIMEOUT - 1) == []  # no answer yet: waiting
    [(second, _, payload)] = rig.step(1)
    command = rig.open_command("gw-1", payload, last_counter=1)
    assert command.counter == 2 and command.args == {"ranges": [[2, 2]], "request": "repair-%d" % second}
    assert rig.ranges("gw-1")[repair.PENDING] == [(2, 2, 2)]
    assert rig.step(2 * TIMEOUT - 1) == []  # the second wait is twice as long
    [(_, _, payload)] = rig.step(1)
    assert rig.open_command("gw-1", payload, last_counter=2).counter == 3
    # The device's refusal (its audit signal) is kept on the request.
    rig.deliver("gw-1", [4], sg.KIND_AUDIT, {sg.U_WHO: "rx-repair", sg.U_ACTION: "replay",
                                              sg.U_TARGET: "repair-%d" % first, sg.U_RESULT: "refused",
                                              sg.U_REASON: "rate-limited: one replay per 10 s"})
    assert rig.storage.query("SELECT refused FROM repair_requests WHERE id = ?", (first,)) == \
        [("rate-limited: one replay per 10 s",)]


def test_restart_skips_are_not_asked_for(rig):
    rig.deliver("gw-1", [1, 2, 3])
    rig.deliver("gw-1", [17], sg.KIND_BIRTH, {0: "agent"})  # 4..16 skipped at a restart
    rig.deliver("gw-1", [18, 20])
    rig.step(0)
    [(_, _, payload)] = rig.step(SETTLE)
    assert rig.open_command("gw-1", payload).args["ranges"] == [[19, 19]]


def test_a_request_holds_at_most_32_ranges_and_4096_seqs_the_rest_comes_next(rig):
    seqs = [1] + [s for s in range(3, 80, 2)] + [6000]  # 38 one-seq gaps below 80, then 80..5999
    rig.deliver("gw-1", seqs)
    rig.step(0)
    [(_, _, payload)] = rig.step(SETTLE)
    ranges = rig.open_command("gw-1", payload).args["ranges"]
    assert len(ranges) == 32 and ranges[0] == [2, 2] and ranges[-1] == [64, 64]
    rig.deliver("gw-1", [r[0] for r in ranges])  # all republished
    assert rig.step(repair.MIN_INTERVAL_MS - 1) == []  # the device takes one replay per 10 s
    [(_, _, payload)] = rig.step(1)
    ranges = rig.open_command("gw-1", payload, last_counter=1).args["ranges"]
    assert ranges[:6] == [[66, 66], [68, 68], [70, 70], [72, 72], [74, 74], [76, 76]]
    assert sum(last - first + 1 for first, last in ranges) == 4096 and ranges[-1] == [80, 80 + 4096 - 8]


def test_a_board_is_asked_with_a_mac0_under_its_own_secret(rig):
    rig.deliver("board-1", [1, 4])
    rig.step(0)
    [(_, topic, payload)] = rig.step(SETTLE)
    assert topic == "ea/v1/board-1/cmd"
    command = rig.open_command("board-1", payload)
    assert command.operator == "rx-repair" and command.args["ranges"] == [[2, 3]]
    with pytest.raises(op.Rejection):  # not an Ed25519 signature: a gateway would refuse it
        rig.open_command("gw-1", payload)


def test_one_receiver_decides_a_device_at_a_time(tmp_path, db_url):
    """Two receivers on one database: while one holds a device's repair lock
    the other skips it; afterwards it sees the request in the database and
    does not ask again (on SQLite one process writes at a time: the lock
    is the database's own)."""
    first = Rig(tmp_path, db_url)
    second_loop = repair.RepairLoop(first.registry, open_storage(db_url), first.operator, clock=lambda: first.now)
    first.deliver("gw-1", [1, 3])
    first.step(0)
    first.now += SETTLE
    if db_url.startswith("postgresql"):
        first.storage.begin()
        assert first.storage.repair_lock("gw-1", wait=False)
        assert second_loop.pass_(first.now) == []
        assert "gw-1" in second_loop.dirty  # looked at next time
        first.storage.commit()
    assert len(first.loop.pass_(first.now)) == 1
    assert second_loop.pass_(first.now) == []  # asked already, by the other
    assert second_loop.pass_(first.now + TIMEOUT)[0][0] == 2  # its timeout: the second asks, counter 2
    assert first.storage.query("SELECT counter FROM repair_requests ORDER BY id") == [(1,), (2,)]
    second_loop.storage.close()
    first.storage.close()


def test_a_schema_4_database_gets_the_repair_tables(db_url):
    """Schema 4 (tickets and the outbox, before repair) opens as schema 5
    with the repair tables, its rows kept."""
    storage = open_storage(db_url)
    storage.begin()
    storage.execute("DROP TABLE repair_ranges")
    storage.execute("DROP TABLE repair_requests")
    storage.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    storage.store_signal(sg.Signal(sg.KIND_TELEMETRY, 3, T0, {0: []}, "old-1", 3), storage.store_envelope(b""), T0)
    storage.commit()
    storage.close()
    storage = open_storage(db_url)
    assert storage.query("SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
    assert SCHEMA_VERSION == 5
    assert repair.counts(storage)["requests"] == 0 and repair.ranges(storage) == {}
    assert storage.gaps("old-1") == [(1, 2)]
    storage.close()


def test_report_shows_repaired_pending_and_lost_ranges_and_whether_repair_is_on(rig, db_url):
    repair.set_status(rig.storage, "on: requests signed by rx-repair")
    rig.deliver("gw-1", [1, 4, 8, 12])
    rig.step(0)
    [(request_id, _, _)] = rig.step(SETTLE)
    rig.answer("gw-1", 13, "repair-%d" % request_id, sending=[(2, 3), (9, 11)], gone=[(5, 7, "outside-window")])
    rig.deliver("gw-1", [2, 3])
    rig.step(0)
    out = _report(db_url)
    assert "gap repair: on: requests signed by rx-repair; 2 seqs repaired, 3 pending, 3 lost for good" in out, out
    line = next(line for line in out.splitlines() if "gw-1" in line and "outside-window" in line)
    assert "2-3" in line and "9-11 (asked 1)" in line and "5-7 (outside-window)" in line, line


def test_without_a_key_report_says_repair_is_off(tmp_path, db_url):
    storage = open_storage(db_url)

    class Args:
        repair_key = None

    assert repair.from_args(Args, Registry(), storage) is None
    storage.close()
    assert "gap repair: off: the receiver runs without --repair-key" in _report(db_url)


def _report(db_url):
    env = dict(os.environ)
    env.pop("COLUMNS", None)  # the report at its natural width
    done = subprocess.run([sys.executable, "-m", "edge_agent", "receiver", "report", "--db", db_url],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_malformed_answer_is_stored_as_a_signal_and_changes_nothing(rig):
    rig.deliver("gw-1", [1, 3])
    rig.step(0)
    rig.step(SETTLE)
    rig.answer("gw-1", 4, "repair-1", gone=[(2, 1, "not-held")])  # first > last
    assert rig.ranges("gw-1")[repair.PENDING] == [(2, 2, 1)]
    assert rig.storage.has("gw-1", 4)
    assert json.loads(rig.storage.query("SELECT ranges FROM repair_requests")[0][0]) == [[2, 2]]


def test_each_pass_reads_only_what_came_since_and_still_judges_as_report_does(rig):
    """After its first pass a device's pass scans the seqs above the last
    one it read plus its pending ranges: rounds of signals arriving out of
    order (late ones filling gaps, births marking restart skips) leave the
    pending ranges equal to the gaps `report` lists, every round."""
    import random

    rng = random.Random(21)
    issued = list(range(1, 400))
    births = {1, 120, 121, 300}  # 121: a birth right after one (a restart at once)
    arrived = set()
    for round_ in range(12):
        batch = [s for s in issued if s not in arrived and rng.random() < 0.3 and s <= 40 * (round_ + 1)]
        for seq in sorted(batch):
            rig.deliver("gw-1", [seq], sg.KIND_BIRTH if seq in births else sg.KIND_TELEMETRY,
                        {0: "agent"} if seq in births else None)
        arrived.update(batch)
        rig.step(0)  # the clock stands still: settling, nothing is asked
        pending = [r[:2] for r in rig.ranges("gw-1")[repair.PENDING]]
        assert pending == rig.storage.gaps("gw-1"), round_
    assert rig.loop.scanned["gw-1"][0] == max(arrived)
    assert repair.counts(rig.storage)["requests"] == 0


def test_the_receivers_metrics_show_the_repair_figures(rig):
    from edge_agent.receiver.metrics import ReceiverMetrics

    rig.deliver("gw-1", [1, 5])
    rig.step(0)
    [(request_id, _, _)] = rig.step(SETTLE)
    rig.loop.mark_sent([request_id], rig.now)
    rig.answer("gw-1", 6, "repair-%d" % request_id, sending=[(2, 3)], gone=[(4, 4, "not-held")])
    rig.deliver("gw-1", [2])
    rig.step(0)
    metrics = ReceiverMetrics(rig.receiver)
    metrics.refresh()
    samples = dict(((m.name, tuple(sorted(s.labels.items()))), s.value) for m in metrics.collect() for s in m.samples)
    assert [samples[("edge_agent_receiver_repair_seqs", (("state", state),))] for state in
            ("repaired", "pending", "lost")] == [1, 1, 1]
    assert [samples[("edge_agent_receiver_repair_requests", (("outcome", outcome),))] for outcome in
            ("sent", "answered", "refused")] == [1, 1, 0]


def test_a_receiver_joining_ranges_another_found_above_its_last_scan_asks_each_seq_once(tmp_path, db_url):
    """Two receivers on one database: the second finds gaps above the highest
    seq the first has scanned and writes them pending; the first's next pass
    sees them both as pending and in its scan of what came since, and keeps
    each once (it wrote them twice: a duplicate key that ended the receiver,
    or overlapping ranges a request cannot hold)."""
    first = Rig(tmp_path, db_url)
    second_loop = repair.RepairLoop(first.registry, open_storage(db_url), first.operator, clock=lambda: first.now)
    first.deliver("gw-1", [1, 2])
    assert first.step(0) == []  # scanned up to 2
    first.deliver("gw-1", [4, 6])
    assert second_loop.pass_(first.now) == []  # the second finds 3 and 5 first
    [(request_id, _, payload)] = first.step(SETTLE)
    assert first.open_command("gw-1", payload).args["ranges"] == [[3, 3], [5, 5]]
    assert first.ranges("gw-1")[repair.PENDING] == [(3, 3, 1), (5, 5, 1)]
    second_loop.storage.close()
    first.storage.close()


def test_a_failing_pass_is_logged_and_the_repair_loop_goes_on(rig, monkeypatch, caplog):
    """The loop runs beside the message loop, and a session ends when either
    raises: a pass that fails (here a real fault, its table gone) is logged
    and tried again, never ends the receiver's intake."""
    import asyncio

    monkeypatch.setattr(repair, "TICK_S", 0.01)
    monkeypatch.setattr(repair, "FAILED_PASS_PAUSE_S", 0.01)
    rig.deliver("gw-1", [1, 2, 5])
    rig.storage.execute("DROP TABLE repair_ranges")

    async def run_a_while():
        task = asyncio.ensure_future(rig.loop.run(client=None))
        await asyncio.sleep(0.3)
        alive = not task.done()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return alive

    assert asyncio.run(run_a_while())
    failures = [r for r in caplog.records if "gap repair: a pass failed" in r.getMessage()]
    assert len(failures) >= 2, [r.getMessage() for r in caplog.records]
    assert "gw-1" in rig.loop.dirty  # looked at again once the fault is gone
