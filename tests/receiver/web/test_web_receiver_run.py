"""`edge-agent receiver run --http`: the web view served by the receiver's
own process, beside its MQTT work, with a real agent sending through the
session's mutual-TLS mosquitto: the alert the agent raises is on the
view's alerts page, the device on its fleet page, 401 without the token."""

import time

import pytest

from edge_agent.keys.identity import create_identity
from simulator.fixtures.broker import free_port
from simulator.fixtures.processes import Child, edge_agent_argv
from web_support import READ_TOKEN, get

pytestmark = pytest.mark.integration


def test_receiver_run_serves_the_view_of_what_it_receives(pki, broker, start_agent, pty, tmp_path):
    from edge_agent.core import frames as fr

    identity = create_identity(str(tmp_path / "rx-web-agent"), "rx-web-agent")
    registry_file = tmp_path / "devices.toml"
    registry_file.write_text(identity.registry_entry(model="EA-DEMO-1"))
    token = tmp_path / "token"
    token.write_text(READ_TOKEN + "\n")
    token.chmod(0o600)
    cert, key = pki.receiver("rx-web")
    port = free_port()
    receiver = Child("receiver", edge_agent_argv(
        "receiver", "run", "--registry", str(registry_file), "--db", str(tmp_path / "rx.sqlite"), "--no-live",
        "--group", "", "--broker", "127.0.0.1:%d" % broker.port, "--ca", pki.ca_cert, "--cert", cert, "--key", key,
        "--http", "127.0.0.1:%d" % port, "--http-token-file", str(token)), relay=False)
    agent = None
    base = "http://127.0.0.1:%d" % port
    try:
        receiver.wait_for("receiving", 15)
        receiver.wait_for("web view: http://127.0.0.1:%d/" % port, 15)
        agent = start_agent(broker.port, "rx-web-agent", pty.path, extra=("--telemetry-interval-ms", "300"))
        agent.child.wait_for("connected to broker", 20)
        for value in (40, 41, 150, 42):
            pty.write(fr.encode_frame(fr.READING, "coolant_temp", value))
        receiver.wait_for("alert rx-web-agent", 20)
        deadline = time.monotonic() + 10
        while "outside its valid range" not in get(base + "/alerts")[1]:
            assert time.monotonic() < deadline, get(base + "/alerts")[1]
            time.sleep(0.2)
        status, fleet = get(base + "/")
        assert status == 200 and 'data-device="rx-web-agent"' in fleet
        assert get(base + "/device/rx-web-agent")[0] == 200
        assert get(base + "/", token=None)[0] == 401
    finally:
        if agent is not None:
            agent.stop()
        receiver.stop()
    assert "Traceback" not in receiver.text(), receiver.text()
