"""The test fixtures' child processes die with the process that started
them (simulator/fixtures/processes.py dying_with_parent): an agent left
behind by a killed test run would reopen its serial port by path, and
pseudo-terminal numbers are reused, so it would talk to the next run's pty."""

import os
import shutil
import subprocess
import sys
import time

import pytest

from simulator.fixtures.processes import ROOT

PARENT = """
import sys, time
from simulator.fixtures.processes import Child
child = Child("sleeper", ["sleep", "300"], relay=False)
print(child.process.pid, flush=True)
time.sleep(300)
"""


def _command(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="util-linux setpriv missing")
def test_a_child_dies_when_the_process_that_started_it_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, cwd=ROOT)
    pid = int(parent.stdout.readline())
    # setpriv asks for the signal (prctl) and then execs sleep: kill the
    # parent before that and there is nothing to deliver, so wait for sleep.
    deadline = time.monotonic() + 10
    while _command(pid) != "sleep" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _command(pid) == "sleep"
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, 9)
        raise AssertionError("the child outlived its killed parent")
