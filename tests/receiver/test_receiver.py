"""The reference receiver: verification, duplicates, gaps, storage, shared
subscriptions, on a real broker and real databases: SQLite, and PostgreSQL
where a test is about storage (the ``db_url`` fixture runs it on both)."""

import asyncio
import contextlib
import re
import sqlite3

import aiomqtt
import pytest

from edge_agent.core import signals as sg
from edge_agent.keys.identity import create_identity
from edge_agent.receiver.service import Receiver
from edge_agent.receiver.storage import Storage, open_storage
from edge_agent.receiver.registry import Registry
from edge_agent.broker import BrokerSettings, client_context
from simulator.fixtures.broker import Mosquitto
from simulator.fixtures.processes import Child, edge_agent_argv

pytestmark = pytest.mark.integration


def _signal(device, seq, kind=sg.KIND_TELEMETRY, body=None):
    return sg.Signal(kind, sg.PRIORITY_LOW, 1700000000000 + seq, body or {0: []}, device, seq)


@pytest.fixture
def fleet(tmp_path):
    """Two devices (one Ed25519, one HMAC) and a registry that knows them."""
    registry = Registry()
    devices = {}
    for device_id, algorithm in (("rx-ed", "EdDSA"), ("rx-mac", "HMAC256")):
        identity = create_identity(str(tmp_path / device_id), device_id, algorithm)
        registry.add_entries(identity.registry_entry(include_secret=True))
        devices[device_id] = identity
    return registry, devices


def _settings(pki, broker, name):
    cert, key = pki.client(name)
    return BrokerSettings("127.0.0.1", broker.port, client_context(pki.ca_cert, cert, key))


def test_handle_accepts_dedupes_rejects_and_finds_gaps(fleet, db_url):
    registry, devices = fleet
    storage = open_storage(db_url)
    receiver = Receiver(None, registry, storage)
    ed = devices["rx-ed"]

    def handle(signal, topic=None, identity=ed):
        data = identity.seal(signal.encode())
        return receiver.handle(topic or sg.topic(signal.device, signal.kind), data, 1)

    storage.begin()
    assert [handle(_signal("rx-ed", s)) for s in (1, 2, 5, 3)] == ["accepted"] * 4
    assert handle(_signal("rx-ed", 2)) == "duplicate"  # a replay is a duplicate: dropped
    assert handle(_signal("rx-mac", 1), identity=devices["rx-mac"]) == "accepted"
    assert handle(_signal("rx-mac", 2), identity=ed) == "device-mismatch"
    assert receiver.handle("ea/v1/rx-ed/alert", b"\x00garbage", 1) == "malformed"
    storage.commit()
    assert storage.gaps("rx-ed") == [(4, 4)]
    assert storage.gaps("rx-mac") == []
    assert (receiver.accepted, receiver.duplicates) == (5, 1)
    assert storage.rejection_counts() == {"device-mismatch": 1, "malformed": 1}
    summary = {row[0]: row for row in storage.device_summary()}
    assert summary["rx-ed"][1:5] == (4, 5, 1, 1)  # signals, max seq, missing, duplicates
    storage.begin()
    handle(_signal("rx-ed", 4))
    storage.commit()
    assert storage.gaps("rx-ed") == []
    storage.close()


def test_bodies_are_stored_as_signed(fleet, db_url):
    """The receiver stores each body's bytes as the device signed them (no
    decoding and encoding again), for a lone signal and for a bundle; an
    envelope encoded otherwise than canonically has its body encoded by
    the receiver, as before."""
    from edge_agent.core import bundle, cbor

    registry, devices = fleet
    storage = open_storage(db_url)
    receiver = Receiver(None, registry, storage)
    ed = devices["rx-ed"]
    rows = [[1700000000000 + i, "s%d" % i, 20.0 + i / 7.0, 0] for i in range(40)]
    signals = [_signal("rx-ed", seq, body={0: rows[:seq]}) for seq in (1, 2, 3)]
    # Not canonical inside the body (an indefinite-length array): kept as signed.
    odd_body = b"\xa1\x00\x9f\x84\x1b" + (1700000000004).to_bytes(8, "big") + b"\x61x\xf9\x3c\x00\x00\xff"
    odd = sg.Signal(sg.KIND_TELEMETRY, 3, 1700000000004, None, "rx-ed", 4).encode()[:-1] + odd_body
    # Not canonical in the envelope (seq 5 as two bytes): the body is encoded here.
    odder = odd.replace(b"\x03\x04", b"\x03\x18\x05", 1)
    storage.begin()
    assert receiver.handle("ea/v1/rx-ed/telemetry", ed.seal(signals[0].encode()), 1) == "accepted"
    assert receiver.handle("ea/v1/rx-ed/telemetry", ed.seal(bundle.encode([s.encode() for s in signals[1:]])),
                           1) == "accepted"
    assert receiver.handle("ea/v1/rx-ed/telemetry", ed.seal(odd), 1) == "accepted"
    assert receiver.handle("ea/v1/rx-ed/telemetry", ed.seal(odder), 1) == "accepted"
    storage.commit()
    stored = dict(storage.query("SELECT seq, body FROM signals"))
    assert [stored[s.seq] for s in signals] == [cbor.dumps(s.body) for s in signals]
    assert stored[4] == odd_body and cbor.loads(stored[4]) == {0: [[1700000000004, "x", 1.0, 0]]}
    assert stored[5] == cbor.dumps(cbor.loads(odd_body)) != odd_body
    storage.close()


def test_dedupe_survives_restart(fleet, db_url):
    registry, devices = fleet
    data = devices["rx-ed"].seal(_signal("rx-ed", 7).encode())
    for expected in ("accepted", "duplicate"):
        storage = open_storage(db_url)
        storage.begin()
        assert Receiver(None, registry, storage).handle("ea/v1/rx-ed/telemetry", data, 1) == expected
        storage.commit()
        storage.close()
    storage = open_storage(db_url)
    assert storage.gaps("rx-ed") == [(1, 6)]
    assert storage.query("SELECT COUNT(*) FROM envelopes") == [(1,)]  # the duplicate's envelope is not kept
    storage.close()


async def _publish_all(settings, messages):
    async with aiomqtt.Client(settings.host, settings.port, tls_context=settings.tls_context) as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1)


async def _until(predicate, timeout_s=20):
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out: %s" % (predicate.__doc__ or "")
        await asyncio.sleep(0.05)


def test_shared_subscription_splits_load_and_rejects_garbage(fleet, pki, broker, tmp_path):
    registry, devices = fleet
    receivers = [
        Receiver(_settings(pki, broker, "rx-%d" % i), registry, Storage(str(tmp_path / ("r%d.sqlite" % i))),
                 group="test-share")
        for i in range(2)
    ]
    n = 300
    messages = []
    for seq in range(1, n + 1):
        signal = _signal("rx-ed", seq)
        messages.append((sg.topic("rx-ed", signal.kind), devices["rx-ed"].seal(signal.encode())))
    garbage = [("ea/v1/rx-ed/alert", b"\xff" * 10), ("ea/v1/rx-ed/alert", messages[0][1][:-5]),
               ("ea/v1/nobody/alert", b"")]

    async def scenario():
        tasks = [asyncio.create_task(r.run()) for r in receivers]
        try:
            await asyncio.wait_for(asyncio.gather(*(r.connected.wait() for r in receivers)), 10)
            await _publish_all(_settings(pki, broker, "rx-pub"), garbage + messages + messages[:20])
            def done():
                return sum(r.accepted for r in receivers) >= n and sum(sum(r.rejected.values()) for r in receivers) >= 3
            try:
                await _until(done)
            except AssertionError:
                raise AssertionError("accepted %s duplicates %s rejected %s" % (
                    [r.accepted for r in receivers], [r.duplicates for r in receivers], [r.rejected for r in receivers]))
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    asyncio.run(scenario())
    accepted = [r.accepted for r in receivers]
    assert sum(accepted) == n
    assert all(a > 0 for a in accepted), accepted  # both instances took a share
    seqs = set()
    for r in receivers:
        rows = r.storage.db.execute("SELECT seq FROM signals WHERE device='rx-ed'").fetchall()
        seqs |= {row[0] for row in rows}
    assert seqs == set(range(1, n + 1))
    reasons = {}
    for r in receivers:
        for reason, count in r.rejected.items():
            reasons[reason] = reasons.get(reason, 0) + count
    assert reasons == {"malformed": 3}


def test_receiver_cli_end_to_end_with_a_real_agent(pki, broker, start_agent, pty, tmp_path, registry):
    """Agent -> broker -> `edge-agent receiver run` -> SQLite -> `receiver report`."""
    from edge_agent.core import frames as fr

    # The receiver subscribes before the device's first signal (its birth).
    identity = create_identity(str(tmp_path / "rx-agent"), "rx-agent")
    registry_file = tmp_path / "devices.toml"
    registry_file.write_text(identity.registry_entry())
    db = str(tmp_path / "rx.sqlite")
    cert, key = pki.client("rx-cli")
    receiver = Child("receiver", edge_agent_argv(
        "receiver", "run", "--registry", str(registry_file), "--db", db, "--no-live", "--group", "",
        "--broker", "127.0.0.1:%d" % broker.port, "--ca", pki.ca_cert, "--cert", cert, "--key", key), relay=False)
    agent = None
    try:
        receiver.wait_for("receiving", 15)
        agent = start_agent(broker.port, "rx-agent", pty.path, extra=("--telemetry-interval-ms", "300"))
        agent.child.wait_for("connected to broker", 20)
        for value in (40, 41, 150, 42):
            pty.write(fr.encode_frame(fr.READING, "coolant_temp", value))
        receiver.wait_for("alert rx-agent", 20)
        agent.child.wait_for("alert #", 10)
    finally:
        if agent is not None:
            agent.stop()
        receiver.stop()
    report = Child("report", edge_agent_argv("receiver", "report", "--db", db, "--fail-on-gaps"), relay=False)
    assert report.process.wait(30) == 0, report.text()
    report.stop()
    assert "rx-agent" in report.text()
    with sqlite3.connect(db) as connection:
        kinds = {row[0] for row in connection.execute("SELECT kind FROM signals WHERE device='rx-agent'")}
        texts = [row[0] for row in connection.execute("SELECT text FROM alerts WHERE device='rx-agent'")]
    assert sg.KIND_ALERT in kinds and sg.KIND_BIRTH in kinds
    assert any("outside its valid range" in text for text in texts)



def test_receiver_run_writes_its_database_private(pki, broker, tmp_path):
    """Issue 17 item 12: runtime files followed the umask (the database came
    out 0644). `receiver run` sets a 077 umask before opening it, whatever
    umask it was started with: the database, its WAL and shared memory are
    0600. A database left readable from before is named with the fix."""
    import os
    import stat
    import time

    identity = create_identity(str(tmp_path / "rx-mode"), "rx-mode")
    registry_file = tmp_path / "devices.toml"
    registry_file.write_text(identity.registry_entry())
    cert, key = pki.receiver("rx-mode")  # may read every device (docs/deploy/mosquitto.acl)
    stale = tmp_path / "stale.sqlite"
    stale.write_bytes(b"")
    os.chmod(stale, 0o644)
    for db, name in ((str(tmp_path / "rx.sqlite"), "rx-mode-receiver"), (str(stale), "rx-mode-stale")):
        argv = edge_agent_argv(
            "receiver", "run", "--registry", str(registry_file), "--db", db, "--no-live", "--group", "",
            "--broker", "127.0.0.1:%d" % broker.port, "--ca", pki.ca_cert, "--cert", cert, "--key", key)
        # Started the way a shell with the common umask starts it.
        receiver = Child(name, ["sh", "-c", 'umask 022; exec "$@"', "sh", *argv], relay=False)
        try:
            receiver.wait_for("receiving", 15)
            if db != str(stale):
                signal = _signal("rx-mode", 1)
                asyncio.run(_publish_all(_settings(pki, broker, "rx-mode"),  # the device itself
                                         [(sg.topic("rx-mode", signal.kind), identity.seal(signal.encode()))]))
                deadline = time.monotonic() + 20
                while not sqlite3.connect(db).execute("SELECT COUNT(*) FROM signals").fetchone()[0]:
                    assert time.monotonic() < deadline, receiver.text()
                    time.sleep(0.1)
                modes = dict((suffix, stat.S_IMODE(os.stat(db + suffix).st_mode)) for suffix in ("", "-wal", "-shm"))
                assert modes == {"": 0o600, "-wal": 0o600, "-shm": 0o600}, modes
            else:
                assert "stale.sqlite is readable by group or others (mode 644); run `chmod 600 %s*`" % db \
                    in receiver.text()
        finally:
            receiver.stop()


def test_the_reconnect_backoff_starts_over_after_a_session(fleet, pki, tmp_path, caplog):
    """Short broker outages one after another: each is a new outage, so the
    receiver's first retry waits the first delay again (it used to keep
    doubling across outages: after five blips every later one kept it away
    15 s)."""
    registry, _ = fleet
    own = Mosquitto(str(tmp_path / "blinking"), pki=pki, acl=pki.acl).start()
    pki.brokers.append(own)
    receiver = Receiver(_settings(pki, own, "rx-backoff"), registry, Storage(str(tmp_path / "r.sqlite")))
    first_waits = []

    async def scenario():
        task = asyncio.create_task(receiver.run())
        try:
            for _ in range(4):
                await asyncio.wait_for(receiver.connected.wait(), 20)
                mark = len(caplog.records)
                own.stop()
                await _until(lambda: not receiver.connected.is_set() and len(caplog.records) > mark)
                retry = [r.getMessage() for r in caplog.records[mark:] if "reconnecting in" in r.getMessage()][0]
                first_waits.append(float(re.search(r"reconnecting in ([\d.]+) s", retry).group(1)))
                own.start()
            await asyncio.wait_for(receiver.connected.wait(), 20)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    try:
        with caplog.at_level("WARNING", logger="edge_agent.receiver"):
            asyncio.run(scenario())
    finally:
        pki.brokers.remove(own)
        own.stop()
        receiver.storage.close()
    assert first_waits == [0.5] * 4, first_waits
