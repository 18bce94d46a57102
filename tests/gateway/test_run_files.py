"""What `edge-agent run` writes is its owner's alone: a real agent process
started under a 022 umask (a shell's) makes its store segments, markers,
state and counters 0600 and its new directories 0700."""

import asyncio
import os
import stat

import aiomqtt
import pytest

from edge_agent.broker import client_context
from edge_agent.core import operator as op
from edge_agent.keys.operators import create_operator

pytestmark = pytest.mark.integration


def publish(pki, port, topic, payloads):
    cert, key = pki.operator("test-run-files")  # an operator may publish commands (docs/deploy/mosquitto.acl)

    async def run():
        async with aiomqtt.Client("127.0.0.1", port, tls_context=client_context(pki.ca_cert, cert, key)) as client:
            for payload in payloads:
                await client.publish(topic, payload, qos=1)

    asyncio.run(run())


def _modes(top):
    """{path relative to top: mode} of top and everything under it."""
    found = {".": stat.S_IMODE(os.stat(top).st_mode)}
    for directory, dirs, files in os.walk(top):
        for name in dirs + files:
            path = os.path.join(directory, name)
            try:
                found[os.path.relpath(path, top)] = stat.S_IMODE(os.lstat(path).st_mode)
            except FileNotFoundError:  # a temporary renamed away meanwhile
                pass
    return found


def test_the_agents_files_are_0600_and_its_directories_0700(broker, start_agent, subscribe, pty, pki, tmp_path):
    operator = create_operator(str(tmp_path / "operator"), "ops-team")
    trusted = tmp_path / "operators.toml"
    trusted.write_text(operator.public_entry())
    device = "run-modes"
    old = os.umask(0o022)
    try:
        agent = start_agent(broker.port, device, pty.path, extra=("--operators", str(trusted)))
    finally:
        os.umask(old)
    agent.child.wait_for("listening for signed commands", 20)
    force = operator.command(device, "quarantine.force", {"component": "cabinet_fan"}, 1, 600)
    # A command: the counters file is written.
    subscribe(broker.port, ["ea/v1/%s/audit" % device], lambda ms: len(ms) >= 1,
              action=lambda: publish(pki, broker.port, op.command_topic(device), [force]))
    running = _all_modes(agent.identity_dir)  # open segments are here
    agent.stop()
    stopped = _all_modes(agent.identity_dir)  # the ack markers, written at the stop
    names = set(running) | set(stopped)
    assert {"store/seq", "store/last-recovery", "store/lock", "state/counters.cbor"} <= names, sorted(names)
    assert [n for n in running if n.endswith(".seg")] and [n for n in stopped if n.endswith(".ack")], sorted(names)
    wrong = dict((name, oct(mode)) for name, mode in list(running.items()) + list(stopped.items())
                 if mode != (0o700 if name in ("store", "state") else 0o600))
    assert not wrong, "not 0600 (files) or 0700 (directories): %s" % wrong


def _all_modes(identity_dir):
    """The modes of the agent's store and state directories and what is in them."""
    found = {}
    for top in ("store", "state"):
        for name, mode in _modes(os.path.join(identity_dir, top)).items():
            found[top if name == "." else top + "/" + name] = mode
    return found
