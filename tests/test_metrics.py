"""Prometheus metrics on both sides (issue 22): a real agent (`run
--metrics`) on a pty, sending through a real mosquitto to a real receiver
(`receiver run --metrics --routes`, its webhook target down). Both
endpoints are read with prometheus_client's own parser, and Debian's
Prometheus server scrapes them and answers queries for the expected
series (skipped, saying why, where it is not installed)."""

import math
import os
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge_agent.core import frames as fr
from edge_agent.keys.identity import create_identity
from edge_agent.metrics_endpoint import parse_address
from simulator.fixtures.broker import free_port
from simulator.fixtures.processes import Child, edge_agent_argv
from simulator.fixtures.prometheus import Prometheus, PrometheusUnavailable

pytestmark = pytest.mark.integration


def _scrape(port):
    """{(name, labels as sorted tuple): value} of one endpoint, by prometheus_client's parser."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as response:
        text = response.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def _value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def _until(check, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            result = check()
        except OSError:
            result = None
        if result:
            return result
        assert time.monotonic() < deadline, what
        time.sleep(0.3)


def test_agent_and_receiver_metrics_are_scraped_and_queried(pki, broker, start_agent, pty, tmp_path):
    device = "metrics-1"
    identity = create_identity(str(tmp_path / device), device)  # start_agent uses this directory as is
    registry = tmp_path / "devices.toml"
    registry.write_text(identity.registry_entry(model="EA-DEMO-1"))
    secret = tmp_path / "hook.secret"
    secret.write_text("m" * 32)
    os.chmod(secret, 0o600)
    routes = tmp_path / "routes.toml"
    routes.write_text('[[route]]\nname = "ops"\nurl = "http://127.0.0.1:%d/hook"\nsecret_file = "%s"\n'
                      % (free_port(), secret))  # nobody listens there: deliveries stay pending
    rx_port, agent_port = free_port(), free_port()
    cert, key = pki.receiver("metrics-rx")
    receiver = Child("metrics-rx", edge_agent_argv(
        "receiver", "run", "--registry", str(registry), "--db", str(tmp_path / "rx.sqlite"), "--no-live",
        "--group", "", "--no-fleet", "--routes", str(routes), "--metrics", str(rx_port),
        "--broker", "127.0.0.1:%d" % broker.port, "--ca", pki.ca_cert, "--cert", cert, "--key", key), relay=False)
    try:
        receiver.wait_for("receiving", 20)
        agent = start_agent(broker.port, device, pty.path, extra=("--metrics", "127.0.0.1:%d" % agent_port))
        agent.child.wait_for("connected to broker", 30)
        os.write(pty.master, b"\x00garbage that is no frame\n")
        for value in (41, 42, 150, 43):  # 150: out of range, an alert
            os.write(pty.master, fr.encode_frame(fr.READING, "coolant_temp", value))
            time.sleep(0.1)
        agent_samples = _until(lambda: (lambda s: s if _value(s, "edge_agent_uplink_signals_published_total")
                                        and s.get(("edge_agent_bad_frames_total", ())) is None
                                        and any(k[0] == "edge_agent_bad_frames_total" for k in s) else None)(
            _scrape(agent_port)), 30, "the agent's metrics never showed a PUBACK and a bad frame")
        # Counters move at each commit, what the database holds every REFRESH_S (5 s).
        rx_samples = _until(lambda: (lambda s: s if _value(s, "edge_agent_receiver_signals_stored_total", kind="alert")
                                     and _value(s, "edge_agent_receiver_outbox_rows", route="ops", state="pending")
                                     else None)(_scrape(rx_port)),
                            30, "the receiver's metrics never showed the stored alert and its queued webhook")

        # The agent: every lane's depth and bytes, the uplink, the component states, the bad frame.
        assert _value(agent_samples, "edge_agent_uplink_connected") == 1
        assert _value(agent_samples, "process_resident_memory_bytes") > 0
        assert _value(agent_samples, "edge_agent_store_records", lane="0") is not None
        assert _value(agent_samples, "edge_agent_store_bytes", lane="3") is not None
        age = _value(agent_samples, "edge_agent_uplink_last_puback_age_seconds")
        assert not math.isnan(age) and 0 <= age < 60
        assert _value(agent_samples, "edge_agent_component_state", component="coolant_loop", state="ok") in (0, 1)
        assert sum(v for (name, _), v in agent_samples.items() if name == "edge_agent_component_state") == \
            len({dict(labels)["component"] for name, labels in agent_samples
                 if name == "edge_agent_component_state"})  # one state per component
        assert sum(v for (name, _), v in agent_samples.items() if name == "edge_agent_bad_frames_total") >= 1
        # The receiver: per kind, the devices, the outbox waiting on its dead target, the latency histogram.
        assert _value(rx_samples, "edge_agent_receiver_signals_stored_total", kind="birth") == 1
        assert _value(rx_samples, "edge_agent_receiver_devices") == 1
        assert _value(rx_samples, "edge_agent_receiver_outbox_rows", route="ops", state="pending") >= 1
        assert _value(rx_samples, "edge_agent_receiver_tickets", state="open") + \
            _value(rx_samples, "edge_agent_receiver_tickets", state="cleared") == 1  # raised; cleared by 43
        assert _value(rx_samples, "edge_agent_receiver_ingest_seconds_count") >= 3
        assert _value(rx_samples, "edge_agent_receiver_broker_connected") == 1

        try:
            server = Prometheus({"agent": "127.0.0.1:%d" % agent_port, "receiver": "127.0.0.1:%d" % rx_port})
        except PrometheusUnavailable as exc:
            pytest.skip(str(exc))
        with server:
            [alerts] = server.wait_for('edge_agent_receiver_signals_stored_total{kind="alert"}')
            assert alerts["metric"]["job"] == "receiver" and float(alerts["value"][1]) >= 1
            [connected] = server.wait_for("edge_agent_uplink_connected")
            assert connected["metric"]["job"] == "agent" and connected["value"][1] == "1"
            depth = server.wait_for('sum by (lane) (edge_agent_store_records{job="agent"})')
            assert {row["metric"]["lane"] for row in depth} == {"0", "1", "2", "3"}
            pending = server.wait_for('edge_agent_receiver_outbox_rows{state="pending"} > 0')
            assert pending[0]["metric"]["route"] == "ops"
            # The 90th percentile over every message since start (no rate(): nothing arrives any more).
            [latency] = server.wait_for("histogram_quantile(0.9, edge_agent_receiver_ingest_seconds_bucket)")
            assert 0 < float(latency["value"][1]) <= 10
            assert sorted(row["metric"]["job"] for row in server.wait_for("up == 1")) == ["agent", "receiver"]
    finally:
        receiver.stop()


@pytest.mark.parametrize("text, address", [("9108", ("127.0.0.1", 9108)), ("0.0.0.0:9108", ("0.0.0.0", 9108)),
                                           ("[::1]:9108", ("::1", 9108)), ("localhost:1", ("localhost", 1))])
def test_a_metrics_address_binds_loopback_unless_a_host_is_named(text, address):
    assert parse_address(text) == address


@pytest.mark.parametrize("text", ["", "host:", "host:http", "99999", ":9108"])
def test_a_bad_metrics_address_says_how_to_write_it(text):
    with pytest.raises(ValueError, match="write PORT .loopback. or HOST:PORT"):
        parse_address(text)


def test_a_busy_metrics_port_is_logged_and_the_process_runs_on(caplog):
    import socket

    from prometheus_client import CollectorRegistry

    from edge_agent.metrics_endpoint import serve

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = taken.getsockname()
        with caplog.at_level("ERROR", logger="edge_agent"):
            assert serve(CollectorRegistry(), address, "agent") is None
    assert "cannot listen at 127.0.0.1:%d" % address[1] in caplog.text
    assert "running on without metrics" in caplog.text
