"""A batch's single alerts stored in waves (edge_agent/receiver/alert_waves.py)
end as if each message had been stored on its own: hypothesis makes
sequences of signed alerts (raises and clears of a few ticket keys, seqs
out of order, the same seq twice), telemetry and garbage among them, cut
into batches with acknowledgements between, and the batch path
(``Receiver._store_batch``) on PostgreSQL and on SQLite must leave the same
signals, alerts, devices' rows, tickets, ticket links and counters as the
message-by-message path (``Receiver.handle``) on SQLite. Real keys, a
real PostgreSQL server."""

import aiomqtt
from alert_support import T0, alert, fleet  # noqa: F401 (fleet: a fixture)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.core import signals as sg
from edge_agent.receiver import alert_waves, tickets
from edge_agent.receiver.service import Receiver
from edge_agent.receiver.storage import open_storage

DEVICES = ("pump-1", "pump-2")
message_kinds = st.sampled_from(["alert"] * 8 + ["telemetry", "status", "garbage"])
messages = st.lists(st.tuples(message_kinds, st.sampled_from(DEVICES), st.integers(1, 10), st.booleans(),
                              st.sampled_from(["out_of_range", "stuck"])), min_size=1, max_size=30)
cuts = st.lists(st.integers(1, 12), min_size=1, max_size=8)
acks = st.lists(st.tuples(st.sampled_from(DEVICES), st.sampled_from(["out_of_range", "stuck"])), max_size=4)


def _payload(identities, kind, device, seq, active, condition):
    if kind == "alert":
        return alert(identities, device, seq, active, condition=condition)
    if kind == "telemetry":
        signal = sg.Signal(sg.KIND_TELEMETRY, 3, T0 + seq * 1000, {0: []}, device, seq)
        return sg.topic(device, signal.kind), identities[device].seal(signal.encode())
    if kind == "status":
        return sg.status_topic(device), sg.status_payload(device, active)
    return sg.topic(device, sg.KIND_ALERT), b"\xa1\x01garbage"


def _batches(items, sizes):
    batches, first = [], 0
    while first < len(items):
        size = sizes[len(batches) % len(sizes)]
        batches.append(items[first:first + size])
        first += size
    return batches


def _acknowledge(storage, keys):
    """Acknowledge the unresolved tickets of ``keys`` that can be (by key: ids differ between databases)."""
    for device, condition in keys:
        rows = storage.query("SELECT id FROM tickets WHERE device = ? AND condition = ? AND state IN ('open', "
                             "'cleared')", (device, condition))
        for (ticket_id,) in rows:
            tickets.acknowledge(storage, ticket_id, "alice", "", T0)


def _state(storage, receiver):
    """What the two paths must agree on (ids and receiver times left out)."""
    key = "t.device, t.component, t.condition, t.opened_ms"
    return {
        "signals": storage.query("SELECT device, seq, kind, body FROM signals ORDER BY device, seq"),
        "alerts": storage.query("SELECT * FROM alerts ORDER BY device, seq"),
        "devices": storage.query("SELECT device, duplicates, confirmed, online FROM devices ORDER BY device"),
        "envelopes": storage.query("SELECT COUNT(*) FROM envelopes"),
        "tickets": storage.query(
            "SELECT device, component, condition, state, severity, text, action, opened_ms, last_seq, alerts, "
            "acked_by, cleared_ms, resolved_ms IS NULL FROM tickets ORDER BY device, component, condition, opened_ms"),
        "links": storage.query("SELECT a.device, a.seq, %s FROM ticket_alerts a JOIN tickets t ON t.id = a.ticket "
                               "ORDER BY a.device, a.seq" % key),
        "rejections": storage.query("SELECT reason FROM rejections ORDER BY id"),
        "counters": (receiver.accepted, receiver.duplicates, receiver.rejected, receiver.stored_by_kind),
    }


def _one_by_one(url, registry, batches, ack_keys):
    storage = open_storage(url)
    receiver = Receiver(None, registry, storage)
    for number, batch in enumerate(batches):
        storage.begin()
        # In _store_batch's order: sorted by device, each device's in order.
        for topic, payload in sorted(batch, key=lambda message: message[0].split("/")[2]):
            receiver.handle(topic, payload, T0 + 60_000)
        storage.commit()
        _acknowledge(storage, ack_keys[number:number + 1])
    try:
        return _state(storage, receiver)
    finally:
        storage.close()


def _in_batches(url, registry, batches, ack_keys):
    storage = open_storage(url)
    receiver = Receiver(None, registry, storage)
    for number, batch in enumerate(batches):
        receiver._store_batch([aiomqtt.Message(topic, payload, 1, False, mid + 1, None)
                               for mid, (topic, payload) in enumerate(batch)])
        _acknowledge(storage, ack_keys[number:number + 1])
    try:
        return _state(storage, receiver)
    finally:
        storage.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(items=messages, sizes=cuts, ack_keys=acks)
def test_alerts_stored_in_waves_end_as_if_stored_one_by_one(fleet, postgres_server, tmp_path_factory, items, sizes,
                                                            ack_keys):
    identities, registry = fleet
    batches = _batches([_payload(identities, *item) for item in items], sizes)
    directory = tmp_path_factory.mktemp("waves")
    expected = _one_by_one(str(directory / "one-by-one.sqlite"), registry, batches, ack_keys)
    assert _in_batches(str(directory / "batches.sqlite"), registry, batches, ack_keys) == expected
    assert _in_batches(postgres_server.create_database(), registry, batches, ack_keys) == expected


def test_a_ticket_key_or_a_seq_seen_again_starts_a_new_wave(fleet):
    """The n-th alert of a ticket key, or of a (device, seq), goes in the
    n-th wave; alerts of other keys share the first."""
    identities, registry = fleet
    alerts = []
    for device, seq, active, condition in (("pump-1", 1, True, "stuck"), ("pump-1", 2, False, "stuck"),
                                           ("pump-2", 1, True, "stuck"), ("pump-1", 3, True, "out_of_range"),
                                           ("pump-2", 1, True, "out_of_range"), ("pump-1", 4, True, "stuck")):
        topic, payload = alert(identities, device, seq, active, condition=condition)
        signal = registry.open_signals(payload, topic, [])[0]
        alerts.append((payload, signal, b""))
    assert [[(a[1].device, a[1].seq) for a in wave] for wave in alert_waves.waves(alerts)] == [
        [("pump-1", 1), ("pump-2", 1), ("pump-1", 3)],
        [("pump-1", 2), ("pump-2", 1)],
        [("pump-1", 4)],
    ]


def test_a_status_between_alerts_of_a_batch_keeps_its_place(db_url, fleet):
    """A status message sets its device's row between the alerts before and
    after it: the waiting alerts are stored before it is."""
    identities, registry = fleet
    storage = open_storage(db_url)
    receiver = Receiver(None, registry, storage)
    batch = [alert(identities, "pump-1", 1, True), (sg.status_topic("pump-1"), sg.status_payload("pump-1", True))]
    receiver._store_batch([aiomqtt.Message(topic, payload, 1, False, mid + 1, None)
                           for mid, (topic, payload) in enumerate(batch)])
    # The alert confirmed the device first; the status that followed is unconfirmed until a fresh signal.
    assert storage.query("SELECT online, confirmed FROM devices") == [(1, 0)]
    storage.close()


def test_a_wave_that_fails_undoes_its_batch_which_is_handled_again_message_by_message(fleet, postgres_server):
    """A statement storing a wave raises (a trigger refuses one alert): the
    batch is undone and handled again under a savepoint per message, so
    that alert alone is rejected and the others are stored, counted once."""
    identities, registry = fleet
    storage = open_storage(postgres_server.create_database())
    receiver = Receiver(None, registry, storage)
    storage.execute("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    "IF NEW.seq = 13 THEN RAISE EXCEPTION 'refused by a test trigger'; END IF; RETURN NEW; END $$")
    storage.execute("CREATE TRIGGER refuse BEFORE INSERT ON signals FOR EACH ROW EXECUTE FUNCTION refuse()")
    receiver._store_batch([aiomqtt.Message(*alert(identities, "pump-1", seq, seq != 14), 1, False, seq, None)
                           for seq in (12, 13, 14)])
    assert storage.query("SELECT seq FROM signals ORDER BY seq") == [(12,), (14,)]
    assert storage.query("SELECT reason FROM rejections") == [("internal-error",)]
    assert (receiver.accepted, receiver.rejected) == (2, {"internal-error": 1})
    assert storage.query("SELECT state, alerts FROM tickets") == [("cleared", 2)]
    storage.close()
