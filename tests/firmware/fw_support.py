"""Shared rig for the firmware tests: the real firmware on the MicroPython
unix port, a real mosquitto (mutual TLS), the reference receiver verifying
COSE_Mac0 with the device's HMAC secret, and sensors on a real pty.

    rig = Rig(tmp_path, pki, "fw-e2e")          # identity, board.cbor, device.cbor
    fw = rig.start_firmware(port_path, broker)  # micropython firmware/unix_main.py ...
    receiver = rig.start_receiver(broker)

``Rig(..., flash=True)`` runs the firmware's store on littlefs, as on the
board: a flash partition in ``flash.bin`` (unix_main.py --flash), which
outlives a killed firmware as flash outlives a power cut.

EA_FIRMWARE_DIR runs the firmware from another directory (default
"firmware"), e.g. a copy with one module changed, to see a test fail.

``start_firmware(..., micropython=PATH)`` runs another MicroPython binary,
e.g. the 32-bit stand-in of `make micropython32`
(edge_agent.tools.micropython32.binary()); with ``frozen=True`` the firmware
is the one frozen into that binary (tests/firmware/frozen_boot.py).
"""

import os
import re
import sqlite3
import sys
import threading
import time

from edge_agent.tools import firmware_build as fb
from edge_agent.atomic_file import atomic_write
from edge_agent.core import frames as fr
from edge_agent.keys.identity import create_identity
from edge_agent.receiver.storage import Storage
from simulator.fixtures.processes import ROOT, Child, edge_agent_argv

MICROPYTHON = os.path.join(os.path.dirname(sys.executable), "micropython")
FIRMWARE_DIR = os.environ.get("EA_FIRMWARE_DIR", "firmware")
FIRMWARE_PATH = FIRMWARE_DIR + ":.:.frozen"
ROM_BOOT = os.path.join(ROOT, "tests", "firmware", "rom_boot.py")
FROZEN_BOOT = os.path.join(ROOT, "tests", "firmware", "frozen_boot.py")
# A board made for the firmware tests: one UART with the line protocol, a
# fan the health engine quarantines (cutting its power pin), a coolant loop.
BOARD = os.path.join(ROOT, "boards", "demo-gateway.toml")


class Rig:
    def __init__(self, directory, pki, device_id, board=BOARD, bus="uart0", output="fan_power", flash=False):
        self.directory = str(directory)
        self.pki = pki
        self.device_id = device_id
        self.identity = create_identity(os.path.join(self.directory, "identity"), device_id, "HMAC256")
        self.board_cbor = os.path.join(self.directory, "board.cbor")
        with open(self.board_cbor, "wb") as f:
            f.write(fb.compile_board(board))
        self.device_cbor = os.path.join(self.directory, "device.cbor")
        self.store = os.path.join(self.directory, "store")
        self.flash = os.path.join(self.directory, "flash.bin") if flash else None
        self.fan_pin = os.path.join(self.directory, "fan_power.pin")
        self.db = os.path.join(self.directory, "receiver.sqlite")
        self.registry = os.path.join(self.directory, "devices.toml")
        with open(self.registry, "w") as f:
            f.write(self.identity.registry_entry(include_secret=True))
        os.chmod(self.registry, 0o600)
        self.children = []
        self.bus = bus
        self.output = output

    def provision(self, broker_port, operators=(), insecure=False, **options):
        """The device settings: mutual TLS with the pki, or ``insecure``
        (plaintext MQTT, `firmware provision --insecure`); ``options``:
        fb.provision's others (window_bytes, window_hours)."""
        identity = os.path.join(self.directory, "identity")
        if insecure:
            data = fb.provision(identity, "127.0.0.1", broker_port, operators=operators, insecure=True, **options)
        else:
            cert, key = self.pki.client(self.device_id)
            data = fb.provision(identity, "127.0.0.1", broker_port, self.pki.ca_cert, cert, key, operators=operators,
                                **options)
        atomic_write(self.device_cbor, data, mode=0o600)

    def firmware_argv(self, uart_path, *extra, heap=None, rom=None, micropython=None, frozen=False):
        args = ["--board", self.board_cbor, "--device", self.device_cbor,
                *(["--flash", self.flash] if self.flash else ["--store", self.store]),
                "--uart", "%s=%s" % (self.bus, uart_path), *extra]
        if self.output:
            args += ["--output-pin", "%s=%s" % (self.output, self.fan_pin)]
        prefix = [micropython or MICROPYTHON] + (["-X", "heapsize=" + heap] if heap else [])
        if rom:
            return prefix + [ROM_BOOT, rom] + args
        if frozen:
            return prefix + [FROZEN_BOOT] + args
        return prefix + [os.path.join(FIRMWARE_DIR, "unix_main.py")] + args

    def start_firmware(self, uart_path, broker_port, *extra, heap=None, rom=None, name="firmware", micropython=None,
                       frozen=False):
        if not os.path.exists(self.device_cbor):
            self.provision(broker_port)
        child = Child(name, self.firmware_argv(uart_path, *extra, heap=heap, rom=rom, micropython=micropython,
                                               frozen=frozen), stdin=True, relay=False,
                      env={"MICROPYPATH": FIRMWARE_PATH})
        self.children.append(child)
        return child

    def start_receiver(self, broker_port, insecure=False):
        if insecure:
            connection = ["--insecure"]
        else:
            cert, key = self.pki.client(self.device_id + "-receiver")
            connection = ["--ca", self.pki.ca_cert, "--cert", cert, "--key", key]
        child = Child("receiver", edge_agent_argv(
            "receiver", "run", "--registry", self.registry, "--db", self.db, "--no-live", "--group", "",
            "--client-id", self.device_id + "-receiver",
            "--broker", "127.0.0.1:%d" % broker_port, *connection),
            relay=False)
        self.children.append(child)
        child.wait_for("receiving", 15)
        return child

    def max_seq(self):
        if not os.path.exists(self.db):
            return 0
        with sqlite3.connect(self.db) as connection:
            try:
                return connection.execute("SELECT COALESCE(MAX(seq), 0) FROM signals").fetchone()[0]
            except sqlite3.OperationalError:
                return 0

    def wait_seq(self, seq, timeout_s):
        deadline = time.monotonic() + timeout_s
        while self.max_seq() < seq:
            assert time.monotonic() < deadline, "receiver has seq %d of %d" % (self.max_seq(), seq)
            time.sleep(0.1)

    def summary(self):
        """What the receiver stored for this device: a dict of counts and gaps."""
        storage = Storage(self.db)
        try:
            lost, skipped = storage.missing(self.device_id)
            q = storage.db.execute
            result = {
                "lost": lost, "skipped": skipped,
                "count": q("SELECT COUNT(*) FROM signals WHERE device=?", (self.device_id,)).fetchone()[0],
                "births": [r[0] for r in q("SELECT seq FROM signals WHERE device=? AND kind=5 ORDER BY seq",
                                           (self.device_id,))],
                "alerts": q("SELECT COUNT(*) FROM alerts WHERE device=?", (self.device_id,)).fetchone()[0],
                "telemetry": q("SELECT COUNT(*) FROM signals WHERE device=? AND kind=2", (self.device_id,)).fetchone()[0],
                "rejections": storage.rejection_counts(),
            }
        finally:
            storage.close()
        return result

    def stop_all(self):
        for child in reversed(self.children):
            child.stop()


def publish(pki, port, topic, payloads):
    """Publish ``payloads`` (QoS 1) with a real MQTT client (aiomqtt)."""
    import asyncio

    import aiomqtt

    from edge_agent.broker import client_context

    cert, key = pki.client("test-publisher-%d" % os.getpid())

    async def run():
        async with aiomqtt.Client("127.0.0.1", port, tls_context=client_context(pki.ca_cert, cert, key)) as client:
            for payload in payloads:
                await client.publish(topic, payload, qos=1)

    asyncio.run(run())


def stop_firmware(child, timeout_s=20):
    """Stop cleanly through stdin (the firmware sends what it stored, then
    closes the store); return the last seq it issued."""
    mark = child.mark()
    child.send("stop")
    line = child.wait_for("last seq issued", timeout_s, since=mark)
    left = [text for text in child.lines[mark:] if "signals stored (" in text]
    assert not left, "the firmware stopped before its store was drained: %s\n%s" % (left, child.text()[-3000:])
    child.process.wait(timeout_s)
    return int(re.search(r"last seq issued (\d+)", line).group(1))


def heap_lines(child):
    return [line for line in child.text().splitlines() if line.startswith("info heap free=")]


class FrameWriter:
    """Writes line-protocol frames into a pty like a sensor board: each
    sensor of ``values`` at ``rate_hz`` frames/s in total, round robin;
    what nobody reads is dropped, as on a UART."""

    def __init__(self, pty_master, values, rate_hz=200):
        self.master = pty_master
        self.values = values  # [(sensor, callable n -> value)]
        self.rate_hz = rate_hz
        self.sent = 0
        self.stop = threading.Event()
        os.set_blocking(pty_master, False)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        n = 0
        while not self.stop.is_set():
            sensor, value = self.values[n % len(self.values)]
            try:
                os.write(self.master, fr.encode_frame(fr.READING, sensor, value(n)))
                self.sent += 1
            except (BlockingIOError, OSError):
                pass
            n += 1
            time.sleep(1 / self.rate_hz)

    def close(self):
        self.stop.set()
        self.thread.join(5)


def seq_times(db, device_id):
    """[(seq, kind, time_ms)] the receiver stored, by seq."""
    with sqlite3.connect(db) as connection:
        return connection.execute("SELECT seq, kind, time_ms FROM signals WHERE device=? ORDER BY seq",
                                  (device_id,)).fetchall()


def no_seq_reused(rows):
    """Every signal numbered at or after a birth was made in that boot or
    later (a seq reused after a crash would carry an older time)."""
    births = [(seq, time_ms) for seq, kind, time_ms in rows if kind == 5]
    for birth_seq, birth_ms in births:
        older = [(seq, t) for seq, _, t in rows if seq >= birth_seq and t < birth_ms]
        assert not older, "seqs %r were made before the boot whose birth is #%d" % (older[:5], birth_seq)


def demo_values(alert_every=50):
    """The demo board's four sensors, always moving (the fan's stuck rule
    stays quiet); every ``alert_every``-th coolant reading is out of range."""
    return [
        ("coolant_temp", lambda n: 150.0 if n % (4 * alert_every) == 0 else 40.0 + (n % 7)),
        ("coolant_flow", lambda n: 12.0 + (n % 5) * 0.1),
        ("fan_speed", lambda n: 2400 + (n % 11)),
        ("cabinet_temp", lambda n: 30.0 + (n % 3) * 0.5),
    ]


class Link:
    """The device's network path to the broker, as a TCP forwarder on its
    own port that a test can cut (listener closed, connections reset: the
    device sees a refused connection, as with Wi-Fi down or the broker
    gone) and restore. The receiver talks to the broker directly."""

    def __init__(self, target_port):
        import socket

        self.target_port = target_port
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.listener = None
        self.sockets = []
        self.lock = threading.Lock()

    def up(self):
        import socket

        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(8)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def down(self):
        with self.lock:
            if self.listener is not None:
                self.listener.close()
                self.listener = None
            for sock in self.sockets:
                try:
                    sock.close()
                except OSError:
                    pass
            self.sockets = []

    def _accept(self, listener):
        import socket

        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source, sink):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.close()
            except OSError:
                pass
