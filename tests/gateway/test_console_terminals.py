"""Real terminals on the console of a running agent: picocom under tmux
(keys sent with tmux send-keys, the screen read with capture-pane), our own
`edge-agent console` on a pty (completion, history), scripted through a
pipe (plain text), and its errors for missing, busy and stale ports.

The agent's console pty and picocom's pty are joined by a relay thread: a
null-modem cable between the technician's laptop and the device."""

import os
import select
import socket
import subprocess
import sys
import time

import fcntl
import pytest

from simulator.fixtures.processes import ROOT, edge_agent_argv

from conftest import Pty
from console_rig import Rig
from terminal_support import NullModem, Tmux, need_picocom

pytestmark = pytest.mark.integration

DEVICE = "console-2"


@pytest.fixture(scope="module")
def rig(pki, broker, tmp_path_factory):
    running = Rig(pki, broker, str(tmp_path_factory.mktemp("console-terminals")), DEVICE)
    yield running
    running.stop()


@pytest.fixture
def cable(rig):
    """A second pty whose slave is 'the laptop's serial port', wired to the agent's console."""
    laptop = Pty()
    modem = NullModem(rig.console_pty.master, laptop.master)
    yield laptop
    modem.stop()
    laptop.close()


def test_picocom_under_tmux(rig, cable):
    need_picocom()
    tmux = Tmux("picocom -q -b 115200 %s" % cable.path)
    try:
        tmux.wake("%s> " % DEVICE)
        tmux.keys("status", "Enter")
        tmux.wait("device      %s (board demo-gateway" % DEVICE)
        # A typo fixed with Backspace (picocom sends DEL), a half line dropped with Ctrl-C.
        tmux.keys("whoamx", "BSpace", "i", "Enter")
        tmux.wait("not logged in (serial ")
        tmux.keys("quarantine force cab", "C-c")
        tmux.wait("^C")
        tmux.keys("frobnicate", "Enter")
        tmux.wait("error: unknown command 'frobnicate'")
        tmux.keys("login " + rig.token(subject="carol"), literal=True)
        tmux.keys("Enter")
        tmux.wait("logged in as carol (operator ops-team)")
        tmux.keys("quarantine force cabinet_fan", "Enter")
        tmux.wait("cabinet_fan: ok -> forced")
        tmux.keys("components", "Enter")
        screen = tmux.wait("forced into quarantine by carol")
        tmux.keys("quarantine release cabinet_fan", "Enter")
        screen = tmux.wait("cabinet_fan: forced -> ok")
        assert "%s (carol)# " % DEVICE in screen
        # While picocom holds the port (flock), our client says it is busy.
        busy = subprocess.run(edge_agent_argv("console", cable.path), capture_output=True, text=True, timeout=20,
                              cwd=ROOT)
        assert busy.returncode == 1
        assert "is busy: another program (picocom, screen, another console) has it open" in busy.stderr
        tmux.keys("logout", "Enter")
        tmux.wait("logged out carol")
        tmux.keys("C-a", "C-x")  # picocom's exit
    finally:
        tmux.kill()


def test_picocom_edits_lines_on_the_device(rig, cable):
    """What a technician with a plain terminal gets from the device itself:
    arrows, history, Tab completion, `?` help (issue 24)."""
    need_picocom()
    tmux = Tmux("picocom -q -b 115200 %s" % cable.path)
    prompt = "%s> " % DEVICE
    try:
        tmux.wake(prompt)
        # Left three times, then a key: it lands where the cursor is.
        tmux.keys("sttus", "Left", "Left", "Left", "a")
        tmux.wait_line(prompt + "status")
        tmux.keys("Enter")
        tmux.wait("device      %s (board demo-gateway" % DEVICE)
        # Up recalls it; Home and Delete edit it; End and Enter run it.
        tmux.keys("Up")
        tmux.wait_line(prompt + "status")
        tmux.keys("Home", "DC", "S", "End", "?")  # ? right after a word: the commands it may start
        tmux.wait("Status?\n  status       uptime, versions")
        tmux.wait_line(prompt + "Status")
        tmux.keys(" ", "?")  # after a space: what comes next
        tmux.wait("usage: status")
        tmux.keys("C-u", "comp", "Tab")
        tmux.wait_line(prompt + "components")  # (and a space: trailing blanks are not compared)
        tmux.keys("Enter")
        tmux.wait("coolant_loop (essential)")
        # Tab completes keywords and the board's names; ambiguous, it lists them.
        tmux.keys("quar", "Tab", "f", "Tab", "cab", "Tab")
        tmux.wait_line(prompt + "quarantine force cabinet_fan")
        tmux.keys("C-c", "readings c", "Tab")
        tmux.wait("cabinet_temp  coolant_flow  coolant_temp")
        tmux.keys("oolant_f", "Tab", "Enter")
        tmux.wait("valid range")
        tmux.keys("C-a", "C-x")  # picocom's exit
    finally:
        tmux.kill()


def _spawn_on_pty(argv):
    """Run ``argv`` with a pty as its terminal; return (process, master fd)."""
    master, slave = os.openpty()
    env = dict(os.environ, TERM="xterm", HOME=os.environ.get("HOME", "/tmp"), COLUMNS="160")
    process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True, env=env,
                               cwd=ROOT)
    os.close(slave)
    return process, master


class PtyScreen:
    """What a program on a pty wrote, searched past the last match."""

    def __init__(self, master):
        self.master = master
        self.data = b""
        self.seen = 0

    def wait(self, text, timeout_s=15):
        wanted = text.encode()
        deadline = time.monotonic() + timeout_s
        while self.data.find(wanted, self.seen) < 0:
            if time.monotonic() > deadline:
                raise AssertionError("%r not on screen; since last match:\n%s"
                                     % (text, self.data[self.seen:].decode(errors="replace")))
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    self.data += os.read(self.master, 65536)
                except OSError:
                    pass
        start = self.seen
        self.seen = self.data.find(wanted, self.seen) + len(wanted)
        return self.data[start:self.seen]

    def type(self, data):
        os.write(self.master, data)


def test_our_client_completes_and_recalls_history(rig, tmp_path):
    home = str(tmp_path)
    argv = [sys.executable, "-c", "import os,sys; os.environ['HOME']=%r; from edge_agent.cli.main import main; "
            "sys.exit(main(['console', %r]))" % (home, rig.socket_path)]
    process, master = _spawn_on_pty(argv)
    screen = PtyScreen(master)
    prompt = "%s> " % DEVICE
    try:
        banner = screen.wait(prompt)
        assert b"console on %s" % DEVICE.encode() in banner and b"echo off" not in banner  # handshake invisible
        screen.type(b"sta\t")
        screen.wait("status ")
        screen.type(b"\r")
        assert b"device      %s" % DEVICE.encode() in screen.wait("last errors")
        screen.wait(prompt)
        screen.type(b"\x1b[A\r")  # up arrow: the last command again
        assert b"device      %s" % DEVICE.encode() in screen.wait("last errors")
        screen.wait(prompt)
        screen.type(b"quarantine f\t")
        screen.wait("quarantine force ")
        screen.type(b"cab\t")
        screen.wait("cabinet_fan ")
        screen.type(b"\r")
        assert b"\x1b[31merror: `quarantine` needs a technician" in screen.wait("needs a technician")
        screen.wait(prompt)
        screen.type(b"\x04")  # Ctrl-D: leave
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    with open(os.path.join(home, ".edge_agent_console_history")) as f:
        history = f.read()
    assert "status" in history and "quarantine force cabinet_fan" in history


def test_scripted_client_over_the_serial_cable_prints_plain_text(rig, cable):
    script = "status\nwhoami\nbogus\nlogin %s\nwhoami\nlogout\n" % rig.token(subject="dave", scopes=("read",))
    result = subprocess.run(edge_agent_argv("console", cable.path), input=script, capture_output=True, text=True,
                            timeout=30, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "\x1b" not in out and "\r" not in out  # no colour, no terminal control when not a tty
    assert "device      %s" % DEVICE in out
    assert "error: unknown command 'bogus'" in out
    assert "dave, token from operator ops-team, scopes read" in out
    assert "logged out dave" in out


def test_client_errors_name_the_problem(rig, tmp_path):
    def run(target):
        return subprocess.run(edge_agent_argv("console", target), capture_output=True, text=True, timeout=20,
                              cwd=ROOT, stdin=subprocess.DEVNULL)

    missing = run(str(tmp_path / "ttyUSB9"))
    assert missing.returncode == 1 and "no such serial port or socket" in missing.stderr
    stale = str(tmp_path / "stale.sock")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(stale)
    dead.close()
    result = run(stale)
    assert result.returncode == 1 and "nothing is listening (a stale socket" in result.stderr
    port = Pty()
    holder = os.open(port.path, os.O_RDWR | os.O_NOCTTY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run(port.path)
        assert result.returncode == 1 and "is busy" in result.stderr, result.stderr
    finally:
        os.close(holder)
        port.close()
