"""Signed commands to the firmware: an operator's quarantine command,
sealed with COSE_Mac0 under the device's secret, published at a real
mosquitto, verified on the unix port, applied (the fan's power pin goes
low) and audited; a replay and a tampered copy are refused with stable
reasons and audited too. Commands to the board's model come on the
device's own topic (a Mac0 under the device's secret can be checked by
this device only): applied once and audited, counted apart from the
device's own stream, and one signed for another model is refused
(wrong-model) and audited. The board does not subscribe to its model's
topic (ea/v1/model/<model>/cmd): what is published there (the gateways'
Ed25519 advisory, another board's Mac0) never reaches it, so it audits no
refusals for messages that were never for it. Every audit reaches the
receiver.

An oversized publish on the command topic ends the connection at the
board's 2 KiB receive buffer, and the board runs on. And the handler
itself, fed hostile input generated here (tests/core/command_cases.py)
in one MicroPython process (tests/firmware/mp_commands.py): it never
raises, every message ends applied or refused with a reason, audits
respect the limiter."""

import os
import sqlite3
import subprocess

import pytest
from command_cases import Record, batches, check, messages
from fw_support import BOARD, FIRMWARE_PATH, MICROPYTHON, Rig, publish, stop_firmware
from hypothesis import HealthCheck, given, settings

from edge_agent.core import cbor, cose
from edge_agent.core import operator as op
from edge_agent.core import signals as sg
from edge_agent.keys.operators import create_operator
from edge_agent.tools import firmware_build as fb
from simulator.fixtures.processes import ROOT

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
    # On the model's topic: the receiver's one Ed25519 advisory for the
    # model's gateways, and a model command as a Mac0 (this board's own
    # secret): the board is not subscribed, so neither reaches it.
    ed25519 = operator.command("model:" + MODEL, "advisory", {"text": "for the gateways", "id": "fleet-9"}, 3, 300)
    on_model_topic = operator.command("model:" + MODEL, "advisory", {"text": "not subscribed", "id": "fleet-10"},
                                      4, 300, device_secret=secret)
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
        publish(pki, broker.port, device_topic, [advisory, advisory, other_model])
        firmware.wait_for("command advisory #1 from ops applied on fleet-7", 10)
        firmware.wait_for("wrong-model", 10)
        publish(pki, broker.port, model_topic, [ed25519, on_model_topic])
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
    assert "fleet-9" not in firmware.text() and "fleet-10" not in firmware.text()
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
        ("ops", "quarantine.release", "cabinet_fan", "applied", ""),
    ], results
    with open(os.path.join(rig.store + ".state", "counters.cbor"), "rb") as f:
        assert cbor.loads(f.read()) == {"ops " + rig.device_id: 2, "ops model:" + MODEL: 1}


def test_an_oversized_command_is_refused_and_the_board_runs_on(pki, broker, pty, tmp_path):
    # A board's MQTT 3.1.1 client cannot tell the broker a maximum: it reads
    # packets into one 2 KiB buffer (firmware/uplink.py MAX_PACKET). A larger
    # publish on its command topic ends the connection before any of it is
    # stored; the board reconnects (clean session: the broker does not send
    # it again) and takes the next command.
    rig = Rig(tmp_path, pki, "fw-cmd-big")
    rig.provision(broker.port, operators=["ops"])
    operator = create_operator(str(tmp_path / "operator"), "ops")
    topic = op.command_topic(rig.device_id)
    force = operator.command(rig.device_id, "quarantine.force", {"component": "cabinet_fan"}, 1, 300,
                             device_secret=rig.identity._secret)
    try:
        firmware = rig.start_firmware(pty.path, broker.port, "--heap-log-ms", "0")
        firmware.wait_for("connected to broker (session 1)", 20)
        for size in (4096, op.MAX_COMMAND_BYTES + 1):
            mark = firmware.mark()
            publish(pki, broker.port, topic, [b"\xd2" * size])
            firmware.wait_for("byte receive buffer", 10, since=mark)
            firmware.wait_for("connected to broker (session", 10, since=mark)
        publish(pki, broker.port, topic, [force])
        firmware.wait_for("command quarantine.force #1 from ops applied on cabinet_fan", 10)
        with open(rig.fan_pin) as f:
            assert f.read() == "0"
        stop_firmware(firmware)
    except Exception:
        print(firmware.text()[-3000:])
        raise
    finally:
        rig.stop_all()
    text = firmware.text()
    assert text.count("exceeds the client's 2048-byte receive buffer") == 2 and "connected to broker (session 3)" in text
    assert "Traceback" not in text and "MemoryError" not in text


# --- the handler under hostile input, on the unix port (hypothesis) -----------

SECRET = b"fw-props-secret-" * 2
NOW = 1_800_000_000_000
DEVICE = "fw-props"  # tests/firmware/mp_commands.py's


class MicroPythonCommands:
    """firmware/commands.py in one MicroPython process for the whole test
    (tests/firmware/mp_commands.py): a fresh handler per example."""

    def __init__(self, directory, board_file=BOARD):
        board = os.path.join(directory, "board.cbor")
        with open(board, "wb") as f:
            f.write(fb.compile_board(board_file))
        # Its stderr: the unix port warns on every bytes == str comparison
        # (the decoder meets them in hostile maps; an ESP32 build does not
        # warn), and a crash would say why there.
        self.stderr_path = os.path.join(directory, "stderr.txt")
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                [MICROPYTHON, "tests/firmware/mp_commands.py", board, os.path.join(directory, "state"), SECRET.hex()],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, cwd=ROOT,
                env=dict(os.environ, MICROPYPATH=FIRMWARE_PATH))

    def ask(self, line):
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline().decode().strip()
        if not answer:
            with open(self.stderr_path, "rb") as f:
                tail = f.read()[-2000:].decode(errors="replace")
            raise AssertionError("MicroPython died (exit %s) on: %s\n%s" % (self.process.poll(), line[:200], tail))
        return answer

    def send(self, offset, message):
        answer = self.ask("msg %d %s" % (NOW + offset, message.hex()))
        assert answer.startswith("rec "), "on_message raised on the board: %s" % answer
        record = cbor.loads(bytes.fromhex(answer[4:]))
        return Record(NOW + offset, record["applied"], record["refused"], record["spent"],
                      [tuple(audit) for audit in record["audits"]], record["logs"], record["errors"],
                      record["suppressed"])

    def read(self, offset, sensor, value):
        answer = self.ask("read %d %s %r" % (NOW + offset, sensor, float(value)))
        assert answer.startswith("rec "), answer
        return cbor.loads(bytes.fromhex(answer[4:]))["alerts"]

    def close(self):
        self.process.stdin.close()
        self.process.wait(10)


@pytest.fixture(scope="module")
def board_commands(tmp_path_factory):
    handler = MicroPythonCommands(str(tmp_path_factory.mktemp("mp-commands")))
    yield handler
    handler.close()


def _mac0(payload):
    return cose.mac0(payload, b"ops", SECRET)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batch=batches(messages(_mac0, b"ops", DEVICE, MODEL, NOW, ("coolant_loop", "cabinet_fan"))))
def test_the_boards_command_handler_takes_anything(board_commands, batch):
    # The firmware's handler on the MicroPython unix port, fed what
    # tests/core/command_cases.py makes (arbitrary bytes and CBOR, hostile
    # COSE headers, hostile payloads under the device's own secret, good
    # commands, messages past the size bound): it never raises, every message
    # ends applied or refused with a reason, and audits respect the limiter.
    assert board_commands.ask("reset") == "ok"
    check([board_commands.send(offset, message) for offset, message in batch], "ops")


def test_a_signed_alert_ack_on_a_board_makes_a_held_level_shift_the_new_baseline(tmp_path):
    """Issue 18: a signed alert.ack reaches the board's health engine
    (Device.acknowledge_alert), as the console's ack does on a gateway: the
    level shift it names takes its present level as the new baseline and
    clears; an ack of an alert that takes none is recorded only, and one
    whose number is not a number is refused."""
    with open(BOARD) as f:
        text = f.read()
    board = tmp_path / "shift-board.toml"
    board.write_text(text.replace("[sensors.coolant_temp]\n", """[sensors.coolant_temp]
rules = [{kind = "shift", max_shift = 3.0, baseline_s = 600}]
""", 1))
    assert "shift" in board.read_text()
    handler = MicroPythonCommands(str(tmp_path), str(board))
    try:
        assert handler.ask("reset") == "ok"
        alerts = []
        for i in range(30):  # 40 degC every minute, then +6 held
            alerts += handler.read(i * 60000, "coolant_temp", 40.0 if i < 20 else 46.0)
        shift = [a for a in alerts if a[1] == "shift"]
        assert [a[2] for a in shift] == [True], alerts
        seq = shift[0][0]

        def ack(alert, counter):
            return handler.send(31 * 60000, op.mac_command(SECRET, "ops", DEVICE, "alert.ack", {"alert": alert}, counter,
                                                           NOW, NOW + 3600000))

        other = ack(str(seq + 1000), 1)  # no such alert: recorded, nothing cleared
        assert other.applied == 1 and other.audits[-1][3] == "applied"
        bad = ack("x", 2)
        assert bad.refused == 1 and bad.audits[-1][4].startswith("unknown-alert")
        record = ack(str(seq), 3)
        assert record.applied == 1 and record.audits[-1][3] == "applied", record
        assert "baseline" in record.audits[-1][4]
        assert handler.read(32 * 60000, "coolant_temp", 46.0) == []  # 46 is the new normal: no new alert
    finally:
        handler.close()
