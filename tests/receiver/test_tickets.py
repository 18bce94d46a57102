"""Tickets (edge_agent/receiver/tickets.py) on both backends: the
lifecycle from real signed alerts through the receiver's handler, the
acknowledgement audited, alerts out of order, one ticket per key when two
receivers on one PostgreSQL open it at once, and the upgrade from schema 3.
Real SQLite, a real PostgreSQL server, real keys."""

import os
import shutil
import threading

import pytest
from alert_support import T0, alert, fleet  # noqa: F401 (fleet: a fixture)

from edge_agent.core import signals as sg
from edge_agent.keys.identity import create_identity
from edge_agent.receiver import tickets
from edge_agent.receiver.registry import Registry
from edge_agent.receiver.service import Receiver
from edge_agent.receiver.storage import SCHEMA_VERSION, open_storage

SCHEMA3_DB = os.path.join(os.path.dirname(__file__), "data", "schema3.sqlite")


def handle(receiver, *messages):
    receiver.storage.begin()
    outcomes = [receiver.handle(topic, payload, T0 + 5000) for topic, payload in messages]
    receiver.storage.commit()
    assert set(outcomes) == {"accepted"}, outcomes


def test_a_ticket_opens_joins_is_acknowledged_and_resolves(db_url, fleet):
    identities, registry = fleet
    storage = open_storage(db_url)
    receiver = Receiver(None, registry, storage)
    handle(receiver, alert(identities, "pump-1", 1, True), alert(identities, "pump-1", 2, True))
    [ticket] = tickets.tickets(storage)
    assert (ticket["device"], ticket["component"], ticket["condition"], ticket["state"], ticket["alerts"]) == \
        ("pump-1", "coolant_pump", "out_of_range", "open", 2)
    assert ticket["action"] == "check the coolant pump (part CP-7)" and ticket["opened_ms"] == T0 + 1000
    # Another condition of the same component, another device: tickets of their own.
    handle(receiver, alert(identities, "pump-1", 3, True, condition="stuck"), alert(identities, "pump-2", 1, True))
    assert len(tickets.tickets(storage)) == 3
    acked = tickets.acknowledge(storage, ticket["id"], "alice", "pump swap booked", T0 + 9000)
    assert (acked["state"], acked["acked_by"], acked["acked_ms"], acked["ack_note"]) == \
        ("acknowledged", "alice", T0 + 9000, "pump swap booked")
    with pytest.raises(tickets.TicketError, match="acknowledged.*by alice"):
        tickets.acknowledge(storage, ticket["id"], "bob", "", T0 + 9500)
    handle(receiver, alert(identities, "pump-1", 4, False))  # cleared after the acknowledgement: resolved
    detail = tickets.ticket_detail(storage, ticket["id"])
    assert detail["state"] == "resolved" and detail["resolved_ms"] == T0 + 5000 and detail["cleared_ms"] == T0 + 4000
    assert [(a["seq"], a["active"]) for a in detail["alerts"]] == [(1, 1), (2, 1), (4, 0)]
    assert detail["audit"] == [{"time_ms": T0 + 9000, "who": "alice", "action": "acknowledge",
                                "note": "pump swap booked"}]
    # The same fault again: a new ticket; cleared before anyone acknowledged it, then acknowledged: resolved.
    handle(receiver, alert(identities, "pump-1", 5, True))
    handle(receiver, alert(identities, "pump-1", 6, False))
    [again] = [t for t in tickets.tickets(storage, states=("cleared",))]
    assert again["id"] != ticket["id"] and again["alerts"] == 2
    assert tickets.acknowledge(storage, again["id"], "bob", None, T0 + 10_000)["state"] == "resolved"
    with pytest.raises(tickets.TicketError, match="resolved"):
        tickets.acknowledge(storage, again["id"], "bob", None, T0 + 10_000)
    with pytest.raises(tickets.TicketError, match="no ticket"):
        tickets.acknowledge(storage, 999_999, "bob", None, T0)
    with pytest.raises(tickets.TicketError, match="who is required"):
        tickets.acknowledge(storage, again["id"], "  ", None, T0)
    with pytest.raises(tickets.TicketError, match="control characters"):
        tickets.acknowledge(storage, again["id"], "eve\x1b[2J", None, T0)
    assert len(tickets.tickets(storage, states=("open", "acknowledged", "cleared"))) == 2
    storage.close()


def test_an_older_alert_joins_its_ticket_without_changing_it(db_url, fleet):
    """After an outage a device's lanes forward its raises before its
    clears: a clear older than the raise that set the state changes nothing;
    a clear that beats its own raise is taken by the ticket the raise opens."""
    identities, registry = fleet
    storage = open_storage(db_url)
    receiver = Receiver(None, registry, storage)
    handle(receiver, alert(identities, "pump-1", 1, True), alert(identities, "pump-1", 3, True))
    handle(receiver, alert(identities, "pump-1", 2, False))  # cleared between the two raises, arriving last
    [ticket] = tickets.tickets(storage)
    assert (ticket["state"], ticket["alerts"], ticket["last_seq"]) == ("open", 3, 3)
    # Another key: its clear arrives before its raise; the late raise opens the ticket, which takes the clear.
    handle(receiver, alert(identities, "pump-2", 5, False))
    assert tickets.tickets(storage, device="pump-2") == []
    handle(receiver, alert(identities, "pump-2", 4, True))
    [late] = tickets.tickets(storage, device="pump-2")
    assert (late["state"], late["alerts"], late["last_seq"], late["cleared_ms"]) == ("cleared", 2, 5, T0 + 5000)
    assert [a["seq"] for a in tickets.ticket_detail(storage, late["id"])["alerts"]] == [4, 5]
    storage.close()


def test_two_receivers_raising_at_once_open_one_ticket(fleet, postgres_server):
    """Receiver A has opened the ticket, uncommitted, when receiver B stores
    another alert of the same key: B waits for A's commit and joins A's
    ticket (the partial unique index), it does not open a second."""
    identities, registry = fleet
    url = postgres_server.create_database()
    storage_a, storage_b = open_storage(url), open_storage(url)
    a, b = Receiver(None, registry, storage_a), Receiver(None, registry, storage_b)
    storage_a.begin()
    topic, payload = alert(identities, "pump-1", 1, True)
    assert a.handle(topic, payload, T0) == "accepted"

    def other():
        handle(b, alert(identities, "pump-1", 2, True))

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(1.0)
    assert thread.is_alive(), "B went on while A's ticket was uncommitted"
    storage_a.commit()
    thread.join(10)
    assert not thread.is_alive()
    [ticket] = tickets.tickets(storage_a)
    assert ticket["alerts"] == 2 and ticket["state"] == "open"
    storage_a.close()
    storage_b.close()


def test_a_schema_3_database_is_upgraded_and_new_alerts_open_tickets(tmp_path, fleet):
    """data/schema3.sqlite was written by the receiver before tickets
    (make_schema3_db.py): old-1 raised, old-2 raised and cleared. It opens
    as the current schema (4 added tickets, 5 gap repair) with its alerts; alerts stored before the upgrade have no
    ticket (a clear of one changes nothing), a new raise opens one."""
    path = str(tmp_path / "receiver.sqlite")
    shutil.copy(SCHEMA3_DB, path)
    storage = open_storage(path)
    assert storage.query("SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
    assert SCHEMA_VERSION == 5
    assert storage.query("SELECT device, seq, active FROM alerts ORDER BY device, seq") == [
        ("old-1", 1, 1), ("old-2", 1, 1), ("old-2", 2, 0)]
    assert tickets.tickets(storage) == [] and storage.query("SELECT COUNT(*) FROM outbox") == [(0,)]
    identities, registry = fleet
    registry = Registry()
    old = create_identity(str(tmp_path / "old-1"), "old-1")
    registry.add_entries(old.registry_entry())
    receiver = Receiver(None, registry, storage)
    body = {sg.A_CONDITION: "stuck", sg.A_COMPONENT: "cabinet_fan", sg.A_ACTIVE: True, sg.A_TEXT: "fan stuck",
            sg.A_SEVERITY: "warning", sg.A_ACTION: "replace the fan"}
    signal = sg.Signal(sg.KIND_ALERT, 1, T0 + 9000, body, "old-1", 9)
    storage.begin()
    assert receiver.handle(sg.topic("old-1", sg.KIND_ALERT), old.seal(signal.encode()), T0) == "accepted"
    storage.commit()
    [ticket] = tickets.tickets(storage)
    assert (ticket["device"], ticket["state"], ticket["action"]) == ("old-1", "open", "replace the fan")
    storage.close()


def test_tickets_are_listed_and_acknowledged_from_the_command_line(tmp_path, fleet):
    import subprocess
    import sys

    from simulator import ROOT

    identities, registry = fleet
    db = str(tmp_path / "receiver.sqlite")
    storage = open_storage(db)
    handle(Receiver(None, registry, storage), alert(identities, "pump-2", 1, True))
    [ticket] = tickets.tickets(storage)
    storage.close()

    def cli(*argv):
        return subprocess.run([sys.executable, "-m", "edge_agent", "receiver", *argv, "--db", db], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)

    listed = cli("tickets")
    assert listed.returncode == 0 and "#%d open" % ticket["id"] in listed.stdout, listed
    assert "pump-2/coolant_pump out_of_range" in listed.stdout and "action: check the coolant pump" in listed.stdout
    acked = cli("ack", str(ticket["id"]), "--who", "alice", "--note", "on it")
    assert acked.returncode == 0 and "acknowledged by alice" in acked.stdout, acked
    again = cli("ack", str(ticket["id"]), "--who", "bob")
    assert again.returncode == 1 and "is acknowledged (by alice): nothing to acknowledge" in again.stderr, again
    assert cli("outbox", "--requeue", "7").returncode == 1  # no such dead letter
    missing = subprocess.run([sys.executable, "-m", "edge_agent", "receiver", "tickets", "--db",
                              str(tmp_path / "none.sqlite")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no such database" in missing.stderr, missing
