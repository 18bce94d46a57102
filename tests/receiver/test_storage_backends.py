"""The receiver's two storage backends (edge_agent/receiver/storage.py):
migrations from what earlier versions wrote, clear errors for a bad
``--db`` (never showing a password), and what PostgreSQL does differently
(text without NUL, a failure inside a message undone alone). Real SQLite,
a real PostgreSQL server, real keys."""

import os
import shutil
import sqlite3
import subprocess
import sys
import time

import aiomqtt
import pytest

from edge_agent.core import signals as sg
from edge_agent.keys.identity import create_identity
from edge_agent.receiver import fleet
from edge_agent.receiver.registry import Registry
from edge_agent.receiver.service import Receiver
from edge_agent.receiver.storage import SCHEMA_VERSION, StorageError, open_storage
from edge_agent.receiver.storage_postgres import redact
from edge_agent.receiver.storage_sql import MAX_REJECTED_TOPIC
from simulator import ROOT

SCHEMA2_DB = os.path.join(os.path.dirname(__file__), "data", "schema2.sqlite")
T0 = 1_800_000_000_000


def _cli(*argv):
    env = dict(os.environ)
    env.pop("COLUMNS", None)  # the report at its natural width
    return subprocess.run([sys.executable, "-m", "edge_agent", *argv], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=60)


def test_a_database_written_by_the_previous_receiver_is_upgraded(tmp_path):
    """data/schema2.sqlite was written by the receiver before PostgreSQL
    (schema 2, fleet tables made by its fleet watch; make_schema2_db.py).
    It opens as schema 3, keeps every row, and the receiver carries on with
    it: dedupe against the old rows, gaps, the open incident, the queued
    advisories."""
    path = str(tmp_path / "receiver.sqlite")
    shutil.copy(SCHEMA2_DB, path)
    with sqlite3.connect(path) as old:
        assert old.execute("SELECT value FROM meta").fetchall() == [("2",)]
        assert "fleet_reports" not in {r[0] for r in old.execute("SELECT name FROM sqlite_master")}
    storage = open_storage(path)
    assert storage.query("SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
    assert storage.query("SELECT COUNT(*) FROM signals") == [(14,)]
    assert storage.gaps("old-1") == [(4, 4)] and storage.boots("old-1") == 1
    assert storage.rejection_counts() == {"malformed": 1}
    indexes = {r[0] for r in storage.query("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "signals_device_time" in indexes
    # A time-range query for one device's readings uses the (device, time_ms) index.
    plan = " ".join(str(r) for r in storage.query(
        "EXPLAIN QUERY PLAN SELECT seq FROM signals WHERE device = ? AND time_ms BETWEEN ? AND ?", ("old-1", 0, 1)))
    assert "signals_device_time" in plan, plan
    rows = fleet.incidents(storage)
    assert [(r[1], r[2], r[3], r[4], r[8], r[9]) for r in rows] == [("EA-OLD", "cabinet_fan", "stuck", 2, 3, 0)]
    # The receiver carries on: an old seq is a duplicate, a new one is stored.
    old = sg.Signal(sg.KIND_TELEMETRY, 3, T0, {0: []}, "old-1", 3)
    new = sg.Signal(sg.KIND_TELEMETRY, 3, T0, {0: []}, "old-1", 4)
    storage.begin()
    envelope = storage.store_envelope(b"")
    assert (storage.store_signal(old, envelope, T0), storage.store_signal(new, envelope, T0)) == (False, True)
    storage.commit()
    assert storage.gaps("old-1") == []
    storage.close()
    report = _cli("receiver", "report", "--db", path, "--fail-on-gaps")
    assert report.returncode == 1 and "old-2" in report.stdout and "stuck on cabinet_fan" in report.stdout, report


def _set_version(storage, version):
    storage.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))


def test_a_database_of_a_newer_schema_is_refused_with_why(db_url):
    storage = open_storage(db_url)
    _set_version(storage, SCHEMA_VERSION + 1)
    storage.close()
    with pytest.raises(StorageError) as refused:
        open_storage(db_url)
    assert "schema is version %d, newer than this receiver's (%d)" % (SCHEMA_VERSION + 1, SCHEMA_VERSION) \
        in str(refused.value) and "upgrade edge-agent" in str(refused.value)
    report = _cli("receiver", "report", "--db", db_url)
    assert report.returncode == 2 and "newer than this receiver's" in report.stderr, report
    assert "Traceback" not in report.stderr


def test_bad_or_unreachable_postgresql_urls_are_clear_and_never_show_the_password(tmp_path):
    registry = tmp_path / "devices.toml"
    registry.write_text("")
    cases = (("postgresql://ops:s3cret-pw@127.0.0.1:1/receiver", "cannot connect"),  # nothing listens on port 1
             ("postgresql://ops@127.0.0.1:1/receiver?password=s3cret-pw", "cannot connect"),
             ("postgresql://ops:s3cret-pw@127.0.0.1:port/receiver", "not a PostgreSQL URL"),
             ("postgresql://ops:s3cret-pw@127.0.0.1/receiver?sslmode=sometimes", "invalid sslmode value"))
    for url, message in cases:
        for argv in (("receiver", "report", "--db", url),
                     ("receiver", "run", "--registry", str(registry), "--db", url, "--no-live",
                      "--broker", "127.0.0.1:1", "--insecure")):
            done = _cli(*argv)
            assert done.returncode == 2, (argv, done.stderr)
            assert message in done.stderr, (argv, done.stderr)
            assert "s3cret-pw" not in done.stderr + done.stdout and "Traceback" not in done.stderr, done.stderr


def test_redact_hides_only_the_password():
    """What `receiver run` logs and every --db error shows of a URL."""
    assert redact("postgresql://ops:s3cret@db.example:5432/rx") == "postgresql://ops:***@db.example:5432/rx"
    assert redact("postgresql://ops@db.example/rx") == "postgresql://ops@db.example/rx"
    assert redact("postgresql://ops:p%40ss@[::1]:5433/rx?sslmode=require") == \
        "postgresql://ops:***@[::1]:5433/rx?sslmode=require"
    assert redact("postgresql://ops@db/rx?sslmode=require&password=s3cret") == \
        "postgresql://ops@db/rx?sslmode=require&password=***"


def test_the_receiver_logs_its_database_without_the_password(postgres_server, tmp_path):
    """`receiver run` names its database in the log: a URL with a password
    is shown with *** instead."""
    from edge_agent.receiver.storage_postgres import PostgresStorage

    url = postgres_server.create_database()
    storage = PostgresStorage(url)
    storage.execute("ALTER ROLE edge_agent PASSWORD 'never-in-logs'")  # trust auth: accepted, not required
    storage.close()
    with_password = url.replace("edge_agent@", "edge_agent:never-in-logs@")
    registry = tmp_path / "devices.toml"
    registry.write_text("")
    child = subprocess.Popen([sys.executable, "-m", "edge_agent", "receiver", "run", "--registry", str(registry),
                              "--db", with_password, "--no-live", "--broker", "127.0.0.1:1", "--insecure"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    try:
        out = ""
        for line in child.stdout:
            out += line
            if "reconnecting" in line:
                break
    finally:
        child.terminate()
        out += child.communicate(timeout=30)[0]
    assert "database postgresql://edge_agent:***@127.0.0.1" in out, out
    assert "never-in-logs" not in out


def _rig(directory, db_url):
    registry = Registry()
    identity = create_identity(os.path.join(directory, "nul-1"), "nul-1")
    registry.add_entries(identity.registry_entry())
    storage = open_storage(db_url)
    return identity, storage, Receiver(None, registry, storage)


def test_text_with_nul_is_stored_on_both_backends(tmp_path, db_url):
    """PostgreSQL text cannot hold NUL: a signed alert whose text holds one
    (and a rejected message's topic) is stored with it escaped there, as is
    on SQLite; never a failure."""
    identity, storage, receiver = _rig(str(tmp_path), db_url)
    body = {sg.A_CONDITION: "st\x00uck", sg.A_COMPONENT: "fan", sg.A_ACTIVE: True, sg.A_TEXT: "a\x00b"}
    signal = sg.Signal(sg.KIND_ALERT, 1, T0, body, "nul-1", 1)
    storage.begin()
    assert receiver.handle("ea/v1/nul-1/alert", identity.seal(signal.encode()), T0) == "accepted"
    assert receiver.handle("ea/v1/nul-1\x00/alert", b"\x00", T0) in ("malformed", "topic-mismatch")
    storage.commit()
    postgres = db_url.startswith("postgresql://")
    nul = "\\x00" if postgres else "\x00"
    assert storage.query("SELECT condition, text FROM alerts") == [("st%suck" % nul, "a%sb" % nul)]
    assert storage.query("SELECT topic FROM rejections") == [("ea/v1/nul-1%s/alert" % nul,)]
    # A long topic is cut to its bound with its NULs escaped, not beyond it.
    storage.begin()
    receiver.handle("ea/v1/" + "\x00" * 10 + "a" * 300, b"\x00", T0)
    storage.commit()
    assert [len(t) for t, in storage.query("SELECT topic FROM rejections")][1] == MAX_REJECTED_TOPIC
    storage.close()


def test_a_message_is_stored_in_one_go_with_duplicates_dropped_on_both_backends(tmp_path, db_url):
    """storage.store_message (one statement on PostgreSQL): a bundle's
    signals, a seq twice in it stored once, its envelope kept once; the same
    bundle again stores nothing, keeps no envelope and counts its
    duplicates; an alert lands in alerts once; the devices row records each
    message."""
    from edge_agent.core import bundle
    from edge_agent.receiver.storage_sql import SIGNALS_BETWEEN

    identity, storage, receiver = _rig(str(tmp_path), db_url)
    records = [sg.Signal(sg.KIND_TELEMETRY, 3, T0 + seq, {0: [[T0 + seq, "t", 1.5, 0]]}, "nul-1", seq).encode()
               for seq in (1, 2, 2, 3)]
    message = identity.seal(bundle.encode(records))
    alert = sg.Signal(sg.KIND_ALERT, 1, T0 + 9, {sg.A_CONDITION: "stuck", sg.A_ACTIVE: True}, "nul-1", 4)
    storage.begin()
    outcomes = [receiver.handle("ea/v1/nul-1/telemetry", message, T0),
                receiver.handle("ea/v1/nul-1/telemetry", message, T0 + 1),
                receiver.handle("ea/v1/nul-1/alert", identity.seal(alert.encode()), T0 + 2),
                receiver.handle("ea/v1/nul-1/alert", identity.seal(alert.encode()), T0 + 3)]
    storage.commit()
    assert outcomes == ["accepted", "duplicate", "accepted", "duplicate"]
    assert (receiver.accepted, receiver.duplicates) == (4, 1 + 4 + 1)
    assert storage.query("SELECT seq, time_ms FROM signals ORDER BY seq") == [(1, T0 + 1), (2, T0 + 2), (3, T0 + 3),
                                                                              (4, T0 + 9)]
    assert storage.query("SELECT COUNT(*) FROM envelopes") == [(2,)]
    assert storage.query("SELECT seq, condition, active FROM alerts") == [(4, "stuck", 1)]
    assert storage.query("SELECT first_seen_ms, last_seen_ms, duplicates, confirmed FROM devices") == [
        (T0, T0 + 3, 6, 1)]
    # A device's readings over a time range (the (device, time_ms) index).
    between = storage.signals_between("nul-1", T0 + 2, T0 + 4)
    assert [(t, seq) for t, seq, _ in between] == [(T0 + 2, 2), (T0 + 3, 3)]
    assert bytes(between[0][2]) == sg.body_bytes(sg.decode(records[1]), records[1])
    # ... answered by the index (PostgreSQL would scan a table this small: told not to).
    if db_url.startswith("postgresql://"):
        storage.execute("SET enable_seqscan = off")
        explain = "EXPLAIN "
    else:
        explain = "EXPLAIN QUERY PLAN "
    plan = str(storage.query(explain + SIGNALS_BETWEEN, ("nul-1", T0, T0 + 4, sg.KIND_TELEMETRY)))
    assert "signals_device_time" in plan, plan
    storage.close()


def test_a_failure_inside_a_message_is_undone_alone_on_postgresql(tmp_path, postgres_server):
    """The receiver's per-message savepoint on PostgreSQL: a trigger that
    refuses one signal stands in for any failure half way through a
    message; its writes are undone (no envelope left), it becomes an
    internal-error rejection, and the rest of the batch is stored."""
    identity, storage, receiver = _rig(str(tmp_path), postgres_server.create_database())
    storage.execute("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    "IF NEW.seq = 13 THEN RAISE EXCEPTION 'refused by a test trigger'; END IF; RETURN NEW; END $$")
    storage.execute("CREATE TRIGGER refuse BEFORE INSERT ON signals FOR EACH ROW EXECUTE FUNCTION refuse()")

    def signal(seq):
        return identity.seal(sg.Signal(sg.KIND_TELEMETRY, 3, T0, {0: []}, "nul-1", seq).encode())

    storage.begin()
    outcomes = [receiver.handle("ea/v1/nul-1/telemetry", signal(seq), T0) for seq in (12, 13, 14)]
    storage.commit()
    assert outcomes == ["accepted", "internal-error", "accepted"]
    assert storage.query("SELECT seq FROM signals ORDER BY seq") == [(12,), (14,)]
    assert storage.query("SELECT COUNT(*) FROM envelopes") == [(2,)]
    reason, detail = storage.query("SELECT reason, detail FROM rejections")[0]
    assert reason == "internal-error" and "refused by a test trigger" in detail and "storage_sql.py" in detail
    storage.close()


def test_a_batch_with_a_failing_message_is_handled_again_message_by_message(tmp_path, postgres_server):
    """The receiver handles a batch without savepoints first; a message that
    fails half way (the trigger) undoes the batch, which is handled again
    under a savepoint per message: the others are stored once, the failing
    one rejected once, and the counters count each message once."""
    identity, storage, receiver = _rig(str(tmp_path), postgres_server.create_database())
    storage.execute("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    "IF NEW.seq = 13 THEN RAISE EXCEPTION 'refused by a test trigger'; END IF; RETURN NEW; END $$")
    storage.execute("CREATE TRIGGER refuse BEFORE INSERT ON signals FOR EACH ROW EXECUTE FUNCTION refuse()")
    batch = [aiomqtt.Message("ea/v1/nul-1/telemetry", identity.seal(sg.Signal(
        sg.KIND_TELEMETRY, 3, T0, {0: [[T0, "s", 1.5, 0]]}, "nul-1", seq).encode()), 1, False, seq, None)
        for seq in (12, 13, 14)]
    receiver._store_batch(batch)
    assert storage.query("SELECT seq FROM signals ORDER BY seq") == [(12,), (14,)]
    assert storage.query("SELECT reason FROM rejections") == [("internal-error",)]
    assert (receiver.accepted, receiver.rejected) == (2, {"internal-error": 1})
    receiver._store_batch(batch[:1] + batch[2:])  # redelivered: duplicates, counted once each
    assert (receiver.accepted, receiver.duplicates) == (2, 2)
    storage.close()


@pytest.mark.integration
def test_a_receiver_waits_out_a_stopped_postgresql_server_and_stores_every_signal_once(pki, broker, tmp_path):
    """The PostgreSQL server stops and starts again under a running
    receiver, twice: the receiver says it lost the database, keeps the batch
    unacknowledged while it reconnects with backoff (no traceback, no exit),
    then stores it. The second time the receiver is killed while it waits:
    the broker kept what it never acknowledged, and the next start stores
    it. In the end every (device, seq) published is stored, once."""
    import asyncio

    import aiomqtt

    from edge_agent.broker import client_context
    from simulator.fixtures.postgres import Postgres, PostgresUnavailable
    from simulator.fixtures.processes import Child, edge_agent_argv

    try:
        server = Postgres().start()  # our own: the session's server must not stop
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    devices = ["pgloss-1", "pgloss-2"]
    identities = [create_identity(str(tmp_path / d), d) for d in devices]
    registry_file = tmp_path / "devices.toml"
    registry_file.write_text("\n".join(identity.registry_entry() for identity in identities))
    cert, key = pki.receiver("pgloss-rx")
    publisher = client_context(pki.ca_cert, *pki.harness("pgloss-publisher"))
    receivers = []

    def start_receiver(url):
        argv = edge_agent_argv("receiver", "run", "--registry", str(registry_file), "--db", url, "--no-live",
                               "--no-fleet", "--group", "", "--client-id", "pgloss-rx",
                               "--broker", "127.0.0.1:%d" % broker.port, "--ca", pki.ca_cert, "--cert", cert,
                               "--key", key)
        receivers.append(Child("pgloss-rx", argv, relay=False))
        receivers[-1].wait_for("receiving", 20)
        return receivers[-1]

    def publish(seqs):
        async def run():
            async with aiomqtt.Client("127.0.0.1", broker.port, tls_context=publisher) as client:
                for seq in seqs:
                    for identity in identities:
                        signal = sg.Signal(sg.KIND_TELEMETRY, 3, T0 + seq, {0: [[T0 + seq, "t", seq, 0]]},
                                           identity.device_id, seq)
                        await client.publish(sg.topic(identity.device_id, signal.kind),
                                             identity.seal(signal.encode()), qos=1)
        asyncio.run(run())

    def wait_stored(url, count, receiver):
        deadline = time.monotonic() + 30
        storage = open_storage(url)
        try:
            while storage.query("SELECT COUNT(*) FROM signals") != [(count,)]:
                assert time.monotonic() < deadline, (storage.query("SELECT COUNT(*) FROM signals"), receiver.text())
                time.sleep(0.1)
            return storage.query("SELECT device, seq FROM signals ORDER BY device, seq")
        finally:
            storage.close()

    try:
        url = server.create_database()
        receiver = start_receiver(url)
        publish(range(1, 21))
        wait_stored(url, 40, receiver)

        mark = receiver.mark()
        server.halt()
        publish(range(21, 41))  # received, not storable: not acknowledged
        receiver.wait_for("lost", 20, since=mark)
        time.sleep(2)  # a few reconnect attempts against no server
        server.resume()
        receiver.wait_for("reconnected", 30, since=mark)
        wait_stored(url, 80, receiver)
        assert receiver.process.poll() is None, receiver.text()

        mark = receiver.mark()
        server.halt()
        publish(range(41, 51))
        receiver.wait_for("lost", 20, since=mark)
        receiver.kill()  # waiting for the database, holding what it never acknowledged
        server.resume()
        receiver = start_receiver(url)
        rows = wait_stored(url, 100, receiver)
        assert rows == [(device, seq) for device in devices for seq in range(1, 51)]
        text = "\n".join(child.text() for child in receivers)
        assert "Traceback" not in text, text
        assert "none acknowledged" in text and "reconnecting in" in text, text
    finally:
        for child in receivers:
            child.stop()
        server.stop()


def test_sqlite_syncs_every_commit_unless_told_it_is_scratch(tmp_path):
    # FULL (2) for a receiver (durable before acknowledged); NORMAL (1) only
    # for the simulator's scratch database (simulator/scenarios/virtual.py).
    from edge_agent.receiver.storage import Storage

    for durable, level in ((True, 2), (False, 1)):
        storage = Storage(str(tmp_path / ("r-%s.sqlite" % durable)), durable=durable)
        try:
            assert storage.db.execute("PRAGMA synchronous").fetchone()[0] == level
        finally:
            storage.close()
