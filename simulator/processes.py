"""Child processes for the demo and the tests: each in its own process group
(so stopping it stops everything it started), its output captured line by
line so a caller can wait for a line, and optionally relayed with a prefix.
"""

import os
import signal
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def edge_agent_argv(*args):
    """argv for the edge-agent CLI of this checkout, under this interpreter."""
    return [sys.executable, "-m", "edge_agent", *args]


# One lock for all output: relay threads and the main thread print whole lines.
print_lock = threading.Lock()


def say(text):
    with print_lock:
        print(text, flush=True)


class Child:
    """A subprocess in its own process group whose output lines are
    remembered (and relayed with a prefix when ``relay``), so a caller can
    wait for a line."""

    def __init__(self, name, argv, stdin=False, relay=True, prefix=True, env=None):
        self.name = name
        self.lines = []
        self.changed = threading.Condition()
        env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="110", **(env or {}))
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=ROOT,
        )
        self._relay = relay
        self._prefix = ("%-9s| " % name) if prefix else ""
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self):
        for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()
            if self._relay:
                say(self._prefix + line)
        with self.changed:
            self.changed.notify_all()

    def mark(self):
        """A position in the output, for wait_for(..., since=mark)."""
        with self.changed:
            return len(self.lines)

    def wait_for(self, text, timeout_s, since=0):
        """The first output line after position ``since`` containing
        ``text``; raises RuntimeError on timeout or exit."""
        deadline = time.monotonic() + timeout_s
        with self.changed:
            while True:
                for line in self.lines[since:]:
                    if text in line:
                        return line
                if self.process.poll() is not None and not self._thread.is_alive():
                    raise RuntimeError("%s exited (code %s) before printing %r" % (self.name, self.process.returncode, text))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError("%s did not print %r within %.0f s" % (self.name, text, timeout_s))
                self.changed.wait(min(left, 0.5))

    def send(self, line):
        self.process.stdin.write((line + "\n").encode())
        self.process.stdin.flush()

    def text(self):
        with self.changed:
            return "\n".join(self.lines)

    def kill(self):
        """SIGKILL the whole group, as a power cut would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self):
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            except ProcessLookupError:
                pass
        self._thread.join(2)
