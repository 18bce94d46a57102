"""The receiver's SQLite backend: the embedded default (one machine, a
laptop, CI). The shared SQL is storage_sql.py's; here connecting, durability
and the catalog queries the migrations need."""

import os
import sqlite3

from edge_agent.receiver.storage_sql import SQLStorage, StorageError

TYPES = {"int": "INTEGER", "blob": "BLOB", "id": "INTEGER PRIMARY KEY", "without_rowid": " WITHOUT ROWID"}
PAGE_SIZE = 16384  # for new databases; see SQLiteStorage.__init__


class SQLiteStorage(SQLStorage):
    # The database's own failures (disk full, a lock held past the timeout):
    # nothing about the message, so the batch is not acknowledged.
    FATAL_ERRORS = (sqlite3.OperationalError,)
    types = TYPES

    def __init__(self, path, durable=True):
        self.path = self.name = path
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise StorageError("--db %s: no directory %s to create it in" % (path, parent))
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so one
            # transaction covers a batch of messages.
            self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
            # A new database gets 16 KiB pages (an existing one keeps its
            # own: WAL cannot change it): a telemetry envelope of ~20 KB
            # and its bodies fill 3 pages instead of 10 overflow pages, which
            # halves SQLite's CPU per reading (docs/receiver.md).
            self.db.execute("PRAGMA page_size=%d" % PAGE_SIZE)
            self.db.execute("PRAGMA journal_mode=WAL")
            # FULL: every commit syncs the WAL before it returns, and the
            # receiver acknowledges (PUBACK) only after its commit, so a signal
            # a device has dropped on that PUBACK survives an operating-system
            # crash or a power cut too (NORMAL would not: a device never resends
            # what was acknowledged). One commit covers a batch of messages, so
            # the sync is paid per batch, not per message.
            # durable=False (NORMAL: synced at checkpoints) is for a scratch
            # database no broker acknowledgement depends on: the simulator's
            # virtual runs, where a sync per drain would cost more than the run.
            self.db.execute("PRAGMA synchronous=%s" % ("FULL" if durable else "NORMAL"))
            # IMMEDIATE: the migration reads the schema, then writes; a
            # deferred transaction whose read snapshot another process's
            # commit made stale cannot become a writer and fails at once
            # with "database is locked" (no busy wait): a view or report
            # opened while a receiver starts on the same file. Taking the
            # write lock first waits for the other (timeout above) instead.
            self.execute("BEGIN IMMEDIATE")
            try:
                self._migrate()
            except BaseException:
                self.rollback()
                raise
            self.commit()
        except sqlite3.DatabaseError as exc:
            raise StorageError("--db %s: not a receiver database SQLite can open (%s)" % (path, exc)) from None

    def begin(self):
        # Every transaction we begin writes (a batch, a ticket's
        # acknowledgement, the outbox): take the write lock first, as the
        # migration does, so a writer that finds another process's commit
        # waits for it (the busy timeout) instead of failing at once with
        # "database is locked" when its deferred read turns into a write.
        self.execute("BEGIN IMMEDIATE")

    def _execute(self, sql, params):
        return self.db.execute(sql, params)

    def _tables(self):
        return {row[0] for row in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def _columns(self, table):
        return {row[1] for row in self.db.execute("PRAGMA table_info(%s)" % table)}
