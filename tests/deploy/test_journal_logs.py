"""Logs under systemd: when stderr is the journal ($JOURNAL_STREAM names
stderr's device and inode), every line starts with its syslog priority and
carries no timestamp of ours; otherwise lines keep their timestamps. A
real agent process, its stderr a file standing for the journal's stream."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from edge_agent.keys.identity import create_identity

from conftest import BOARD, ROOT

pytestmark = pytest.mark.integration


def run_agent(tmp_path, pty, journal_stream_of):
    """Run the agent against a broker that is not there for a few seconds;
    ``journal_stream_of(stderr file)`` gives $JOURNAL_STREAM. Its stderr."""
    identity = tmp_path / "id"
    if not identity.exists():
        create_identity(str(identity), "journal-1", "EdDSA")
    err_path = tmp_path / "stderr.txt"
    with open(err_path, "wb") as err:
        env = dict(os.environ, JOURNAL_STREAM=journal_stream_of(err))
        argv = [sys.executable, "-m", "edge_agent", "run", "--board", BOARD, "--identity", str(identity),
                "--port", pty.path, "--broker", "127.0.0.1:1", "--insecure", "--gpio", "simulated"]
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT, env=env)
        try:
            deadline = time.monotonic() + 20
            while b"unreachable" not in err_path.read_bytes():
                assert process.poll() is None and time.monotonic() < deadline, err_path.read_text()
                time.sleep(0.1)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(10)
    return err_path.read_text().splitlines()


def _stream(f):
    st = os.fstat(f.fileno())
    return "%d:%d" % (st.st_dev, st.st_ino)


def test_journal_lines_carry_priorities_and_no_timestamps(tmp_path, pty):
    lines = run_agent(tmp_path, pty, _stream)
    assert lines and all(re.match(r"<[2-7]>edge_agent[\w.]*: ", line) for line in lines), lines
    assert not [line for line in lines if re.search(r"\d\d:\d\d:\d\d", line)], "timestamps in the journal"
    warnings = [line for line in lines if line.startswith("<4>")]
    assert any("--insecure: plaintext MQTT" in line for line in warnings), lines
    assert any("broker 127.0.0.1:1 (plaintext) unreachable" in line for line in warnings), lines
    assert any(line.startswith("<6>") and "store closed" in line for line in lines), lines


def test_a_journal_stream_that_is_not_stderr_keeps_the_text_format(tmp_path, pty):
    lines = run_agent(tmp_path, pty, lambda f: "%d:%d" % (os.stat(ROOT).st_dev, os.stat(ROOT).st_ino))
    assert lines and all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (INFO|WARNING) ", line) for line in lines), lines


def test_every_line_of_a_traceback_keeps_the_priority():
    import logging

    from edge_agent.deploy.logs import JournalFormatter

    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("edge_agent.x", logging.ERROR, __file__, 1, "failed: %s", ("x",), sys.exc_info())
    lines = JournalFormatter().format(record).split("\n")
    assert lines[0] == "<3>edge_agent.x: failed: x" and len(lines) > 3
    assert all(line.startswith("<3>") for line in lines), lines
