"""The signed downlink on real parts: a real agent process, a mutual-TLS
mosquitto, operator keys with real Ed25519. Every command, good or bad, is
checked by the audit signals the agent sends back (signature-verified by
the registry), and by what changed on the device."""

import asyncio
import base64
import json
import os
import subprocess
import sys
import time

import aiomqtt
import pytest
from cryptography.hazmat.primitives import serialization

from edge_agent.core import cbor
from edge_agent.core import frames as fr
from edge_agent.core import operator as op
from edge_agent.core import signals as sg
from edge_agent.keys.operators import create_operator, load_trusted
from edge_agent.broker import client_context

from conftest import BOARD, REGISTRY, ROOT

pytestmark = pytest.mark.integration


def now_ms():
    return time.time_ns() // 1_000_000


@pytest.fixture
def operator(tmp_path):
    operator = create_operator(str(tmp_path / "operator"), "ops-team")
    path = tmp_path / "operators.toml"
    path.write_text(operator.public_entry())
    operator.trusted_path = str(path)
    return operator


def publish(pki, port, messages):
    """Publish [(topic, payload)] in order, QoS 1, from one client."""
    cert, key = pki.client("test-operator")

    async def run():
        async with aiomqtt.Client("127.0.0.1", port, tls_context=client_context(pki.ca_cert, cert, key)) as client:
            for topic, payload in messages:
                await client.publish(topic, payload, qos=1)

    asyncio.run(run())


def audits(messages):
    found = []
    for topic, payload in messages:
        if topic.endswith("/audit"):
            found.extend(REGISTRY.open_signals(payload, topic))
    return found


def fan_states(messages):
    states = [s.body for t, p in messages if t.endswith("/state") for s in REGISTRY.open_signals(p, t)]
    return [(b[sg.S_FROM], b[sg.S_TO]) for b in states if b[sg.S_COMPONENT] == "cabinet_fan"]


def summary(signals):
    """[(action, target, result, reason code)] in seq order."""
    rows = []
    for signal in sorted(signals, key=lambda s: s.seq):
        body = signal.body
        reason = body[sg.U_REASON].split(":")[0] if body[sg.U_RESULT] == "refused" else ""
        rows.append((body[sg.U_ACTION], body[sg.U_TARGET], body[sg.U_RESULT], reason))
    return rows


def tamper(message):
    item = cbor.loads(message)
    payload = cbor.loads(item.value[2])
    payload[op.O_ARGS] = {"component": "coolant_loop"}  # redirect the command
    item.value[2] = cbor.dumps(payload)
    return cbor.dumps(item)


def start(start_agent, broker, device_id, pty, operator, extra=()):
    agent = start_agent(broker.port, device_id, pty.path, extra=("--operators", operator.trusted_path) + extra)
    agent.child.wait_for("listening for signed commands", 20)
    return agent


def test_commands_applied_once_and_every_bad_one_refused(broker, start_agent, subscribe, pty, pki, operator,
                                                         tmp_path):
    device = "dl-cmds"
    agent = start(start_agent, broker, device, pty, operator)
    topic = op.command_topic(device)
    impostor = create_operator(str(tmp_path / "impostor"), "ops-team")  # the right name, another key
    stranger = create_operator(str(tmp_path / "stranger"), "mallory")
    force = operator.command(device, "quarantine.force", {"component": "cabinet_fan"}, 1, 600)
    release = operator.command(device, "quarantine.release", {"component": "cabinet_fan", "note": "fan replaced"},
                               5, 600)
    advisory = operator.command("model:EA-DEMO-1", "advisory",
                                {"text": "inspect fan bearings", "id": "incident-7", "severity": "warning"}, 1, 600)
    sequence = [
        (topic, force),
        (topic, force),  # replay
        (topic, tamper(release)),
        (topic, operator.command(device, "alert.ack", {"alert": "3"}, 2, 1, now_ms=now_ms() - 60_000)),  # expired
        (topic, operator.command("dl-other", "alert.ack", {"alert": "3"}, 2, 600)),
        (topic, operator.command("model:EA-OTHER", "advisory", {"text": "x", "id": "incident-8"}, 1, 600)),
        (topic, impostor.command(device, "quarantine.release", {"component": "cabinet_fan"}, 9, 600)),
        (topic, stranger.command(device, "quarantine.release", {"component": "cabinet_fan"}, 9, 600)),
        (topic, b"\xa1\x00garbage"),
        (topic, release),
        (topic, operator.command(device, "quarantine.release", {"component": "cabinet_fan"}, 3, 600)),  # stale
        (topic, operator.command(device, "quarantine.release", {"component": "nothing"}, 6, 600)),
        (op.model_command_topic("EA-DEMO-1"), advisory),
    ]
    messages = subscribe(broker.port, ["ea/v1/%s/audit" % device, "ea/v1/%s/state" % device],
                         lambda ms: len(audits(ms)) >= len(sequence) and len(fan_states(ms)) >= 2,
                         action=lambda: publish(pki, broker.port, sequence))
    assert summary(audits(messages)) == [
        ("quarantine.force", "cabinet_fan", "applied", ""),
        ("quarantine.force", "cabinet_fan", "refused", "replay"),
        ("command", topic, "refused", "bad-signature"),
        ("alert.ack", "alert #3", "refused", "expired"),
        ("alert.ack", "alert #3", "refused", "wrong-device"),
        ("advisory", "incident-8", "refused", "wrong-model"),
        ("command", topic, "refused", "bad-signature"),
        ("command", topic, "refused", "unknown-operator"),
        ("command", topic, "refused", "malformed"),
        ("quarantine.release", "cabinet_fan", "applied", ""),
        ("quarantine.release", "cabinet_fan", "refused", "stale-counter"),
        ("quarantine.release", "nothing", "refused", "unknown-component"),
        ("advisory", "incident-7", "applied", ""),
    ]
    bodies = [s.body for s in sorted(audits(messages), key=lambda s: s.seq)]
    assert (bodies[0][sg.U_WHO], bodies[0][sg.U_BEFORE], bodies[0][sg.U_AFTER]) == ("ops-team", "ok", "forced")
    assert (bodies[9][sg.U_BEFORE], bodies[9][sg.U_AFTER], bodies[9][sg.U_REASON]) == ("forced", "ok", "fan replaced")
    assert bodies[2][sg.U_WHO] == "unverified" and bodies[7][sg.U_WHO] == "unverified"
    assert all(s.priority == sg.PRIORITY_HIGH and s.body[sg.U_CHANNEL] == "downlink" for s in audits(messages))
    # Applied exactly once: one forced and one release transition, no more.
    assert fan_states(messages) == [("ok", "forced"), ("forced", "ok")]

    # A command sent while the agent is down waits at the broker (persistent
    # session) and is applied once when it is back; after the restart the
    # counters still hold, so the old messages are refused.
    agent.stop()
    queued = operator.command(device, "quarantine.force", {"component": "cabinet_fan"}, 7, 600)
    again = [(topic, force), (topic, release), (op.model_command_topic("EA-DEMO-1"), advisory)]
    restarted = []

    def restart_and_replay():
        publish(pki, broker.port, [(topic, queued)])
        restarted.append(start(start_agent, broker, device, pty, operator))
        publish(pki, broker.port, again)

    messages = subscribe(broker.port, ["ea/v1/%s/audit" % device], lambda ms: len(audits(ms)) >= 4,
                         action=restart_and_replay)
    agent = restarted[0]
    assert summary(audits(messages)) == [
        ("quarantine.force", "cabinet_fan", "applied", ""),
        ("quarantine.force", "cabinet_fan", "refused", "stale-counter"),
        ("quarantine.release", "cabinet_fan", "refused", "stale-counter"),  # #6 (refused, but used) came after
        ("advisory", "incident-7", "refused", "replay"),
    ]
    agent.stop()
    _assert_no_key_material(agent.child.text(), [operator.directory, agent.identity_dir])


def _key_forms(directory):
    """Every printable form of the private key in ``directory``: PEM body,
    raw hex (both cases), base64 and base64url of the raw key, DER base64."""
    name = "operator.key" if os.path.exists(os.path.join(directory, "operator.key")) else "device.key"
    with open(os.path.join(directory, name), "rb") as f:
        pem = f.read()
    key = serialization.load_pem_private_key(pem, password=None)
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    body = b"".join(pem.strip().splitlines()[1:-1]).decode()
    return [body, raw.hex(), raw.hex().upper(), base64.b64encode(raw).decode().rstrip("="),
            base64.urlsafe_b64encode(raw).decode().rstrip("="), base64.b64encode(der).decode().rstrip("="),
            "PRIVATE KEY"]


def _assert_no_key_material(text, directories):
    assert len(text) > 1000  # a real run's log, at debug level
    for directory in directories:
        for form in _key_forms(directory):
            assert form not in text, "private key material from %s in the output" % directory


def _cli(*args):
    result = subprocess.run([sys.executable, "-m", "edge_agent", *args], capture_output=True, text=True,
                            timeout=60, cwd=ROOT)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_config_update_applies_after_restart_and_rolls_back_when_it_fails(broker, start_agent, subscribe, pty, pki,
                                                                         operator, tmp_path):
    device = "dl-config"
    agent = start(start_agent, broker, device, pty, operator)
    cert, key = pki.client("test-cli")
    tls = ("--broker", "127.0.0.1:%d" % broker.port, "--ca", pki.ca_cert, "--cert", cert, "--key", key)
    tighter = tmp_path / "tighter.json"
    tighter.write_text(json.dumps({"sensors": {"coolant_temp": {"valid_range": [-20.0, 95.0]}}}))
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"sensors": {"coolant_temp": {"valid_range": [95.0, -20.0]}}}))

    outputs = []

    def send_configs():
        sent = _cli("cmd", "send", "--operator", operator.directory, "--device", device, "config.update",
                    "--patch", str(broken), *tls)
        assert sent.returncode == 0 and "#1" in sent.stdout, sent.stderr
        outputs.append(sent.stdout + sent.stderr)
        sent = _cli("cmd", "send", "--operator", operator.directory, "--device", device, "config.update",
                    "note=tighter coolant limit", "--patch", str(tighter), *tls)
        assert sent.returncode == 0 and "#2" in sent.stdout, sent.stderr
        outputs.append(sent.stdout + sent.stderr)

    mark = agent.child.mark()
    messages = subscribe(broker.port, ["ea/v1/%s/audit" % device], lambda ms: len(audits(ms)) >= 3,
                         action=send_configs, timeout_s=40)
    rows = summary(audits(messages))
    assert rows == [
        ("config.update", "board", "refused", "bad-config"),
        ("config.update", "board", "applied", ""),
        ("config.confirm", "board", "applied", ""),
    ]
    confirm = sorted(audits(messages), key=lambda s: s.seq)[2].body
    assert confirm[sg.U_BEFORE] == "base" and len(confirm[sg.U_AFTER]) == 16
    agent.child.wait_for("trial start on overlay", 10, since=mark)  # the same process, re-executed
    # The new limit is in force: 100 degC was fine, now it is out of range.
    messages = subscribe(broker.port, ["ea/v1/%s/alert" % device],
                         lambda ms: any(t.endswith("/alert") for t, _ in ms),
                         action=lambda: pty.write(fr.encode_frame(fr.READING, "coolant_temp", 100)))
    alert = REGISTRY.open_signal(messages[0][1], messages[0][0])
    assert alert.body[sg.A_CONDITION] == "out_of_range" and alert.body[sg.A_LIMITS] == [-20.0, 95.0]

    # A config that validates but fails its self-check on the restart (its
    # new bus has no port here) is rolled back to the previous overlay.
    ghost = {"buses": {"uart9": {"port": "/dev/ea-no-such-port", "baud": 9600, "protocol": "line"}},
             "sensors": {"ghost_temp": {"bus": "uart9", "component": "coolant_loop", "unit": "degC",
                                        "valid_range": [-20.0, 110.0], "period_ms": 1000}}}
    update = operator.command(device, "config.update", {"patch": ghost}, 3, 600)
    messages = subscribe(broker.port, ["ea/v1/%s/audit" % device], lambda ms: len(audits(ms)) >= 2,
                         action=lambda: publish(pki, broker.port, [(op.command_topic(device), update)]),
                         timeout_s=40)
    rows = sorted(audits(messages), key=lambda s: s.seq)
    assert summary(rows) == [("config.update", "board", "applied", ""),
                             ("config.rollback", "board", "applied", "")]
    rollback = rows[1].body
    assert rollback[sg.U_BEFORE] == rows[0].body[sg.U_AFTER] and rollback[sg.U_AFTER] == confirm[sg.U_AFTER]
    assert "self-check-failed" in rollback[sg.U_REASON] and "/dev/ea-no-such-port" in rollback[sg.U_REASON]
    state = os.path.join(agent.identity_dir, "state")
    with open(os.path.join(state, "overlay.json")) as f:
        assert json.load(f)["sensors"]["coolant_temp"]["valid_range"] == [-20.0, 95.0]
    assert not os.path.exists(os.path.join(state, "overlay.trial.json"))
    agent.stop()
    with open(broker.log_path) as f:
        outputs.append(f.read())
    _assert_no_key_material("\n".join([agent.child.text()] + outputs), [operator.directory, agent.identity_dir])


def test_trusted_operators_file_is_required_and_checked(tmp_path, pki):
    from edge_agent.keys.identity import create_identity

    identity = str(tmp_path / "dev")
    create_identity(identity, "dl-refuse")
    base = ("run", "--board", BOARD, "--identity", identity, "--broker", "127.0.0.1:1", "--insecure")
    missing = _cli(*base, "--operators", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2 and "--operators" in missing.stderr and "keys operator-entry" in missing.stderr
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    result = _cli(*base, "--operators", str(empty))
    assert result.returncode == 2 and "trusts no operator by default" in result.stderr
    counters = tmp_path / "state"
    counters.mkdir()
    (counters / "counters.cbor").write_bytes(b"\xff\x00")
    operators = tmp_path / "operators.toml"
    operators.write_text('[operators.ops]\npublic_key = "%s"\n' % ("11" * 32))
    result = _cli(*base, "--operators", str(operators), "--state-dir", str(counters))
    assert result.returncode == 2 and "counters.cbor: unreadable" in result.stderr


def test_alert_ack_marks_the_consoles_alert(broker, start_agent, subscribe, pty, pki, operator, tmp_path):
    import socket

    device = "dl-ack"
    console_path = str(tmp_path / "console.sock")
    agent = start(start_agent, broker, device, pty, operator, extra=("--console-socket", console_path))
    messages = subscribe(broker.port, ["ea/v1/%s/alert" % device], lambda ms: len(ms) >= 1,
                         action=lambda: pty.write(fr.encode_frame(fr.READING, "coolant_temp", 150)))
    seq = REGISTRY.open_signal(messages[0][1], messages[0][0]).seq
    acks = [(op.command_topic(device), operator.command(device, "alert.ack", {"alert": str(seq)}, 1, 600)),
            (op.command_topic(device), operator.command(device, "alert.ack", {"alert": "99999"}, 2, 600))]
    messages = subscribe(broker.port, ["ea/v1/%s/audit" % device], lambda ms: len(audits(ms)) >= 2,
                         action=lambda: publish(pki, broker.port, acks))
    rows = sorted(audits(messages), key=lambda s: s.seq)
    assert summary(rows) == [("alert.ack", "alert #%d" % seq, "applied", ""),
                             ("alert.ack", "alert #99999", "refused", "unknown-alert")]
    assert rows[0].body[sg.U_AFTER] == "acknowledged by ops-team"
    # The console shows it as acknowledged, as if a technician had typed `ack`.
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(5)
        client.connect(console_path)
        client.sendall(b"alerts\r\n")
        screen = b""
        deadline = time.monotonic() + 5
        while b" acked " not in screen and time.monotonic() < deadline:
            screen += client.recv(4096)
    assert ("#%d " % seq).encode() in screen and b" acked " in screen, screen
    assert b"ops-team" not in screen  # who acknowledged: only after login (docs/console.md)


def test_the_key_grep_catches_each_form(operator):
    log = "x" * 2000
    for form in _key_forms(operator.directory):
        with pytest.raises(AssertionError, match="private key material"):
            _assert_no_key_material(log + form + log, [operator.directory])
    _assert_no_key_material(log, [operator.directory])


def test_cli_model_command_reaches_gateways_on_the_model_topic_and_each_board_on_its_own(broker, subscribe, pki,
                                                                                           operator, tmp_path):
    # A model's gateways check one Ed25519 signature on the model's topic; a
    # board checks only a Mac0 under its own secret, so each board of the
    # model gets its own copy on its own topic (as fleet advisories do).
    secrets = {"board-a": os.urandom(32), "board-b": os.urandom(32), "board-other": os.urandom(32)}
    entries = ['[devices.%s]\nalgorithm = "HMAC256"\nsecret = "%s"\nmodel = "%s"\n'
               % (device_id, secret.hex(), "EA-OTHER" if device_id == "board-other" else "EA-M")
               for device_id, secret in secrets.items()]
    registry = tmp_path / "devices.toml"
    registry.write_text("\n".join(entries))
    os.chmod(registry, 0o600)
    cert, key = pki.client("test-cli-model")
    sent = []

    def send():
        sent.append(_cli("cmd", "send", "--operator", operator.directory, "--model", "EA-M", "--registry",
                         str(registry), "advisory", "text=check the fans", "id=adv-1", "--broker",
                         "127.0.0.1:%d" % broker.port, "--ca", pki.ca_cert, "--cert", cert, "--key", key))

    messages = subscribe(broker.port, ["ea/v1/+/cmd", "ea/v1/model/+/cmd"], lambda ms: len(ms) >= 3, action=send)
    assert sent[0].returncode == 0, sent[0].stderr
    assert "2 board(s) of the model on their own topics: board-a, board-b" in sent[0].stdout
    by_topic = dict((topic, payload) for topic, payload in messages)
    assert sorted(by_topic) == ["ea/v1/board-a/cmd", "ea/v1/board-b/cmd", "ea/v1/model/EA-M/cmd"]
    gateway = op.verify_command(by_topic["ea/v1/model/EA-M/cmd"], load_trusted(operator.trusted_path), "gw-1",
                                "EA-M", now_ms(), 0)
    assert gateway.target == "model:EA-M" and gateway.args["text"] == "check the fans"
    for board in ("board-a", "board-b"):
        command = op.verify_command(by_topic["ea/v1/%s/cmd" % board], {b"ops-team": secrets[board]}, board, "EA-M",
                                    now_ms(), 0)
        assert command.counter == gateway.counter and command.target == "model:EA-M"
    with pytest.raises(op.Rejection) as refused:  # one board's copy is no good to another
        op.verify_command(by_topic["ea/v1/board-a/cmd"], {b"ops-team": secrets["board-b"]}, "board-b", "EA-M",
                          now_ms(), 0)
    assert refused.value.reason == "bad-signature"


def _peak_rss_kib(pid):
    """The process's peak resident set (VmHWM), KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM for pid %d" % pid)


def test_an_oversized_command_never_reaches_the_agent(broker, start_agent, subscribe, pty, pki, operator):
    # 30 MB on the command topic once took the agent from 46 MB to 340 MB
    # before the signature check. The agent's MQTT 5 session tells the
    # broker its largest packet, so the broker drops it; one just over the
    # core's bound (it fits that packet size) is refused unparsed.
    device = "dl-big"
    agent = start(start_agent, broker, device, pty, operator)
    pid = agent.child.process.pid
    before = _peak_rss_kib(pid)
    topic = op.command_topic(device)
    force = operator.command(device, "quarantine.force", {"component": "cabinet_fan"}, 1, 600)
    sequence = [(topic, b"\xd2" * (30 * 1024 * 1024)), (topic, b"\xd2" * (op.MAX_COMMAND_BYTES + 1)), (topic, force)]
    messages = subscribe(broker.port, ["ea/v1/%s/audit" % device, "ea/v1/%s/state" % device],
                         lambda ms: len(audits(ms)) >= 2 and len(fan_states(ms)) >= 1,
                         action=lambda: publish(pki, broker.port, sequence), timeout_s=40)
    growth = _peak_rss_kib(pid) - before
    print("agent peak RSS %d KiB before, %+d KiB after a 30 MB publish on its command topic" % (before, growth))
    assert summary(audits(messages)) == [("command", topic, "refused", "too-large"),
                                         ("quarantine.force", "cabinet_fan", "applied", "")]
    assert fan_states(messages) == [("ok", "forced")]
    assert growth < 16 * 1024, "the agent's peak RSS grew by %d KiB" % growth
    assert agent.child.process.poll() is None
