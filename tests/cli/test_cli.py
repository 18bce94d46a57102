"""The command line and board files as input surfaces: clear errors, exit
codes, never a traceback."""

import glob
import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.cli import common as cli_common
from edge_agent.boardfile import load_board
from edge_agent.core.board import BoardError

from conftest import BOARD, ROOT


def run_cli(*args, timeout=30):
    result = subprocess.run(
        [sys.executable, "-m", "edge_agent", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "boards", "*.toml"))))
def test_every_shipped_board_is_valid(path):
    result = run_cli("board", "check", path)
    assert result.returncode == 0, result.stderr
    assert ": ok - board" in result.stdout


def test_board_check_lists_every_problem(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(open(BOARD).read().replace("valid_range = [-20.0, 110.0]", "valid_range = [110.0, -20.0]")
                   .replace('component = "cabinet_fan"\nunit = "rpm"', 'component = "fan"\nunit = "rpm"'))
    result = run_cli("board", "check", str(bad), BOARD)
    assert result.returncode == 1
    assert "bad.toml: 2 problems" in result.stderr
    assert "sensors.coolant_temp.valid_range: low 110.0 is not below high -20.0" in result.stderr
    assert "sensors.fan_speed.component: no component named 'fan'" in result.stderr
    assert "demo-gateway.toml: ok" in result.stdout  # the good file is still checked


@pytest.mark.parametrize(
    "content, words",
    [
        (None, "file not found"),
        ("schema = 1\n[board\nname = 'x'", "not valid TOML"),
        ("\xff\xfe", "not valid TOML"),
        ("", "schema: missing"),
    ],
)
def test_board_file_errors_name_file_and_fix(tmp_path, content, words):
    path = tmp_path / "board.toml"
    if content is not None:
        path.write_bytes(content.encode("latin-1"))
    with pytest.raises(BoardError) as info:
        load_board(path)
    assert str(path) in str(info.value)
    assert words in str(info.value)


def test_board_file_that_is_a_directory(tmp_path):
    with pytest.raises(BoardError, match="is a directory"):
        load_board(tmp_path)


def test_run_refuses_half_valid_board(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(open(BOARD).read().replace("baud = 115200", "baud = 12"))
    result = run_cli("run", "--board", str(bad), "--broker", "127.0.0.1:1", "--insecure", "--identity", "/nonexistent")
    assert result.returncode == 2
    assert "buses.uart0.baud: 12 is outside 300..4000000" in result.stderr


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--broker", "127.0.0.1:1"], "TLS needs --ca"),
        (["--broker", "127.0.0.1:1", "--insecure", "--ca", "x"], "--insecure turns TLS off"),
        (["--broker", "127.0.0.1:99999", "--insecure"], "port must be a number 1-65535"),
        (["--broker", ":1883", "--insecure"], "no host"),
        (["--broker", "h:1", "--ca", "/nonexistent.pem"], "--ca /nonexistent.pem: no such file"),
        (["--broker", "h:1", "--ca", BOARD], "not a PEM CA certificate"),
        (["--broker", "h:1", "--insecure", "--identity", "/nonexistent"], "no identity here; create one with"),
        (["--broker", "h:1", "--insecure", "--port", "uart7=/dev/null"], "no bus 'uart7'"),
    ],
)
def test_run_usage_errors(argv, words, identity_dir):
    if "--identity" not in argv:
        argv = argv + ["--identity", identity_dir]
    result = run_cli("run", "--board", BOARD, *argv)
    assert result.returncode == 2, result.stderr
    assert words in result.stderr


@pytest.fixture(scope="module")
def identity_dir(tmp_path_factory):
    from edge_agent.keys.identity import create_identity

    directory = str(tmp_path_factory.mktemp("ids") / "cli-device")
    create_identity(directory, "cli-device")
    return directory


def test_gpiod_without_a_chip_says_what_to_do(identity_dir):
    result = run_cli("run", "--board", BOARD, "--broker", "h:1", "--insecure", "--identity", identity_dir,
                     "--gpio", "gpiod")
    assert result.returncode == 2
    assert "use --gpio simulated" in result.stderr
    assert "gpiod" in result.stderr or "gpiochip" in result.stderr


def test_cert_without_key(pki, identity_dir):
    result = run_cli("run", "--board", BOARD, "--broker", "h:1", "--ca", pki.ca_cert, "--cert", pki.ca_cert,
                     "--identity", identity_dir)
    assert result.returncode == 2
    assert "--cert and --key go together" in result.stderr


def test_insecure_warns(tmp_path, identity_dir):
    # Stops quickly: a non-existent port keeps retrying; we only read the warning.
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_agent", "run", "--board", BOARD, "--port", str(tmp_path / "none"),
         "--broker", "127.0.0.1:1", "--insecure", "--identity", identity_dir, "--gpio", "simulated"],
        stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    try:
        first = proc.stderr.readline()
    finally:
        proc.terminate()
        proc.wait(10)
    assert "--insecure: plaintext MQTT" in first


@pytest.mark.parametrize(
    "text, tls, expected",
    [
        ("broker.example", True, ("broker.example", 8883)),
        ("broker.example", False, ("broker.example", 1883)),
        ("10.0.0.1:1884", True, ("10.0.0.1", 1884)),
        ("[::1]:8883", True, ("::1", 8883)),
        ("[::1]", False, ("::1", 1883)),
    ],
)
def test_parse_broker(text, tls, expected):
    assert cli_common.parse_broker(text, tls) == expected


@given(st.text(max_size=30), st.booleans())
def test_parse_broker_never_crashes(text, tls):
    try:
        host, port = cli_common.parse_broker(text, tls)
    except cli_common.UsageError:
        return
    assert host and 0 < port < 65536


def test_watch_times_out_with_exit_1(broker, pki):
    cert, key = pki.client("cli-watch")
    result = run_cli(
        "watch", "--device", "nobody", "--count", "1", "--timeout", "1",
        "--broker", "127.0.0.1:%d" % broker.port, "--ca", pki.ca_cert, "--cert", cert, "--key", key,
    )
    assert result.returncode == 1
    assert "0 of 1 signals before the timeout" in result.stderr


def test_sim_bad_fault_spec():
    result = run_cli("sim", "sensors", "--board", BOARD, "--fault", "coolant_temp=melting@1")
    assert result.returncode != 0
    assert "mode must be one of" in result.stderr
    result = run_cli("sim", "sensors", "--board", BOARD, "--fault", "nope")
    assert "write SENSOR=MODE@SECONDS" in result.stderr


def test_version():
    from edge_agent import __version__

    assert run_cli("--version").stdout.strip() == "edge-agent " + __version__
