"""The technician console served by the firmware on a UART (a pty here),
typed into as a person would: read-only commands, a login with a
technician token sealed under the device secret, a forced quarantine
(the fan's power pin goes low) whose audit reaches the receiver; picocom
under tmux editing lines on it, and its idle logout audited."""

import base64
import os
import select
import sqlite3
import time
import tty

import pytest
from fw_support import Rig, stop_firmware
from terminal_support import NullModem, Tmux, need_picocom

from edge_agent.core import cbor
from edge_agent.core import signals as sg
from edge_agent.keys.operators import create_operator

pytestmark = pytest.mark.integration


class Terminal:
    def __init__(self):
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self.slave = slave
        self.screen = b""

    def type(self, text):
        os.write(self.master, text.encode())

    def expect(self, text, timeout_s=10):
        deadline = time.monotonic() + timeout_s
        while text.encode() not in self.screen:
            left = deadline - time.monotonic()
            assert left > 0, "console did not show %r; screen:\n%s" % (text, self.screen.decode(errors="replace"))
            if select.select([self.master], [], [], left)[0]:
                self.screen += os.read(self.master, 4096)
        return self.screen.decode(errors="replace")

    def close(self):
        for fd in (self.master, self.slave):
            os.close(fd)


def test_console_on_the_firmware_uart(pki, broker, pty, tmp_path):
    rig = Rig(tmp_path, pki, "fw-console-1")
    rig.provision(broker.port, operators=["ops"])
    operator = create_operator(str(tmp_path / "operator"), "ops")
    token = operator.technician_token(rig.device_id, "alice", ["read", "override"], 600,
                                      device_secret=rig.identity._secret)
    terminal = Terminal()
    try:
        rig.start_receiver(broker.port)
        firmware = rig.start_firmware(pty.path, broker.port, "--console", terminal.path, "--heap-log-ms", "0")
        firmware.wait_for("connected to broker", 20)
        terminal.expect("fw-console-1> ")
        terminal.type("status\r")
        terminal.expect("edge-agent-firmware")
        terminal.type("components\r")
        terminal.expect("cabinet_fan")
        terminal.type("quarantine force cabinet_fan\r")
        terminal.expect("login")  # privileged: refused without a session
        terminal.type("login %s\r" % base64.urlsafe_b64encode(token).rstrip(b"=").decode())
        terminal.expect("alice")
        terminal.type("quarantine force cabinet_fan\r")
        firmware.wait_for("cabinet_fan", 10)
        deadline = time.monotonic() + 10
        while open(rig.fan_pin).read() != "0":
            assert time.monotonic() < deadline, "the forced quarantine did not cut the fan's pin"
            time.sleep(0.05)
        last = stop_firmware(firmware)
        rig.wait_seq(last, 20)
    finally:
        rig.stop_all()
        terminal.close()
    got = rig.summary()
    assert got["lost"] == [] and got["count"] == last
    with sqlite3.connect(rig.db) as db:
        audits = db.execute("SELECT COUNT(*) FROM signals WHERE device=? AND kind=?",
                            (rig.device_id, sg.KIND_AUDIT)).fetchone()[0]
    assert audits >= 2  # the login and the forced quarantine


def _audit_bodies(rig):
    with sqlite3.connect(rig.db) as db:
        rows = db.execute("SELECT body FROM signals WHERE device=? AND kind=? ORDER BY seq",
                          (rig.device_id, sg.KIND_AUDIT)).fetchall()
    return [cbor.loads(row[0]) for row in rows]


def test_picocom_edits_lines_on_the_firmware_console_and_idle_logs_out(pki, broker, pty, tmp_path):
    need_picocom()
    rig = Rig(tmp_path, pki, "fw-console-2")
    rig.provision(broker.port, operators=["ops"])
    operator = create_operator(str(tmp_path / "operator"), "ops")
    token = operator.technician_token(rig.device_id, "alice", ["read"], 600, device_secret=rig.identity._secret)
    device = Terminal()  # the firmware's UART
    laptop = Terminal()  # the technician's serial port, wired to it
    modem = NullModem(device.master, laptop.master)
    prompt = "fw-console-2> "
    tmux = None
    try:
        rig.start_receiver(broker.port)
        firmware = rig.start_firmware(pty.path, broker.port, "--console", device.path, "--console-idle-ms", "3000",
                                      "--heap-log-ms", "0")
        firmware.wait_for("connected to broker", 20)
        tmux = Tmux("picocom -q -b 115200 %s" % laptop.path)
        tmux.wake(prompt)
        tmux.keys("sttus", "Left", "Left", "Left", "a")
        tmux.wait_line(prompt + "status")
        tmux.keys("Enter")
        tmux.wait("edge-agent-firmware")
        tmux.keys("Up")
        tmux.wait_line(prompt + "status")
        tmux.keys("C-u", "comp", "Tab", "Enter")
        tmux.wait("cabinet_fan")
        tmux.keys("quar", "Tab", "f", "Tab", "cab", "Tab")
        tmux.wait_line(prompt + "quarantine force cabinet_fan")
        tmux.keys("?")
        tmux.wait("usage: quarantine force|release COMPONENT")
        tmux.keys("C-c")
        tmux.keys("login " + base64.urlsafe_b64encode(token).rstrip(b"=").decode(), literal=True)
        tmux.keys("Enter")
        tmux.wait("logged in as alice")
        # Then nothing for 3 s: the firmware logs alice out and says so.
        tmux.wait("session of alice ended: idle for 3 s; `login TOKEN` again", timeout_s=15)
        tmux.wait_line(prompt.rstrip())
        tmux.keys("C-a", "C-x")
        last = stop_firmware(firmware)
        rig.wait_seq(last, 20)
    finally:
        if tmux is not None:
            tmux.kill()
        modem.stop()
        rig.stop_all()
        device.close()
        laptop.close()
    logouts = [(b[sg.U_WHO], b[sg.U_REASON]) for b in _audit_bodies(rig) if b[sg.U_ACTION] == "console.logout"]
    assert logouts == [("alice", "idle for 3 s")], _audit_bodies(rig)
