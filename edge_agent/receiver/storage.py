"""The reference receiver's storage: one interface, two backends
(schema in docs/receiver.md).

``open_storage(db)`` picks the backend from ``--db``: a ``postgresql://``
URL is PostgreSQL (storage_postgres.py: several receivers on one
database), anything else a SQLite file (storage_sqlite.py: the embedded
default). Both hold the same tables with the same meaning and share their
SQL (storage_sql.py); what differs (column types, connecting, durability,
locks, the catalog queries of migrations) lives in the backend's module.

Duplicates are dropped by the primary key (device, seq), so they stay
dropped across receiver restarts and across several receivers sharing one
database. Gaps are computed from what is stored: a device numbers its
signals 1, 2, 3, ... for its whole life, so every seq below the highest one
seen that is not stored is missing (or was skipped at a restart).
"""

from edge_agent.receiver.storage_sql import (MAX_INTEGER, SCHEMA_VERSION, StorageError,  # noqa: F401 (the interface)
                                             presence)


def open_storage(db):
    """The storage for ``--db``: a postgresql:// URL or a SQLite file path.
    Raises StorageError with a message for the command line."""
    if is_postgres_url(db):
        try:
            from edge_agent.receiver.storage_postgres import PostgresStorage
        except ImportError as exc:
            raise StorageError("--db: PostgreSQL needs psycopg 3 (%s): pip install 'edge-agent[receiver]'"
                               % exc) from None
        return PostgresStorage(db)
    from edge_agent.receiver.storage_sqlite import SQLiteStorage

    return SQLiteStorage(db)


def is_postgres_url(db):
    return db.startswith(("postgresql://", "postgres://"))


def Storage(path, durable=True):  # noqa: N802 (the SQLite storage under its name from before PostgreSQL)
    from edge_agent.receiver.storage_sqlite import SQLiteStorage

    return SQLiteStorage(path, durable=durable)
