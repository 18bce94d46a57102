"""docs/receiver.md's gap rule against the real sequencer and receiver
storage: a restart skips the rest of a reserved seq block (a range ending
right below the birth), which the receiver files as skipped, not lost; and
the SQL the doc gives for missing seqs says the same as `report`."""

import os
import re

from store_support import FilesDir

from edge_agent.core import signals as sg
from edge_agent.core.store_seq import DurableSequencer
from edge_agent.receiver.storage import Storage
from simulator import ROOT


def _signal(seq, kind=sg.KIND_TELEMETRY):
    return sg.Signal(kind, sg.PRIORITY_LOW, 1700000000000 + seq, {0: []}, "gap-1", seq)


def _doc_sql():
    text = open(os.path.join(ROOT, "docs", "receiver.md")).read()
    section = text[text.index("Missing seqs for a device, in SQL"):]
    return re.search(r"```sql\n(.*?)```", section, re.S).group(1)


def test_a_restart_skips_the_rest_of_the_block_and_the_receiver_tells_skipped_from_lost(tmp_path):
    os.mkdir(str(tmp_path / "store"))
    fs = FilesDir(str(tmp_path / "store"))
    first_boot = DurableSequencer(fs, block=16)
    issued = [first_boot.take() for _ in range(10)]  # 1..10 of the block 1..16
    # A restart, clean or not: no shutdown writes the counter back.
    second_boot = DurableSequencer(fs, block=16)
    birth = second_boot.take()
    after = [second_boot.take() for _ in range(4)]
    assert issued == list(range(1, 11)) and birth == 17 and after == [18, 19, 20, 21]
    storage = Storage(str(tmp_path / "r.sqlite"))
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
    rows = storage.db.execute(_doc_sql(), ("gap-1",)).fetchall()
    assert [tuple(r) for r in rows] == [(4, 5, 0), (11, 16, 1), (19, 19, 0)]
    storage.close()
