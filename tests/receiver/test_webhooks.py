"""Alert routing (edge_agent/receiver/routes.py, routing.py, outbox.py,
webhooks.py, webhook_sender.py) on both backends: real signed alerts
through the receiver's handler, the outbox written in their transaction,
delivered by the sender to a real HTTP server (aiohttp's), the signature
checked with hmac as a target would, retries, a dead letter after the
limit, leases across senders, and the routes file's errors."""

import asyncio
import hashlib
import hmac
import json
import logging
import os
import time

import aiohttp
import pytest
from alert_support import alert, fleet  # noqa: F401 (fleet: a fixture)
from webhook_target import WebhookTarget

from edge_agent.receiver import outbox, tickets, webhooks
from edge_agent.receiver.routes import RoutesError, load_routes
from edge_agent.receiver.routing import AlertRouting
from edge_agent.receiver.service import Receiver
from edge_agent.receiver.storage import open_storage
from edge_agent.receiver.webhook_sender import WebhookSender

SECRET = "9f2c41d7e0b8a6c3f5d1e7a9b2c4d6e8"


def _routes(tmp_path, target_url, extra="", outbox_table='first_retry = "0.05s"\nmax_retry = "0.2s"\n'):
    secret = tmp_path / "hook.secret"
    secret.write_text(SECRET + "\n")
    os.chmod(secret, 0o600)
    path = tmp_path / "routes.toml"
    path.write_text(
        "[outbox]\n%s\n"
        "[[route]]\nname = \"tracker\"\nurl = \"%s\"\nsecret_file = \"%s\"\nseverity = [\"critical\"]\n\n"
        "[[route]]\nname = \"chat\"\nurl = \"%s\"\nformat = \"slack\"\nsecret_env = \"EA_TEST_HOOK\"\n"
        "model = [\"EA-PU*\"]\ndevice = [\"pump-1\"]\n%s" % (outbox_table, target_url, secret, target_url, extra))
    return load_routes(str(path), environ={"EA_TEST_HOOK": SECRET})


def _handle(receiver, *messages):
    """Handle messages in one batch, arriving now (a row is due from its arrival)."""
    receiver.storage.begin()
    for topic, payload in messages:
        assert receiver.handle(topic, payload, time.time_ns() // 1_000_000) == "accepted"
    receiver.storage.commit()


async def _deliver(sender, rounds=1):
    async with aiohttp.ClientSession() as session:
        for _ in range(rounds):
            await sender.deliver_due(session)


def _independent_check(headers, body):
    """What a target does, written from the docs, not with webhooks.verify."""
    fields = dict(part.split("=", 1) for part in headers["X-EdgeAgent-Signature"].split(","))
    expected = hmac.new(SECRET.encode(), fields["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(fields["v1"], expected)
    assert abs(int(fields["t"]) - time.time()) < 60


def test_alerts_are_routed_signed_and_delivered_with_their_ticket(db_url, fleet, tmp_path, caplog):
    identities, registry = fleet
    storage = open_storage(db_url)
    with WebhookTarget() as target:
        routes = _routes(tmp_path, target.url)
        routing = AlertRouting(storage, routes, registry)
        receiver = Receiver(None, registry, storage, routing=routing)
        # A batch the database gives up queues nothing: the rows are in its transaction.
        storage.begin()
        receiver.handle(*alert(identities, "pump-1", 1, True), time.time_ns() // 1_000_000)
        storage.rollback()
        assert storage.query("SELECT COUNT(*) FROM outbox") == [(0,)]
        _handle(receiver, alert(identities, "pump-1", 1, True),  # critical: tracker and chat
                alert(identities, "pump-2", 1, True, severity="warning"),  # neither
                alert(identities, "pump-1", 2, True, condition="stuck", severity="warning"))  # chat
        assert routing.queued
        assert sorted(storage.query("SELECT route, device, seq FROM outbox")) == [
            ("chat", "pump-1", 1), ("chat", "pump-1", 2), ("tracker", "pump-1", 1)]
        sender = WebhookSender(storage, routes)
        with caplog.at_level(logging.DEBUG):
            asyncio.run(_deliver(sender))
        received = target.bodies()
        assert len(received) == 3 and sender.delivered == 3
        for headers, body in received:
            _independent_check(headers, body)
            assert webhooks.verify(SECRET.encode(), body, headers["X-EdgeAgent-Signature"])
            with pytest.raises(webhooks.SignatureError, match="no v1 signature matches"):
                webhooks.verify(SECRET.encode(), body + b" ", headers["X-EdgeAgent-Signature"])
            with pytest.raises(webhooks.SignatureError, match="a replay"):
                webhooks.verify(SECRET.encode(), body, headers["X-EdgeAgent-Signature"], now_s=time.time() + 600)
        by_route = {}
        for headers, body in received:
            row = storage.query("SELECT route FROM outbox WHERE id = ?", (int(headers["X-EdgeAgent-Delivery"]),))
            by_route.setdefault(row[0][0], []).append(json.loads(body))
        [tracked] = by_route["tracker"]
        assert tracked["event"] == "alert.raised" and tracked["model"] == "EA-PUMP"
        assert tracked["alert"]["action"] == "check the coolant pump (part CP-7)" and tracked["alert"]["value"] == 97.5
        ticket = tickets.ticket(storage, tracked["ticket"]["id"])
        assert (tracked["ticket"]["state"], ticket["device"], ticket["condition"]) == ("open", "pump-1", "out_of_range")
        assert all(set(message) == {"text", "blocks"} for message in by_route["chat"])
        assert any("Action: check the coolant pump" in m["text"] for m in by_route["chat"])
        assert storage.query("SELECT COUNT(*) FROM outbox WHERE delivered_ms IS NOT NULL") == [(3,)]
        # The ticket's clear goes to the tracker too, carrying the ticket's new state.
        _handle(receiver, alert(identities, "pump-1", 3, False))
        asyncio.run(_deliver(sender))
        cleared = [json.loads(body) for headers, body in target.bodies()[3:]]
        assert len(cleared) == 2  # tracker and chat
        [tracked] = [message for message in cleared if "ticket" in message]
        assert tracked["event"] == "alert.cleared" and tracked["ticket"]["state"] == "cleared"
        # Someone acknowledges it (resolved: it had cleared): the tracker and the chat hear of it.
        tickets.acknowledge(storage, tracked["ticket"]["id"], "alice", "pump swapped", time.time_ns() // 1_000_000,
                            routing=routing)
        asyncio.run(_deliver(sender))
        acked = {headers["X-EdgeAgent-Event"]: json.loads(body) for headers, body in target.bodies()[5:]}
        assert len(target.bodies()) == 7 and list(acked) == ["ticket.acknowledged"]
        messages = [json.loads(body) for _, body in target.bodies()[5:]]
        [mirror] = [message for message in messages if "ticket" in message]
        assert mirror["alert"] is None and (mirror["ticket"]["state"], mirror["ticket"]["acked_by"],
                                            mirror["ticket"]["ack_note"]) == ("resolved", "alice", "pump swapped")
        [chat] = [message for message in messages if "text" in message]
        assert "resolved by alice" in chat["text"] and "pump swapped" in chat["text"]
    assert SECRET not in caplog.text and SECRET not in repr(routes.routes) and "/hook" not in repr(routes.routes)
    storage.close()


def test_a_target_that_keeps_failing_gets_a_dead_letter_after_the_limit(db_url, fleet, tmp_path):
    identities, registry = fleet
    storage = open_storage(db_url)
    with WebhookTarget(status=503) as target:
        routes = _routes(tmp_path, target.url,
                         outbox_table='max_attempts = 3\nfirst_retry = "0.05s"\nmax_retry = "0.1s"\n')
        receiver = Receiver(None, registry, storage, routing=AlertRouting(storage, routes, registry))
        _handle(receiver, alert(identities, "pump-1", 1, True))
        sender = WebhookSender(storage, routes)
        started = time.monotonic()

        async def until_dead():
            async with aiohttp.ClientSession() as session:
                while sender.dead < 2 and time.monotonic() - started < 10:
                    await sender.deliver_due(session)
                    await asyncio.sleep(0.02)

        asyncio.run(until_dead())
        assert len(target.bodies()) == 6  # two routes, three attempts each
        delays = storage.query("SELECT next_ms - dead_ms FROM outbox")
        dead = outbox.dead_letters(storage)
        assert [(row["attempts"], row["last_error"], row["state"]) for row in dead] == \
            [(3, "HTTP 503 Service Unavailable", "dead")] * 2, dead
        assert outbox.depth(storage) == {"chat": {"dead": 1}, "tracker": {"dead": 1}}, delays
        # Requeued once the target is back: delivered.
        target.status = 200
        storage.begin()
        assert outbox.requeue(storage, dead[0]["id"], int(time.time() * 1000)) is True
        assert outbox.requeue(storage, dead[0]["id"], int(time.time() * 1000)) is False
        storage.commit()
        asyncio.run(_deliver(sender))
        delivered_ms = outbox.rows(storage, outbox.DELIVERED)[0]["delivered_ms"]
        assert outbox.rows(storage, outbox.DELIVERED)[0]["id"] == dead[0]["id"]
        # Delivered rows are pruned after KEEP_DELIVERED_MS; the dead letter stays.
        assert outbox.prune(storage, delivered_ms + outbox.KEEP_DELIVERED_MS) == 0
        assert outbox.prune(storage, delivered_ms + outbox.KEEP_DELIVERED_MS + 1) == 1
        assert outbox.depth(storage) == {"chat": {"dead": 1}} or outbox.depth(storage) == {"tracker": {"dead": 1}}
    storage.close()


def test_a_leased_row_is_not_claimed_twice_and_an_expired_lease_is_taken_over(db_url, fleet, tmp_path):
    identities, registry = fleet
    storage = open_storage(db_url)
    routes = _routes(tmp_path, "http://127.0.0.1:9/hook")
    receiver = Receiver(None, registry, storage, routing=AlertRouting(storage, routes, registry))
    _handle(receiver, alert(identities, "pump-1", 1, True))
    now = int(time.time() * 1000)
    first = outbox.claim(storage, "rx-a", routes.by_name, now)
    assert sorted(row["route"] for row in first) == ["chat", "tracker"]
    assert outbox.claim(storage, "rx-b", routes.by_name, now + 1000) == []
    # rx-a died mid-delivery: its leases lapse and rx-b takes the rows, a second attempt.
    later = outbox.claim(storage, "rx-b", routes.by_name, now + outbox.LEASE_MS + 1)
    assert [(row["lease_owner"], row["attempts"]) for row in later] == [("rx-b", 2)] * 2
    # rx-a's late answer cannot mark a row it no longer holds.
    outbox.delivered(storage, later[0]["id"], "rx-a", now + outbox.LEASE_MS + 2)
    assert outbox.rows(storage, outbox.PENDING) and not outbox.rows(storage, outbox.DELIVERED)
    # rx-b stops cleanly: its leases are handed back, another sender takes them at once.
    outbox.release(storage, "rx-b")
    assert len(outbox.claim(storage, "rx-d", routes.by_name, now + outbox.LEASE_MS + 3)) == 2
    # Rows of a route this receiver does not know are left to one that does.
    assert outbox.claim(storage, "rx-c", {"other": None}, now + 10 * outbox.LEASE_MS) == []
    storage.close()


@pytest.mark.parametrize("text, error", [
    ("[[route]]\nname = \"a\"\nurl = \"ftp://x\"\nsecret_env = \"S\"\n", "url must be an http"),
    ("[[route]]\nname = \"a\"\nurl = \"https://x.example/h\"\n", "give exactly one of secret_file"),
    ("[[route]]\nname = \"a\"\nurl = \"https://x.example/h\"\nsecret_env = \"NOPE\"\n", "NOPE is not set"),
    ("[[route]]\nname = \"a\"\nurl = \"https://x.example/h\"\nsecret_env = \"S\"\nsevere = \"critical\"\n",
     "unknown key severe"),
    ("[[route]]\nname = \"a\"\nurl = \"https://x.example/h\"\nsecret_env = \"S\"\nformat = \"teams\"\n",
     "format must be one of json, slack"),
    ("[[route]]\nname = \"a\"\nurl = \"https://x.example/h\"\nsecret_env = \"S\"\nevent = [\"acked\"]\n",
     "event must be among raised, cleared"),
    ("[outbox]\nmax_attempts = 0\n[[route]]\nname = \"a\"\nurl = \"https://x.example/h\"\nsecret_env = \"S\"\n",
     "max_attempts must be a whole number"),
    ("[outbox]\nfirst_retry = \"soon\"\n", "write e.g. 90s"),
    ("[[route]]\nname = \"a\"\nurl = \"https://x.example/h\"\nsecret_env = \"S\"\n" * 2, "named twice"),
    ("", "no \\[\\[route\\]\\]"),
    ("[routes]\n", "unknown table routes"),
])
def test_a_bad_routes_file_is_refused_with_the_fix(tmp_path, text, error):
    path = tmp_path / "routes.toml"
    path.write_text(text)
    with pytest.raises(RoutesError, match=error):
        load_routes(str(path), environ={"S": SECRET})


def test_a_secret_file_others_can_read_is_refused(tmp_path):
    secret = tmp_path / "s"
    secret.write_text(SECRET)
    os.chmod(secret, 0o644)
    path = tmp_path / "routes.toml"
    path.write_text("[[route]]\nname = \"a\"\nurl = \"https://x.example/h\"\nsecret_file = \"%s\"\n" % secret)
    with pytest.raises(RoutesError, match="readable by group or others.*chmod 600") as info:
        load_routes(str(path))
    assert SECRET not in str(info.value)


def test_senders_of_several_receivers_on_one_postgresql_never_claim_a_row_twice(postgres_server, tmp_path):
    """Four senders, each on its own connection, claim 400 due rows at
    once, ten at a time: every row is claimed by exactly one of them
    (FOR UPDATE SKIP LOCKED, and the lease checked again on the row)."""
    import threading

    url = postgres_server.create_database()
    storage = open_storage(url)
    routes = _routes(tmp_path, "http://127.0.0.1:9/hook")
    now = time.time_ns() // 1_000_000
    storage.begin()
    for seq in range(400):
        outbox.enqueue(storage, "tracker", "alert.raised", "pump-1", seq, None, b"{}", now)
    storage.commit()
    claimed = {}
    start = threading.Barrier(4)

    def sender(owner):
        mine = open_storage(url)
        start.wait()
        taken = []
        while True:
            rows = outbox.claim(mine, owner, routes.by_name, now + 1, limit=10)
            if not rows:
                break
            taken.extend(row["id"] for row in rows)
        claimed[owner] = taken
        mine.close()

    threads = [threading.Thread(target=sender, args=("rx-%d" % i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    every = [row_id for taken in claimed.values() for row_id in taken]
    assert len(every) == len(set(every)) == 400, {owner: len(taken) for owner, taken in claimed.items()}
    assert sum(1 for taken in claimed.values() if taken) >= 2  # they did claim side by side
    assert storage.query("SELECT COUNT(*) FROM outbox WHERE attempts = 1 AND lease_owner IS NOT NULL") == [(400,)]
    storage.close()


@pytest.mark.parametrize("fmt", ["json", "slack"])
def test_an_odd_alert_body_still_makes_valid_json(fmt):
    """A device signs what it likes: NaN and infinite readings become null,
    fields of the wrong type empty, and the body is valid JSON."""
    from edge_agent.core import signals as sg

    body = {sg.A_VALUE: float("nan"), sg.A_LIMITS: [float("-inf"), 2 ** 70], sg.A_TEXT: 5, sg.A_SEVERITY: ["x"],
            sg.A_CONDITION: "out_of_range\u0000\u202e", sg.A_ACTIVE: "yes"}
    signal = sg.Signal(sg.KIND_ALERT, 0, 1, body, "pump-\u00e9", 1)
    document = json.loads(webhooks.payload(fmt, "alert.raised", signal.device, "", webhooks.alert_fields(signal),
                                           None))
    if fmt == "json":
        assert document["alert"]["value"] is None and document["alert"]["limits"] == [None, 2 ** 70]
        assert document["alert"]["text"] == "" and document["alert"]["severity"] == ""
    else:
        assert "pump-\u00e9" in document["blocks"][1]["elements"][0]["text"]
