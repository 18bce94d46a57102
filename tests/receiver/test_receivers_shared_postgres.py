"""Several receivers, one PostgreSQL database, exactly once (issue 20):
three `edge-agent receiver run` processes in one shared-subscription group
on a real mosquitto, a fleet of 200 signed devices publishing, two receivers
killed (SIGKILL) mid-run, a third and two thirds of the way in, and started
again. Every (device, seq) is stored
once, nothing is missing, duplicates are counted, and fleet escalation,
run by all three together, raises the incident once and publishes its
advisory once: the same incident a single receiver on SQLite raises from
the same messages."""

import asyncio
import os
import time

import aiomqtt
import pytest

from edge_agent.broker import client_context
from edge_agent.core import operator as op
from edge_agent.core import signals as sg
from edge_agent.keys.identity import create_identity
from edge_agent.keys.operators import create_operator
from edge_agent.receiver import fleet
from edge_agent.receiver.registry import Registry
from edge_agent.receiver.service import Receiver
from edge_agent.receiver.storage import open_storage
from simulator.fixtures.processes import Child, edge_agent_argv

pytestmark = pytest.mark.integration

MODEL = "EA-SHARE"
DEVICES = 200
SIGNALS = 20  # telemetry per device, then one alert from each of the first ALERTING devices
ALERTING = 5
REPLAYS = 40  # messages published twice: duplicates to drop and count
RECEIVERS = 3


def _fleet(tmp_path):
    identities = {}
    lines = []
    for index in range(DEVICES):
        device_id = "share-%03d" % index
        identity = create_identity(str(tmp_path / "ids" / device_id), device_id)
        lines.append(identity.registry_entry(model=MODEL))
        identities[device_id] = identity
    registry_file = tmp_path / "devices.toml"
    registry_file.write_text("\n".join(lines))
    return identities, str(registry_file)


def _messages(identities):
    """[(topic, payload)] in publish order: every device's telemetry round
    by round, the alerts of the last round, then the replays."""
    start = time.time_ns() // 1_000_000
    alert = {sg.A_CONDITION: "stuck", sg.A_COMPONENT: "cabinet_fan", sg.A_SENSOR: "fan_speed", sg.A_ACTIVE: True,
             sg.A_TEXT: "fan stuck", sg.A_SEVERITY: "warning"}
    messages = []
    for seq in range(1, SIGNALS + 2):
        for index, (device_id, identity) in enumerate(sorted(identities.items())):
            if seq <= SIGNALS:
                signal = sg.Signal(sg.KIND_TELEMETRY, 3, start + seq, {0: [[start + seq, "t", 20.0 + seq, 0]]},
                                   device_id, seq)
            elif index < ALERTING:
                signal = sg.Signal(sg.KIND_ALERT, 1, start + seq, alert, device_id, seq)
            else:
                continue
            messages.append((sg.topic(device_id, signal.kind), identity.seal(signal.encode())))
    return messages + messages[::len(messages) // REPLAYS][:REPLAYS]


async def _publish(context, port, messages, on_progress):
    async with aiomqtt.Client("127.0.0.1", port, tls_context=context) as client:
        for index, (topic, payload) in enumerate(messages):
            await client.publish(topic, payload, qos=1)
            on_progress(index + 1)


async def _collect(context, port, topic, into, ready):
    async with aiomqtt.Client("127.0.0.1", port, tls_context=context) as client:
        await client.subscribe(topic, qos=1)
        ready.set()
        async for message in client.messages:
            into.append(bytes(message.payload))


def test_three_receivers_on_postgresql_store_every_signal_once_and_advise_once(pki, broker, postgres_server,
                                                                               tmp_path):
    identities, registry_file = _fleet(tmp_path)
    operator_dir = str(tmp_path / "operator")
    create_operator(operator_dir, "share-ops")
    url = postgres_server.create_database()
    group = "share-%d" % os.getpid()

    def receiver(index):
        cert, key = pki.receiver("share-rx-%d" % index)
        return Child("rx-%d" % index, edge_agent_argv(
            "receiver", "run", "--registry", registry_file, "--db", url, "--no-live", "--group", group,
            "--client-id", "share-rx-%d" % index, "--fleet-k", "3", "--fleet-fraction", "0",
            "--operator", operator_dir, "--broker", "127.0.0.1:%d" % broker.port, "--ca", pki.ca_cert,
            "--cert", cert, "--key", key), relay=False)

    messages = _messages(identities)
    harness = client_context(pki.ca_cert, *pki.harness("share-harness"))
    listener = client_context(pki.ca_cert, *pki.harness("share-listener"))  # its own CN: its own session
    advisories = []
    receivers = []
    try:
        receivers = [receiver(i) for i in range(RECEIVERS)]
        for child in receivers:
            child.wait_for("receiving", 20)
        killed = {}

        def progress(count):
            # A third and two thirds of the way in, a receiver dies mid-batch
            # (each comes back once the devices have published).
            for victim, at in ((0, len(messages) // 3), (1, 2 * len(messages) // 3)):
                if count == at and victim not in killed:
                    receivers[victim].kill()
                    killed[victim] = count

        async def scenario():
            ready = asyncio.Event()
            collector = asyncio.create_task(_collect(listener, broker.port, op.model_command_topic(MODEL),
                                                     advisories, ready))
            await asyncio.wait_for(ready.wait(), 10)
            await _publish(harness, broker.port, messages, progress)
            await asyncio.sleep(0.5)
            for victim in sorted(killed):
                # The same client id: its session's unacknowledged messages come back.
                receivers[victim] = receiver(victim)
                await asyncio.get_running_loop().run_in_executor(None, receivers[victim].wait_for, "receiving", 20)
            deadline = time.monotonic() + 120
            expected = DEVICES * SIGNALS + ALERTING
            while time.monotonic() < deadline:
                storage = open_storage(url)
                try:
                    stored = storage.query("SELECT COUNT(*) FROM signals")[0][0]
                    sent = storage.query("SELECT COUNT(*) FROM fleet_advisories WHERE sent_ms IS NOT NULL")[0][0]
                finally:
                    storage.close()
                if stored >= expected and sent == DEVICES and advisories:
                    break
                await asyncio.sleep(0.3)
            await asyncio.sleep(1.0)  # a second advisory, if one were coming
            collector.cancel()

        asyncio.run(scenario())
        assert sorted(killed) == [0, 1], "receivers killed: %s" % killed
    finally:
        for child in receivers:
            child.stop()
    logs = "\n".join(child.text()[-3000:] for child in receivers)
    storage = open_storage(url)
    try:
        stored = storage.query("SELECT device, seq FROM signals")
        assert len(stored) == len(set(stored)) == DEVICES * SIGNALS + ALERTING, logs
        for device_id in identities:
            assert storage.gaps(device_id) == [], device_id
        duplicates = sum(row[4] for row in storage.device_summary())
        assert duplicates >= REPLAYS, duplicates  # the replays, and any redelivery after the kill
        assert storage.rejection_counts() == {}, logs
        incidents = fleet.incidents(storage)
        assert len(incidents) == 1, incidents
        assert incidents[0][1:4] == (MODEL, "cabinet_fan", "stuck") and incidents[0][4] == ALERTING
        assert incidents[0][8:10] == (DEVICES, DEVICES)  # queued and sent, for every device of the model
    finally:
        storage.close()
    assert len(advisories) == 1, "advisories published: %d\n%s" % (len(advisories), logs)
    # The same messages through one receiver on SQLite raise the same incident.
    single = _single_receiver_incidents(tmp_path, registry_file, operator_dir, messages)
    # (model, component, condition, devices, N, threshold, raised at): the same.
    assert [row[1:8] for row in single] == [row[1:8] for row in incidents], (single, incidents)


def _single_receiver_incidents(tmp_path, registry_file, operator_dir, messages):
    from edge_agent.keys.operators import load_operator

    registry = Registry()
    registry.add_entries(open(registry_file).read())
    storage = open_storage(str(tmp_path / "single.sqlite"))
    watch = fleet.FleetWatch(registry, storage, fleet.FleetSettings(k=3, fraction=0), load_operator(operator_dir))
    single = Receiver(None, registry, storage, fleet=watch)
    storage.begin()
    for topic, payload in messages:
        single.handle(topic, payload, time.time_ns() // 1_000_000)
    storage.commit()
    rows = fleet.incidents(storage)
    storage.close()
    return rows


def test_two_receivers_deciding_at_once_raise_one_incident(tmp_path, postgres_server):
    """The fleet lock, deterministically: receiver A has stored three
    reports (the threshold: an incident raised, not yet committed) when
    receiver B takes three more. B waits for A's commit, then sees A's
    incident and joins it; without the lock B would see none of A's
    reports and raise a second incident."""
    import threading

    identities, registry_file = _fleet(tmp_path)
    registry = Registry()
    registry.add_entries(open(registry_file).read())
    operator = create_operator(str(tmp_path / "operator"), "share-ops")
    url = postgres_server.create_database()
    now = time.time_ns() // 1_000_000
    alert = {sg.A_CONDITION: "stuck", sg.A_COMPONENT: "cabinet_fan", sg.A_ACTIVE: True, sg.A_TEXT: "fan stuck"}

    def rig():
        storage = open_storage(url)
        watch = fleet.FleetWatch(registry, storage, fleet.FleetSettings(k=3, fraction=0), operator)
        return storage, Receiver(None, registry, storage, fleet=watch)

    def alerts(receiver, devices):
        for device_id in devices:
            signal = sg.Signal(sg.KIND_ALERT, 1, now, alert, device_id, 1)
            assert receiver.handle(sg.topic(device_id, sg.KIND_ALERT), identities[device_id].seal(signal.encode()),
                                   now) == "accepted"

    devices = sorted(identities)
    (storage_a, a), (storage_b, b) = rig(), rig()
    storage_a.begin()
    alerts(a, devices[:3])
    assert len(a.fleet.raised) == 1

    def other():
        storage_b.begin()
        alerts(b, devices[3:6])
        storage_b.commit()

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(1.0)
    assert thread.is_alive(), "B decided while A's incident was uncommitted"
    storage_a.commit()
    thread.join(10)
    assert not thread.is_alive()
    assert b.fleet.raised == []
    incidents = fleet.incidents(storage_a)
    assert len(incidents) == 1 and incidents[0][4] == 6, incidents  # one incident, B's devices joined it
    assert storage_a.query("SELECT COUNT(*), COUNT(DISTINCT counter) FROM fleet_advisories") == [(DEVICES, 1)]
    storage_a.close()
    storage_b.close()


class _Message:
    """What the receiver reads of an aiomqtt message."""

    def __init__(self, topic, payload):
        self.topic, self.payload, self.retain, self.qos, self.mid = topic, payload, False, 1, 0


def test_a_batch_the_database_aborts_in_a_deadlock_is_handled_again(tmp_path, postgres_server, caplog):
    """Another receiver holds device B's row and then wants device A's,
    while this receiver's batch holds A's and waits for B's: PostgreSQL
    aborts this batch (the deadlock's victim). The receiver rolls it back
    and handles it again once the other has committed: both signals
    stored, the counters counting them once."""
    import threading

    import psycopg

    identities, registry_file = _fleet(tmp_path)
    registry = Registry()
    registry.add_entries(open(registry_file).read())
    url = postgres_server.create_database()
    storage = open_storage(url)
    receiver = Receiver(None, registry, storage)
    device_a, device_b = sorted(identities)[:2]

    def message(device_id, seq):
        signal = sg.Signal(sg.KIND_TELEMETRY, 3, 1_800_000_000_000, {0: []}, device_id, seq)
        return _Message(sg.topic(device_id, signal.kind), identities[device_id].seal(signal.encode()))

    receiver._store_batch([message(device_a, 1), message(device_b, 1)])  # both devices' rows exist
    # This receiver is the victim: it waits first and checks for a deadlock after 2 s, the other after 30 s.
    storage.execute("SET deadlock_timeout = '2s'")
    other = psycopg.connect(url)
    other.execute("SET deadlock_timeout = '30s'")
    other.execute("SET lock_timeout = '15s'")  # a receiver that never lets go fails the test, not hangs it
    other.execute("UPDATE devices SET duplicates = duplicates WHERE device = %s", (device_b,))
    batch = threading.Thread(target=receiver._store_batch, args=([message(device_a, 2), message(device_b, 2)],))
    with caplog.at_level("WARNING", logger="edge_agent.receiver"):
        batch.start()
        with psycopg.connect(url, autocommit=True) as watcher:
            deadline = time.monotonic() + 10
            while watcher.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                                  (storage.db.info.backend_pid,)).fetchone()[0] != "Lock":
                assert time.monotonic() < deadline, "the batch never waited for device B's row"
                time.sleep(0.02)
        other.execute("UPDATE devices SET duplicates = duplicates WHERE device = %s", (device_a,))  # the cycle
        other.commit()
        other.close()
        batch.join(20)
    assert not batch.is_alive()
    assert "database aborted a batch of 2 messages" in caplog.text
    assert storage.query("SELECT device, seq FROM signals WHERE seq = 2 ORDER BY device") == [(device_a, 2),
                                                                                                 (device_b, 2)]
    assert (receiver.accepted, receiver.duplicates) == (4, 0)
    storage.close()
