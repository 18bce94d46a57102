"""`edge-agent store inspect|verify` on real store directories, as a subprocess."""

import os
import subprocess
import sys

from edge_agent.core import store_format as fmt
from edge_agent.gateway.store_posix import open_store
from simulator import ROOT



def _cli(*args):
    env = dict(os.environ, COLUMNS="160")
    return subprocess.run(
        [sys.executable, "-m", "edge_agent.cli.store", "store"] + list(args),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )


def _make_store(directory):
    store = open_store(str(directory), 1700000000000, segment_bytes=4096)
    for i in range(200):
        store.append(i % 4, b"signal-%03d" % i, 1700000000000 + i)
    batch = store.read(10)
    store.ack(batch.lane, batch.end)
    store.close()


def test_inspect_prints_lanes_depth_and_last_recovery(tmp_path):
    _make_store(tmp_path)
    result = _cli("inspect", str(tmp_path))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "0 critical" in out and "3 telemetry" in out
    assert "2023-11-14 22:13:20Z" in out  # the oldest record's time
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if "│" in line and "critical" in line}
    assert "40" in lines["0 critical"]  # 50 records in lane 0, 10 acknowledged
    assert "last recovery" in out and "nothing discarded" in out


def test_verify_passes_a_clean_store_and_fails_a_damaged_one(tmp_path):
    _make_store(tmp_path)
    ok = _cli("verify", str(tmp_path))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "200 records checked, no damage" in ok.stdout
    name = sorted(n for n in os.listdir(tmp_path) if n.startswith("2-"))[0]
    path = os.path.join(tmp_path, name)
    with open(path, "r+b") as f:
        f.seek(fmt.SEGMENT_HEADER + 10)
        f.write(b"\xff")
    bad = _cli("verify", str(tmp_path))
    assert bad.returncode == 1
    assert name in bad.stdout and fmt.BAD_CRC in bad.stdout


def test_inspect_shows_what_an_open_would_discard(tmp_path):
    _make_store(tmp_path)
    name = sorted(n for n in os.listdir(tmp_path) if n.startswith("1-"))[-1]
    path = os.path.join(tmp_path, name)
    os.truncate(path, os.path.getsize(path) - 20)  # the seal and part of a record
    result = _cli("inspect", str(tmp_path))
    assert result.returncode == 0
    assert "would discard" in result.stdout and fmt.TORN in result.stdout


def test_missing_directory_is_a_usage_error(tmp_path):
    result = _cli("verify", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert "not a directory" in result.stdout


def test_help_states_the_durability_bound():
    result = _cli("--help")
    assert result.returncode == 0
    assert "Durability bound" in result.stdout and "100" in result.stdout and "500" in result.stdout
