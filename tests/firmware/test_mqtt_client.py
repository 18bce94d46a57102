"""firmware/mqtt_client.py against a real mosquitto, on MicroPython (the
ESP32 stand-in, heap-limited, from .mpy) and on CPython: mutual TLS, QoS 1
with PUBACK, subscribe, last will on kill -9, keepalive against a dead
link, in-flight retransmission with DUP, connect errors, malformed packets,
and cross-checks with aiomqtt (paho) on the other end.
"""

import asyncio
import os
import re
import time
import uuid

import aiomqtt
import pytest
from mqtt_support import Interpreter, Relay, Scenario, compile_mpy, publish_pids

from edge_agent.broker import client_context
from simulator.fixtures.broker import Mosquitto, free_port
from simulator.fixtures.pki import DevPKI

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def mpy_dir(tmp_path_factory):
    return compile_mpy(str(tmp_path_factory.mktemp("mpy")))


@pytest.fixture(params=["micropython", "cpython"])
def interp(request, mpy_dir):
    return Interpreter(request.param, mpy_dir)


@pytest.fixture(scope="module")
def plain_broker(tmp_path_factory):
    """An anonymous plain-TCP mosquitto: for reading the client's packets
    off the wire through the relay, and for fast reconnect loops."""
    with Mosquitto(str(tmp_path_factory.mktemp("plain-broker"))) as running:
        yield running


@pytest.fixture(scope="module")
def device_tls(pki):
    """TLS options for a scenario: PEM paths (CPython) with DER copies next
    to them (MicroPython adds .der)."""
    cert, key = pki.client("fw-mqtt-device")
    for path in (pki.ca_cert, cert, key):
        pki.der(path)
    return {"ca": pki.ca_cert, "cert": cert, "key": key}


@pytest.fixture(scope="module")
def peer_tls(pki):
    return client_context(pki.ca_cert, *pki.client("fw-mqtt-peer"))


def unique(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


async def collect(client, messages):
    async for message in client.messages:
        messages.append((str(message.topic), bytes(message.payload), message.qos))


async def wait_for_messages(messages, predicate, timeout_s=10):
    deadline = time.monotonic() + timeout_s
    while not predicate(messages):
        assert time.monotonic() < deadline, "timed out; got %r" % (messages,)
        await asyncio.sleep(0.02)


def test_pubsub_over_mutual_tls_with_aiomqtt_on_the_other_end(interp, broker, device_tls, peer_tls):
    """Ours publishes QoS 1 (each returns on PUBACK; two payloads in
    pieces, joined on the wire) and QoS 0; aiomqtt
    receives them. aiomqtt publishes commands at QoS 1 and 0; ours receives
    them and echoes them back."""
    topic = "ea/v1/" + unique("fw")

    async def run():
        messages = []
        async with aiomqtt.Client("127.0.0.1", broker.port, tls_context=peer_tls) as peer:
            await peer.subscribe(topic + "/up", qos=1)
            await peer.subscribe(topic + "/echo", qos=1)
            listener = asyncio.create_task(collect(peer, messages))
            device = await Scenario.start(interp, "pubsub", port=broker.port, id=unique("dev"), topic=topic,
                                          count=5, expect=2, **device_tls)
            try:
                assert await device.expect("READY") == "READY granted=1"
                await device.expect("PUBACKED 5")
                await peer.publish(topic + "/cmd", b"reboot", qos=1)
                await peer.publish(topic + "/cmd", b"blink", qos=0)
                lines = await device.finish()
            finally:
                device.kill()
            await wait_for_messages(messages, lambda m: len(m) >= 10)
            listener.cancel()
        assert "GOT %s/cmd reboot qos=1" % topic in lines
        assert "GOT %s/cmd blink qos=0" % topic in lines
        up = [(payload, qos) for t, payload, qos in messages if t == topic + "/up"]
        assert up == [(b"m0", 1), (b"m1", 1), (b"m2", 1), (b"m3", 1), (b"m4", 1), (b"pieces", 1),
                      (b"x" * 300 + b"y" * 300, 1), (b"q0", 0)]
        assert sorted(p for t, p, _ in messages if t == topic + "/echo") == [b"blink", b"reboot"]

    asyncio.run(run())


def test_last_will_is_published_when_the_device_process_is_killed(interp, broker, device_tls, peer_tls):
    topic = "ea/v1/" + unique("fw")

    async def run():
        messages = []
        async with aiomqtt.Client("127.0.0.1", broker.port, tls_context=peer_tls) as peer:
            await peer.subscribe(topic + "/state", qos=1)
            listener = asyncio.create_task(collect(peer, messages))
            device = await Scenario.start(interp, "will", port=broker.port, id=unique("dev"), topic=topic,
                                          **device_tls)
            try:
                await device.expect("READY")
                await asyncio.sleep(0.2)
                assert messages == []  # alive: no will yet
                device.kill()  # SIGKILL: no DISCONNECT, as a power cut
                await wait_for_messages(messages, lambda m: m, timeout_s=10)
            finally:
                device.kill()
                listener.cancel()
        assert messages == [(topic + "/state", b"offline", 1)]

    asyncio.run(run())


def test_clean_disconnect_sends_no_will(interp, broker, device_tls, peer_tls):
    """A DISCONNECT tells the broker to drop the last will."""
    topic = "ea/v1/" + unique("fw")

    async def run():
        messages = []
        async with aiomqtt.Client("127.0.0.1", broker.port, tls_context=peer_tls) as peer:
            await peer.subscribe(topic + "/#", qos=1)
            listener = asyncio.create_task(collect(peer, messages))
            device = await Scenario.start(interp, "pubsub", port=broker.port, id=unique("dev"), topic=topic,
                                          count=1, expect=1, will="1", **device_tls)
            try:
                await device.expect("PUBACKED")
                await peer.publish(topic + "/cmd", b"x", qos=1)
                await device.finish()
            finally:
                device.kill()
            await asyncio.sleep(0.5)
            listener.cancel()
        assert (topic + "/state", b"offline", 1) not in messages
        assert (topic + "/echo", b"x", 1) in messages

    asyncio.run(run())


def test_keepalive_detects_a_dead_link_within_one_and_a_half_keepalives(interp, broker, device_tls):
    """The relay blackholes the TLS connection (no FIN, no RST: a dead Wi-Fi
    link or frozen broker host); keepalive 1 s must declare it dead ~1.5 s
    after the last packet received."""
    relay = Relay(broker.port)

    async def run():
        device = await Scenario.start(interp, "keepalive", port=relay.port, id=unique("dev"), keepalive=1,
                                      **device_tls)
        try:
            await device.expect("READY")
            relay.blackhole()
            started = time.monotonic()
            line = await device.expect("LOST", timeout_s=10)
            elapsed = time.monotonic() - started
            await device.finish()
        finally:
            device.kill()
        assert line.startswith("LOST KeepaliveTimeout nothing from the broker for"), line
        assert 1.0 <= elapsed <= 3.0, elapsed

    try:
        asyncio.run(run())
    finally:
        relay.close()


@pytest.mark.parametrize("link", ["plain", "tls"])
def test_unacknowledged_qos1_is_resent_with_dup_after_reconnect(interp, link, plain_broker, broker, device_tls,
                                                                 peer_tls):
    """Persistent session: three QoS 1 publishes vanish into a dead link; the
    keepalive ends the connection; on reconnect the client resends them and
    the waiting publish() calls complete. On plain TCP the relay's record
    shows the resent packets carry DUP and the same packet ids."""
    target = plain_broker if link == "plain" else broker
    tls = device_tls if link == "tls" else {}
    relay = Relay(target.port)
    topic = "fw/" + unique("inflight")
    go = "/tmp/%s.go" % unique("fw-mqtt")

    async def run():
        messages = []
        context = peer_tls if link == "tls" else None
        async with aiomqtt.Client("127.0.0.1", target.port, tls_context=context) as peer:
            await peer.subscribe(topic + "/up", qos=1)
            listener = asyncio.create_task(collect(peer, messages))
            device = await Scenario.start(interp, "inflight", port=relay.port, id=unique("dev"), topic=topic,
                                          keepalive=1, go=go, count=3, **tls)
            try:
                await device.expect("READY")
                relay.blackhole()
                open(go, "w").close()
                assert await device.expect("INFLIGHT") == "INFLIGHT 3"
                assert await device.expect("LOST") == "LOST KeepaliveTimeout"
                relay.restore()
                open(go + ".2", "w").close()
                assert await device.expect("RECONNECTED") == "RECONNECTED session_present=1"
                assert await device.expect("DONE") == "DONE acked=3 in_flight=0"
                await device.finish()
            finally:
                device.kill()
                for path in (go, go + ".2"):
                    if os.path.exists(path):
                        os.remove(path)
            await wait_for_messages(messages, lambda m: len(m) >= 3)
            listener.cancel()
        assert sorted(set(p for _, p, _ in messages)) == [b"r0", b"r1", b"r2"]
        if link == "plain":
            first, second = relay.sent[0], relay.sent[-1]
            sent_pids = publish_pids(first, dup=False)
            assert len(sent_pids) == 3
            assert sorted(publish_pids(second, dup=True)) == sorted(sent_pids)
            assert publish_pids(second, dup=False) == []

    try:
        asyncio.run(run())
    finally:
        relay.close()


def test_subscriptions_are_restored_after_a_clean_session_reconnect(interp, plain_broker):
    relay = Relay(plain_broker.port)
    topic = "fw/" + unique("resub")

    async def run():
        device = await Scenario.start(interp, "resubscribe", port=relay.port, id=unique("dev"), topic=topic)
        try:
            await device.expect("READY")
            relay.drop()
            assert await device.expect("LOST") == "LOST ConnectionLost"
            assert await device.expect("RECONNECTED") == "RECONNECTED session_present=0"
            async with aiomqtt.Client("127.0.0.1", plain_broker.port) as peer:
                await peer.publish(topic + "/cmd", b"after", qos=1)
            assert await device.expect("GOT") == "GOT %s/cmd after qos=1" % topic
            await device.expect("UNSUBSCRIBED")
            await device.finish()
        finally:
            device.kill()

    try:
        asyncio.run(run())
    finally:
        relay.close()


def test_publishes_beyond_max_inflight_wait_for_a_free_slot(interp, plain_broker):
    async def run():
        # 96k: the scenario's own eleven tasks do not fit 64k beside the modules
        device = await Scenario.start(interp, "burst", heap="96k", port=plain_broker.port, id=unique("dev"),
                                      topic="fw/" + unique("burst"), count=10)
        return await device.finish()

    assert "BURST acked=10 max_in_flight=2" in asyncio.run(run())


def heap_samples(lines):
    return [(int(m.group(1)), int(m.group(2))) for m in (re.match(r"HEAP (\d+) (\d+)", x) for x in lines) if m]


def assert_no_heap_growth(samples, tolerance):
    """After the first round (first-use allocations), free heap after a
    collection must not trend down: the last sample within ``tolerance``
    bytes of the best one after warm-up."""
    steady = [free for _, free in samples[1:]]
    assert len(steady) >= 2, samples
    assert max(steady) - steady[-1] <= tolerance, samples
    assert max(steady) - min(steady) <= tolerance, samples


@pytest.mark.parametrize("heap", ["64k"])
def test_1000_plain_reconnects_without_heap_growth(mpy_dir, plain_broker, heap):
    interp = Interpreter("micropython", mpy_dir)

    async def run():
        device = await Scenario.start(interp, "reconnects", heap=heap, port=plain_broker.port, id=unique("dev"),
                                      topic="fw/reconnects", count=1000, every=100)
        lines = await device.finish(timeout_s=60)
        return lines

    lines = asyncio.run(run())
    samples = heap_samples(lines)
    assert [i for i, _ in samples] == list(range(0, 1001, 100))
    assert_no_heap_growth(samples, tolerance=256)


def test_tls_reconnects_without_heap_growth(mpy_dir, broker, device_tls):
    """TLS reconnects cost ~65 ms each here (handshake on both ends): CI runs
    150 at the 96k heap; bench/bench_firmware_mqtt.py runs the full 1,000."""
    interp = Interpreter("micropython", mpy_dir)

    async def run():
        device = await Scenario.start(interp, "reconnects", heap="96k", port=broker.port, id=unique("dev"),
                                      topic="fw/reconnects", count=150, every=30, **device_tls)
        return await device.finish(timeout_s=120)

    samples = heap_samples(asyncio.run(run()))
    assert [i for i, _ in samples] == list(range(0, 151, 30))
    assert_no_heap_growth(samples, tolerance=256)


# --- connect errors and malformed packets: clear errors, never a crash ------

CONNACK_OK = b"\x20\x02\x00\x00"


async def run_against(interp, reply, close=False, **options):
    """Run the connect_error scenario against a scripted broker that answers
    CONNECT with ``reply`` (a real broker never sends bad packets)."""

    async def handle(reader, writer):
        await reader.read(1024)  # the CONNECT
        writer.write(reply)
        await writer.drain()
        if close:
            writer.close()
        else:
            await reader.read()  # hold the connection until the client drops it

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        device = await Scenario.start(interp, "connect_error", port=port, id=unique("dev"), **options)
        lines = await device.finish()
    finally:
        server.close()
    return lines[-1]


@pytest.mark.parametrize("reply, close, expected", [
    (b"\x20\x02\x00\x05", False, "ERROR ConnectRefused broker refused the connection (CONNACK code 5): not authorized"),
    (b"\x20\x02\x00\x02", False, "ERROR ConnectRefused broker refused the connection (CONNACK code 2): identifier "
                                 "rejected"),
    (b"\x20\x02\x00\x09", False, "ERROR ConnectRefused broker refused the connection (CONNACK code 9): unknown code"),
    (b"\x20\x03\x00\x00\x00", False, "ERROR ProtocolError CONNACK with remaining length 3 (must be 2)"),
    (b"HTTP/1.1 400 Bad Request\r\n\r\n", True, "ERROR ConnectFailed the broker at"),
    (CONNACK_OK + b"\x30\xff\xff\xff\xff\x01", False, "LOST ProtocolError remaining length longer than 4 bytes"),
    (CONNACK_OK + b"\xf0\x00", False, "LOST ProtocolError unexpected reserved(15) packet from the broker"),
    (CONNACK_OK + b"\x62\x02\x00\x01", False, "LOST ProtocolError unexpected PUBREL packet"),
    (CONNACK_OK + b"\x20\x02\x00\x00", False, "LOST ProtocolError unexpected packet type 2 on an established"),
    (CONNACK_OK + b"\x30\x88\x27", False, "LOST PacketTooLarge PUBLISH of 5000 bytes exceeds the client's 2048-byte"),
    (CONNACK_OK + b"\x30\x06\x00\x02\xff\xfeab", False, "LOST ProtocolError PUBLISH topic is not valid UTF-8"),
    (CONNACK_OK + b"\x32\x05\x00\x09abc", False, "LOST ProtocolError PUBLISH topic (9 bytes) and packet id overrun"),
    (CONNACK_OK + b"\x30\x09\x00\x01t", True, "LOST ConnectionLost the broker closed the connection in the middle "
                                            "of a packet (5 bytes of it received)"),
], ids=["refused-5", "refused-2", "refused-unknown", "bad-connack", "http", "length-overflow", "type-15", "pubrel",
        "second-connack", "too-large", "bad-utf8", "overrun", "truncated"])
def test_bad_broker_answers_give_clear_errors(interp, reply, close, expected):
    assert asyncio.run(run_against(interp, reply, close)).startswith(expected)


def test_silent_broker_times_out_the_connect(interp):
    line = asyncio.run(run_against(interp, b"", timeout=1))
    assert line.startswith("ERROR ConnectFailed no CONNACK from 127.0.0.1:"), line


def connect_once(interp, port, **options):
    async def run():
        device = await Scenario.start(interp, "connect_error", port=port, id=unique("dev"), once=1, timeout=5,
                                      **options)
        return (await device.finish())[-1]

    return asyncio.run(run())


def test_mutual_tls_without_a_client_certificate_is_refused(interp, broker, device_tls):
    line = connect_once(interp, broker.port, ca=device_tls["ca"])
    assert line.startswith("ERROR ConnectFailed connecting to 127.0.0.1:%d failed during TCP/TLS setup" % broker.port)


def test_a_broker_certificate_from_another_ca_is_rejected(interp, broker, tmp_path):
    stranger = DevPKI(str(tmp_path))
    cert, key = stranger.client("fw-mqtt-stranger")
    for path in (stranger.ca_cert, cert, key):
        stranger.der(path)
    line = connect_once(interp, broker.port, ca=stranger.ca_cert, cert=cert, key=key)
    assert line.startswith("ERROR ConnectFailed TLS with 127.0.0.1:%d failed:" % broker.port), line
    assert "signed" in line or "signature" in line, line


def test_the_broker_certificate_must_name_the_host(interp, broker, device_tls):
    assert connect_once(interp, broker.port, hostname="localhost", **device_tls) == "CONNECTED"
    line = connect_once(interp, broker.port, hostname="not-the-broker.example", **device_tls)
    assert line.startswith("ERROR ConnectFailed TLS with 127.0.0.1:%d failed:" % broker.port), line
    assert "CN" in line or "Hostname mismatch" in line, line


def test_nothing_listening_is_a_clear_connect_failure(interp):
    port = free_port()
    assert connect_once(interp, port) == "ERROR ConnectFailed nothing accepts connections at 127.0.0.1:%d: broker " \
                                         "down or wrong port" % port
