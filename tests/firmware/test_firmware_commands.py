"""Signed commands to the firmware: an operator's quarantine command,
sealed with COSE_Mac0 under the device's secret, published at a real
mosquitto, verified on the unix port, applied (the fan's power pin goes
low) and audited; a replay and a tampered copy are refused with stable
reasons and audited too. Commands to the board's model arrive on the
model's topic (ea/v1/model/<model>/cmd), as on the gateway: applied once
and audited, counted apart from the device's own stream, and one signed
for another model is refused (wrong-model) and audited, as is one signed
with Ed25519 (wrong-algorithm: a board checks COSE_Mac0 only). Every
audit reaches the receiver."""

import os
import sqlite3
import subprocess

import pytest
from fw_support import BOARD, FIRMWARE_PATH, MICROPYTHON, Rig, publish, stop_firmware

from edge_agent import firmware_build as fb
from edge_agent.core import cbor
from edge_agent.core import operator as op
from edge_agent.core import signals as sg
from edge_agent.operator_keys import create_operator
from simulator.processes import ROOT

pytestmark = pytest.mark.integration

MODEL = "EA-DEMO-1"  # boards/demo-gateway.toml's [board] model


def test_signed_commands_are_verified_applied_and_audited(pki, broker, pty, tmp_path):
    rig = Rig(tmp_path, pki, "fw-cmd-1")
    rig.provision(broker.port, operators=["ops"])
    operator = create_operator(str(tmp_path / "operator"), "ops")
    secret = rig.identity._secret
    device_topic = op.command_topic(rig.device_id)
    model_topic = op.model_command_topic(MODEL)
    force = operator.command(rig.device_id, "quarantine.force", {"component": "cabinet_fan", "note": "noisy"}, 1, 300,
                             device_secret=secret)
    tampered = force[:-1] + bytes([force[-1] ^ 1])
    # Counter 1 again: the model's stream is not the device's.
    advisory = operator.command("model:" + MODEL, "advisory", {"text": "fan bearings wear early", "id": "fleet-7"},
                                1, 300, device_secret=secret)
    # Authentic, on this model's topic, but signed for another model.
    other_model = operator.command("model:EA-OTHER-2", "advisory", {"text": "not for you", "id": "fleet-8"}, 2, 300,
                                   device_secret=secret)
    # The receiver's one Ed25519 advisory for a model's gateways: a board,
    # trusting the operator with its HMAC secret only, cannot check it.
    ed25519 = operator.command("model:" + MODEL, "advisory", {"text": "for the gateways", "id": "fleet-9"}, 3, 300)
    release = operator.command(rig.device_id, "quarantine.release", {"component": "cabinet_fan"}, 2, 300,
                               device_secret=secret)
    try:
        rig.start_receiver(broker.port)
        firmware = rig.start_firmware(pty.path, broker.port, "--heap-log-ms", "0")
        firmware.wait_for("connected to broker", 20)
        publish(pki, broker.port, device_topic, [force])
        firmware.wait_for("command quarantine.force #1 from ops applied on cabinet_fan", 10)
        with open(rig.fan_pin) as f:
            assert f.read() == "0"
        publish(pki, broker.port, device_topic, [force, tampered])
        firmware.wait_for("replay", 10)
        firmware.wait_for("bad-signature", 10)
        publish(pki, broker.port, model_topic, [advisory, advisory, other_model, ed25519])
        firmware.wait_for("command advisory #1 from ops applied on fleet-7", 10)
        firmware.wait_for("wrong-model", 10)
        firmware.wait_for("wrong-algorithm", 10)
        publish(pki, broker.port, device_topic, [release])
        firmware.wait_for("command quarantine.release #2 from ops applied", 10)
        last = stop_firmware(firmware)
        rig.wait_seq(last, 20)
    except Exception:
        print(firmware.text()[-3000:])
        raise
    finally:
        rig.stop_all()
    assert firmware.text().count("advisory fleet-7 from ops: fan bearings wear early") == 1
    got = rig.summary()
    assert got["lost"] == [] and got["count"] == last and got["rejections"] == {}
    with sqlite3.connect(rig.db) as db:
        bodies = [cbor.loads(row[0]) for row in db.execute(
            "SELECT body FROM signals WHERE device=? AND kind=? ORDER BY seq", (rig.device_id, sg.KIND_AUDIT))]
    results = [(b[sg.U_WHO], b[sg.U_ACTION], b[sg.U_TARGET], b[sg.U_RESULT], b[sg.U_REASON].split(":")[0])
               for b in bodies]
    assert results == [
        ("ops", "quarantine.force", "cabinet_fan", "applied", "noisy"),
        ("ops", "quarantine.force", "cabinet_fan", "refused", "replay"),
        ("unverified", "command", device_topic, "refused", "bad-signature"),
        ("ops", "advisory", "fleet-7", "applied", "fan bearings wear early"),
        ("ops", "advisory", "fleet-7", "refused", "replay"),
        ("ops", "advisory", "fleet-8", "refused", "wrong-model"),
        ("unverified", "command", model_topic, "refused", "wrong-algorithm"),
        ("ops", "quarantine.release", "cabinet_fan", "applied", ""),
    ], results
    with open(os.path.join(rig.store + ".state", "counters.cbor"), "rb") as f:
        assert cbor.loads(f.read()) == {"ops " + rig.device_id: 2, "ops model:" + MODEL: 1}


# The Commands of a board whose model cannot be a topic level (a space, a
# slash), built on the unix port: only the device's topic is subscribed,
# and the log says why and how to fix it.
TOPICS_PROBE = """
import sys
import config
from edge_agent.core import device as dv
from commands import Commands
from store_flash import FlashDir
board = config.load_board(sys.argv[1]).board
device = dv.Device(board, "fw-cmd-2")
commands = Commands(device, {b"ops": b"k" * 32}, FlashDir(sys.argv[2]), lambda: 0, lambda outputs: None,
                    lambda level, text: print(level, text))
print("topics", commands.topics())
"""


def test_a_model_that_is_no_topic_level_is_not_subscribed(tmp_path):
    board = tmp_path / "bad-model.toml"
    board.write_text(open(BOARD).read().replace('model = "EA-DEMO-1"', 'model = "EA DEMO/1"'))
    compiled = tmp_path / "board.cbor"
    compiled.write_bytes(fb.compile_board(str(board)))
    result = subprocess.run([MICROPYTHON, "-c", TOPICS_PROBE, str(compiled), str(tmp_path / "state")], cwd=ROOT,
                            env={"MICROPYPATH": FIRMWARE_PATH}, capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "topics ('ea/v1/fw-cmd-2/cmd',)", lines
    assert lines[0].startswith("warning board model 'EA DEMO/1' cannot be an MQTT topic level"), lines
    assert "fix [board] model in the board file" in lines[0], lines
