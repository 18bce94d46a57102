"""A running agent with its console on a pty and a Unix socket, and a
terminal to type into it as a person would (for tests/test_console_*.py).

The agent is the real `edge-agent run` process: the virtual sensor board on
one pty, the console on another (the test holds its master side: the
technician's end of the cable), mutual TLS to the session's mosquitto,
a real Ed25519 operator whose public key is in its --operators file."""

import os
import re
import select
import socket
import time

from edge_agent.core import operator as op
from edge_agent.keys.identity import create_identity
from edge_agent.keys.operators import create_operator
from simulator.fixtures.processes import Child, edge_agent_argv

from conftest import BOARD, REGISTRY, Agent, Pty

PROMPT = re.compile(r"^[A-Za-z0-9_.-]+( \([A-Za-z0-9_.-]+\))?[>#] $")


class Terminal:
    """The screen of a terminal on a console connection: ``type`` sends
    keys, ``expect`` waits until text appears after what was consumed."""

    def __init__(self, read, write, name):
        self._read = read
        self._write = write
        self.name = name
        self.screen = ""  # everything received, CR LF as LF
        self.seen = 0  # position up to which expect() consumed

    def pump(self, timeout_s):
        data = self._read(timeout_s)
        if data:
            self.screen = (self.screen + data.decode("utf-8", "replace")).replace("\r\n", "\n")
        return data

    def type(self, keys, per_key_s=0.0):
        data = keys.encode() if isinstance(keys, str) else keys
        if per_key_s:
            for i in range(len(data)):
                self._write(data[i:i + 1])
                time.sleep(per_key_s)
        else:
            self._write(data)

    def expect(self, text, timeout_s=10):
        """Wait for ``text`` after the last match; return the screen from
        the last match up to and including it."""
        deadline = time.monotonic() + timeout_s
        while True:
            at = self.screen.find(text, self.seen)
            if at >= 0:
                chunk = self.screen[self.seen:at + len(text)]
                self.seen = at + len(text)
                return chunk
            if time.monotonic() > deadline:
                raise AssertionError("%s: %r not on screen after %d s; screen since last match:\n%s"
                                     % (self.name, text, timeout_s, self.screen[self.seen:]))
            self.pump(0.05)

    def command(self, line, timeout_s=10):
        """Type ``line`` and Enter; return the answer (echo and prompt cut)."""
        self.type(line + "\r")
        self.expect(line + "\n", timeout_s)
        return self.answer(timeout_s)

    def answer(self, timeout_s=10):
        """The text up to the next prompt (which must then stay quiet a moment)."""
        deadline = time.monotonic() + timeout_s
        while True:
            rest = self.screen[self.seen:]
            tail = rest.rsplit("\n", 1)[-1].rsplit("\r", 1)[-1]
            if PROMPT.match(tail) and not self.pump(0.1):
                self.seen = len(self.screen)
                return rest[: len(rest) - len(tail)].rstrip("\n")
            if time.monotonic() > deadline:
                raise AssertionError("%s: no prompt after %d s; screen since last match:\n%s"
                                     % (self.name, timeout_s, rest))
            self.pump(0.05)


def pty_terminal(master_fd, name="serial"):
    def read(timeout_s):
        ready, _, _ = select.select([master_fd], [], [], timeout_s)
        return os.read(master_fd, 65536) if ready else b""

    return Terminal(read, lambda data: os.write(master_fd, data), name)


def socket_terminal(path, name="socket"):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)

    def read(timeout_s):
        ready, _, _ = select.select([sock], [], [], timeout_s)
        return sock.recv(65536) if ready else b""

    terminal = Terminal(read, sock.sendall, name)
    terminal.sock = sock
    return terminal


class Rig:
    def __init__(self, pki, broker, directory, device_id, extra=()):
        self.device_id = device_id
        self.directory = directory
        self.operator = create_operator(os.path.join(directory, "operator"), "ops-team")
        self.operators_file = os.path.join(directory, "operators.toml")
        with open(self.operators_file, "w") as f:
            f.write(self.operator.public_entry())
        identity_dir = os.path.join(directory, device_id)
        identity = create_identity(identity_dir, device_id, "EdDSA")
        REGISTRY.add_entries(identity.registry_entry(include_secret=True))
        self.sim = Child("sim", edge_agent_argv("sim", "sensors", "--board", BOARD, "--seed", "3"), stdin=True,
                         relay=False)
        self.console_pty = Pty()
        self.socket_path = os.path.join(directory, "console.sock")
        self.missing_port = os.path.join(directory, "ttyUSB7")  # a cable not plugged in
        sensors = self.sim.wait_for("pty ", 10).split(" ", 1)[1]
        self.agent = Agent(pki, broker.port, identity_dir, sensors, extra=(
            "--console", self.console_pty.path, "--console-socket", self.socket_path,
            "--console", self.missing_port,
            "--operators", self.operators_file, *extra))
        self.agent.child.wait_for("console: socket", 20)
        self.agent.child.wait_for("console: serving", 20)

    def token(self, subject="alice", scopes=("read", "ack", "override", "selftest"), device=None, ttl_s=3600,
              now_ms=None, operator=None):
        data = (operator or self.operator).technician_token(device or self.device_id, subject, list(scopes), ttl_s,
                                                           now_ms=now_ms)
        return op.token_to_text(data)

    def serial(self):
        return pty_terminal(self.console_pty.master)

    def stop(self):
        self.agent.stop()
        self.sim.stop()
        self.console_pty.close()
