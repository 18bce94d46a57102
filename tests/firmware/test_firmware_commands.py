"""Signed commands to the firmware: an operator's quarantine command,
sealed with COSE_Mac0 under the device's secret, published at a real
mosquitto, verified on the unix port, applied (the fan's power pin goes
low) and audited; a replay and a tampered copy are refused with stable
reasons and audited too. Every audit reaches the receiver."""

import sqlite3

import pytest
from fw_support import Rig, publish, stop_firmware

from edge_agent.core import cbor
from edge_agent.core import signals as sg
from edge_agent.operator_keys import create_operator

pytestmark = pytest.mark.integration


def test_signed_commands_are_verified_applied_and_audited(pki, broker, pty, tmp_path):
    rig = Rig(tmp_path, pki, "fw-cmd-1")
    rig.provision(broker.port, operators=["ops"])
    operator = create_operator(str(tmp_path / "operator"), "ops")
    secret = rig.identity._secret
    force = operator.command(rig.device_id, "quarantine.force", {"component": "cabinet_fan", "note": "noisy"}, 1, 300,
                             device_secret=secret)
    tampered = force[:-1] + bytes([force[-1] ^ 1])
    release = operator.command(rig.device_id, "quarantine.release", {"component": "cabinet_fan"}, 2, 300,
                               device_secret=secret)
    try:
        rig.start_receiver(broker.port)
        firmware = rig.start_firmware(pty.path, broker.port, "--heap-log-ms", "0")
        firmware.wait_for("connected to broker", 20)
        publish(pki, broker.port, "ea/v1/%s/cmd" % rig.device_id, [force])
        firmware.wait_for("command quarantine.force #1 from ops applied on cabinet_fan", 10)
        with open(rig.fan_pin) as f:
            assert f.read() == "0"
        publish(pki, broker.port, "ea/v1/%s/cmd" % rig.device_id, [force, tampered])
        firmware.wait_for("replay", 10)
        firmware.wait_for("bad-signature", 10)
        publish(pki, broker.port, "ea/v1/%s/cmd" % rig.device_id, [release])
        firmware.wait_for("command quarantine.release #2 from ops applied", 10)
        last = stop_firmware(firmware)
        rig.wait_seq(last, 20)
    except Exception:
        print(firmware.text()[-3000:])
        raise
    finally:
        rig.stop_all()
    got = rig.summary()
    assert got["lost"] == [] and got["count"] == last and got["rejections"] == {}
    with sqlite3.connect(rig.db) as db:
        bodies = [cbor.loads(row[0]) for row in db.execute(
            "SELECT body FROM signals WHERE device=? AND kind=? ORDER BY seq", (rig.device_id, sg.KIND_AUDIT))]
    results = [(b[sg.U_WHO], b[sg.U_ACTION], b[sg.U_RESULT], b[sg.U_REASON].split(":")[0]) for b in bodies]
    assert results == [
        ("ops", "quarantine.force", "applied", "noisy"),
        ("ops", "quarantine.force", "refused", "replay"),
        ("unverified", "command", "refused", "bad-signature"),
        ("ops", "quarantine.release", "applied", ""),
    ], results
