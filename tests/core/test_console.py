"""The console's commands, sessions, authorization and audit, typed as a
person would, on both interpreters (console_support.py: a real Device,
real COSE_Mac0 technician tokens)."""

from console_support import DEVICE, HOUR, OPERATOR, START, Screen, bench, token

from edge_agent.core import audit
from edge_agent.core import console as con
from edge_agent.core import signals as sg


def _login(screen, **kwargs):
    out = screen.run("login " + token(**kwargs))
    assert out.startswith("logged in as"), out
    return out


def test_banner_and_prompt():
    _, console = bench()
    screen = Screen(console)
    assert "console on unit-7 (board test-board, model EA-TEST-1)" in screen.text
    assert screen.text.endswith("unit-7> ")


def test_every_command_has_help_and_is_listed():
    _, console = bench()
    screen = Screen(console)
    listing = screen.run("help")
    for name in con.ORDER:
        assert con.COMMANDS[name][1] in listing, name
        out = screen.run("help " + name)
        assert out.startswith("usage: "), (name, out)
    assert "error: unknown command 'frob'" in screen.run("help frob")
    assert sorted(con.ORDER) == sorted(con.COMMANDS)


def test_read_only_commands_show_the_device():
    view, console = bench()
    screen = Screen(console)
    _login(screen)  # what only technicians see is here too (before login: test_console_private.py)
    status = screen.run("status")
    for text in ("device      unit-7", "agent       edge-agent test", "link        online: test broker",
                 "store       lane 0: 0", "components  ok 2", "last errors", "  error 2"):
        assert text in status, (text, status)
    readings = screen.run("readings")
    assert "coolant_temp  40 degC   good" in readings, readings
    detail = screen.run("readings fan_rpm")
    assert "valid range 0 to 5000 rpm" in detail and "out_of_range  ok" in detail, detail
    assert "error: no sensor 'nope'; sensors: coolant_temp, fan_rpm" in screen.run("readings nope")
    assert "fan                       ok     start  -" in screen.run("components")
    assert screen.run("alerts") == "no alerts since the agent started"
    assert "1 high (alerts, audit)" in screen.run("buffer")
    assert screen.run("log 2") == "log line 28\nlog line 29"
    assert screen.run("log").count("log line") == 20
    assert "error: log N: N must be a number 1-200" in screen.run("log many")
    config = screen.run("config show")
    assert "fan_power    /dev/gpiochip0 line 17" in config and "telemetry   every 10 s" in config
    assert "error: usage: config show" in screen.run("config set x")
    assert "error: status takes no arguments" in screen.run("status now")
    assert [s.body[sg.U_ACTION] for s in view.audits()] == ["console.login"]  # looking is never audited


def test_rule_state_and_alerts_follow_the_device():
    view, console = bench()
    screen = Screen(console)
    view.feed("coolant_temp", 150)
    assert "ACTIVE: out_of_range" in screen.run("readings")
    detail = screen.run("readings coolant_temp")
    assert "out_of_range  ACTIVE since" in detail and "outside its valid range" in detail
    alerts = screen.run("alerts")
    assert "critical  raised  unacked" in alerts, alerts
    assert "coolant_temp on coolant_loop" in alerts


def test_unknown_commands_and_half_typed_lines():
    _, console = bench()
    screen = Screen(console)
    assert "error: unknown command 'stats' (did you mean status?)" in screen.run("stats")
    assert "error: unknown command 'xyzzy'; `help` lists" in screen.run("xyzzy")
    screen.type("quarantine fo")
    out = screen.type("\x03")
    assert out.endswith("^C\nunit-7> "), out
    assert "device      unit-7" in screen.run("STATUS")  # commands are case-insensitive
    assert screen.run("") == ""


def test_asynchronous_notice_is_printed_between_lines():
    view, console = bench()
    screen = Screen(console)
    screen.type("read")
    view.feed("coolant_temp", 150)
    screen.type("")
    # The prompt and "read" blanked out, the notices, then both redrawn.
    text = screen.text
    start = text.index("unit-7> read\r" + " " * 12 + "\r*** ")
    assert "*** alert #1 critical: coolant_temp" in text[start:]
    assert text.endswith("\nunit-7> read"), repr(text[start:])
    assert "coolant_temp  150 degC" in screen.run("ings")


def test_notices_off():
    view, console = bench()
    screen = Screen(console)
    assert screen.run("notices off") == "notices off"
    view.feed("coolant_temp", 150)
    assert "***" not in screen.type("")


def test_privileged_commands_need_a_session_and_are_not_audited_without_one():
    view, console = bench()
    screen = Screen(console)
    for command in ("ack 1", "quarantine force fan", "quarantine release fan"):
        out = screen.run(command)
        assert "needs a technician session: `login TOKEN`" in out, out
    assert view.device.health.state_of("fan") == "ok"
    assert view.audits() == []


def test_login_quarantine_and_audit_with_before_and_after():
    view, console = bench()
    screen = Screen(console)
    _login(screen)
    assert screen.text.endswith("unit-7 (alice)# ")
    assert "alice, token from operator ops-team" in screen.run("whoami")
    assert screen.run("quarantine force fan").startswith("fan: ok -> forced")
    assert view.device.health.state_of("fan") == "forced"
    assert "forced into quarantine by alice" in screen.run("components")
    assert "fan: forced -> ok" in screen.run("quarantine release fan")
    assert "error: fan is ok: release is not allowed in state ok" in screen.run("quarantine release fan")
    assert "error: no component 'pump'" in screen.run("quarantine force pump")
    assert "error: usage: quarantine force|release" in screen.run("quarantine zap fan")
    bodies = [s.body for s in view.audits()]
    assert [(b[sg.U_ACTION], b[sg.U_RESULT]) for b in bodies] == [
        ("console.login", "applied"), ("quarantine.force", "applied"), ("quarantine.release", "applied"),
        ("quarantine.release", "refused")]
    force = bodies[1]
    assert (force[sg.U_WHO], force[sg.U_TARGET], force[sg.U_BEFORE], force[sg.U_AFTER], force[sg.U_CHANNEL]) == (
        "alice", "fan", "ok", "forced", "console")
    for signal in view.audits():
        assert signal.priority == sg.PRIORITY_HIGH and signal.seq is not None and signal.device == DEVICE
        sg.decode(signal.encode())  # a valid v1 signal


def test_ack_an_alert():
    view, console = bench()
    screen = Screen(console)
    view.feed("coolant_temp", 150)
    seq = console.alerts[-1].seq
    _login(screen)
    assert screen.run("ack #%d" % seq) == "alert #%d acknowledged by alice" % seq
    assert "acked by alice" in screen.run("alerts")
    assert "already acknowledged by alice" in screen.run("ack %d" % seq)
    assert "error: no recent alert #999" in screen.run("ack 999")
    assert "error: ack x1: ALERT is a number" in screen.run("ack x1")
    acks = [s.body for s in view.audits() if s.body[sg.U_ACTION] == "alert.ack"]
    assert len(acks) == 1 and acks[0][sg.U_TARGET] == "alert #%d" % seq


def test_scopes_limit_what_a_session_may_do():
    view, console = bench()
    screen = Screen(console)
    _login(screen, subject="bob", scopes=("read", "ack"))
    out = screen.run("quarantine force fan")
    assert "error: bob's token has scopes read, ack, not 'override'" in out, out
    assert view.device.health.state_of("fan") == "ok"
    assert "not pulsed: needs a session with scope 'selftest'" in screen.run("selftest")


def test_selftest_pulses_outputs_and_reads_them_back():
    view, console = bench()
    screen = Screen(console)
    _login(screen)
    out = screen.run("selftest")
    assert "fan_power  pass  switched off and on, read back off then on" in out, out
    assert "selftest: 3 passed, 0 failed, 0 skipped" in out
    ons = [o.on for o in view.dispatched if getattr(o, "output", None) == "fan_power"]
    assert ons == [False, True]
    audit_body = view.audits()[-1].body
    assert audit_body[sg.U_ACTION] == "selftest" and audit_body[sg.U_AFTER] == {"fan_power": "pass"}
    # A line that does not follow is a failure, reported as such.
    view.lines["fan_power"] = True
    view.dispatch = _stuck_on(view)
    out = screen.run("selftest")
    assert "fan_power  FAIL  switched off and on, but read back on then on" in out, out


def _stuck_on(view):
    original = view.dispatch

    def dispatch(outputs):
        original([o for o in outputs if getattr(o, "output", None) is None])
    return dispatch


def test_selftest_fails_silent_sensors_and_skips_quarantined_ones():
    view, console = bench()
    screen = Screen(console)
    view.clock += 60000
    out = screen.run("selftest")
    assert "coolant_temp  FAIL  silent for 1 min" in out, out
    _login(screen)
    screen.run("quarantine force fan")
    out = screen.run("selftest")
    assert "fan_rpm       skip  fan is forced" in out, out
    assert "fan_power  skip  held off by quarantine:fan" in out or "fan_power  pass" in out


def test_refused_tokens_say_why_and_are_audited():
    view, console = bench()
    screen = Screen(console)
    cases = [
        (token(device="unit-8"), "wrong-device"),
        (token(issued=START - 9 * HOUR), "expired"),
        (token(key=bytes(32)), "bad-signature"),
        (token(operator="rogue"), "unknown-operator"),
    ]
    for text, reason in cases:
        out = screen.run("login " + text)
        assert out.startswith("error: login refused: %s (" % reason), (reason, out)
        assert "b'" not in out and 'b"' not in out, out  # names as text, never a bytes repr
    out = screen.run("login not*base64")
    assert out == ("error: login refused: not a technician token: paste the token from "
                   "`edge-agent keys technician-token` (this did not count as a failed login)"), out
    assert screen.text.endswith("unit-7> ")
    refused = [s.body for s in view.audits()]
    # Text that is not a token is no login attempt: not audited (the next tests).
    assert [b[sg.U_RESULT] for b in refused] == ["refused"] * 4
    assert [b[sg.U_REASON].split(":")[0] for b in refused] == [reason for _, reason in cases]
    # A genuine token refused (another device, expired) names its technician;
    # a forged one or an unknown operator's cannot be believed.
    assert [b[sg.U_WHO] for b in refused] == ["alice", "alice", "unverified (operator %s)" % OPERATOR,
                                              "unverified (operator rogue)"]
    assert not [b for b in refused if "b'" in repr(b[sg.U_REASON]) or "b'" in b[sg.U_WHO]]


def test_tampered_token_is_refused():
    _, console = bench()
    screen = Screen(console)
    good = token()
    flipped = good[:40] + ("A" if good[40] != "A" else "B") + good[41:]
    assert "error: login refused: " in screen.run("login " + flipped)
    assert "whoami" and "not logged in" in screen.run("whoami")


def test_lockout_after_five_failures_is_the_port_s_and_a_success_resets_it():
    view, console = bench()
    screen = Screen(console)
    bad = token(key=bytes(32))
    outs = [screen.run("login " + bad) for _ in range(4)]
    assert [o.startswith("error: login refused: bad-signature") for o in outs] == [True] * 4
    # The owner is warned before the lock.
    assert [o.split(")", 1)[1] for o in outs] == [
        "", "", "; 2 tries left, then login locks on this port for 2 s",
        "; 1 try left, then login locks on this port for 2 s"], outs
    out = screen.run("login " + bad)
    assert "5 failed logins in a row: login locked for 2 s on this port" in out, out
    # ... and so is the audit of the failure that locked it.
    assert view.audits()[-1].body[sg.U_REASON].endswith("; 5 failed logins in a row: login locked for 2 s on "
                                                         "this port")
    assert "2 tries left" not in out
    # Locked: even a good token is turned away on this port, without being
    # checked; it counts as an attempt (five were audited one by one: this
    # one is in the audits' quiet period, counted for the next audit).
    audits_before = len(view.audits())
    assert "error: login is locked for 2 s on this port" in screen.run("login " + token())
    assert len(view.audits()) == audits_before
    logins = console.logins
    assert (logins.unaudited, logins.unaudited_locked, logins.unaudited_lockouts) == (1, 1, 0)
    # Ctrl-D and a new session on the same port: the same lock.
    screen.type("\x04")
    screen = Screen(console)
    assert "login is locked for 2 s" in screen.run("login " + token())
    # Another port is not locked.
    other = Screen(console, "socket 2")
    assert other.run("login " + token(subject="bob")).startswith("logged in as bob")
    counted = [a.body[sg.U_REASON] for a in view.audits() if a.body[sg.U_REASON].startswith("rate-limited")]
    assert counted == ["rate-limited: 2 more failed logins refused unaudited (2 typed while login was locked)"]
    view.clock += 2000
    for _ in range(5):
        out = screen.run("login " + bad)
    assert "login locked for 4 s" in out, out
    view.clock += 4000
    _login(screen)
    guard = console.logins.guard("uart0")
    assert guard.lockouts == 0 and guard.failures == 0


def test_session_ends_when_the_token_expires():
    view, console = bench()
    screen = Screen(console)
    _login(screen, ttl_ms=60000)
    view.clock = START + 61000
    out = screen.run("quarantine force fan")
    assert "session of alice ended: the token expired 1 s ago" in out, out
    assert "needs a technician session" in out
    assert screen.text.endswith("unit-7> ")


def test_logout_and_ctrl_d_end_the_session():
    view, console = bench()
    screen = Screen(console)
    _login(screen)
    assert screen.run("logout") == "logged out alice"
    assert screen.run("logout") == "not logged in"
    _login(screen)
    screen.type("\x04")
    assert screen.session.closed and screen.session not in console.sessions
    actions = [s.body[sg.U_ACTION] for s in view.audits()]
    assert actions == ["console.login", "console.logout", "console.login", "console.logout"]


def test_sessions_are_independent():
    view, console = bench()
    one = Screen(console, "serial")
    two = Screen(console, "socket 1")
    _login(one)
    assert "not logged in" in two.run("whoami")
    assert "needs a technician session" in two.run("quarantine force fan")
    one.run("quarantine force fan")
    two.type("")
    # Before login the other session hears what happened, not who did it.
    assert "*** fan: ok -> forced (forced into quarantine by hand)" in two.text
    assert "alice" not in two.text and "*** audit" not in two.text
    _login(two, subject="bob")
    one.run("quarantine release fan")
    two.type("")
    assert "*** fan: forced -> ok (released by alice)" in two.text
    assert "*** audit: applied quarantine.release fan by alice (console)" in two.text


def test_no_trusted_operators_means_nobody_logs_in():
    _, console = bench(trusted={})
    screen = Screen(console)
    assert "this device trusts no operator key" in screen.run("login " + token())


def test_echo_off_for_programs():
    _, console = bench()
    screen = Screen(console)
    screen.type("echo off\r")
    out = screen.type("whoami\r")
    assert out == "\rnot logged in (uart0): read-only commands only; `login TOKEN` for more\nunit-7> ", repr(out)


def test_a_bug_in_a_command_is_reported_and_the_session_carries_on():
    view, console = bench()
    screen = Screen(console)
    view.link = None  # a broken view: calling it raises TypeError
    out = screen.run("status")
    assert out.startswith("error: internal error in `status` (TypeError"), out
    assert console.internal_errors
    assert "unit-7" in screen.run("whoami") or "not logged in" in screen.run("whoami")


def test_garbage_and_overlong_lines_reach_no_command():
    view, console = bench()
    screen = Screen(console)
    out = screen.type(b"qua\x00\xffrantine force fan\r")
    assert "error: line ignored: 2 bytes that are not text" in out
    out = screen.type("status " * 100 + "\r")
    assert "error: line longer than 512 characters" in out
    assert out.endswith("unit-7> ")
    assert "device      unit-7" in screen.run("status")
    assert view.audits() == []


def test_audit_signal_is_audits_own():
    # The console builds audit signals only through audit.audit_signal.
    view, console = bench()
    screen = Screen(console)
    _login(screen)
    body = view.audits()[0].body
    assert audit.describe(body).startswith("applied console.login uart0 by alice")


def test_a_component_whose_sensor_went_silent_shows_stale():
    # issue 18: silence is a lost link, not a failure; the console says so.
    from health_support import health_board

    view, console = bench(board=health_board(fan_rules=[{"kind": "dropout", "for_s": 5}]))
    screen = Screen(console)
    _login(screen)
    view.clock += 20000
    outputs, _ = view.device.poll(view.clock)  # the dropout timer fires: link_lost
    view.dispatch(outputs)
    assert any("link lost" in a.text for a in console.alerts), [a.text for a in console.alerts]
    assert "components  ok 1, stale 1" in screen.run("status")
    assert "fan                       stale" in screen.run("components")
    view.feed("fan_rpm", 1200)  # it answers again
    assert "components  ok 2" in screen.run("status")
