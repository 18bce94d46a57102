"""The TCP fault proxy (simulator/faults/fault_proxy.py) does to a connection what
it says: a real TCP echo server and a real TLS mosquitto behind it, real
sockets in front. The agent riding out a partition, loss and a reset with
0 lost at the receiver is tests/simulator/test_live_scenario.py (live_faults.toml)."""

import asyncio
import contextlib
import socket
import threading
import time

import aiomqtt
import pytest

from edge_agent.broker import client_context
from simulator.faults.fault_proxy import FaultProxy, _command


@pytest.fixture
def echo_port():
    """A TCP echo server on a free port (one thread per connection)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def serve(conn):
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                conn.sendall(data)

    def accept():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    stop.set()
    server.close()


def _connect(proxy):
    conn = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def _echo(conn, data):
    conn.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = conn.recv(65536)
        assert chunk, "connection closed"
        got += chunk
    return got


def test_forwards_and_adds_latency_each_way(echo_port):
    with FaultProxy(echo_port) as proxy:
        conn = _connect(proxy)
        assert _echo(conn, b"hello") == b"hello"
        proxy.set_latency(100)
        start = time.monotonic()
        _echo(conn, b"x")
        rtt = time.monotonic() - start
        assert 0.19 <= rtt < 0.6, rtt  # 100 ms each way
        conn.close()


def test_partition_holds_bytes_without_closing_then_delivers_them_in_order(echo_port):
    with FaultProxy(echo_port) as proxy:
        conn = _connect(proxy)
        _echo(conn, b"before")
        proxy.partition(True)
        conn.sendall(b"during-1 ")
        conn.sendall(b"during-2")
        conn.settimeout(1.0)
        with pytest.raises(socket.timeout):  # nothing comes back, and nothing is closed
            conn.recv(100)
        # A new connection is accepted but gets nothing through either.
        late = _connect(proxy)
        late.sendall(b"late")
        late.settimeout(0.5)
        with pytest.raises(socket.timeout):
            late.recv(100)
        proxy.partition(False)
        conn.settimeout(5)
        late.settimeout(5)
        got = b""
        while len(got) < len(b"during-1 during-2"):
            got += conn.recv(100)
        assert got == b"during-1 during-2"
        assert late.recv(100) == b"late"
        conn.close()
        late.close()


def test_reset_sends_an_rst(echo_port):
    with FaultProxy(echo_port) as proxy:
        conn = _connect(proxy)
        _echo(conn, b"x")
        assert proxy.reset() == 1
        with pytest.raises(ConnectionResetError):
            conn.sendall(b"y")
            conn.recv(10)
        assert proxy.snapshot()["resets"] == 1


def test_bandwidth_paces_each_direction(echo_port):
    with FaultProxy(echo_port) as proxy:
        conn = _connect(proxy)
        proxy.set_bandwidth(200_000)
        start = time.monotonic()
        _echo(conn, b"b" * 200_000)
        took = time.monotonic() - start
        assert 0.9 <= took < 3.0, took  # ~1 s each way, pipelined


def test_loss_shows_as_retransmission_stalls_and_gives_up_like_tcp(echo_port):
    with FaultProxy(echo_port, seed=5, rto_ms=20, max_retries=3) as proxy:
        conn = _connect(proxy)
        proxy.set_loss(0.5)
        start = time.monotonic()
        for _ in range(10):
            _echo(conn, b"ping")
        stats = proxy.snapshot()
        assert stats["lost_segments"] > 0 and stats["stall_ms"] >= 20 * stats["lost_segments"]
        assert time.monotonic() - start >= stats["stall_ms"] / 1000.0 / 2  # the stalls were really waited
        # Nearly every segment lost: after max_retries in a row the stack gives up (RST).
        proxy.set_loss(0.99)
        conn.settimeout(5)
        with pytest.raises((ConnectionResetError, AssertionError)):
            for _ in range(20):
                _echo(conn, b"ping")
        assert proxy.snapshot()["gave_up"] >= 1


def test_console_commands(echo_port, capsys):
    with FaultProxy(echo_port) as proxy:
        for line in ("latency 20", "loss 0.1", "bandwidth 1000", "partition on", "partition off", "clear",
                     "status"):
            assert _command(proxy, line)
        assert not _command(proxy, "quit")
        _command(proxy, "loss 2")
        _command(proxy, "fly")
    out = capsys.readouterr().out
    assert "ok latency 20" in out and "connections=0" in out
    assert "must be in [0, 1)" in out and "not understood" in out


def test_a_blackhole_is_noticed_only_by_the_mqtt_keepalive(pki, broker):
    """Through the proxy to the real TLS mosquitto: a partition closes
    nothing; paho declares the link dead after about 2x keepalive without a
    byte from the broker (it pings after one keepalive, gives up after the
    next)."""
    cert, key = pki.client("proxy-keepalive")
    context = client_context(pki.ca_cert, cert, key)

    async def run(proxy):
        async with aiomqtt.Client("127.0.0.1", proxy.port, tls_context=context, keepalive=1,
                                  identifier="proxy-keepalive") as client:
            await client.publish("test/proxy-keepalive", b"x", qos=1)
            proxy.partition(True)
            start = time.monotonic()
            with pytest.raises(aiomqtt.MqttError):
                await asyncio.wait_for(client._disconnected, 10)
            return time.monotonic() - start

    with FaultProxy(broker.port) as proxy:
        took = asyncio.run(run(proxy))
        assert 1.0 <= took <= 4.0, took
        assert proxy.snapshot()["open"] == 1  # the proxy closed nothing itself
        with contextlib.suppress(Exception):
            proxy.partition(False)


def test_scheduled_faults_fire_on_time(echo_port):
    with FaultProxy(echo_port) as proxy:
        conn = _connect(proxy)
        proxy.schedule(0.2, "partition", True)
        proxy.schedule(0.8, "partition", False)
        time.sleep(0.4)
        conn.sendall(b"held")
        conn.settimeout(0.2)
        with pytest.raises(socket.timeout):
            conn.recv(10)
        conn.settimeout(5)
        start = time.monotonic()
        assert conn.recv(10) == b"held"
        assert 0.1 <= time.monotonic() - start + 0.2 <= 1.5


def test_the_command_line_proxy(echo_port):
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-m", "simulator.faults.fault_proxy", "--target", "127.0.0.1:%d" % echo_port],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        first = process.stdout.readline()
        assert first.startswith("listening 127.0.0.1:"), first
        port = int(first.split()[1].split(":")[1])
        conn = socket.create_connection(("127.0.0.1", port), timeout=5)
        assert _echo(conn, b"cli") == b"cli"
        process.stdin.write("status\nquit\n")
        process.stdin.flush()
        assert process.wait(10) == 0
        out = process.stdout.read()
        assert "connections=1" in out and "bytes_up=3" in out
        conn.close()
    finally:
        if process.poll() is None:
            process.kill()
    bad = subprocess.run([sys.executable, "-m", "simulator.faults.fault_proxy", "--target", "nowhere"], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "HOST:PORT" in bad.stderr
