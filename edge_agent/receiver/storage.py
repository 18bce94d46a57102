"""The reference receiver's SQLite storage (schema in docs/receiver.md).

Duplicates are dropped by the primary key (device, seq), so they stay
dropped across receiver restarts and across several receiver instances
sharing one database file. Gaps are computed from what is stored: a device
numbers its signals 1, 2, 3, ... for its whole life, so every seq below the
highest one seen that is not stored is missing (or was reported evicted by
the device).
"""

import sqlite3

from edge_agent.core import cbor
from edge_agent.core import signals as sg

SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS signals (
    device      TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    kind        INTEGER NOT NULL,
    priority    INTEGER NOT NULL,
    time_ms     INTEGER NOT NULL,   -- device time of the event
    received_ms INTEGER NOT NULL,   -- receiver time of arrival
    body        BLOB    NOT NULL,   -- the body map, CBOR
    envelope    INTEGER NOT NULL,   -- envelopes.id: the COSE message it came in
    PRIMARY KEY (device, seq)
) WITHOUT ROWID;
-- Each COSE message as received, once (a bundle carries many signals),
-- so any stored signal can be verified again later.
CREATE TABLE IF NOT EXISTS envelopes (id INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS alerts (
    device TEXT NOT NULL, seq INTEGER NOT NULL, time_ms INTEGER NOT NULL, priority INTEGER NOT NULL,
    condition TEXT, component TEXT, sensor TEXT, severity TEXT, active INTEGER, text TEXT,
    PRIMARY KEY (device, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rejections (
    id INTEGER PRIMARY KEY, received_ms INTEGER NOT NULL, topic TEXT NOT NULL,
    reason TEXT NOT NULL, detail TEXT NOT NULL, payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
    device TEXT PRIMARY KEY, first_seen_ms INTEGER NOT NULL, last_seen_ms INTEGER NOT NULL,
    online INTEGER, duplicates INTEGER NOT NULL DEFAULT 0
);
"""

# Columns added after version 1, with how to add them to an older database.
# online, status_ms, confirmed: the last status message's claim, when it
# came, and whether a fresh verified signal arrived after it (docs/receiver.md,
# "Online status"). clock_*: signals dated ahead of the receiver's clock.
DEVICE_COLUMNS = (
    ("status_ms", "INTEGER"),
    ("confirmed", "INTEGER NOT NULL DEFAULT 0"),
    ("clock_ahead_ms", "INTEGER"),
    ("clock_anomalies", "INTEGER NOT NULL DEFAULT 0"),
)

# Rejections are evidence, not a log sink: keep at most this many payload
# bytes each, so a flood of garbage cannot fill the disk quickly (MQTT
# topics can be 64 KiB long: they are cut too).
MAX_REJECTED_PAYLOAD = 1024
MAX_REJECTED_TOPIC = 256
# SQLite integers are signed 64-bit: a seq or time beyond is refused before storing.
MAX_INTEGER = 2 ** 63 - 1


class Storage:
    def __init__(self, path):
        self.path = path
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so one
        # transaction covers a batch of messages.
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        # FULL: every commit syncs the WAL before it returns, and the
        # receiver acknowledges (PUBACK) only after its commit, so a signal
        # a device has dropped on that PUBACK survives an operating-system
        # crash or a power cut too (NORMAL would not: a device never resends
        # what was acknowledged). One commit covers a batch of messages, so
        # the sync is paid per batch, not per message.
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        have = {row[1] for row in self.db.execute("PRAGMA table_info(devices)")}
        for column, declaration in DEVICE_COLUMNS:
            if column not in have:
                self.db.execute("ALTER TABLE devices ADD COLUMN %s %s" % (column, declaration))
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def close(self):
        self.db.close()

    def begin(self):
        self.db.execute("BEGIN")

    def commit(self):
        self.db.execute("COMMIT")

    # One message's writes, inside the batch's transaction: a message whose
    # handling fails half way is undone alone (service.Receiver.handle).
    def savepoint(self):
        self.db.execute("SAVEPOINT message")

    def release(self):
        self.db.execute("RELEASE message")

    def rollback_message(self):
        self.db.execute("ROLLBACK TO message")
        self.db.execute("RELEASE message")

    def has(self, device, seq):
        return self.db.execute("SELECT 1 FROM signals WHERE device = ? AND seq = ?", (device, seq)).fetchone() is not None

    def store_envelope(self, data):
        """Keep a verified COSE message; returns its id for store_signal."""
        return self.db.execute("INSERT INTO envelopes (data) VALUES (?)", (data,)).lastrowid

    def seen(self, device, received_ms, duplicates=0, fresh=1):
        """A verified message from ``device`` arrived, with ``fresh`` new
        signals and ``duplicates`` dropped. Fresh signals confirm (or
        contradict) the last status message; duplicates prove nothing (anyone
        on the broker can replay a recorded message)."""
        self.db.execute(
            "INSERT INTO devices (device, first_seen_ms, last_seen_ms, duplicates, confirmed) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(device) DO UPDATE SET last_seen_ms = excluded.last_seen_ms, "
            "first_seen_ms = CASE WHEN first_seen_ms = 0 THEN excluded.first_seen_ms ELSE first_seen_ms END, "
            "duplicates = duplicates + excluded.duplicates, confirmed = MAX(confirmed, excluded.confirmed)",
            (device, received_ms, received_ms, duplicates, 1 if fresh else 0),
        )

    def clock_ahead(self, device, ahead_ms, count):
        """``count`` signals of ``device`` were dated ``ahead_ms`` (the
        most) ahead of the receiver's clock, beyond the tolerated skew."""
        self.db.execute(
            "UPDATE devices SET clock_ahead_ms = ?, clock_anomalies = clock_anomalies + ? WHERE device = ?",
            (ahead_ms, count, device))

    def store_signal(self, signal, envelope_id, received_ms, body=None):
        """Insert a verified signal; False if (device, seq) was already stored.
        The caller records the message with seen(). ``body``: the body's
        CBOR as received (signals.body_bytes), stored as is; None encodes
        ``signal.body``."""
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO signals VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (signal.device, signal.seq, signal.kind, signal.priority, signal.time_ms, received_ms,
             cbor.dumps(signal.body) if body is None else body, envelope_id),
        )
        new = cursor.rowcount == 1
        if new and signal.kind == sg.KIND_ALERT:
            body = signal.body
            self.db.execute(
                "INSERT OR IGNORE INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (signal.device, signal.seq, signal.time_ms, signal.priority, _text(body.get(sg.A_CONDITION)),
                 _text(body.get(sg.A_COMPONENT)), _text(body.get(sg.A_SENSOR)), _text(body.get(sg.A_SEVERITY)),
                 1 if body.get(sg.A_ACTIVE) else 0, _text(body.get(sg.A_TEXT))),
            )
        return new

    def store_rejection(self, topic, reason, detail, payload, received_ms):
        self.db.execute(
            "INSERT INTO rejections (received_ms, topic, reason, detail, payload) VALUES (?, ?, ?, ?, ?)",
            (received_ms, topic[:MAX_REJECTED_TOPIC], reason, detail[:500], payload[:MAX_REJECTED_PAYLOAD]),
        )

    def set_online(self, device, online, received_ms):
        """A status message for a registered device: a claim, unconfirmed
        until a fresh verified signal follows (seen()). A device known only
        from its status has first/last seen 0: never seen."""
        self.db.execute(
            "INSERT INTO devices (device, first_seen_ms, last_seen_ms, online, status_ms, confirmed) "
            "VALUES (?, 0, 0, ?, ?, 0) "
            "ON CONFLICT(device) DO UPDATE SET online = excluded.online, status_ms = excluded.status_ms, "
            "confirmed = 0",
            (device, 1 if online else 0, received_ms),
        )

    # --- queries ---------------------------------------------------------

    def gaps(self, device):
        """Missing seq ranges [(first, last), ...] below the highest seen,
        except those a device skipped at a restart (see missing())."""
        return self.missing(device)[0]

    def boots(self, device):
        """How many birth signals of ``device`` are stored: one per start
        of its agent or firmware that reached us."""
        return self.db.execute("SELECT COUNT(*) FROM signals WHERE device = ? AND kind = ?",
                               (device, sg.KIND_BIRTH)).fetchone()[0]

    def missing(self, device):
        """(lost, skipped): missing ranges below the highest seq seen. A range
        that ends right below a birth signal's seq was skipped by the
        device's sequencer at a restart (numbers never issued), not lost."""
        births = {row[0] for row in self.db.execute(
            "SELECT seq FROM signals WHERE device = ? AND kind = ?", (device, sg.KIND_BIRTH))}
        lost, skipped = [], []
        for gap in self._all_gaps(device):
            (skipped if gap[1] + 1 in births else lost).append(gap)
        return lost, skipped

    def _all_gaps(self, device):
        rows = self.db.execute(
            "SELECT seq + 1, next - 1 FROM (SELECT seq, LEAD(seq) OVER (ORDER BY seq) AS next "
            "FROM signals WHERE device = ?) WHERE next > seq + 1",
            (device,),
        ).fetchall()
        first = self.db.execute("SELECT MIN(seq) FROM signals WHERE device = ?", (device,)).fetchone()[0]
        if first is not None and first > 1:
            rows.insert(0, (1, first - 1))
        return [tuple(r) for r in rows]

    def device_summary(self):
        """One row per device: (device, signals, max seq, missing, duplicates,
        active alerts (raised and not cleared since: the latest alert of its
        condition, component and sensor is a raise), last seen ms, online, presence, clock ahead ms, clock
        anomalies); missing excludes seqs skipped at restarts, online is
        what the last status message claimed (1, 0 or None), presence what
        the display shows (see presence()), clock ahead ms the last offset
        beyond the tolerated skew (None if never)."""
        rows = self.db.execute(
            """
            SELECT d.device, COUNT(s.seq), COALESCE(MAX(s.seq), 0), COALESCE(MAX(s.seq), 0) - COUNT(s.seq),
                   d.duplicates,
                   (SELECT COUNT(*) FROM alerts a WHERE a.device = d.device AND a.active = 1
                    AND NOT EXISTS (SELECT 1 FROM alerts b WHERE b.device = a.device AND b.seq > a.seq
                                    AND b.condition IS a.condition AND b.component IS a.component
                                    AND b.sensor IS a.sensor)),
                   d.last_seen_ms, d.online, d.confirmed, d.clock_ahead_ms, d.clock_anomalies
            FROM devices d LEFT JOIN signals s ON s.device = d.device
            GROUP BY d.device ORDER BY d.device
            """
        ).fetchall()
        summary = []
        for row in rows:
            skipped = sum(last - first + 1 for first, last in self.missing(row[0])[1])
            summary.append(row[:3] + (row[3] - skipped,) + row[4:8] + (presence(row[7], row[8]),) + row[9:])
        return summary

    def recent_alerts(self, limit=10):
        return self.db.execute(
            "SELECT device, seq, time_ms, severity, active, text FROM alerts ORDER BY time_ms DESC, seq DESC LIMIT ?",
            (limit,),
        ).fetchall()

    def rejection_counts(self):
        return dict(self.db.execute("SELECT reason, COUNT(*) FROM rejections GROUP BY reason").fetchall())


# What the display says of a device's online state. A status message is
# written by the device or by the broker (its last will), so anyone who can
# publish on the broker can forge one: it is a claim that the device's own
# signed signals confirm or contradict.
ONLINE = "yes"
UNCONFIRMED = "unconfirmed"  # the status says online; no fresh verified signal since
OFFLINE = "no"
CONTRADICTED = "yes (status: offline)"  # a fresh verified signal came after an offline status
NO_STATUS = "?"


def presence(online, confirmed):
    """The display's online column from the last status's claim (1, 0 or
    None) and whether a fresh verified signal arrived after it."""
    if online is None:
        return NO_STATUS
    if online:
        return ONLINE if confirmed else UNCONFIRMED
    return CONTRADICTED if confirmed else OFFLINE


def _text(value):
    return value if isinstance(value, str) else None
