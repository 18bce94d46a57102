"""Shared pytest setup. Torture tests run only under `make torture`."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# tests/core/support.py is shared with the MicroPython runner, which has no
# packages for tests: make it importable as a top-level module here too.
sys.path.insert(0, os.path.join(ROOT, "tests", "core"))


def pytest_collection_modifyitems(config, items):
    if os.environ.get("EA_TORTURE"):
        return
    skip = pytest.mark.skip(reason="long run: use `make torture`")
    for item in items:
        if "torture" in item.keywords:
            item.add_marker(skip)


# --- real parts: a TLS mosquitto, certificates, ptys, agent processes -------

import asyncio  # noqa: E402
import contextlib  # noqa: E402
import re  # noqa: E402
import threading  # noqa: E402
import tomllib  # noqa: E402
import tty  # noqa: E402

import aiomqtt  # noqa: E402

from edge_agent.keys.identity import create_identity  # noqa: E402
from edge_agent.receiver.registry import Registry  # noqa: E402
from edge_agent.broker import client_context  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID  # noqa: E402
from simulator.fixtures.broker import Acl, Mosquitto  # noqa: E402
from simulator.fixtures.pki import DevPKI  # noqa: E402
from simulator.fixtures.processes import Child, edge_agent_argv  # noqa: E402

BOARD = os.path.join(ROOT, "boards", "demo-gateway.toml")

# The session's broker runs the shipped broker config and ACL
# (docs/deploy/): pki.client(NAME) is a device's certificate (CN = NAME),
# which may publish only as that device. Tests written before the ACL issue
# these names for another job, so they get that job's certificate instead;
# new tests ask for it: pki.receiver(NAME), pki.operator(NAME).
LEGACY_ROLES = (
    ("operator", re.compile(r"test-operator|test-cli|test-cli-model|test-publisher-\d+")),
    ("receiver", re.compile(r"rx-\d+|rx-cli|cli-watch|preempt-sub|.+-receiver")),
    # A test harness may publish and read anything, as no real identity may:
    # it injects garbage on other devices' topics (rx-pub), uplinks for a
    # device under another name (preempt-up), or drives MQTT on topics of
    # its own (fw-mqtt-*). CN harness:NAME.
    ("harness", re.compile(r"rx-pub|preempt-up|fw-mqtt-device|fw-mqtt-peer")),
)
HARNESS = "harness:"


class SessionPKI(DevPKI):
    """The session's throwaway PKI: each identity it issues is granted on the
    session broker's ACL, in force (mosquitto reloaded) before it returns."""

    def __init__(self, directory):
        super().__init__(directory)
        self.acl = Acl()
        self.brokers = []
        self._lock = threading.Lock()

    def _grant(self, changed):
        if changed:
            for running in self.brokers:
                running.reload_acl()

    def client(self, name):
        for role, names in LEGACY_ROLES:
            if names.fullmatch(name):
                return getattr(self, role)(name)
        return super().client(name)

    def receiver(self, name):
        with self._lock:
            self._grant(self.acl.receiver(name))
        return super().receiver(name)

    def operator(self, name):
        with self._lock:
            self._grant(self.acl.operator(name))
        return super().operator(name)

    def harness(self, name):
        with self._lock:
            self._grant(self.acl.grant(HARNESS + name, [("readwrite", "#")]))
        return self._issue(name, HARNESS + name, ExtendedKeyUsageOID.CLIENT_AUTH)

    def device_model(self, device_id, model):
        """The device (a gateway) receives its model's command topic."""
        with self._lock:
            self._grant(self.acl.device(device_id, model))


def board_model(board_path):
    with open(board_path, "rb") as f:
        return tomllib.load(f)["board"]["model"]


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return SessionPKI(str(tmp_path_factory.mktemp("pki")))


# The receiver side's registry: every identity the tests create is added,
# so tests verify every signal they receive.
REGISTRY = Registry()


@pytest.fixture(scope="session")
def registry():
    return REGISTRY


@pytest.fixture(scope="session")
def broker(pki, tmp_path_factory):
    """One mutual-TLS mosquitto for the session, configured as shipped
    (docs/deploy/mosquitto.conf and its ACL): tests use unique device ids so
    their topics never overlap."""
    with Mosquitto(str(tmp_path_factory.mktemp("broker")), pki=pki, acl=pki.acl) as running:
        pki.brokers.append(running)
        try:
            yield running
        finally:
            pki.brokers.remove(running)


class Pty:
    """A pseudo-terminal pair: tests write sensor bytes to ``master``; the
    agent opens ``path`` as its serial port."""

    def __init__(self):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)

    def write(self, data):
        os.write(self.master, data)

    def close(self):
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


@pytest.fixture
def pty():
    pair = Pty()
    yield pair
    pair.close()


class Agent:
    """`edge-agent run` as a real subprocess with mutual TLS to ``broker`` and
    its own signing identity."""

    def __init__(self, pki, broker_port, identity_dir, port_path, board=BOARD, extra=()):
        self.identity_dir = identity_dir
        device_id = os.path.basename(identity_dir)
        cert, key = pki.client(device_id)
        pki.device_model(device_id, board_model(board))
        self.child = Child(
            "agent-" + os.path.basename(identity_dir),
            edge_agent_argv(
                "--log-level", "debug", "run", "--board", board, "--port", port_path, "--identity", identity_dir,
                "--broker", "127.0.0.1:%d" % broker_port, "--ca", pki.ca_cert, "--cert", cert, "--key", key,
                "--gpio", "simulated", *extra,
            ),
            relay=False,
        )

    def stop(self):
        self.child.stop()


@pytest.fixture
def start_agent(pki, registry, tmp_path):
    started = []

    def start(broker_port, device_id, port_path, algorithm="EdDSA", **kwargs):
        directory = str(tmp_path / device_id)
        if not os.path.exists(directory):
            identity = create_identity(directory, device_id, algorithm)
            registry.add_entries(identity.registry_entry(include_secret=True))
        agent = Agent(pki, broker_port, directory, port_path, **kwargs)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop()


class Subscriber:
    """A real MQTT subscriber in a background asyncio task, collecting
    (topic, payload) pairs; used from synchronous tests."""

    def __init__(self, pki, port, topics):
        cert, key = pki.receiver("test-subscriber")
        self.context = client_context(pki.ca_cert, cert, key)
        self.port = port
        self.topics = topics
        self.messages = []
        self.ready = None

    async def _run(self, ready):
        async with aiomqtt.Client("127.0.0.1", self.port, tls_context=self.context) as client:
            for topic in self.topics:
                await client.subscribe(topic, qos=1)
            ready.set()
            async for message in client.messages:
                self.messages.append((str(message.topic), bytes(message.payload)))

    async def collect_until(self, predicate, timeout_s, action=None):
        """Subscribe, run ``action()`` (sync) once subscribed, then wait until
        predicate(self.messages) is true. Returns the messages."""
        ready = asyncio.Event()
        task = asyncio.create_task(self._run(ready))
        try:
            await asyncio.wait_for(ready.wait(), 10)
            if action:
                await asyncio.get_running_loop().run_in_executor(None, action)
            deadline = asyncio.get_running_loop().time() + timeout_s
            while not predicate(self.messages):
                if task.done():
                    task.result()
                if asyncio.get_running_loop().time() > deadline:
                    topics = {}
                    for topic, _ in self.messages:
                        topics[topic] = topics.get(topic, 0) + 1
                    raise AssertionError("timed out; got %d messages by topic: %r" % (len(self.messages), topics))
                await asyncio.sleep(0.05)
            return self.messages
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


@pytest.fixture
def subscribe(pki):
    def make(port, topics, predicate, timeout_s=20, action=None):
        return asyncio.run(Subscriber(pki, port, topics).collect_until(predicate, timeout_s, action))

    return make


# --- PostgreSQL: a real server for the receiver's PostgreSQL backend ---------

from simulator.fixtures.postgres import Postgres, PostgresUnavailable  # noqa: E402


@pytest.fixture(scope="session")
def postgres_server():
    """One PostgreSQL server for the session (Debian's package, our own
    cluster on a free loopback port); tests take a database each. Skipped,
    saying why, where PostgreSQL is not installed."""
    try:
        server = Postgres().start()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A new, empty receiver database, once per backend: a SQLite file, or
    a database of its own on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "receiver.sqlite")
    return request.getfixturevalue("postgres_server").create_database()
