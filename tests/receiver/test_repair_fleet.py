"""Gap repair end to end (issue 21): 50 devices, each the real agent
composition (store with its replay window, uplink with TLS, signed
downlink serving `replay`), publishing in one process against a real
stock-like mosquitto (no persistence, max_queued_messages 100) and the
reference receiver process with a repair key (simulator/fleet/repair_run.py).

What the broker throws away (the receiver's queue beyond 100 while it is
stopped; everything it holds when it is killed with SIGKILL) the devices
were PUBACKed for, so only repair brings it back: after it, every seq each
device issued is stored, once, and `receiver report` shows the repaired
ranges. A device whose window no longer holds a range answers "gone": the
receiver marks it lost with that reason and stops asking."""

import json
import os
import sqlite3
import subprocess
import sys
import tomllib

import pytest

from edge_agent.receiver.repair import intersect
from simulator import ROOT
from simulator.fleet import spec as fleet_spec
from simulator.fleet.repair_run import RepairRun, stored_once

pytestmark = pytest.mark.integration

REPAIR_50 = os.path.join(ROOT, "simulator", "scenarios", "fleet", "repair_50.toml")


def _spec(duration, count=50):
    """repair_50.toml for ``duration`` (the devices publish that long, then
    stay up serving repairs until the receiver has everything) and
    ``count`` devices."""
    text = open(REPAIR_50).read().replace('duration = "40s"', 'duration = "%s"' % duration)
    text = text.replace("count = 50", "count = %d" % count)
    return fleet_spec.from_dict(tomllib.loads(text), REPAIR_50)


def _asked_after_lost(db_path):
    """[(device, request id, lost range)] of requests made after the range
    was marked lost that asked for it again."""
    with sqlite3.connect(db_path) as db:
        lost = db.execute("SELECT device, first_seq, last_seq, done_ms FROM repair_ranges WHERE state = 'lost'").fetchall()
        requests = db.execute("SELECT id, device, ranges, created_ms FROM repair_requests").fetchall()
    return [(device, request, (first, last)) for device, first, last, done_ms in lost
            for request, asked_of, ranges, created_ms in requests
            if asked_of == device and created_ms > done_ms and intersect(json.loads(ranges), [(first, last)])]


def _report(db):
    done = subprocess.run([sys.executable, "-m", "edge_agent", "receiver", "report", "--db", db], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, env=dict(os.environ, COLUMNS="400"))
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _check_all_repaired(run, result):
    evidence = "\n".join("%s %s: %s" % ("PASS" if ok else "FAIL", e.kind, text) for e, ok, text in result.outcomes)
    assert result.passed, evidence + "\nreceiver:\n" + result.receiver_tail
    assert result.lost == 0 and result.stored == result.issued, result.missing_by_device
    assert stored_once(run.db_path) == []
    figures = result.repair
    assert figures["pending"] == 0 and figures["lost"] == 0, figures
    return figures


def test_a_receiver_stopped_behind_a_stock_broker_gets_every_signal_back(tmp_path):
    """Scaled: the receiver down 15 s while 50 devices publish a message a
    second each (~750 messages for a queue of 100)."""
    run = RepairRun(_spec("24s"), [("receiver_down", 6000, 15000)], workdir=str(tmp_path / "work"), quiet=True)
    result = run.run()
    figures = _check_all_repaired(run, result)
    assert figures["repaired"] >= 300, figures  # the broker did drop its queue's overflow (~400 a run)
    assert figures["requests_answered"] >= 1
    report = _report(run.db_path)
    assert "gap repair: on: requests signed by rx-repair" in report
    assert "%d seqs repaired, 0 pending, 0 lost for good" % figures["repaired"] in report
    repaired = [device for device, lists in figures["ranges"].items() if lists["repaired"]]
    assert len(repaired) >= 40, repaired


def test_a_broker_killed_three_times_without_persistence_loses_nothing_after_repair(tmp_path):
    events = [("broker_kill", at, 1000) for at in (6000, 12000, 18000)]
    run = RepairRun(_spec("22s"), events, workdir=str(tmp_path / "work"), quiet=True)
    result = run.run()
    figures = _check_all_repaired(run, result)
    assert run.broker_kills == 3
    assert figures["repaired"] > 0, figures  # the kills lost signals the devices had been PUBACKed for (85 a run)


def test_a_range_the_window_no_longer_holds_is_answered_gone_and_reported_lost(tmp_path):
    """Devices without a window and with small store segments: what the
    broker dropped and the store deleted (a wholly acknowledged segment) is
    gone for good; the receiver marks it lost with the device's reason and
    asks for it no more; what the store still held is repaired (or asked
    again, if the store deleted it between the answer and the sending)."""
    run = RepairRun(_spec("18s", count=4), [("receiver_down", 4000, 10000)], window_bytes=0,
                    store={"segment_bytes": 512}, max_queued=2, workdir=str(tmp_path / "work"), quiet=True,
                    timeout="3s", repair_wait_s=25)
    result = run.run()
    figures = result.repair
    assert result.lost > 0 and figures["lost"] == result.lost and figures["pending"] == 0, figures
    reasons = {r[2] for lists in figures["ranges"].values() for r in lists["lost"]}
    assert reasons == {"outside-window"}
    assert figures["requests"] == figures["requests_answered"], figures
    assert _asked_after_lost(run.db_path) == []
    report = _report(run.db_path)
    assert "(outside-window)" in report and "%d lost for good" % result.lost in report


@pytest.mark.torture
def test_a_receiver_down_ten_minutes_gets_every_signal_back(tmp_path):
    run = RepairRun(_spec("12m"), [("receiver_down", 60000, 600000)], workdir=str(tmp_path / "work"), quiet=True,
                    repair_wait_s=900, window_bytes=1024 * 1024)
    result = run.run()
    figures = _check_all_repaired(run, result)
    assert figures["repaired"] >= 10000, figures  # ~0.57 seqs per device-second of downtime in the scaled run
