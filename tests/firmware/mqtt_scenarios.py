"""Drive firmware/mqtt_client.py through one scenario, on MicroPython or CPython.

    micropython tests/firmware/mqtt_scenarios.py SCENARIO key=value ...
    python      tests/firmware/mqtt_scenarios.py SCENARIO key=value ...

The pytest side (test_mqtt_client.py) starts this under both interpreters
against a real mosquitto and reads the lines it prints ("READY", "GOT ...",
"LOST ...", "HEAP ...", "DONE"). Keys: host, port, id, topic; TLS with
ca/cert/key (DER files under MicroPython, PEM under CPython); go=PATH makes
a scenario wait for that file before its next step.
"""

import asyncio
import gc
import sys

from mqtt_client import ConnectFailed, MQTTClient, MQTTError, Will, sleep_ms, ticks_diff, ticks_ms

MICROPYTHON = sys.implementation.name == "micropython"


def say(*words):
    print(*words)
    if not MICROPYTHON:
        sys.stdout.flush()


def options(argv):
    found = {}
    for arg in argv:
        key, _, value = arg.partition("=")
        found[key] = value
    return found


def read(path):
    with open(path, "rb") as f:
        return f.read()


def context(opts):
    if not opts.get("ca"):
        return None
    if MICROPYTHON:
        from mqtt_client import tls_context

        if opts.get("cert"):
            return tls_context(read(opts["ca"] + ".der"), read(opts["cert"] + ".der"), read(opts["key"] + ".der"))
        return tls_context(read(opts["ca"] + ".der"))
    import ssl

    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=opts["ca"])
    if opts.get("cert"):
        ctx.load_cert_chain(opts["cert"], opts["key"])
    return ctx


def client(opts, **kwargs):
    return MQTTClient(opts.get("host", "127.0.0.1"), int(opts["port"]), opts["id"], ssl=context(opts),
                      server_hostname=opts.get("hostname"), keepalive_s=int(opts.get("keepalive", "60")), **kwargs)


def free_heap():
    gc.collect()
    return gc.mem_free() if MICROPYTHON else 0


async def wait_file(path):
    while True:
        try:
            open(path).close()
            return
        except OSError:
            await sleep_ms(20)


async def pubsub(opts):
    """Subscribe to <topic>/cmd, publish count QoS 1, two in pieces and one
    QoS 0 message to <topic>/up, then echo `expect` received messages to <topic>/echo, then
    DISCONNECT (with will=1, a will on <topic>/state the broker must drop)."""
    topic = opts["topic"]
    last_will = Will(topic + "/state", b"offline", qos=1) if opts.get("will") else None
    c = client(opts, will=last_will)
    await c.connect()
    granted = await c.subscribe(topic + "/cmd", 1)
    say("READY granted=%d" % granted)
    count = int(opts.get("count", "3"))
    for i in range(count):
        await c.publish(topic + "/up", "m%d" % i, qos=1)
    # A payload in pieces (as the uplink sends a sealed bundle): one that
    # fits the transmit buffer, one written past it.
    await c.publish(topic + "/up", (b"pie", b"ces"), qos=1)
    await c.publish(topic + "/up", (b"x" * 300, b"", b"y" * 300), qos=1)
    await c.publish(topic + "/up", b"q0", qos=0)
    say("PUBACKED %d" % count)
    for _ in range(int(opts.get("expect", "1"))):
        message = await c.next_message()
        say("GOT %s %s qos=%d" % (message.topic, message.payload.decode(), message.qos))
        await c.publish(topic + "/echo", message.payload, qos=1)
    await c.disconnect()
    say("DONE")


async def will(opts):
    c = client(opts, will=Will(opts["topic"] + "/state", b"offline", qos=1, retain=False))
    await c.connect()
    say("READY")
    await sleep_ms(60000)  # the test kills this process


async def keepalive(opts):
    c = client(opts)
    await c.connect()
    say("READY")
    error = await c.wait_disconnected()
    say("LOST %s %s" % (type(error).__name__, error))


async def inflight(opts):
    """Persistent session: publish `count` QoS 1 messages once `go` exists
    (the test blackholes the link first), lose the connection on keepalive,
    reconnect once `go`.2 exists, and finish on the resent messages' PUBACKs."""
    c = client(opts, clean_session=False, connect_timeout_s=2)
    await c.connect()
    say("READY")
    await wait_file(opts["go"])
    count = int(opts.get("count", "3"))
    done = []

    async def one(i):
        await c.publish(opts["topic"] + "/up", "r%d" % i, qos=1)
        done.append(i)

    for i in range(count):
        asyncio.create_task(one(i))
    await sleep_ms(100)
    say("INFLIGHT %d" % c.in_flight())
    error = await c.wait_disconnected()
    say("LOST %s" % type(error).__name__)
    await wait_file(opts["go"] + ".2")  # the test has restored the link
    for _ in range(50):
        try:
            present = await c.connect()
            break
        except ConnectFailed:
            await sleep_ms(100)
    say("RECONNECTED session_present=%d" % present)
    while len(done) < count:
        await sleep_ms(10)
    say("DONE acked=%d in_flight=%d" % (len(done), c.in_flight()))
    await c.disconnect()


async def resubscribe(opts):
    """Clean session with an on_message callback: subscribe to <topic>/cmd,
    lose the connection (the test drops it), reconnect: the client restores
    the subscription the broker forgot; then receive, unsubscribe."""
    got = []
    arrived = asyncio.Event()

    def on_message(message):
        got.append(message)
        arrived.set()

    c = client(opts, on_message=on_message)
    await c.connect()
    await c.subscribe(opts["topic"] + "/cmd", 1)
    say("READY")
    error = await c.wait_disconnected()
    say("LOST %s" % type(error).__name__)
    present = await c.connect()
    say("RECONNECTED session_present=%d" % present)
    await arrived.wait()
    say("GOT %s %s qos=%d" % (got[0].topic, got[0].payload.decode(), got[0].qos))
    await c.unsubscribe(opts["topic"] + "/cmd")
    say("UNSUBSCRIBED")
    await c.disconnect()


async def burst(opts):
    """`count` concurrent QoS 1 publishes through max_inflight=2 slots: all
    complete, never more than 2 await their PUBACK."""
    c = client(opts, max_inflight=2)
    await c.connect()
    count = int(opts.get("count", "10"))
    peak = [0]
    done = []

    async def one(i):
        await c.publish(opts["topic"], "b%d" % i, qos=1)
        done.append(i)

    async def watch():
        while True:
            peak[0] = max(peak[0], c.in_flight())
            await sleep_ms(0)

    watcher = asyncio.create_task(watch())
    await asyncio.gather(*[one(i) for i in range(count)])
    watcher.cancel()
    say("BURST acked=%d max_in_flight=%d" % (len(done), peak[0]))
    await c.disconnect()


async def reconnects(opts):
    """Connect, publish one QoS 1 message, disconnect, `count` times; log
    the free heap after a collection every `every` rounds."""
    count = int(opts.get("count", "1000"))
    every = int(opts.get("every", "100"))
    c = client(opts)
    say("HEAP 0 %d" % free_heap())
    start = ticks_ms()
    for i in range(1, count + 1):
        await c.connect()
        await c.publish(opts["topic"], b"x", qos=1)
        await c.disconnect()
        if i % every == 0:
            say("HEAP %d %d" % (i, free_heap()))
    say("DONE %d reconnects in %d ms" % (count, ticks_diff(ticks_ms(), start)))


async def connect_error(opts):
    """Connect once and report how it failed."""
    c = client(opts, connect_timeout_s=int(opts.get("timeout", "5")))
    try:
        await c.connect()
        say("CONNECTED")
        if opts.get("once"):
            await c.disconnect()
            return
        error = await c.wait_disconnected()
        say("LOST %s %s" % (type(error).__name__, error))
    except MQTTError as exc:
        say("ERROR %s %s" % (type(exc).__name__, exc))


async def throughput(opts):
    """Publish `count` messages of `size` bytes at `qos` from `window`
    concurrent publishers (QoS 1: up to `window` in flight), report the
    rate and, on MicroPython, the bytes allocated per publish."""
    count = int(opts.get("count", "2000"))
    qos = int(opts.get("qos", "1"))
    window = int(opts.get("window", "8"))
    payload = b"x" * int(opts.get("size", "64"))
    c = client(opts, max_inflight=max(window, 1))
    await c.connect()
    say("FOOTPRINT connected %d" % free_heap())
    topic = opts["topic"]

    async def publisher(n):
        for _ in range(n):
            await c.publish(topic, payload, qos=qos)

    per_publish = 0
    if MICROPYTHON:  # every allocation of 100 publishes, the collector off
        gc.collect()
        gc.disable()
        allocated = gc.mem_alloc()
        await asyncio.gather(*[publisher(100 // window) for _ in range(window)])
        per_publish = (gc.mem_alloc() - allocated) // (100 // window * window)
        gc.enable()
    start = ticks_ms()
    await asyncio.gather(*[publisher(count // window) for _ in range(window)])
    elapsed = max(ticks_diff(ticks_ms(), start), 1)
    say("RATE %d msg/s %d ms %d bytes/publish" % (count * 1000 // elapsed, elapsed, per_publish))
    await c.disconnect()


async def footprint(opts):
    """Free heap before the client exists, with it, connected, after
    publishing, after disconnect (MicroPython; CPython prints zeros)."""
    say("FOOTPRINT start %d" % free_heap())
    c = client(opts)
    say("FOOTPRINT client %d" % free_heap())
    for _ in range(int(opts.get("rounds", "3"))):
        await c.connect()
        say("FOOTPRINT connected %d" % free_heap())
        for i in range(50):
            await c.publish(opts["topic"], b"y" * 200, qos=1)
        say("FOOTPRINT published %d" % free_heap())
        await c.disconnect()
        say("FOOTPRINT disconnected %d" % free_heap())
    say("DONE")


SCENARIOS = {"throughput": throughput, "footprint": footprint, "resubscribe": resubscribe, "burst": burst,
             "pubsub": pubsub, "will": will, "keepalive": keepalive, "inflight": inflight,
             "reconnects": reconnects, "connect_error": connect_error}

if __name__ == "__main__":
    asyncio.run(SCENARIOS[sys.argv[1]](options(sys.argv[2:])))
