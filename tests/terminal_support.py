"""A technician's terminal for the console tests: picocom under tmux
(keys sent with send-keys, the screen read with capture-pane), wired to the
device's console pty by a null-modem relay between two pty masters."""

import os
import select
import shutil
import subprocess
import threading
import time

import pytest


def need_picocom():
    for program in ("picocom", "tmux"):
        if shutil.which(program) is None:
            pytest.skip("%s is not installed and `apt-get install %s` was not possible here (make setup installs "
                        "picocom)" % (program, program))


class NullModem:
    """Copies bytes both ways between two pty masters until stopped."""

    def __init__(self, a, b):
        self.a, self.b = a, b
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            ready, _, _ = select.select([self.a, self.b], [], [], 0.05)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                os.write(self.b if fd == self.a else self.a, data)

    def stop(self):
        self.running = False
        self.thread.join(2)


class Tmux:
    def __init__(self, command):
        self.socket = "ea-console-%d" % os.getpid()
        self._tmux("new-session", "-d", "-s", "t", "-x", "160", "-y", "50", command)

    def _tmux(self, *args):
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout

    def keys(self, *keys, literal=False):
        self._tmux("send-keys", "-t", "t", *(["-l"] if literal else []), *keys)

    def screen(self):
        return self._tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", "t")

    def wait(self, text, timeout_s=10, count=1):
        deadline = time.monotonic() + timeout_s
        while True:
            screen = self.screen()
            if screen.count(text) >= count:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError("%r not on the tmux screen (x%d) after %d s:\n%s" % (text, count, timeout_s, screen))
            time.sleep(0.1)

    def wake(self, prompt):
        """Enter until the device's prompt shows: picocom may not have opened
        the port yet when the first Enter is typed (a loaded CI machine)."""
        for _ in range(15):
            self.keys("Enter")
            try:
                return self.wait(prompt, timeout_s=1)
            except AssertionError:
                continue
        return self.wait(prompt)

    def line(self):
        """The screen's last non-blank line (where the cursor is)."""
        lines = [line for line in self.screen().split("\n") if line.strip()]
        return lines[-1].rstrip(" ") if lines else ""

    def wait_line(self, text, timeout_s=10):
        deadline = time.monotonic() + timeout_s
        while self.line() != text:
            if time.monotonic() > deadline:
                raise AssertionError("last line %r, not %r, after %d s:\n%s" % (self.line(), text, timeout_s,
                                                                              self.screen()))
            time.sleep(0.1)

    def kill(self):
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)
