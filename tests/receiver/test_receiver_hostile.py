"""Issue 17, item 1: no message, whatever its topic and bytes, crashes the
receiver. Every message ends as stored, a duplicate, a status, or a
rejection with its reason; an exception nobody foresaw becomes the rejection
"internal-error" (logged, bounded), never a crash.

The property feeds hostile messages through the receiver's real per-message
handler (Receiver.handle) in-process: real SQLite and a real PostgreSQL
(each backend its own run), a real registry with an Ed25519 and an HMAC
device (real keys), fleet escalation with a real operator key. The integration test does the same over a real mosquitto
against `edge-agent receiver run`."""

import asyncio
import logging
import os
import sqlite3
import tempfile
import time

import aiomqtt
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from edge_agent.core import cbor, cose
from edge_agent.core import signals as sg
from edge_agent.keys.identity import create_identity
from edge_agent.keys.operators import create_operator
from edge_agent.receiver import display, fleet, printable
from edge_agent.receiver.registry import Registry
from edge_agent.receiver.service import Receiver
from edge_agent.receiver.storage import open_storage

T0 = 1_800_000_000_000
MODEL = "EA-HOSTILE"
DEVICES = ("hx-ed", "hx-mac")
REASONS = {"malformed", "unknown-device", "wrong-algorithm", "bad-signature", "bad-mac", "bad-signal",
           "device-mismatch", "topic-mismatch", "unsupported-version", "bad-status"}
OUTCOMES = {"accepted", "duplicate", "status", "ignored", "command"}
# Integers around the 64-bit edges and far past them (thousands of digits:
# Python refuses to format those with %d or %r).
EDGES = (2 ** 64, 2 ** 63, 2 ** 63 - 1, -2 ** 64 - 1, -2 ** 63 - 1)
huge = st.one_of(st.sampled_from(EDGES), st.integers(65, 1000).map(lambda bits: 2 ** bits),
                 st.integers(4300, 5000).map(lambda digits: 10 ** digits),
                 st.integers(4300, 5000).map(lambda digits: -10 ** digits))


class Rig:
    """A receiver with fleet escalation over a real database and real keys."""

    def __init__(self, directory, db_url=None):
        self.identities = {}
        registry = Registry()
        for device_id, algorithm in zip(DEVICES, ("EdDSA", "HMAC256")):
            identity = create_identity(os.path.join(directory, device_id), device_id, algorithm)
            registry.add_entries(identity.registry_entry(model=MODEL, include_secret=True))
            self.identities[device_id] = identity
        self.storage = open_storage(db_url or os.path.join(directory, "receiver.sqlite"))
        operator = create_operator(os.path.join(directory, "operator"), "hx-ops")
        watch = fleet.FleetWatch(registry, self.storage, fleet.FleetSettings(k=2, fraction=0), operator,
                                 clock=lambda: T0)
        self.receiver = Receiver(None, registry, self.storage, fleet=watch)

    def rejections(self):
        return self.storage.query("SELECT COUNT(*) FROM rejections")[0][0]

    def handle(self, topic, payload, retained=False, received_ms=T0):
        """One message through the handler in its own transaction; checks
        the outcome and its trace in the database, returns the outcome."""
        before = self.rejections()
        self.storage.begin()
        try:
            outcome = self.receiver.handle(topic, payload, received_ms, retained)
        except BaseException:
            self.storage.rollback()  # an exception escaped: leave the database usable for the next example
            raise
        self.storage.commit()
        after = self.rejections()
        if outcome in OUTCOMES:
            assert after == before, (outcome, topic)
        else:
            assert outcome in REASONS, "%r: not an outcome nor a documented reason (topic %r)" % (outcome, topic)
            assert after == before + 1, (outcome, topic)
            row = self.storage.query("SELECT reason, detail, topic, payload FROM rejections "
                                     "ORDER BY id DESC LIMIT 1")[0]
            assert row[0] == outcome and len(row[1]) <= 500 and len(row[2]) <= 256 and len(row[3]) <= 1024
            assert row[1].isprintable(), row[1]
        return outcome


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def rig(request):
    with tempfile.TemporaryDirectory() as directory:
        db_url = None
        if request.param == "postgresql":
            db_url = request.getfixturevalue("postgres_server").create_database()
        made = Rig(directory, db_url)
        yield made
        made.storage.close()


# --- hostile values ---------------------------------------------------------

texts = st.one_of(st.text(max_size=40), st.sampled_from(["[/x]", "[bold]", "\x1b[2J", "\u202e", ""]),
                  st.integers(500, 700).map(lambda n: "a" * n))
integers = st.one_of(st.integers(-2 ** 70, 2 ** 70), huge, st.integers(-30, 30))
scalars = st.one_of(st.none(), st.booleans(), integers, st.floats(), texts, st.binary(max_size=40))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.integers(-2, 20), texts), inner, max_size=5),
        st.builds(cbor.Tag, st.integers(0, 2 ** 32), inner),
    ),
    max_leaves=12,
)
kinds = st.sampled_from(sorted(sg.KIND_NAMES))
devices = st.one_of(st.sampled_from(DEVICES), texts, values)
kids = st.one_of(st.sampled_from([d.encode() for d in DEVICES]), st.binary(max_size=200), values)


def alert_body():
    return st.fixed_dictionaries({}, optional={
        sg.A_CONDITION: st.one_of(st.sampled_from(["stuck", sg.C_ROOT_CAUSE]), values),
        sg.A_COMPONENT: st.one_of(st.just("cabinet_fan"), values),
        sg.A_ELEMENT: st.one_of(st.just("bus:uart0"), values),
        sg.A_ACTIVE: st.one_of(st.booleans(), values),
        sg.A_TEXT: st.one_of(texts, values),
        sg.A_SEVERITY: values, sg.A_SINCE: values, sg.A_LIMITS: values, sg.A_SENSOR: values,
    })


def audit_body():
    ids = st.one_of(st.just("incident-1"), st.integers(19, 5000).map(lambda n: "incident-" + "9" * n), values)
    return st.fixed_dictionaries({sg.U_ACTION: st.one_of(st.just("advisory"), values)}, optional={
        sg.U_TARGET: ids, sg.U_AFTER: st.one_of(ids, st.builds(lambda i: {"id": i}, ids)),
        sg.U_RESULT: values, sg.U_REASON: st.one_of(ids, values)})


def signal_maps():
    """Signal envelopes with every field honest or hostile."""
    return st.fixed_dictionaries({}, optional={
        sg.K_VERSION: st.one_of(st.just(1), values),
        sg.K_KIND: st.one_of(kinds, values),
        sg.K_DEVICE: devices,
        sg.K_SEQ: st.one_of(st.integers(1, 50), integers, values),
        sg.K_TIME: st.one_of(st.integers(0, 2 ** 63 + 5), huge, values),
        sg.K_PRIORITY: st.one_of(st.integers(0, 3), values),
        sg.K_BODY: st.one_of(alert_body(), audit_body(), st.fixed_dictionaries({sg.S_TO: st.just("quarantined"),
                             sg.S_COMPONENT: st.one_of(st.just("cabinet_fan"), values)}), values),
    })


def signed_by_a_device(rig, payloads):
    """Payloads under a registered device's real key (the attacker holds a
    device key), or under its kid with a bogus signature."""
    return st.tuples(st.sampled_from(DEVICES), payloads, st.booleans()).map(
        lambda t: rig.identities[t[0]].seal(t[1]) if t[2] else _forged(t[0].encode(), t[1]))


def _forged(kid, payload):
    return cbor.dumps(cbor.Tag(cose.TAG_SIGN1, [cbor.dumps({1: -8, 4: kid}), {}, payload, b"s" * 64]))


def cose_structures():
    """Valid-looking COSE envelopes with hostile headers and parts."""
    header_maps = st.dictionaries(st.one_of(st.sampled_from([1, 2, 3, 4, 5]), integers, texts, st.binary(max_size=8)),
                                  st.one_of(st.sampled_from([-8, 5, 0]), kids, values), max_size=4)
    protected = st.one_of(header_maps.map(cbor.dumps), st.binary(max_size=30), values)
    unprotected = st.one_of(header_maps, values)
    payload = st.one_of(st.binary(max_size=60), signal_maps().map(cbor.dumps), values)
    authenticator = st.one_of(st.binary(min_size=32, max_size=32), st.binary(min_size=64, max_size=64), values)
    tag = st.one_of(st.sampled_from([cose.TAG_SIGN1, cose.TAG_MAC0]), st.integers(0, 2 ** 64 - 1))
    parts = st.one_of(st.tuples(protected, unprotected, payload, authenticator).map(list), values)
    return st.builds(lambda t, p: cbor.dumps(cbor.Tag(t, p)), tag, parts)


def status_maps():
    return st.one_of(values, st.fixed_dictionaries({}, optional={
        sg.K_VERSION: st.one_of(st.just(1), values), sg.K_DEVICE: devices,
        sg.K_ONLINE: st.one_of(st.booleans(), values)}))


def topics():
    level = st.one_of(st.sampled_from(DEVICES + ("nobody", "model", "+", "")), texts)
    known = st.builds(lambda d, k: "ea/v1/%s/%s" % (d, k), st.sampled_from(DEVICES),
                      st.sampled_from(sorted(sg.KIND_NAMES.values()) + ["status", "cmd"]))
    anything = st.lists(level, min_size=0, max_size=5).map(lambda levels: "/".join(["ea", "v1"] + levels))
    return st.one_of(known, st.builds(lambda d: "ea/v1/%s/status" % d, level), anything)


def honest_signals():
    """(device, kind, envelope map) for a registered device: valid, then
    zero to two fields (or the body's) made hostile, so most of them pass
    verification and reach decoding, storage and the fleet watch."""
    bodies = {sg.KIND_ALERT: alert_body(), sg.KIND_AUDIT: audit_body(),
              sg.KIND_STATE: st.fixed_dictionaries({sg.S_TO: st.just("quarantined"),
                                                    sg.S_COMPONENT: st.one_of(st.just("cabinet_fan"), values)})}

    @st.composite
    def build(draw):
        device = draw(st.sampled_from(DEVICES))
        kind = draw(kinds)
        seq = draw(st.one_of(st.integers(1, 30), st.integers(1, 10 ** 12)))
        envelope = {sg.K_VERSION: 1, sg.K_KIND: kind, sg.K_DEVICE: device, sg.K_SEQ: seq,
                    sg.K_TIME: draw(st.one_of(st.integers(T0 - 10 ** 9, T0 + 10 ** 9), st.integers(0, 2 ** 63 + 5))),
                    sg.K_PRIORITY: draw(st.integers(0, 3)),
                    sg.K_BODY: draw(bodies.get(kind, st.dictionaries(st.integers(0, 8), values, max_size=3)))}
        n = mutations(draw)
        for key in draw(st.lists(st.sampled_from(sorted(envelope)), min_size=n, max_size=n)):
            envelope[key] = draw(st.one_of(huge, values, st.integers(-5, 2 ** 64)))
        return device, kind, envelope

    return build()


def mutations(draw):
    """How many fields to make hostile: none half the time."""
    return draw(st.sampled_from([0, 0, 1, 2]))


@st.composite
def honest_statuses(draw):
    """(topic, status payload): the documented map for a registered or an
    unknown device, with zero to two entries made hostile."""
    device = draw(st.sampled_from(DEVICES + ("hx-unknown",)))
    status = {sg.K_VERSION: 1, sg.K_DEVICE: device, sg.K_ONLINE: draw(st.booleans())}
    n = mutations(draw)
    for key in draw(st.lists(st.sampled_from(sorted(status)), min_size=n, max_size=n)):
        if draw(st.booleans()):
            status.pop(key, None)
        else:
            status[key] = draw(st.one_of(values, st.sampled_from(DEVICES)))
    return "ea/v1/%s/status" % device, cbor.dumps(status)


def messages(rig):
    """(topic, payload): anything on any topic, and signed signals on their own topic."""
    signal_payloads = st.one_of(signal_maps().map(cbor.dumps),
                                st.lists(signal_maps(), min_size=1, max_size=3).map(cbor.dumps),
                                values.map(cbor.dumps), st.binary(max_size=80))
    anything = st.tuples(topics(), st.one_of(
        st.binary(max_size=300),
        values.map(cbor.dumps),
        cose_structures(),
        signed_by_a_device(rig, signal_payloads),
        status_maps().map(cbor.dumps),
    ))

    def sealed(signal, bundled, topic):
        device, kind, envelope = signal
        if bundled and isinstance(envelope[sg.K_SEQ], int):
            payload = cbor.dumps([envelope, {**envelope, sg.K_SEQ: envelope[sg.K_SEQ] + 1}])
        else:
            payload = cbor.dumps(envelope)
        if topic is None:
            topic = sg.topic(device, kind) if kind in sg.KIND_NAMES else "ea/v1/%s/alert" % device
        return topic, rig.identities[device].seal(payload)

    topic = st.sampled_from([None, None, None, "other"]).flatmap(lambda t: st.none() if t is None else topics())
    signed = st.builds(sealed, honest_signals(), st.booleans(), topic)
    return {"anything": anything, "signed": signed, "status": honest_statuses()}


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_no_message_crashes_the_handler_and_every_one_gets_an_outcome(rig, data):
    family = data.draw(st.sampled_from(["anything", "signed", "status"]), label="family")
    topic, payload = data.draw(messages(rig)[family], label="message")
    retained = data.draw(st.booleans(), label="retained")
    outcome = rig.handle(topic, payload, retained)
    event(outcome)
    # Not even the safety net: every hostile input above is refused by a
    # check that names it, none reaches an unforeseen exception.
    assert outcome != "internal-error"
    # The display reads the same database: it must show whatever was stored.
    if outcome in ("accepted", "status"):
        display.report(rig.storage)


def test_the_two_messages_of_the_report(rig):
    """The review's two crashes: a status that is the CBOR array [1], and a
    COSE message from a registered kid with a 5,000-digit alg."""
    assert rig.handle("ea/v1/anything/status", cbor.dumps([1])) == "bad-status"
    assert rig.handle("ea/v1/anything/status", cbor.dumps([1]), retained=True) == "bad-status"
    huge_alg = cbor.dumps(cbor.Tag(cose.TAG_SIGN1, [cbor.dumps({1: 10 ** 5000, 4: b"hx-ed"}), {}, b"", b"s" * 64]))
    assert rig.handle("ea/v1/hx-ed/alert", huge_alg) == "malformed"
    detail = rig.storage.query("SELECT detail FROM rejections ORDER BY id DESC LIMIT 1")[0][0]
    assert "alg (header 1)" in detail


def _signed(rig, device, fields, kind=sg.KIND_ALERT):
    envelope = {sg.K_VERSION: 1, sg.K_KIND: kind, sg.K_DEVICE: device, sg.K_SEQ: 1, sg.K_TIME: T0,
                sg.K_PRIORITY: 1, sg.K_BODY: {}}
    envelope.update(fields)
    return rig.identities[device].seal(cbor.dumps(envelope))


def _next_seq(rig):
    return rig.storage.query("SELECT COALESCE(MAX(seq), 0) + 1 FROM signals WHERE device = 'hx-ed'")[0][0]


def test_a_device_key_holder_cannot_crash_it_either(tmp_path, db_url):
    """Signed, so past verification: fields that formatting, SQLite or the
    fleet watch could not take. (Its own database: the property's may hold
    a seq of 2**63 - 1 already.)"""
    rig = Rig(str(tmp_path), db_url)
    topic = "ea/v1/hx-ed/alert"
    for field in (sg.K_VERSION, sg.K_KIND, sg.K_PRIORITY):
        assert rig.handle(topic, _signed(rig, "hx-ed", {field: 10 ** 5000})) in ("bad-signal", "unsupported-version")
    for field in (sg.K_SEQ, sg.K_TIME):  # SQLite integers are 64-bit signed
        assert rig.handle(topic, _signed(rig, "hx-ed", {field: 2 ** 63})) == "bad-signal"
    audit_topic = "ea/v1/hx-ed/audit"
    for body in ({sg.U_ACTION: "advisory", sg.U_TARGET: "incident-" + "9" * 5000},
                 {sg.U_ACTION: "advisory", sg.U_TARGET: "incident-1", sg.U_RESULT: 10 ** 5000}):
        signed = _signed(rig, "hx-ed", {sg.K_SEQ: _next_seq(rig), sg.K_BODY: body}, sg.KIND_AUDIT)
        assert rig.handle(audit_topic, signed) == "accepted"
    # A date past the year 9999: stored, and the report still renders.
    seq = _next_seq(rig)
    far = _signed(rig, "hx-ed", {sg.K_SEQ: seq, sg.K_TIME: 2 ** 62,
                                 sg.K_BODY: {sg.A_ACTIVE: True, sg.A_TEXT: "[/x] \x1b[2J", sg.A_CONDITION: "stuck",
                                             sg.A_COMPONENT: "cabinet_fan"}})
    assert rig.handle(topic, far) == "accepted"
    display.report(rig.storage)
    rig.storage.close()


def test_an_unforeseen_exception_becomes_an_internal_error_rejection(tmp_path, caplog):
    """The safety net, with a real failure: a SQLite trigger that refuses one
    signal stands in for any bug met half way through a message. The
    message's writes are undone (its envelope is not left behind), it is
    rejected as internal-error with a bounded description and logged, and
    the next message of the same batch is stored."""
    rig = Rig(str(tmp_path))
    rig.storage.db.execute("CREATE TRIGGER refuse BEFORE INSERT ON signals WHEN NEW.seq = 13 "
                           "BEGIN SELECT RAISE(ABORT, 'refused by a test trigger \x1b[2J'); END")
    ed = rig.identities["hx-ed"]

    def signal(seq):
        return ed.seal(sg.Signal(sg.KIND_TELEMETRY, 3, T0, {0: []}, "hx-ed", seq).encode())

    rig.storage.begin()
    with caplog.at_level(logging.ERROR, logger="edge_agent.receiver"):
        outcomes = [rig.receiver.handle("ea/v1/hx-ed/telemetry", signal(seq), T0) for seq in (12, 13, 14)]
    rig.storage.commit()
    assert outcomes == ["accepted", "internal-error", "accepted"]
    assert [r[0] for r in rig.storage.db.execute("SELECT seq FROM signals ORDER BY seq")] == [12, 14]
    assert rig.storage.db.execute("SELECT COUNT(*) FROM envelopes").fetchone()[0] == 2
    reason, detail = rig.storage.db.execute("SELECT reason, detail FROM rejections").fetchone()
    assert reason == "internal-error" and detail.startswith("IntegrityError: refused by a test trigger \\x1b[2J")
    assert "storage_sql.py" in detail and "_insert_signals" in detail  # where, as code positions
    assert rig.receiver.rejected == {"internal-error": 1}
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 1 and "internal error" in logged[0] and "\x1b" not in logged[0]
    rig.storage.close()


def test_a_batch_with_a_failing_message_is_handled_again_message_by_message(tmp_path):
    """The receiver handles a batch without savepoints first; a message that
    fails half way (the trigger) undoes the batch, which is handled again
    under a savepoint per message: the others are stored once, the failing
    one rejected once, counted once."""
    rig = Rig(str(tmp_path))
    rig.storage.db.execute("CREATE TRIGGER refuse BEFORE INSERT ON signals WHEN NEW.seq = 13 "
                           "BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END")
    ed = rig.identities["hx-ed"]
    batch = [aiomqtt.Message("ea/v1/hx-ed/telemetry", ed.seal(sg.Signal(
        sg.KIND_TELEMETRY, 3, T0, {0: [[T0, "s", 1.5, 0]]}, "hx-ed", seq).encode()), 1, False, seq, None)
        for seq in (12, 13, 14)]
    rig.receiver._store_batch(batch)
    assert [r[0] for r in rig.storage.db.execute("SELECT seq FROM signals ORDER BY seq")] == [12, 14]
    assert rig.storage.db.execute("SELECT COUNT(*) FROM envelopes").fetchone()[0] == 2
    assert [r[0] for r in rig.storage.db.execute("SELECT reason FROM rejections")] == ["internal-error"]
    assert (rig.receiver.accepted, rig.receiver.rejected) == (2, {"internal-error": 1})
    rig.storage.close()


# --- the same over a real broker, against `edge-agent receiver run` ----------------------


@pytest.mark.integration
def test_the_crashing_messages_no_longer_stop_a_real_receiver(pki, broker, tmp_path):
    import aiomqtt

    from edge_agent.broker import client_context
    from simulator.fixtures.processes import Child, edge_agent_argv

    identity = create_identity(str(tmp_path / "hx-live"), "hx-live")
    registry_file = tmp_path / "devices.toml"
    registry_file.write_text(identity.registry_entry())
    db = str(tmp_path / "rx.sqlite")
    cert, key = pki.client("hx-receiver")
    argv = edge_agent_argv("receiver", "run", "--registry", str(registry_file), "--db", db, "--no-live",
                           "--group", "", "--client-id", "hx-receiver-%d" % os.getpid(),
                           "--broker", "127.0.0.1:%d" % broker.port, "--ca", pki.ca_cert, "--cert", cert, "--key", key)
    status_topic = "ea/v1/hx-nobody-%d/status" % os.getpid()
    huge_alg = cbor.dumps(cbor.Tag(cose.TAG_SIGN1, [cbor.dumps({1: 10 ** 5000, 4: b"hx-live"}), {}, b"", b"s" * 64]))
    # Any broker client: under the shipped ACL a device could only garble its own
    # topics, so the harness identity (no ACL limit) stands for the worst case.
    pub_cert, pub_key = pki.harness("hx-publisher")

    async def publish(*messages):
        async with aiomqtt.Client("127.0.0.1", broker.port, tls_context=client_context(pki.ca_cert, pub_cert,
                                                                                          pub_key)) as client:
            for topic, payload, retain in messages:
                await client.publish(topic, payload, qos=1, retain=retain)

    def valid(seq):
        return ("ea/v1/hx-live/telemetry", identity.seal(sg.Signal(sg.KIND_TELEMETRY, 3, T0, {0: []}, "hx-live",
                                                                     seq).encode()), False)

    def wait_stored(seq, receiver):
        for _ in range(200):
            with sqlite3.connect(db) as connection:
                try:
                    if connection.execute("SELECT 1 FROM signals WHERE seq = ?", (seq,)).fetchone():
                        return
                except sqlite3.OperationalError:
                    pass
            assert receiver.process.poll() is None, "the receiver exited:\n" + receiver.text()
            time.sleep(0.1)
        raise AssertionError("signal %d not stored:\n%s" % (seq, receiver.text()))

    receiver = Child("receiver", argv, relay=False)
    try:
        receiver.wait_for("receiving", 15)
        asyncio.run(publish((status_topic, cbor.dumps([1]), True), ("ea/v1/hx-live/alert", huge_alg, False),
                            valid(1)))
        wait_stored(1, receiver)
        assert receiver.process.poll() is None
        receiver.stop()
        # With a stable client id the broker gives the retained status again
        # at every start: the receiver must not die of it then either.
        receiver = Child("receiver", argv, relay=False)
        receiver.wait_for("receiving", 15)
        asyncio.run(publish(valid(2)))
        wait_stored(2, receiver)
        assert receiver.process.poll() is None
    finally:
        receiver.stop()
        asyncio.run(publish((status_topic, b"", True)))  # clear it: other tests share this broker
    with sqlite3.connect(db) as connection:
        reasons = [r[0] for r in connection.execute("SELECT reason FROM rejections ORDER BY id")]
    # The first two may share a batch, which the receiver sorts by device
    # (so receivers sharing a database lock rows in one order): either order.
    assert sorted(reasons[:2]) == ["bad-status", "malformed"] and reasons[2:] == ["bad-status"], reasons
    assert "Traceback" not in receiver.text()


def _escaped_char_by_char(value, limit):
    """printable.text's meaning, spelt out: each character of the first
    ``limit`` escaped or kept, then what was cut."""
    out = "".join("\\\\" if ch == "\\" else ch if ch.isprintable() else
                  "\\x%02x" % ord(ch) if ord(ch) < 0x100 else "\\u%04x" % ord(ch) if ord(ch) < 0x10000 else
                  "\\U%08x" % ord(ch) for ch in value[:limit])
    return out + ("...(+%d chars)" % (len(value) - limit) if len(value) > limit else "")


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=120), st.integers(0, 100))
def test_printable_text_escapes_every_character_that_is_not_printable(value, limit):
    """printable.text's shortcut (a printable text without a backslash is
    itself) gives what escaping character by character gives."""
    assert printable.text(value, limit) == _escaped_char_by_char(value, limit)
