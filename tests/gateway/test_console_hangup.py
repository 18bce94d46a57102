"""A technician's session does not outlive the technician, on a running
agent: idle logout on the console's real pty, and logout when the line
drops (the other side of a pty hangs up); both audited, the audits checked
at a real mosquitto, signature verified."""

import os
import time

import pytest

from edge_agent.core import signals as sg

from conftest import REGISTRY, Pty
from console_rig import Rig, pty_terminal

pytestmark = pytest.mark.integration

DEVICE = "console-3"
IDLE_S = 2


@pytest.fixture(scope="module")
def dropped_line():
    """A second console port whose cable the test pulls."""
    line = Pty()
    yield line
    line.close()


@pytest.fixture(scope="module")
def rig(pki, broker, tmp_path_factory, dropped_line):
    running = Rig(pki, broker, str(tmp_path_factory.mktemp("console-hangup")), DEVICE,
                  extra=("--console-idle", str(IDLE_S), "--console", dropped_line.path))
    yield running
    running.stop()


def _logouts(messages):
    audits = [s for t, p in messages if t.endswith("/audit") for s in REGISTRY.open_signals(p, t)]
    return [(s.body[sg.U_WHO], s.body[sg.U_TARGET], s.body[sg.U_REASON]) for s in audits
            if s.body[sg.U_ACTION] == "console.logout"]


def _login(terminal, rig, subject):
    terminal.type("\r")
    terminal.answer()
    answer = terminal.command("login " + rig.token(subject=subject))
    assert answer.startswith("logged in as %s" % subject), answer


def test_an_idle_session_is_logged_out_and_the_broker_hears_it(rig, broker, subscribe):
    term = rig.serial()
    started = []

    def walk_away():
        _login(term, rig, "ivan")
        started.append(time.monotonic())

    messages = subscribe(broker.port, ["ea/v1/%s/audit" % DEVICE], lambda ms: _logouts(ms), timeout_s=30,
                         action=walk_away)
    term.expect("session of ivan ended: idle for %d s; `login TOKEN` again\n%s> " % (IDLE_S, DEVICE))
    assert time.monotonic() - started[0] >= IDLE_S
    assert _logouts(messages) == [("ivan", "serial " + rig.console_pty.path, "idle for %d s" % IDLE_S)]
    assert "needs a technician session" in term.command("quarantine force cabinet_fan")


def test_typing_keeps_the_session(rig):
    term = rig.serial()
    _login(term, rig, "judy")
    for _ in range(3):
        time.sleep(IDLE_S * 0.6)
        term.type("x\x7f")  # any key counts
    assert term.command("whoami").startswith("judy, token from operator ops-team")
    assert term.command("logout") == "logged out judy"


def test_a_dropped_line_logs_out_and_the_broker_hears_it(rig, broker, subscribe, dropped_line):
    rig.agent.child.wait_for("console: serving %s" % dropped_line.path, 20)
    term = pty_terminal(dropped_line.master, "dropped")

    def pull_the_cable():
        _login(term, rig, "kate")
        os.close(dropped_line.master)  # the agent's side of the pty reads EIO: a hang-up
        dropped_line.master = -1  # closed: the fixture must not close the number again

    messages = subscribe(broker.port, ["ea/v1/%s/audit" % DEVICE], lambda ms: _logouts(ms), timeout_s=30,
                         action=pull_the_cable)
    assert _logouts(messages) == [("kate", "serial " + dropped_line.path, "line dropped (hang-up)")]
    rig.agent.child.wait_for("console %s: line dropped (hang-up); session ended" % dropped_line.path, 10)
    assert rig.agent.child.process.poll() is None


def test_a_pty_has_no_carrier_to_watch_so_its_session_is_never_dropped_for_it():
    from edge_agent.gateway.console_server import _carrier

    line = Pty()
    try:
        # ENOTTY from TIOCMGET: "cannot tell", never "carrier lost" (the
        # idle test above held a session across many one-second checks).
        assert _carrier(line.slave) is None
    finally:
        line.close()
