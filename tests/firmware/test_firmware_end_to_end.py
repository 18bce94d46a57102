"""The real firmware on the MicroPython unix port, end to end: the
simulator's sensor board on a pty -> UART ingest -> health rules ->
quarantine (the fan's power pin goes low) -> flash store on littlefs
(a flash partition in a file, mounted as the ESP32 mounts its own) -> our MQTT
client over mutual TLS -> a real mosquitto -> the reference receiver,
which verifies every COSE_Mac0 with the device's HMAC secret.
Nothing lost, no gap, nothing rejected."""

import sys
import time

import pytest
from fw_support import Rig, stop_firmware

from simulator.fixtures.processes import Child

pytestmark = pytest.mark.integration


def test_firmware_end_to_end(pki, broker, tmp_path):
    rig = Rig(tmp_path, pki, "fw-e2e-1", flash=True)
    sim = Child("sensors", [sys.executable, "-m", "edge_agent", "sim", "sensors", "--board", "boards/demo-gateway.toml",
                            "--seed", "7", "--fault", "fan_speed=high@1"], stdin=True, relay=False)
    rig.children.append(sim)
    try:
        path = sim.wait_for("pty ", 10).split()[1]
        rig.start_receiver(broker.port)
        firmware = rig.start_firmware(path, broker.port, "--telemetry-interval-ms", "500", "--heap-log-ms", "500")
        firmware.wait_for("formatted littlefs", 10)
        firmware.wait_for("connected to broker", 20)
        firmware.wait_for("alert #", 15)
        firmware.wait_for("cabinet_fan quarantined", 15)
        deadline = time.monotonic() + 10
        while open(rig.fan_pin).read() != "0":
            assert time.monotonic() < deadline, "quarantine must cut the fan's power pin"
            time.sleep(0.05)
        firmware.wait_for("readings=", 5)
        last = stop_firmware(firmware)
        rig.wait_seq(last, 20)
    finally:
        rig.stop_all()
    got = rig.summary()
    print("firmware end to end: last seq %d, stored %d, alerts %d, telemetry %d" % (
        last, got["count"], got["alerts"], got["telemetry"]))
    assert got["lost"] == [] and got["skipped"] == []
    assert got["count"] == last
    assert got["births"] == [1]
    assert got["alerts"] >= 1 and got["telemetry"] >= 1
    assert got["rejections"] == {}
    assert "Traceback" not in firmware.text()
