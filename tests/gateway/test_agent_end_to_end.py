"""The walking skeleton on real parts: pty serial -> agent -> mutual-TLS
mosquitto -> subscriber. No mocks: a real broker, real ptys, real processes."""

import os
import signal
import time

import pytest

from edge_agent.core import frames as fr
from edge_agent.core import signals as sg
from simulator.fixtures.broker import Mosquitto, free_port
from simulator.fixtures.processes import Child, edge_agent_argv

from conftest import BOARD, REGISTRY

pytestmark = pytest.mark.integration


def _open(topic, payload):
    """Verify the signature and decode: every signal in these tests is checked."""
    return REGISTRY.open_signal(payload, topic)


def _alerts(messages):
    return [_open(topic, payload) for topic, payload in messages if topic.endswith("/alert")]


def _frame(sensor, value):
    return fr.encode_frame(fr.READING, sensor, value)


def test_simulated_sensor_failure_reaches_subscriber_as_alert(broker, start_agent, subscribe):
    sim = Child("sim", edge_agent_argv("sim", "sensors", "--board", BOARD, "--seed", "3"), stdin=True, relay=False)
    try:
        pty_path = sim.wait_for("pty ", 10).split(" ", 1)[1]
        agent = start_agent(broker.port, "e2e-sim", pty_path, extra=("--telemetry-interval-ms", "500"))
        agent.child.wait_for("connected to broker", 20)
        messages = subscribe(
            broker.port,
            ["ea/v1/e2e-sim/alert", "ea/v1/e2e-sim/telemetry"],
            lambda ms: _alerts(ms) and any(t.endswith("/telemetry") for t, _ in ms),
            action=lambda: sim.send("fail coolant_temp high"),
        )
    finally:
        sim.stop()
    alert = _alerts(messages)[0]
    assert alert.device == "e2e-sim"
    assert alert.priority == sg.PRIORITY_CRITICAL
    assert alert.body[sg.A_CONDITION] == "out_of_range"
    assert alert.body[sg.A_SENSOR] == "coolant_temp"
    assert alert.body[sg.A_VALUE] > 110
    assert alert.body[sg.A_PART] == "4711"
    telemetry = [_open(t, p) for t, p in messages if t.endswith("/telemetry")][0]
    sensors = {entry[1] for entry in telemetry.body[sg.T_READINGS]}
    assert sensors <= {"coolant_temp", "coolant_flow", "fan_speed", "cabinet_temp"} and sensors


def test_bad_serial_input_is_reported_and_survived(broker, start_agent, subscribe, pty):
    agent = start_agent(broker.port, "e2e-noise", pty.path)
    agent.child.wait_for("connected to broker", 20)
    agent.child.wait_for("reading " + pty.path, 10)

    def send_noise_then_failure():
        good = _frame("coolant_temp", 40)
        pty.write(b"\x00\xff\xfe line noise \x07")  # garbage
        pty.write(good[:9])  # truncated frame...
        pty.write(good.replace(b"R,coolant_temp,40", b"R,coolant_temp,41"))  # ...then a bad checksum
        pty.write(_frame("oil_pressure", 3))  # a sensor the board does not know
        pty.write(b"$" + b"9" * 300 + b"\n")  # overlong
        pty.write(_frame("coolant_temp", 150))  # and still: the alert

    messages = subscribe(broker.port, ["ea/v1/e2e-noise/alert"], _alerts, action=send_noise_then_failure)
    assert _alerts(messages)[0].body[sg.A_VALUE] == 150.0
    log = agent.child.text()
    for words in (
        "garbage",
        "truncated",
        "bad-checksum: declared",
        "unknown sensor id 'oil_pressure'; add [sensors.oil_pressure] to",
        "overlong",
    ):
        assert words in log, words
    assert agent.child.process.poll() is None  # still running


def test_unreachable_broker_is_retried_and_alerts_wait(pki, start_agent, subscribe, pty, tmp_path):
    port = free_port()
    agent = start_agent(port, "e2e-offline", pty.path)
    line = agent.child.wait_for("; retrying in", 20)
    assert "unreachable" in line
    pty.write(_frame("coolant_temp", 200))  # alert raised while offline
    agent.child.wait_for("alert #", 10)
    # Freeze the agent so the subscriber is listening before it reconnects;
    # after SIGCONT its backoff timer has expired and it connects at once.
    os.killpg(agent.child.process.pid, signal.SIGSTOP)
    try:
        with Mosquitto(str(tmp_path / "late-broker"), pki=pki, port=port):
            messages = subscribe(
                port,
                ["ea/v1/e2e-offline/alert"],
                _alerts,
                timeout_s=40,
                action=lambda: os.killpg(agent.child.process.pid, signal.SIGCONT),
            )
    finally:
        os.killpg(agent.child.process.pid, signal.SIGCONT)
    assert _alerts(messages)[0].body[sg.A_VALUE] == 200.0


def test_serial_port_that_vanishes_is_reopened(broker, start_agent, subscribe, tmp_path):
    from conftest import Pty

    link = str(tmp_path / "ttyUSB0")
    first = Pty()
    os.symlink(first.path, link)
    agent = start_agent(broker.port, "e2e-replug", link)
    agent.child.wait_for("reading " + link, 10)
    first.close()  # unplugged
    os.unlink(link)
    mark = agent.child.mark()
    agent.child.wait_for("cannot open", 15, since=mark)
    second = Pty()
    try:
        os.symlink(second.path, link)  # plugged back in
        agent.child.wait_for("reading " + link, 30, since=mark)
        messages = subscribe(
            broker.port, ["ea/v1/e2e-replug/alert"], _alerts, action=lambda: second.write(_frame("coolant_flow", -5))
        )
    finally:
        second.close()
    assert _alerts(messages)[0].body[sg.A_SENSOR] == "coolant_flow"


def test_retained_status_and_last_will(broker, start_agent, subscribe, pty):
    from edge_agent.core import cbor

    agent = start_agent(broker.port, "e2e-status", pty.path)
    agent.child.wait_for("connected to broker", 20)
    online = subscribe(broker.port, ["ea/v1/e2e-status/status"], lambda ms: ms)
    assert cbor.loads(online[-1][1])[sg.K_ONLINE] is True
    agent.child.kill()  # no clean disconnect: the broker publishes the will
    deadline = time.monotonic() + 10
    while True:
        status = subscribe(broker.port, ["ea/v1/e2e-status/status"], lambda ms: ms)
        if cbor.loads(status[-1][1])[sg.K_ONLINE] is False:
            break
        assert time.monotonic() < deadline, "last will not published"
        time.sleep(0.5)


def test_plaintext_broker_refused_by_tls_default(broker, pki, pty, tmp_path):
    """TLS is the default: the agent will not talk plaintext unless told."""
    from edge_agent.keys.identity import create_identity

    directory = str(tmp_path / "id")
    create_identity(directory, "plain")
    child = Child("agent", edge_agent_argv("run", "--board", BOARD, "--port", pty.path, "--identity", directory,
                                           "--broker", "127.0.0.1:1"), relay=False)
    assert child.process.wait(20) == 2
    child.stop()
    assert "TLS needs --ca" in child.text()
