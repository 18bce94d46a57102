"""Failed logins (docs/console.md, "Failed logins"): text that is not a
token is no attempt; failures lock login on their own port for seconds,
never the owner's technicians out of the device; every failure is audited,
one by one or in a count. On both interpreters."""

from console_support import HOUR, START, Screen, bench, token

from edge_agent.core import console as con
from edge_agent.core import signals as sg


def _refusals(view):
    return [s.body for s in view.audits() if s.body[sg.U_RESULT] == "refused"]


def _failed_logins_audited(view):
    """Failed logins (tokens checked, or typed at a locked port) the audits
    account for: one each, plus the counts."""
    total = 0
    for body in _refusals(view):
        reason = body[sg.U_REASON]
        if reason.startswith("rate-limited: "):
            total += int(reason.split()[1])
        else:
            total += 1
    return total


def test_text_that_is_not_a_token_is_refused_not_counted_not_audited():
    view, console = bench()
    screen = Screen(console)
    for _ in range(3):
        for text in ("AAAA", "hunter2", "not*base64", "A" * 300, "oA"):
            out = screen.run("login " + text)
            # Plain words, not the decoder's (no "not CBOR: item at offset 0 ...").
            assert out == ("error: login refused: not a technician token: paste the token from "
                           "`edge-agent keys technician-token` (this did not count as a failed login)"), (text, out)
    guard = console.logins.guard("uart0")
    assert guard.failures == 0 and guard.locked_for(view.clock) == 0
    assert view.audits() == []
    # Twelve of them, and a genuine token logs in at once.
    assert screen.run("login " + token()).startswith("logged in as alice")


def test_bad_signatures_lock_their_port_for_seconds_and_a_genuine_token_gets_in():
    view, console = bench()
    passer_by = Screen(console, "serial ttyS1")
    technician = Screen(console, "socket #1")
    bad = token(key=bytes(32))  # well-formed, signed by some other key
    good = token()
    locks = []
    for _ in range(40):  # a script keeps pasting, as fast as the port lets it
        out = passer_by.run("login " + bad)
        if "login is locked for" in out:
            view.clock += 500
            continue
        assert out.startswith("error: login refused: bad-signature ("), out
        if "login locked for" in out:
            locks.append(out.split("login locked for ")[1])
    # Slowed: 5 tries, then a lock that doubles to a cap of a few seconds.
    assert locks[:3] == ["2 s on this port", "4 s on this port", "8 s on this port"], locks
    assert set(locks[2:]) == {"8 s on this port"}
    assert console.logins.guard("serial ttyS1").locked_for(view.clock) <= con.MAX_LOCK_MS
    # Meanwhile the technician's port was never locked.
    assert technician.run("login " + good).startswith("logged in as alice")
    # On the passer-by's port, a genuine token waits at most the cap, then logs in.
    passer_by.run("login " + bad)
    waited = 0
    while True:
        out = passer_by.run("login " + good)
        if out.startswith("logged in as alice"):
            break
        assert out.startswith("error: login is locked for "), out
        view.clock += 1000
        waited += 1000
    assert waited <= con.MAX_LOCK_MS, waited


def test_every_failed_login_is_audited_one_by_one_or_in_a_count():
    view, console = bench()
    screen = Screen(console)
    failures = locked = 0
    for i in range(60):
        out = screen.run("login " + token(device="unit-%d" % (100 + i)))  # a genuine token for another device
        if "login is locked for" in out:  # not checked, but an attempt all the same
            locked += 1
        else:
            assert "login refused: wrong-device" in out, out
            failures += 1
        view.clock += 1000
    assert locked
    failures += locked
    one_by_one = [b for b in _refusals(view) if not b[sg.U_REASON].startswith("rate-limited")]
    # Five, then a quiet period of 30 s: counted, not audited one by one.
    assert 5 <= len(one_by_one) < failures, (len(one_by_one), failures)
    assert one_by_one[0][sg.U_WHO] == "alice"  # signed by a trusted operator: who it names is known
    assert one_by_one[0][sg.U_REASON].startswith("wrong-device: token is for device 'unit-100'")
    # A login sends the count still held, before its own audit.
    assert Screen(console, "socket #1").run("login " + token()).startswith("logged in as alice")
    actions = [(s.body[sg.U_ACTION], s.body[sg.U_RESULT]) for s in view.audits()]
    assert actions[-1] == ("console.login", "applied")
    assert _refusals(view)[-1][sg.U_REASON].startswith("rate-limited: "), _refusals(view)[-1]
    assert _failed_logins_audited(view) == failures
    assert console.logins.unaudited == 0


def test_a_flood_of_failed_logins_adds_a_few_audits_an_hour():
    view, console = bench()
    sessions = [console.open_session("serial ttyS%d" % i) for i in range(2)]
    line = "login " + token(key=bytes(32))
    failures = 0
    while view.clock < START + 2 * HOUR:
        # Two scripts paste as fast as the ports take a token (typed lines
        # are the other tests' business: the interpreter is fed the line).
        for session in sessions:
            session._run_line(line)
            out = session.take_output()
            if b"login refused: bad-signature" in out or b"login is locked" in out:
                failures += 1
        locked = [console.logins.guard(s.port).locked_for(view.clock) for s in sessions]
        view.clock += max(1000, min(locked))  # a try a second, or the next one the ports take
    assert failures > 1000, failures
    # 5 and a count per quiet period, the period doubling from 30 s up to
    # an hour: 8 periods in these two hours.
    audits = len(view.audits())
    assert audits <= 6 * 8, audits
    assert _failed_logins_audited(view) + console.logins.unaudited == failures


def test_a_token_typed_at_a_locked_port_is_audited_as_such():
    view, console = bench()
    passer_by = Screen(console, "serial ttyS1")
    bad = token(key=bytes(32))
    for _ in range(con.MAX_FAILURES):
        out = passer_by.run("login " + bad)
    assert "login locked for 2 s on this port" in out
    # The owner logs in elsewhere: the audits' quiet period ends with it.
    assert Screen(console, "socket #1").run("login " + token()).startswith("logged in as alice")
    before = len(view.audits())
    assert passer_by.run("login " + token(subject="mallory")).startswith("error: login is locked for 2 s")
    audit = view.audits()[before:]
    assert [(a.body[sg.U_WHO], a.body[sg.U_TARGET], a.body[sg.U_REASON]) for a in audit] == [
        ("unverified (operator ops-team)", "serial ttyS1",
         "locked: a token typed while login is locked on this port (not checked)")]


def test_lockouts_in_a_quiet_period_are_in_the_count_s_audit():
    view, console = bench()
    screen = Screen(console, "serial ttyS1")
    bad = token(key=bytes(32))
    for _ in range(3 * con.MAX_FAILURES):
        screen.run("login " + bad)
        view.clock += con.MAX_LOCK_MS  # never locked when the next one comes
    assert Screen(console, "socket #1").run("login " + token()).startswith("logged in as alice")
    # Three lockouts, each in the audit of the failure that locked, or in a count.
    lockouts = 0
    for body in _refusals(view):
        reason = body[sg.U_REASON]
        if reason.startswith("rate-limited") and "lockout" in reason:
            lockouts += int(reason.split("(")[1].split()[0])
        elif "in a row: login locked for" in reason:
            lockouts += 1
    assert lockouts == 3, _refusals(view)
    assert [b for b in _refusals(view) if "lockout)" in b[sg.U_REASON]], _refusals(view)
