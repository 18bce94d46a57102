"""Issue 17, item 6 (the receiver's half): anyone on the broker can publish
a device's retained status, so the receiver takes it as a claim that the
device's own signed signals confirm or contradict (docs/receiver.md,
"Online status"). Real keys, real databases (SQLite and PostgreSQL), the
receiver's real handler."""

import sqlite3

from rich.console import Console

from edge_agent.core import signals as sg
from edge_agent.keys.identity import create_identity
from edge_agent.receiver import display
from edge_agent.receiver.registry import Registry
from edge_agent.receiver.service import Receiver
from edge_agent.receiver.storage import SCHEMA_VERSION, open_storage

T0 = 1_800_000_000_000


class Site:
    def __init__(self, tmp_path, db_url):
        self.identities = {}
        registry = Registry()
        for device_id in ("st-live", "st-board"):
            identity = create_identity(str(tmp_path / device_id), device_id)
            registry.add_entries(identity.registry_entry())
            self.identities[device_id] = identity
        self.storage = open_storage(db_url)
        self.receiver = Receiver(None, registry, self.storage)
        self.seq = 0
        self.sent = {}

    def handle(self, topic, payload, retained=False):
        self.storage.begin()
        outcome = self.receiver.handle(topic, payload, T0, retained)
        self.storage.commit()
        return outcome

    def status(self, device, online, retained=True, claimed=None):
        return self.handle(sg.status_topic(device), sg.status_payload(claimed or device, online), retained)

    def signal(self, device="st-live"):
        self.seq += 1
        data = self.identities[device].seal(sg.Signal(sg.KIND_TELEMETRY, 3, T0, {0: []}, device, self.seq).encode())
        self.sent[self.seq] = data
        return self.handle(sg.topic(device, sg.KIND_TELEMETRY), data)

    def replay(self, seq, device="st-live"):
        return self.handle(sg.topic(device, sg.KIND_TELEMETRY), self.sent[seq])

    def presence(self):
        return dict((row[0], row[8]) for row in self.storage.device_summary())


def test_a_forged_offline_status_is_contradicted_by_the_next_signal(tmp_path, db_url):
    site = Site(tmp_path, db_url)
    assert site.status("st-live", True) == "status"
    assert site.presence() == {"st-live": "unconfirmed"}  # nothing signed from it yet
    assert site.signal() == "accepted"
    assert site.presence() == {"st-live": "yes"}
    # Someone on the broker marks the live device offline.
    assert site.status("st-live", False) == "status"
    assert site.presence() == {"st-live": "no"}
    # A replayed (recorded) message proves nothing: anyone can replay one.
    assert site.replay(1) == "duplicate"
    assert site.presence() == {"st-live": "no"}
    # Its next fresh, verified signal contradicts the claim.
    assert site.signal() == "accepted"
    assert site.presence() == {"st-live": "yes (status: offline)"}
    # The device's own status when it reconnects is, again, only a claim until its next signal.
    assert site.status("st-live", True) == "status"
    assert site.presence() == {"st-live": "unconfirmed"}
    site.signal()
    assert site.presence() == {"st-live": "yes"}


def test_a_forged_online_status_shows_unconfirmed_and_never_for_an_unknown_board(tmp_path, db_url):
    site = Site(tmp_path, db_url)
    # A registered board that never sent anything: shown, but unconfirmed, and never "seen".
    assert site.status("st-board", True) == "status"
    row = site.storage.device_summary()[0]
    assert (row[0], row[1], row[6], row[8]) == ("st-board", 0, 0, "unconfirmed")
    # A board not in the registry is never shown. Sent now: rejected, with the evidence.
    assert site.status("st-ghost", True, retained=False) == "unknown-device"
    # Replayed from the broker's retained store at subscription (a shared
    # broker holds other registries' devices): counted, not stored.
    assert site.status("st-ghost", True, retained=True) == "ignored"
    assert [r[0] for r in site.storage.device_summary()] == ["st-board"]
    assert site.storage.rejection_counts() == {"unknown-device": 1}
    assert site.receiver.ignored == 1
    # A status must be the documented map, for the topic's own device.
    assert site.status("st-live", True, claimed="st-board") == "bad-status"
    assert site.handle(sg.status_topic("st-live"), b"\xa1\x07\xf5") == "bad-status"  # {7: true}: no version, device
    assert site.storage.rejection_counts() == {"unknown-device": 1, "bad-status": 2}
    console = Console(record=True, width=200)
    console.print(display.report(site.storage))
    text = console.export_text()
    assert "unconfirmed" in text and "st-ghost" not in text


def _execute_script(db_url, script):
    """Run SQL on the database behind ``db_url`` directly, as an older
    receiver would have written it."""
    if db_url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(db_url, autocommit=True) as db:
            for statement in script.split(";"):
                if statement.strip():
                    db.execute(statement)
    else:
        with sqlite3.connect(db_url) as db:
            db.executescript(script)


def test_a_version_1_database_gains_the_new_columns(db_url):
    """Databases written before the status and clock columns open, keep
    their rows, and say the current schema_version; on both backends (the
    migrations are shared)."""
    _execute_script(db_url,
                    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                    "INSERT INTO meta VALUES ('schema_version', '1');"
                    "CREATE TABLE devices (device TEXT PRIMARY KEY, first_seen_ms BIGINT NOT NULL, "
                    "last_seen_ms BIGINT NOT NULL, online BIGINT, duplicates BIGINT NOT NULL DEFAULT 0);"
                    "INSERT INTO devices VALUES ('old-1', 5, 6, 1, 0);")
    storage = open_storage(db_url)
    row = storage.device_summary()[0]
    assert row[0] == "old-1" and row[7] == 1 and row[8] == "unconfirmed" and row[9:] == (None, 0)
    assert storage.query("SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
    storage.close()
    open_storage(db_url).close()  # and again: the columns are there now
