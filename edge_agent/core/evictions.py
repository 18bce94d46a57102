"""Coalescing the store's eviction reports into evictions signals (kind 7).

When the store is full it evicts the least urgent, oldest data and says so
in Reports. Receivers should hear about it, but not once per eviction: an
evictions signal appended to a full store may itself evict, so one signal
per report could cascade. The tally sums reports per lane and yields one
signal at most every ``interval_ms``, from the first eviction counted.
"""

from edge_agent.core import signals as sg
from edge_agent.core.store import EVICTED, OVERFLOW

INTERVAL_MS = 10000


class EvictionTally:
    def __init__(self, interval_ms=INTERVAL_MS):
        self.interval_ms = interval_ms
        self.due_ms = None  # when the pending signal is due; None: nothing pending
        self._lanes = {}  # lane -> [records, bytes]
        self._since_ms = None
        self._overflow = False

    def count(self, report, now_ms):
        """Add a store Report; reports other than evictions are ignored."""
        if report.kind not in (EVICTED, OVERFLOW) or not report.records:
            return
        counts = self._lanes.setdefault(report.lane, [0, 0])
        counts[0] += report.records
        counts[1] += report.nbytes
        self._overflow = self._overflow or report.kind == OVERFLOW
        if self._since_ms is None:
            self._since_ms = now_ms
            self.due_ms = now_ms + self.interval_ms

    def take(self, now_ms, force=False):
        """The evictions Signal (not yet numbered) when due (or pending and
        ``force``), else None; the tally starts afresh."""
        if self.due_ms is None or (now_ms < self.due_ms and not force):
            return None
        body = {
            sg.V_LANES: [[lane, c[0], c[1]] for lane, c in sorted(self._lanes.items())],
            sg.V_SINCE: self._since_ms,
            sg.V_OVERFLOW: self._overflow,
        }
        self.__init__(self.interval_ms)
        return sg.Signal(sg.KIND_EVICTIONS, sg.PRIORITY_HIGH, now_ms, body)
