"""A sequencer whose numbers survive crashes: same ``take()`` as
``edge_agent.core.device.Sequencer``.

Every signal carries a per-device seq so receivers can drop duplicates and
spot gaps; that only works if no number is ever handed out twice, even
after a power cut. Making every take() durable would cost an fsync per
signal, so numbers are reserved in blocks: before handing out the first
number of a block, the end of the block (``limit``) is written to the
``seq`` marker and made durable. After a crash, counting resumes at the
stored limit, so the next number exceeds every number handed out before.

The price: every restart (a crash or a clean stop alike: nothing writes
the counter back) skips the unused rest of the block (at most ``block``
numbers), which a receiver sees as a gap right before the device's birth
signal and files as skipped, not lost (docs/receiver.md). Default 1024: one marker write per 1024 signals, so a device
sending a signal a second writes the marker about every 17 minutes (flash
wear is negligible), and gaps after a crash stay recognisably small.
"""

from edge_agent.core import store_format as fmt
from edge_agent.core.store import StoreCorruptError, StoreUsageError

DEFAULT_BLOCK = 1024


class SeqMarkerError(StoreCorruptError):
    """The seq marker exists but cannot be read: refusing to guess a number."""


class DurableSequencer:
    def __init__(self, fs, block=DEFAULT_BLOCK):
        if block < 1:
            raise StoreUsageError("block must be >= 1, got %r" % block)
        self.fs = fs
        self.block = block
        self.limit = self._load()
        self.unreserved = 0  # takes handed out while no block could be reserved (disk full)
        # Any number below the stored limit may have been handed out.
        self.next_seq = max(1, self.limit)

    def _load(self):
        if fmt.SEQ_NAME not in self.fs.list():
            return 1
        data = self.fs.read(fmt.SEQ_NAME, 0, fmt.SEQ_SIZE + 1)
        limit = fmt.decode_seq(data)
        if limit is None:
            raise SeqMarkerError(
                "the seq marker %r is damaged (%d bytes), so the next safe sequence number is unknown; "
                "restore it from a backup, or write one above the highest seq the receiver has seen "
                "(see docs/store.md, 'The seq marker')" % (fmt.SEQ_NAME, len(data))
            )
        return limit

    def take(self):
        seq = self.next_seq
        if seq >= self.limit:
            self._reserve(seq + self.block)
        self.next_seq = seq + 1
        return seq

    def _reserve(self, limit):
        data = fmt.encode_seq(limit)
        try:
            fmt.replace(self.fs, fmt.SEQ_NAME, data)
            self.fs.sync_dir()
        except OSError as exc:
            if not fmt.is_write_failure(exc):
                raise
            if not self._overwrite(data):
                # Nowhere to write it: hand the number out anyway (a signal
                # must not wait for disk space) and try again at the next
                # take(). Only a crash before that can repeat numbers, and
                # only on a store whose very first reservation failed.
                self.unreserved += 1
                return
        self.limit = limit

    def _overwrite(self, data):
        """The disk is full: overwrite the existing marker in place (same 20
        bytes, no new block). Not atomic like a rename, but a marker torn by
        a power cut at this moment stops the sequencer with SeqMarkerError
        rather than reusing numbers."""
        if fmt.SEQ_NAME not in self.fs.list():
            return False
        try:
            handle = self.fs.open_update(fmt.SEQ_NAME)
            try:
                handle.write_at(0, data)
                handle.sync()
            finally:
                handle.close()
        except OSError as exc:
            if not fmt.is_write_failure(exc):
                raise
            return False
        return True
