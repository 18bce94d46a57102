"""What the console shows before login and after (docs/console.md, "Before
login"): readings, component states and alerts for anyone at the port;
the log, the configuration, the broker, the last errors, the audit log and
who did what only to a technician. On both interpreters."""

from console_support import Screen, bench, token

from edge_agent.core import signals as sg

LOG_IN_FIRST = "shows what only technicians see; log in first: login TOKEN"


def _login(screen, subject="alice", scopes=("read", "ack", "override")):
    out = screen.run("login " + token(subject=subject, scopes=scopes))
    assert out.startswith("logged in as " + subject), out


def test_log_and_config_refuse_before_login_and_work_after():
    view, console = bench()
    screen = Screen(console)
    for command in ("log", "log 200", "log 2", "config show"):
        out = screen.run(command)
        name = command.split()[0]
        assert out == "error: `%s` %s (the operator makes one with `edge-agent keys technician-token`)" % (
            name, LOG_IN_FIRST), (command, out)
        assert "log line" not in out and "telemetry" not in out
    # A token with any scope will do: every token may read.
    _login(screen, scopes=("ack",))
    assert screen.run("log 2") == "log line 28\nlog line 29"
    assert "telemetry   every 10 s" in screen.run("config show")
    screen.run("logout")
    assert LOG_IN_FIRST in screen.run("log")
    assert [s.body[sg.U_ACTION] for s in view.audits()] == ["console.login", "console.logout"]


def test_status_and_buffer_before_login_leave_out_the_broker_and_the_errors():
    _, console = bench()
    screen = Screen(console)
    status = screen.run("status")
    for text in ("device      unit-7 (board test-board, model EA-TEST-1)", "link        online\n",
                 "store       lane 0: 0", "components  ok 2",
                 "log in (login TOKEN) for the broker, the last errors, `log` and `config show`"):
        assert text in status, (text, status)
    assert "test broker" not in status and "  error" not in status, status
    buffer = screen.run("buffer")
    assert buffer.endswith("until the broker acknowledges them (online)"), buffer
    _login(screen)
    status = screen.run("status")
    assert "link        online: test broker" in status and "  error 2" in status, status
    assert "acknowledges them (online: test broker)" in screen.run("buffer")


def test_before_login_nobody_is_named_and_the_audit_log_is_not_shown():
    view, console = bench()
    technician = Screen(console, "socket 1")
    passer_by = Screen(console, "uart0")
    view.feed("coolant_temp", 150)
    seq = console.alerts[-1].seq
    _login(technician)
    technician.run("ack %d" % seq)
    technician.run("quarantine force fan")
    passer_by.type("")
    # The alert and the state change, as notices and in the tables; not who.
    assert "*** alert #%d critical" % seq in passer_by.text
    assert "*** fan: ok -> forced (forced into quarantine by hand)" in passer_by.text
    assert "fan                       forced  " in passer_by.run("components")
    assert "forced into quarantine by hand" in passer_by.run("components")
    assert "critical  raised  acked 0 ms ago" in passer_by.run("alerts")
    assert "alice" not in passer_by.text and "*** audit" not in passer_by.text, passer_by.text
    assert "ops-team" not in passer_by.text
    # Logged in, the same commands name who did what, and audits are notices.
    _login(passer_by, subject="bob")
    assert "forced into quarantine by alice" in passer_by.run("components")
    assert "acked by alice" in passer_by.run("alerts")
    technician.run("quarantine release fan")
    passer_by.type("")
    assert "*** audit: applied quarantine.release fan by alice (console)" in passer_by.text


def test_an_expired_session_sees_what_anyone_sees():
    view, console = bench()
    screen = Screen(console)
    other = Screen(console, "socket 1")
    out = screen.run("login " + token(ttl_ms=60000))
    assert out.startswith("logged in as alice"), out
    _login(other, subject="bob")
    screen.type("")  # (bob's login, seen while alice was logged in)
    view.clock += 61000
    start = len(screen.text)
    other.run("quarantine force fan")  # notices arrive before the expired session types again
    screen.type("")
    seen = screen.text[start:]
    assert "*** fan: ok -> forced (forced into quarantine by hand)" in seen, seen
    assert "*** audit" not in seen and "bob" not in seen, seen
    out = screen.run("log 1")
    assert "session of alice ended: the token expired" in out and LOG_IN_FIRST in out, out


def test_help_marks_what_needs_a_session():
    _, console = bench()
    screen = Screen(console)
    marks = {}
    for line in screen.run("help").split("\n")[1:-1]:
        marks[line.split()[0]] = line.split("  ")[-2].strip()
    assert marks["log"] == marks["config"] == marks["quarantine"] == "*", marks
    assert marks["status"] == marks["readings"] == marks["components"] == marks["alerts"] == "", marks
    assert "Needs a technician session (`login TOKEN`), any scope." in screen.run("help log")
    assert "Before login: the link's state only" in screen.run("help status")
