"""Plaintext MQTT is a choice the board states: a device provisioned with
`firmware provision --insecure` (the only way to get settings without TLS)
connects to a plaintext mosquitto and logs one warning line at boot, before
it connects; a device provisioned with TLS logs none. The real firmware on
the MicroPython unix port, real brokers."""

import subprocess

import pytest
from fw_support import Rig, stop_firmware

from simulator.fixtures.broker import Mosquitto
from simulator.fixtures.processes import ROOT, edge_agent_argv

pytestmark = pytest.mark.integration

WARNING = "plaintext MQTT to"


@pytest.fixture(scope="module")
def plain_broker(tmp_path_factory):
    """An anonymous plain-TCP mosquitto: what an --insecure device talks to."""
    with Mosquitto(str(tmp_path_factory.mktemp("plain-broker"))) as running:
        yield running


def boot_lines(rig, pty, port):
    """Start the firmware, wait until it is connected, stop it cleanly;
    its output lines."""
    firmware = rig.start_firmware(pty.path, port, "--heap-log-ms", "0")
    try:
        firmware.wait_for("connected to broker", 20)
        stop_firmware(firmware)
    finally:
        rig.stop_all()
    return firmware.lines


def test_insecure_device_says_so_at_boot(pki, plain_broker, pty, tmp_path):
    rig = Rig(tmp_path, pki, "fw-plain-boot")
    result = subprocess.run(edge_agent_argv("firmware", "provision", "--identity", rig.identity.directory, "--broker",
                                            "127.0.0.1:%d" % plain_broker.port, "--insecure", "-o", rig.device_cbor),
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    lines = boot_lines(rig, pty, plain_broker.port)
    warnings = [i for i, line in enumerate(lines) if WARNING in line]
    expected = "warning plaintext MQTT to 127.0.0.1:%d (provisioned with --insecure)" % plain_broker.port
    assert [lines[i] for i in warnings] == [expected], "\n".join(lines)
    connected = next(i for i, line in enumerate(lines) if "connected to broker" in line)
    assert warnings[0] < connected, "\n".join(lines)


def test_tls_device_has_no_plaintext_warning(pki, broker, pty, tmp_path):
    rig = Rig(tmp_path, pki, "fw-tls-boot")
    rig.provision(broker.port)  # mutual TLS, as every other firmware test
    lines = boot_lines(rig, pty, broker.port)
    assert any("connected to broker" in line for line in lines)
    assert not [line for line in lines if WARNING in line or "plaintext" in line], "\n".join(lines)
