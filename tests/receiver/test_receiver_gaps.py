"""docs/receiver.md's gap rule against the real sequencer and receiver
storage: a restart skips the rest of a reserved seq block (a range ending
right below the birth), which the receiver files as skipped, not lost; and
the SQL the doc gives for missing seqs says the same as `report`."""

import os
import re
import subprocess
import sys

from store_support import FilesDir

from edge_agent.core import signals as sg
from edge_agent.core.store_seq import DurableSequencer
from edge_agent.receiver.storage import open_storage
from simulator import ROOT


def _signal(seq, kind=sg.KIND_TELEMETRY):
    return sg.Signal(kind, sg.PRIORITY_LOW, 1700000000000 + seq, {0: []}, "gap-1", seq)


def _doc_sql():
    text = open(os.path.join(ROOT, "docs", "receiver.md")).read()
    section = text[text.index("Missing seqs for a device, in SQL"):]
    return re.search(r"```sql\n(.*?)```", section, re.S).group(1)


def test_a_restart_skips_the_rest_of_the_block_and_the_receiver_tells_skipped_from_lost(tmp_path, db_url):
    os.mkdir(str(tmp_path / "store"))
    fs = FilesDir(str(tmp_path / "store"))
    first_boot = DurableSequencer(fs, block=16)
    issued = [first_boot.take() for _ in range(10)]  # 1..10 of the block 1..16
    # A restart, clean or not: no shutdown writes the counter back.
    second_boot = DurableSequencer(fs, block=16)
    birth = second_boot.take()
    after = [second_boot.take() for _ in range(4)]
    assert issued == list(range(1, 11)) and birth == 17 and after == [18, 19, 20, 21]
    storage = open_storage(db_url)
    storage.begin()
    lost = {4, 5, 19}  # issued, never stored
    for seq in issued + after:
        if seq not in lost:
            storage.store_signal(_signal(seq), storage.store_envelope(b""), 1)
    storage.store_signal(_signal(birth, sg.KIND_BIRTH), storage.store_envelope(b""), 1)
    storage.seen("gap-1", 1)
    storage.commit()
    assert storage.missing("gap-1") == ([(4, 5), (19, 19)], [(11, 16)])
    assert storage.gaps("gap-1") == [(4, 5), (19, 19)]
    assert storage.device_summary()[0][3] == 3  # the missing column: lost seqs only
    rows = storage.query(_doc_sql(), ("gap-1",))
    assert rows == [(4, 5, 0), (11, 16, 1), (19, 19, 0)]  # skipped: 1/0 on SQLite, true/false on PostgreSQL
    storage.close()


def _alert(device, seq, condition, active, sensor="t1"):
    body = {sg.A_CONDITION: condition, sg.A_COMPONENT: "fan", sg.A_SENSOR: sensor, sg.A_SEVERITY: "warning",
            sg.A_ACTIVE: active, sg.A_TEXT: "%s %s" % (condition, "raised" if active else "cleared")}
    return sg.Signal(sg.KIND_ALERT, sg.PRIORITY_HIGH, 1700000000000 + seq, body, device, seq)


def test_report_counts_active_alerts_and_explains_skipped_numbers_at_full_width(db_url):
    """`receiver report` off a terminal (a CI log): an alert raised and then
    cleared is not active; the device's boots and the seqs skipped at its
    restarts are shown; a long device id and the ranges are not cut at 80
    columns."""
    device = "gateway-with-a-rather-long-identifier-0001"
    storage = open_storage(db_url)
    storage.begin()
    envelope = storage.store_envelope(b"")
    signals = [sg.Signal(sg.KIND_BIRTH, sg.PRIORITY_NORMAL, 1700000000001, {0: "t"}, device, 1),
               _alert(device, 2, "out_of_range", True), _alert(device, 3, "out_of_range", False),  # cleared
               _alert(device, 4, "stuck", True),  # still active
               _alert(device, 5, "out_of_range", True, sensor="t2"), _alert(device, 6, "out_of_range", False, "t2"),
               _alert(device, 7, "out_of_range", True, sensor="t2"),  # raised again: active
               sg.Signal(sg.KIND_BIRTH, sg.PRIORITY_NORMAL, 1700000000033, {0: "t"}, device, 33),  # 8-32 skipped
               _signal(34), _signal(36)]  # 35 lost
    for signal in signals:
        signal.device = device
        storage.store_signal(signal, envelope, 1)
    storage.seen(device, 1)
    storage.commit()
    assert storage.device_summary()[0][5] == 2
    storage.close()
    env = dict(os.environ)
    env.pop("COLUMNS", None)
    out = subprocess.run([sys.executable, "-m", "edge_agent", "receiver", "report", "--db", db_url],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    devices_table = out.stdout[:out.stdout.index("recent alerts")]
    row = [line for line in devices_table.splitlines() if device in line]
    assert len(row) == 1, out.stdout + out.stderr
    cells = [c.strip() for c in row[0].split("│")]
    header = [line for line in devices_table.splitlines() if "active alerts" in line][0]
    names = [c.strip() for c in header.replace("┃", "│").split("│")]
    shown = dict(zip(names, cells))
    assert shown["active alerts"] == "2" and shown["boots"] == "2", shown
    assert shown["skipped at restarts"] == "8-32" and shown["missing seq ranges"] == "35", shown
    assert shown["last seq"] == "36" and shown["signals"] == "10" and shown["missing"] == "1", shown
