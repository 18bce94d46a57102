"""A session does not outlive its technician: idle logout after
idle_logout_ms without a key, and logout when the adapter says the line
dropped; both audited with why. On both interpreters."""

from console_support import Screen, bench, token

from edge_agent.core import console as con
from edge_agent.core import signals as sg

MINUTE = 60000


def _logouts(view):
    return [(a.body[sg.U_WHO], a.body[sg.U_REASON]) for a in view.audits() if a.body[sg.U_ACTION] == "console.logout"]


def test_a_logged_in_session_idle_for_15_minutes_is_logged_out_and_audited():
    view, console = bench()
    assert console.idle_logout_ms == 15 * MINUTE == con.IDLE_LOGOUT_MS
    screen = Screen(console)
    assert screen.run("login " + token()).startswith("logged in as alice")
    screen.type("quar")  # half a line, then the technician walks away
    view.clock += 15 * MINUTE - 1
    console.tick()
    assert screen.type("") == "" and _logouts(view) == []
    view.clock += 1
    console.tick()
    # Said between lines; the prompt is the anonymous one again.
    screen.type("")
    out = screen.text[screen.text.rindex("unit-7 (alice)# quar") + len("unit-7 (alice)# quar"):]
    assert out == "\r" + " " * len("unit-7 (alice)# quar") + "\r" + (
        "session of alice ended: idle for 15 min; `login TOKEN` again\nunit-7> quar"), repr(out)
    assert _logouts(view) == [("alice", "idle for 15 min")]
    assert "needs a technician session" in screen.run("antine force fan")
    console.tick()
    assert len(_logouts(view)) == 1


def test_a_key_after_the_limit_comes_too_late_even_without_ticks():
    view, console = bench()
    screen = Screen(console)
    screen.run("login " + token())
    view.clock += 20 * MINUTE
    out = screen.run("quarantine force fan")
    assert "needs a technician session" in out
    assert _logouts(view) == [("alice", "idle for 15 min")]  # the limit it passed


def test_typing_keeps_a_session_alive_and_the_limit_is_configurable():
    view, console = bench()
    console.idle_logout_ms = 2000
    screen = Screen(console)
    screen.run("login " + token())
    for _ in range(10):
        view.clock += 1500
        screen.type("x\x7f")  # any key counts
        console.tick()
    assert screen.run("whoami").startswith("alice")
    view.clock += 2000
    console.tick()
    assert screen.run("whoami").startswith("not logged in")


def test_a_session_nobody_logged_into_is_left_alone():
    view, console = bench()
    screen = Screen(console)
    view.clock += 60 * MINUTE
    console.tick()
    assert screen.type("") == "" and view.audits() == []


def test_the_line_dropping_logs_out_with_its_reason():
    view, console = bench()
    screen = Screen(console, "serial /dev/ttyS0")
    screen.run("login " + token(subject="bob"))
    screen.session.close("line dropped (hang-up)")
    assert _logouts(view) == [("bob", "line dropped (hang-up)")]
    assert console.sessions == []
    screen = Screen(console)
    screen.run("login " + token())
    screen.type("\x04")  # Ctrl-D
    assert _logouts(view)[-1] == ("alice", "Ctrl-D")
