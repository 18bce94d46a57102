"""The SQL both storage backends share (storage.py is the interface):
the schema, its migrations, every statement of the receiver's hot path and
its queries. Statements use ``?`` placeholders and the SQL both SQLite and
PostgreSQL speak (``ON CONFLICT``, ``RETURNING``, ``IS NOT DISTINCT FROM``);
column types come from the backend (SCHEMA's ``{int}``, ``{blob}``, ...)."""

from edge_agent.core import cbor
from edge_agent.core import signals as sg
from edge_agent.receiver import tickets

# 1: the first tables. 2: devices' status and clock columns. 3: fleet state
# (incidents, advisories, each device's latest report per fault class) in
# the schema, and the (device, time_ms) index for time-range queries.
# 4: tickets, their alerts and audit trail (tickets.py), the webhook outbox
# (outbox.py). 5: gap repair (repair.py): the ranges asked for and their
# fate, the requests.
SCHEMA_VERSION = 5

# Column types by backend: {int} is 64-bit, {id} an id the database assigns.
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS signals (
    device      TEXT    NOT NULL,
    seq         {int}   NOT NULL,
    kind        {int}   NOT NULL,
    priority    {int}   NOT NULL,
    time_ms     {int}   NOT NULL,   -- device time of the event
    received_ms {int}   NOT NULL,   -- receiver time of arrival
    body        {blob}  NOT NULL,   -- the body map, CBOR, as the device signed it
    envelope    {int}   NOT NULL,   -- envelopes.id: the COSE message it came in
    PRIMARY KEY (device, seq)
){without_rowid};
-- A device's readings over a time range: WHERE device = ? AND time_ms BETWEEN ? AND ?
CREATE INDEX IF NOT EXISTS signals_device_time ON signals (device, time_ms);
-- Alerts by arrival: the web view's live feed asks for those stored since
-- its last poll (receiver/web/live.py). Partial: only alerts are indexed,
-- so telemetry, most of the traffic, pays nothing for it.
CREATE INDEX IF NOT EXISTS signals_alert_arrival ON signals (received_ms) WHERE kind = 1;
-- Each COSE message as received, once (a bundle carries many signals),
-- so any stored signal can be verified again later.
CREATE TABLE IF NOT EXISTS envelopes (id {id}, data {blob} NOT NULL);
CREATE TABLE IF NOT EXISTS alerts (
    device TEXT NOT NULL, seq {int} NOT NULL, time_ms {int} NOT NULL, priority {int} NOT NULL,
    condition TEXT, component TEXT, sensor TEXT, severity TEXT, active {int}, text TEXT,
    PRIMARY KEY (device, seq)
){without_rowid};
CREATE TABLE IF NOT EXISTS rejections (
    id {id}, received_ms {int} NOT NULL, topic TEXT NOT NULL,
    reason TEXT NOT NULL, detail TEXT NOT NULL, payload {blob} NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
    device TEXT PRIMARY KEY, first_seen_ms {int} NOT NULL, last_seen_ms {int} NOT NULL,
    online {int}, duplicates {int} NOT NULL DEFAULT 0
);
-- Fleet escalation (fleet.py, docs/fleet.md).
CREATE TABLE IF NOT EXISTS fleet_incidents (
    id          {id},
    model       TEXT    NOT NULL,
    component   TEXT    NOT NULL,
    condition   TEXT    NOT NULL,   -- the class that crossed the threshold first
    classes     TEXT    NOT NULL,   -- JSON {{condition: devices}} of every class seen on it
    devices     TEXT    NOT NULL,   -- JSON [device, ...] that reported it
    fleet_size  {int}   NOT NULL,   -- N: the model's registered devices
    threshold   {int}   NOT NULL,
    first_ms    {int}   NOT NULL,   -- report time of the first report in the window
    raised_ms   {int}   NOT NULL,   -- report time of the report that crossed the threshold
    last_ms     {int}   NOT NULL,   -- report time of the latest report
    received_ms {int}   NOT NULL,   -- receiver time when raised
    advisory    TEXT                -- why none was sent (no operator key), or NULL
);
CREATE INDEX IF NOT EXISTS fleet_incidents_key ON fleet_incidents (model, component, id);
CREATE TABLE IF NOT EXISTS fleet_advisories (
    incident    {int}   NOT NULL,
    device      TEXT    NOT NULL,
    topic       TEXT    NOT NULL,
    payload     {blob}  NOT NULL,   -- the signed command, as published
    counter     {int}   NOT NULL,
    sent_ms     {int},              -- broker PUBACK time, NULL until then
    audit_seq   {int},              -- the device's audit signal about it
    audit_result TEXT,              -- applied / refused
    audit_reason TEXT,
    PRIMARY KEY (incident, device)
){without_rowid};
-- The fleet window: each device's latest report time per fault class, so
-- every receiver sharing the database counts the same reports.
CREATE TABLE IF NOT EXISTS fleet_reports (
    model TEXT NOT NULL, component TEXT NOT NULL, condition TEXT NOT NULL, device TEXT NOT NULL,
    time_ms {int} NOT NULL,
    PRIMARY KEY (model, component, condition, device)
){without_rowid};
-- Tickets (tickets.py, docs/operator-view.md): one per (device, component,
-- condition) until resolved: the partial unique index is what makes
-- receivers sharing a database open exactly one.
CREATE TABLE IF NOT EXISTS tickets (
    id          {id},
    device      TEXT    NOT NULL,
    component   TEXT    NOT NULL,   -- '' when the alert named none
    condition   TEXT    NOT NULL,
    state       TEXT    NOT NULL,   -- open, acknowledged, cleared, resolved
    severity    TEXT, text TEXT, action TEXT,   -- from the latest raised alert
    opened_ms   {int}   NOT NULL,   -- device time of the alert that opened it
    updated_ms  {int}   NOT NULL,   -- receiver time of the last change
    last_seq    {int}   NOT NULL,   -- the alert that set the state (older ones join, change nothing)
    alerts      {int}   NOT NULL,   -- alerts joined
    acked_by TEXT, acked_ms {int}, ack_note TEXT,
    cleared_ms  {int},              -- device time of the clear
    resolved_ms {int}               -- receiver time it was resolved
);
CREATE UNIQUE INDEX IF NOT EXISTS tickets_unresolved ON tickets (device, component, condition)
    WHERE resolved_ms IS NULL;
CREATE TABLE IF NOT EXISTS ticket_alerts (
    device TEXT NOT NULL, seq {int} NOT NULL, ticket {int} NOT NULL,
    PRIMARY KEY (device, seq)
){without_rowid};
CREATE INDEX IF NOT EXISTS ticket_alerts_ticket ON ticket_alerts (ticket);
-- What people did to a ticket here (acknowledge), with who and when.
CREATE TABLE IF NOT EXISTS ticket_audit (
    id {id}, ticket {int} NOT NULL, time_ms {int} NOT NULL,
    who TEXT NOT NULL, action TEXT NOT NULL, note TEXT
);
-- The webhook outbox (outbox.py): written in the alert's transaction,
-- delivered by a sender holding a lease on the row.
CREATE TABLE IF NOT EXISTS outbox (
    id          {id},
    route       TEXT    NOT NULL,   -- the route's name in the routes file
    event       TEXT    NOT NULL,   -- alert.raised, alert.cleared
    device      TEXT    NOT NULL,
    seq         {int}   NOT NULL,   -- the alert's
    ticket      {int},
    payload     {blob}  NOT NULL,   -- the body as posted (JSON)
    created_ms  {int}   NOT NULL,
    attempts    {int}   NOT NULL DEFAULT 0,
    next_ms     {int}   NOT NULL,   -- due from then
    lease_owner TEXT, lease_until_ms {int},   -- the sender delivering it, until when
    delivered_ms {int}, dead_ms {int},
    last_error  TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (next_ms) WHERE delivered_ms IS NULL AND dead_ms IS NULL;
-- Gap repair (repair.py, docs/receiver.md "Gap repair"): each device's
-- missing seq ranges the receiver asks for, and what became of them.
CREATE TABLE IF NOT EXISTS repair_ranges (
    device      TEXT    NOT NULL,
    state       TEXT    NOT NULL,   -- pending / repaired / lost
    first_seq   {int}   NOT NULL,
    last_seq    {int}   NOT NULL,
    found_ms    {int}   NOT NULL,   -- when the receiver first saw the gap
    due_ms      {int},              -- pending: when to ask (again)
    attempts    {int}   NOT NULL DEFAULT 0,   -- requests that asked for it
    request     {int},              -- repair_requests.id of the latest
    reason      TEXT,               -- lost: the device's reason (outside-window, not-held)
    done_ms     {int},              -- repaired / lost: when
    PRIMARY KEY (device, state, first_seq)
){without_rowid};
-- Each replay command sent: its id (as "repair-<id>") travels in the
-- command and comes back in the device's answer. Its counter is the
-- per-(signer, device) command counter: the database keeps them, so
-- receivers sharing it never reuse one.
CREATE TABLE IF NOT EXISTS repair_requests (
    id          {id},
    device      TEXT    NOT NULL,
    signer      TEXT    NOT NULL,   -- the repair key's name (the command's kid)
    counter     {int}   NOT NULL,
    ranges      TEXT    NOT NULL,   -- JSON [[first, last], ...] asked for
    seqs        {int}   NOT NULL,
    created_ms  {int}   NOT NULL,
    sent_ms     {int},              -- broker PUBACK time
    answered_ms {int},              -- the device's repair signal: when it came
    sending     {int},              -- ... how many seqs it said it republishes
    gone        {int},              -- ... and how many it no longer holds
    refused     TEXT                -- the device's audit of a refusal: its reason
);
CREATE INDEX IF NOT EXISTS repair_requests_device ON repair_requests (device, signer, counter);
"""

# Columns added after version 1, with how to add them to an older database.
# online, status_ms, confirmed: the last status message's claim, when it
# came, and whether a fresh verified signal arrived after it (docs/receiver.md,
# "Online status"). clock_*: signals dated ahead of the receiver's clock.
DEVICE_COLUMNS = (
    ("status_ms", "{int}"),
    ("confirmed", "{int} NOT NULL DEFAULT 0"),
    ("clock_ahead_ms", "{int}"),
    ("clock_anomalies", "{int} NOT NULL DEFAULT 0"),
)

# The devices row of a verified message, after its (device, first_seen_ms,
# last_seen_ms, duplicates, confirmed) values: storage.seen().
SEEN_CONFLICT = (
    "ON CONFLICT (device) DO UPDATE SET last_seen_ms = excluded.last_seen_ms, "
    "first_seen_ms = CASE WHEN devices.first_seen_ms = 0 THEN excluded.first_seen_ms "
    "ELSE devices.first_seen_ms END, "
    "duplicates = devices.duplicates + excluded.duplicates, "
    "confirmed = CASE WHEN excluded.confirmed > devices.confirmed THEN excluded.confirmed "
    "ELSE devices.confirmed END")
ALERT_VALUES = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
# A device's signals of a kind over a time range: storage.signals_between().
SIGNALS_BETWEEN = ("SELECT time_ms, seq, body FROM signals WHERE device = ? AND time_ms >= ? AND time_ms < ? "
                   "AND kind = ? ORDER BY time_ms, seq")

# Rejections are evidence, not a log sink: keep at most this many payload
# bytes each, so a flood of garbage cannot fill the disk quickly (MQTT
# topics can be 64 KiB long: they are cut too).
MAX_REJECTED_PAYLOAD = 1024
MAX_REJECTED_TOPIC = 256
# Both backends' integers are signed 64-bit: a seq or time beyond is refused before storing.
MAX_INTEGER = 2 ** 63 - 1


class StorageError(Exception):
    """The database cannot be used: the message says why and what to do
    (a bad --db, a server not reachable, a schema newer than this code)."""


class SQLStorage:
    """What both backends share: every statement of the receiver's hot
    path and its queries. A backend sets the connection (``self.db``),
    ``types`` for SCHEMA, ``FATAL_ERRORS`` (the database's own failures,
    which stop a batch: nothing about the message) and ``RETRY_ERRORS``
    (a transaction the server gave up, e.g. a deadlock between receivers:
    the batch is handled again), ``LOST_ERRORS`` with ``reconnect()`` for a
    server connection, and implements ``_execute``, the
    migration's catalog queries and the locks."""

    FATAL_ERRORS = ()
    RETRY_ERRORS = ()
    # A server connection lost (PostgreSQL): the receiver calls reconnect()
    # with backoff and handles the batch again. None for a file (SQLite).
    LOST_ERRORS = ()
    # Appended to a SELECT of rows to change: lock them until the
    # transaction ends; or skip rows another writer locked (claiming outbox
    # rows). PostgreSQL's; SQLite has one writer at a time.
    FOR_UPDATE = ""
    SKIP_LOCKED = ""
    name = "?"  # for logs: a path, or a URL without its password

    # -- the connection ---------------------------------------------------

    def execute(self, sql, params=()):
        """Run one statement (``?`` placeholders); returns its cursor."""
        return self._execute(sql, params)

    def query(self, sql, params=()):
        """All rows of one statement, as tuples."""
        return [tuple(row) for row in self._execute(sql, params).fetchall()]

    def close(self):
        self.db.close()

    def describe_error(self, exc):
        """A database error for the log, on one line."""
        return " ".join(str(exc).split())

    def begin(self):
        self.execute("BEGIN")

    def commit(self):
        self.execute("COMMIT")

    def rollback(self):
        """Undo the batch (a transaction the server gave up, or a failure)."""
        self.execute("ROLLBACK")

    # One message's writes, inside the batch's transaction: a message whose
    # handling fails half way is undone alone (service.Receiver.handle).
    def savepoint(self):
        self.execute("SAVEPOINT message")

    def release(self):
        self.execute("RELEASE SAVEPOINT message")

    def rollback_message(self):
        self.execute("ROLLBACK TO SAVEPOINT message")
        self.execute("RELEASE SAVEPOINT message")

    # -- schema and migrations ----------------------------------------------

    def _migrate(self):
        """Create what is missing and upgrade an older schema, inside one
        transaction (the caller's). Refuses a newer schema."""
        version = self._schema_version()
        if version is not None and version > SCHEMA_VERSION:
            raise StorageError("%s: its schema is version %d, newer than this receiver's (%d): it was written by a "
                               "newer edge-agent; upgrade edge-agent to read it" % (self.name, version, SCHEMA_VERSION))
        self._create(SCHEMA.format(**self.types))
        have = self._columns("devices")
        for column, declaration in DEVICE_COLUMNS:
            if column not in have:
                self.execute("ALTER TABLE devices ADD COLUMN %s %s" % (column, declaration.format(**self.types)))
        self.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                     "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(SCHEMA_VERSION),))

    def _schema_version(self):
        if "meta" not in self._tables():
            return None
        row = self.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        try:
            return int(row[0]) if row else None
        except ValueError:
            raise StorageError("%s: schema_version %r in its meta table is not a number: not a receiver database?"
                               % (self.name, row[0])) from None

    def _create(self, script):
        for statement in script.split(";"):
            lines = [line for line in statement.splitlines() if line.strip() and not line.strip().startswith("--")]
            if lines:
                self.execute("\n".join(lines))

    # -- the hot path -----------------------------------------------------

    def has(self, device, seq):
        return self.execute("SELECT 1 FROM signals WHERE device = ? AND seq = ?", (device, seq)).fetchone() is not None

    def store_envelope(self, data):
        """Keep a verified COSE message; returns its id for store_signal."""
        return self.execute("INSERT INTO envelopes (data) VALUES (?) RETURNING id", (data,)).fetchone()[0]

    def drop_envelope(self, envelope_id):
        """An envelope none of whose signals was stored after all (another
        receiver stored them first)."""
        self.execute("DELETE FROM envelopes WHERE id = ?", (envelope_id,))

    def seen(self, device, received_ms, duplicates=0, fresh=1):
        """A verified message from ``device`` arrived, with ``fresh`` new
        signals and ``duplicates`` dropped. Fresh signals confirm (or
        contradict) the last status message; duplicates prove nothing (anyone
        on the broker can replay a recorded message)."""
        self.execute(
            "INSERT INTO devices (device, first_seen_ms, last_seen_ms, duplicates, confirmed) VALUES (?, ?, ?, ?, ?) "
            + SEEN_CONFLICT,
            (device, received_ms, received_ms, duplicates, 1 if fresh else 0),
        )

    def clock_ahead(self, device, ahead_ms, count):
        """``count`` signals of ``device`` were dated ``ahead_ms`` (the
        most) ahead of the receiver's clock, beyond the tolerated skew."""
        self.execute("UPDATE devices SET clock_ahead_ms = ?, clock_anomalies = clock_anomalies + ? WHERE device = ?",
                     (ahead_ms, count, device))

    def store_signal(self, signal, envelope_id, received_ms, body=None):
        """Insert a verified signal; False if (device, seq) was already stored
        (by this receiver or another). The caller records the message with
        seen(). ``body``: the body's CBOR as received (signals.body_bytes),
        stored as is; None encodes ``signal.body``."""
        cursor = self.execute("INSERT INTO signals VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                              signal_row(signal, body, received_ms) + (envelope_id,))
        new = cursor.rowcount == 1
        if new and signal.kind == sg.KIND_ALERT:
            self._store_alert(signal)
        return new

    def store_message(self, payload, signals, bodies, received_ms):
        """Store a verified message of one device: its envelope, each of its
        signals not stored before (by this receiver or another: the primary
        key decides, in the same statement) with the alerts among them, and
        the device's seen() row. Returns a flag per signal, True where it
        is new; an envelope none of whose signals is new is not kept.
        ``bodies``: each body's CBOR as signed (None: encode ``signal.body``)."""
        envelope_id, inserted = self._insert_signals(
            payload, [signal_row(signal, body, received_ms) for signal, body in zip(signals, bodies)])
        flags = new_flags(signals, inserted)
        if not any(flags):
            self.drop_envelope(envelope_id)
        for signal, new in zip(signals, flags):
            if new and signal.kind == sg.KIND_ALERT:
                self._store_alert(signal)
        fresh = sum(flags)
        self.seen(signals[0].device, received_ms, len(signals) - fresh, fresh=fresh)
        return flags

    def _insert_signals(self, payload, rows):
        """Insert the envelope and the signal rows (each without its envelope
        column), skipping (device, seq) already stored: (envelope id, set
        of the seqs inserted). One statement for all the rows (a bundle
        holds up to bundle.MAX_BUNDLE_SIGNALS: 8,000 parameters, within
        both backends' limits)."""
        envelope_id = self.store_envelope(payload)
        params = []
        for row in rows:
            params.extend(row)
            params.append(envelope_id)
        cursor = self.execute("INSERT INTO signals VALUES %s ON CONFLICT DO NOTHING RETURNING seq"
                              % ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * len(rows)), params)
        return envelope_id, {row[0] for row in cursor.fetchall()}

    def store_alerts(self, alerts, received_ms):
        """Single-alert messages, (payload, signal, body) each, at most one
        per ticket key and per (device, seq) (alert_waves.py): each stored
        (store_message) and, when new, its ticket changed (tickets.change)
        and linked. [(new, the ticket statement's (id, alerts) row or
        None)] in their order. PostgreSQL does it in one statement."""
        stored = []
        for payload, signal, body in alerts:
            new = self.store_message(payload, [signal], [body], received_ms)[0]
            row = self.change_ticket(*tickets.change(signal, received_ms), signal) if new else None
            stored.append((new, row))
        return stored

    def change_ticket(self, sql, params, signal):
        """Run a ticket statement (tickets.change, returning the ticket's id
        first) for a stored alert and link ``signal`` to the ticket it
        returns; its row, or None."""
        row = self.execute(sql, params).fetchone()
        if row is not None:
            self.execute(tickets.TICKET_JOIN, (signal.device, signal.seq, row[0]))
        return row

    def _store_alert(self, signal):
        self.execute("INSERT INTO alerts VALUES %s ON CONFLICT DO NOTHING" % ALERT_VALUES, alert_row(signal))

    def store_rejection(self, topic, reason, detail, payload, received_ms):
        self.execute(
            "INSERT INTO rejections (received_ms, topic, reason, detail, payload) VALUES (?, ?, ?, ?, ?)",
            (received_ms, topic[:MAX_REJECTED_TOPIC], reason, detail[:500], payload[:MAX_REJECTED_PAYLOAD]),
        )

    def set_online(self, device, online, received_ms):
        """A status message for a registered device: a claim, unconfirmed
        until a fresh verified signal follows (seen()). A device known only
        from its status has first/last seen 0: never seen."""
        self.execute(
            "INSERT INTO devices (device, first_seen_ms, last_seen_ms, online, status_ms, confirmed) "
            "VALUES (?, 0, 0, ?, ?, 0) "
            "ON CONFLICT (device) DO UPDATE SET online = excluded.online, status_ms = excluded.status_ms, "
            "confirmed = 0",
            (device, 1 if online else 0, received_ms),
        )

    # -- locks for several receivers on one database ------------------------
    # No-ops where one process writes at a time (SQLite); PostgreSQL's
    # advisory locks (storage_postgres.py).

    def fleet_lock(self):
        """Until the transaction ends, this receiver alone decides fleet
        incidents (fleet.py): their state is read, judged and written under it."""

    def try_send_lock(self):
        """True if this receiver may publish the queued advisories now (no
        other is publishing them); release with send_unlock()."""
        return True

    def send_unlock(self):
        pass

    def repair_lock(self, device, wait=True):
        """Until the transaction ends, this receiver alone decides
        ``device``'s gap repair (repair.py). ``wait`` False: True if taken
        now, False if another receiver holds it (skip the device this time)."""
        return True

    # --- queries ---------------------------------------------------------

    def gaps(self, device):
        """Missing seq ranges [(first, last), ...] below the highest seen,
        except those a device skipped at a restart (see missing())."""
        return self.missing(device)[0]

    def births(self, device):
        """The seqs of ``device``'s stored birth signals: one per start of its
        agent or firmware that reached us."""
        return {row[0] for row in self.query(
            "SELECT seq FROM signals WHERE device = ? AND kind = ?", (device, sg.KIND_BIRTH))}

    def boots(self, device):
        return len(self.births(device))

    def missing(self, device, births=None):
        """(lost, skipped): missing ranges below the highest seq seen. A range
        that ends right below a birth signal's seq was skipped by the
        device's sequencer at a restart (numbers never issued), not lost.
        ``births``: births(device), when the caller has it already."""
        if births is None:
            births = self.births(device)
        lost, skipped = [], []
        for gap in self._all_gaps(device):
            (skipped if gap[1] + 1 in births else lost).append(gap)
        return lost, skipped

    def _all_gaps(self, device):
        # seq + 1 in SQL would overflow at seq 2**63 - 1 (an error on
        # PostgreSQL, a float on SQLite): compare the difference, add here.
        rows = [(seq + 1, after - 1) for seq, after in self.query(
            "SELECT seq, next FROM (SELECT seq, LEAD(seq) OVER (ORDER BY seq) AS next "
            "FROM signals WHERE device = ?) AS g WHERE next - seq > 1 ORDER BY seq",
            (device,),
        )]
        first = self.execute("SELECT MIN(seq) FROM signals WHERE device = ?", (device,)).fetchone()[0]
        if first is not None and first > 1:
            rows.insert(0, (1, first - 1))
        return rows

    def device_summary(self):
        """One row per device: (device, signals, max seq, missing, duplicates,
        active alerts (raised and not cleared since: the latest alert of its
        condition, component and sensor is a raise), last seen ms, online, presence, clock ahead ms, clock
        anomalies); missing excludes seqs skipped at restarts, online is
        what the last status message claimed (1, 0 or None), presence what
        the display shows (see presence()), clock ahead ms the last offset
        beyond the tolerated skew (None if never)."""
        rows = self.query(
            """
            SELECT d.device, COUNT(s.seq), COALESCE(MAX(s.seq), 0), COALESCE(MAX(s.seq), 0) - COUNT(s.seq),
                   d.duplicates,
                   (SELECT COUNT(*) FROM alerts a WHERE a.device = d.device AND a.active = 1
                    AND NOT EXISTS (SELECT 1 FROM alerts b WHERE b.device = a.device AND b.seq > a.seq
                                    AND b.condition IS NOT DISTINCT FROM a.condition
                                    AND b.component IS NOT DISTINCT FROM a.component
                                    AND b.sensor IS NOT DISTINCT FROM a.sensor)),
                   d.last_seen_ms, d.online, d.confirmed, d.clock_ahead_ms, d.clock_anomalies
            FROM devices d LEFT JOIN signals s ON s.device = d.device
            GROUP BY d.device ORDER BY d.device
            """
        )
        summary = []
        for row in rows:
            skipped = sum(last - first + 1 for first, last in self.missing(row[0])[1])
            summary.append(row[:3] + (row[3] - skipped,) + row[4:8] + (presence(row[7], row[8]),) + row[9:])
        return summary

    def signals_between(self, device, start_ms, end_ms, kind=sg.KIND_TELEMETRY):
        """``device``'s signals of ``kind`` dated (device time) from
        ``start_ms`` up to, not including, ``end_ms``: [(time_ms, seq, body)]
        in time order, each body the CBOR the device signed. The
        (device, time_ms) index answers it in time proportional to the rows
        returned, whatever the table holds (docs/receiver.md, "Time-range
        queries")."""
        return self.query(SIGNALS_BETWEEN, (device, start_ms, end_ms, kind))

    def recent_alerts(self, limit=10):
        return self.query(
            "SELECT device, seq, time_ms, severity, active, text FROM alerts ORDER BY time_ms DESC, seq DESC LIMIT ?",
            (limit,),
        )

    def rejection_counts(self):
        return dict(self.query("SELECT reason, COUNT(*) FROM rejections GROUP BY reason"))


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


def new_flags(signals, inserted):
    """A flag per signal: its seq is in ``inserted`` (a set, emptied). A seq
    twice in one bundle is stored once: its first is the new one."""
    flags = []
    for signal in signals:
        flags.append(signal.seq in inserted)
        inserted.discard(signal.seq)
    return flags


def alert_row(signal):
    body = signal.body
    return (signal.device, signal.seq, signal.time_ms, signal.priority, _text(body.get(sg.A_CONDITION)),
            _text(body.get(sg.A_COMPONENT)), _text(body.get(sg.A_SENSOR)), _text(body.get(sg.A_SEVERITY)),
            1 if body.get(sg.A_ACTIVE) else 0, _text(body.get(sg.A_TEXT)))


def signal_row(signal, body, received_ms):
    """A signals row up to its envelope column."""
    return (signal.device, signal.seq, signal.kind, signal.priority, signal.time_ms, received_ms,
            cbor.dumps(signal.body) if body is None else body)


def _text(value):
    return value if isinstance(value, str) else None
