"""The technician console of a running agent, driven as a person would:
keys typed into the console's pty (and its Unix socket), the screen read
back. One agent for the module (tests run in order and share it): the
virtual sensor board, a real mosquitto with mutual TLS, a real Ed25519
operator; audit signals are checked at the broker, signature verified."""

import os
import stat
import time

import pytest

from edge_agent.core import signals as sg
from edge_agent.keys.operators import create_operator

from conftest import REGISTRY
from console_rig import Rig, socket_terminal

pytestmark = pytest.mark.integration

DEVICE = "console-1"


@pytest.fixture(scope="module")
def rig(pki, broker, tmp_path_factory):
    running = Rig(pki, broker, str(tmp_path_factory.mktemp("console")), DEVICE)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def term(rig):
    terminal = rig.serial()
    terminal.type("\r")  # the banner was written when the agent opened the port
    terminal.expect("console on %s (board demo-gateway, model EA-DEMO-1)" % DEVICE)
    terminal.answer()
    return terminal


def _audits(messages):
    return [s for t, p in messages if t.endswith("/audit") for s in REGISTRY.open_signals(p, t)]


def test_read_only_commands_over_the_serial_port(rig, term):
    status = term.command("status")
    assert "device      %s (board demo-gateway, model EA-DEMO-1)" % DEVICE in status, status
    assert "link        online\n" in status and "127.0.0.1" not in status  # the broker: after login
    assert "store       lane 0:" in status
    readings = term.command("readings")
    for _ in range(20):  # the board streams within a second or two of start
        if "no reading yet" not in readings:
            break
        time.sleep(0.25)
        readings = term.command("readings")
    for sensor in ("coolant_temp", "coolant_flow", "fan_speed", "cabinet_temp"):
        assert sensor in readings, readings
    assert "degC" in readings and "rpm" in readings
    detail = term.command("readings fan_speed")
    assert "valid range 0 to 6000 rpm" in detail and "stuck" in detail, detail
    components = term.command("components")
    assert "cabinet_fan" in components and "coolant_loop (essential)" in components, components
    assert "lane" in term.command("buffer")
    assert "not logged in (serial " in term.command("whoami")
    # The log and the configuration (the store's path among it) are for technicians.
    for command in ("log 50", "config show"):
        assert "log in first: login TOKEN" in term.command(command)
    assert term.command("login " + rig.token(subject="dan", scopes=("ack",))).startswith("logged in as dan")
    assert "connected to broker" in term.command("log 50")
    config = term.command("config show")
    assert "fan_power    /dev/gpiochip0 line 17" in config and "store       " in config, config
    assert "link        online: broker 127.0.0.1:" in term.command("status")
    assert term.command("logout") == "logged out dan"
    selftest = term.command("selftest")
    assert "coolant_temp  pass" in selftest, selftest
    assert "fan_power  skip  not pulsed" in selftest
    assert term.command("help ack").startswith("usage: ack ALERT")
    assert "quarantine force|release COMPONENT" in term.command("help")
    assert term.command("alerts").startswith(("no alerts", "alert"))


def test_a_missing_console_port_is_retried_and_the_agent_runs_on(rig, term):
    line = rig.agent.child.wait_for("console %s: cannot open" % rig.missing_port, 10)
    assert "(No such file or directory); retrying in" in line
    assert rig.agent.child.process.poll() is None
    assert "device      %s" % DEVICE in term.command("status")


def test_bad_input_typed_at_the_serial_port(term):
    assert "error: unknown command 'reboot'" in term.command("reboot")
    # Backspace (DEL, as picocom sends it) and BS, typed key by key.
    term.type("stau\x7f\x7fatus", per_key_s=0.005)
    term.type("\r")
    assert "device      %s" % DEVICE in term.answer()
    # Half a line, then Ctrl-C: dropped, a fresh prompt.
    term.type("quarantine force cabi")
    term.type("\x03")
    term.expect("^C\n")
    term.answer()
    # Binary garbage (a wrong baud rate looks like this).
    term.type(b"\xf0\x9f\x00\xfe\x81junk\r")
    assert "error: line ignored: 5 bytes that are not text (first 0xf0 at column 1)" in term.answer()
    # An overlong line: refused at once, the rest dropped up to Enter.
    term.type("x" * 2000 + "\r")
    assert "error: line longer than 512 characters" in term.answer()
    # LF-only and CR LF line ends both work once.
    term.type("whoami\n")
    assert "not logged in" in term.answer()
    term.type("whoami\r\n")
    assert "not logged in" in term.answer()
    # Privileged without a session: refused, nothing changes.
    assert "needs a technician session" in term.command("quarantine force cabinet_fan")
    assert "cabinet_fan               ok" in term.command("components")


def test_forced_quarantine_and_release_with_a_token_reach_the_broker_audited(rig, term, broker, subscribe):
    token = rig.token()

    def session():
        answer = term.command("login " + token)
        assert answer.startswith("logged in as alice (operator ops-team)"), answer
        forced = term.command("quarantine force cabinet_fan")
        assert forced.startswith("cabinet_fan: ok -> forced"), forced
        assert "gpio fan_power (/dev/gpiochip0 line 17) -> off" in forced
        selftest = term.command("selftest")
        assert "fan_power  skip  held off by quarantine:cabinet_fan" in selftest, selftest
        released = term.command("quarantine release cabinet_fan")
        assert released.startswith("cabinet_fan: forced -> ok") and "-> on" in released, released
        selftest = term.command("selftest")
        assert "fan_power  pass  switched off and on, read back off then on" in selftest, selftest

    messages = subscribe(broker.port, ["ea/v1/%s/audit" % DEVICE],
                         lambda ms: len([s for s in _audits(ms) if s.body[sg.U_ACTION] == "selftest"]) >= 1,
                         timeout_s=30, action=session)
    audits = [s.body for s in _audits(messages)]
    actions = [(b[sg.U_ACTION], b[sg.U_RESULT]) for b in audits]
    assert actions[:4] == [("console.login", "applied"), ("quarantine.force", "applied"),
                           ("quarantine.release", "applied"), ("selftest", "applied")], actions
    force = audits[1]
    assert (force[sg.U_WHO], force[sg.U_TARGET], force[sg.U_BEFORE], force[sg.U_AFTER], force[sg.U_CHANNEL]) == (
        "alice", "cabinet_fan", "ok", "forced", "console")
    assert [s.priority for s in _audits(messages)] == [sg.PRIORITY_HIGH] * len(audits)
    assert term.command("logout") == "logged out alice"
    rig.agent.child.wait_for("gpio fan_power (/dev/gpiochip0 line 17) -> on", 5)


def test_refused_tokens_say_why(rig, term):
    now_ms = 1_700_000_000_000  # 2023: long expired
    rogue = create_operator(os.path.join(rig.directory, "rogue"), "ops-team")  # same name, other key
    good = rig.token()
    tampered = good[:60] + ("A" if good[60] != "A" else "B") + good[61:]
    cases = [
        (rig.token(ttl_s=60, now_ms=now_ms), "expired"),
        (rig.token(device="console-2"), "wrong-device"),
        (tampered, None),
        (rig.token(operator=rogue), "bad-signature"),
        ("0123-not-a-token!", "not a technician token: paste the token from `edge-agent keys technician-token`"),
    ]
    for i, (text, reason) in enumerate(cases):
        answer = term.command("login " + text)
        assert answer.startswith("error: login refused: " + (reason or "")), (reason, answer)
        assert "b'" not in answer, answer  # names as text (an Ed25519 operator here), never a bytes repr
        if i == 3:  # a good login resets the failure count (5 in a row lock: the next test)
            assert term.command("login " + good).startswith("logged in as alice")
            assert term.command("logout") == "logged out alice"
    assert "not logged in" in term.command("whoami")


def test_socket_sessions_are_private_concurrent_and_see_notices(rig, term):
    mode = os.stat(rig.socket_path).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    one = socket_terminal(rig.socket_path, "socket-1")
    two = socket_terminal(rig.socket_path, "socket-2")
    try:
        one.expect("console on %s" % DEVICE)
        one.answer()
        two.expect("console on %s" % DEVICE)
        two.answer()
        assert term.command("login " + rig.token(subject="carol")).startswith("logged in as carol")
        assert one.command("login " + rig.token(subject="bob")).startswith("logged in as bob")
        assert "not logged in (socket #" in two.command("whoami")
        assert one.command("quarantine force cabinet_fan").startswith("cabinet_fan: ok -> forced")
        # The other sessions hear about it, between lines; who did it, and
        # the audit, only the logged-in serial session.
        term.expect("*** cabinet_fan: ok -> forced (forced into quarantine by bob)")
        term.expect("*** audit: applied quarantine.force cabinet_fan by bob (console)")
        two.expect("*** cabinet_fan: ok -> forced (forced into quarantine by hand)")
        assert one.command("quarantine release cabinet_fan").startswith("cabinet_fan: forced -> ok")
        two.expect("*** cabinet_fan: forced -> ok (released by hand)")
        assert "bob" not in two.screen and "*** audit" not in two.screen, two.screen
    finally:
        one.sock.close()
        two.sock.close()
    # Closing a logged-in connection ends its session (audited logout).
    term.expect("*** audit: applied console.logout socket #")
    assert term.command("logout") == "logged out carol"


def test_an_alert_appears_between_lines_and_is_acknowledged(rig, term):
    term.type("read")  # half-typed when the alert arrives
    rig.sim.send("fail coolant_temp high")
    notice = term.expect("*** alert #", timeout_s=20)
    seq = int(term.expect(" ")[:-1])
    term.expect("\n%s> read" % DEVICE)  # prompt and half-typed line drawn again
    assert "\r" in notice  # the line was blanked, not written over mid-line
    term.type("ings coolant_temp\r")
    assert "ACTIVE since" in term.answer()
    assert "#%d" % seq in term.command("alerts")
    assert term.command("login " + rig.token(subject="erin", scopes=("ack",))).startswith("logged in as erin")
    assert term.command("ack %d" % seq) == "alert #%d acknowledged by erin" % seq
    assert "acked by erin" in term.command("alerts")
    assert "scopes ack, not 'override'" in term.command("quarantine force cabinet_fan")
    assert term.command("logout") == "logged out erin"
    rig.sim.send("heal coolant_temp")


def test_lockout_after_repeated_failures_is_the_port_s_for_seconds(rig, term):
    for _ in range(3):  # not tokens: no login attempts
        assert "did not count as a failed login" in term.command("login AAAA")
    bad = rig.token(device="console-2")
    for _ in range(4):
        assert "login refused: wrong-device" in term.command("login " + bad)
    assert "5 failed logins in a row: login locked for 2 s on this port" in term.command("login " + bad)
    answer = term.command("login " + rig.token())
    assert answer.startswith("error: login is locked for ") and answer.endswith(
        " on this port after repeated failures; wait, then try again"), answer
    # The socket is another port: not locked. All its connections are one
    # port: failures there lock it for the next connection too.
    one = socket_terminal(rig.socket_path, "socket-3")
    try:
        one.expect("console on %s" % DEVICE)
        one.answer()
        assert one.command("login " + rig.token(subject="frank")).startswith("logged in as frank")
        assert one.command("logout") == "logged out frank"
        for _ in range(5):
            answer = one.command("login " + bad)
        assert "login locked for 2 s on this port" in answer, answer
        time.sleep(2.1)  # (the serial port's lock is over too)
        for _ in range(5):
            answer = one.command("login " + bad)
        assert "login locked for 4 s on this port" in answer, answer
    finally:
        one.sock.close()
    two = socket_terminal(rig.socket_path, "socket-4")
    try:
        two.expect("console on %s" % DEVICE)
        two.answer()
        assert two.command("login " + rig.token()).startswith("error: login is locked for ")
    finally:
        two.sock.close()
    # A genuine token on the serial port gets in once its seconds are over.
    assert term.command("login " + rig.token(subject="gina")).startswith("logged in as gina")
    assert term.command("logout") == "logged out gina"
