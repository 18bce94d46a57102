"""The store's eviction reports coalesced into evictions signals."""

from edge_agent.core import signals as sg
from edge_agent.core.evictions import EvictionTally
from edge_agent.core.store import CORRUPT, EVICTED, OVERFLOW, Report


def test_reports_coalesce_into_one_signal_when_due():
    tally = EvictionTally(interval_ms=10000)
    tally.count(Report(CORRUPT, 3, 1, 50, "bad crc"), 100)  # not an eviction
    assert tally.due_ms is None and tally.take(10**9) is None
    tally.count(Report(EVICTED, 3, 40, 4000, "full"), 1000)
    tally.count(Report(EVICTED, 3, 10, 1000, "full"), 2000)
    tally.count(Report(OVERFLOW, 1, 2, 200, "full"), 3000)
    assert tally.due_ms == 11000
    assert tally.take(10999) is None
    signal = tally.take(11000)
    assert (signal.kind, signal.priority, signal.seq) == (sg.KIND_EVICTIONS, sg.PRIORITY_HIGH, None)
    assert signal.body == {sg.V_LANES: [[1, 2, 200], [3, 50, 5000]], sg.V_SINCE: 1000, sg.V_OVERFLOW: True}
    assert tally.due_ms is None and tally.take(10**9) is None  # afresh


def test_force_takes_a_pending_tally_early():
    tally = EvictionTally()
    tally.count(Report(EVICTED, 3, 1, 10, "full"), 0)
    assert tally.take(5, force=True).body[sg.V_OVERFLOW] is False
    assert tally.take(5, force=True) is None
