"""agent.toml as an input surface: every `run` option has a key, the
shipped example uses only known keys, bad files get the file, the key and
a fix (never a traceback), and the command line overrides the file."""

import argparse
import os
import subprocess
import sys

import pytest

from edge_agent.cli.main import build_parser
from edge_agent.deploy.config import KEYS, ConfigError, load_config

from conftest import BOARD, ROOT

EXAMPLE = os.path.join(ROOT, "edge_agent", "deploy", "files", "agent.toml")


def run_cli(*args, env=None):
    result = subprocess.run([sys.executable, "-m", "edge_agent", *args], capture_output=True, text=True,
                            timeout=60, cwd=ROOT, env=dict(os.environ, **(env or {})))
    assert "Traceback" not in result.stderr, result.stderr
    return result


def _run_parser():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser, sub.choices["run"]


def test_every_run_option_has_a_key():
    _, run = _run_parser()
    dests = {a.dest for a in run._actions if a.option_strings and a.dest not in ("help", "config")}
    keyed = {dest for dest, _, _ in KEYS.values()}
    assert dests - keyed == set(), "run options without an agent.toml key"
    assert keyed - dests == {"log_level"}, "keys for options run does not have"


def test_the_shipped_example_names_every_key_and_loads():
    text = open(EXAMPLE).read()
    for table, key in KEYS:
        assert "[%s]" % table in text, table
        assert ("\n%s = " % key in text) or ("\n# %s = " % key in text) or ("[agent.%s]" % key in text), key
    values = load_config(EXAMPLE)
    assert values["board"] == "/etc/edge-agent/board.toml" and values["log_level"] == "info"
    assert values["store_max_bytes"] == 32 * 1024 * 1024  # the store's default, not another


@pytest.mark.parametrize("content, key, words", [
    ("[agent]\nbord = 'b.toml'\n", "agent.bord", "did you mean board?"),
    ("[brokr]\n", "brokr", "did you mean broker?"),
    ("agent = 3\n", "agent", "must be a table"),
    ("[agent]\ngpio = 'gpiodd'\n", "agent.gpio", "did you mean gpiod?"),
    ("[agent]\ntelemetry_interval_ms = '10'\n", "agent.telemetry_interval_ms", "write a number without quotes"),
    ("[agent]\ntelemetry_interval_ms = true\n", "agent.telemetry_interval_ms", "must be a whole number"),
    ("[store]\nmax_bytes = 0\n", "store.max_bytes", "must be above 0"),
    ("[agent]\ndrain_rate = -1.5\n", "agent.drain_rate", "must be above 0"),
    ("[agent.ports]\nsensors = 5\n", "agent.ports", "bus 'sensors'"),
    ("[console]\nports = '/dev/ttyS0'\n", "console.ports", "must be a list of paths"),
    ("[broker]\ninsecure = 'yes'\n", "broker.insecure", "must be true or false"),
    ("[broker]\ninsecure = true\nca = 'ca.pem'\n", "broker.insecure", "turns TLS off"),
    ("[broker]\ncert = 'c.pem'\n", "broker.cert", "cert and key go together"),
    ("[logging]\nlevel = 'verbose'\n", "logging.level", "not one of debug, info, warning, error"),
    ("[metrics]\naddress = 'localhost'\n", "metrics.address", "is not [HOST:]PORT"),
    ("[metrics]\naddress = true\n", "metrics.address", "write address = \"127.0.0.1:9108\""),
    ("[agent\nboard = 1", "(top level)", "not valid TOML"),
])
def test_bad_files_name_the_file_the_key_and_a_fix(tmp_path, content, key, words):
    path = tmp_path / "agent.toml"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    text = str(info.value)
    assert text.startswith(str(path) + ": 1 problem\n"), text
    line = text.splitlines()[1].strip()
    assert line.startswith(key + ": ") and words in line and "; " in line, line


def test_every_problem_is_listed_at_once(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text("[agent]\nbord = 'x'\ngpio = 'no'\n[stor]\n")
    result = run_cli("config", "check", str(path))
    assert result.returncode == 1
    assert "agent.toml: 3 problems" in result.stderr
    for key in ("agent.bord:", "agent.gpio:", "stor:"):
        assert key in result.stderr


def test_config_check_follows_what_the_file_names(tmp_path, pki):
    (tmp_path / "id").mkdir()
    path = tmp_path / "agent.toml"
    path.write_text('[agent]\nboard = "%s"\nidentity = "id"\n[broker]\naddress = "mqtt.example.com:99999"\n'
                    'ca = "nowhere/ca.pem"\n' % BOARD)
    result = run_cli("config", "check", str(path))
    assert result.returncode == 1, result.stdout
    assert "broker.address: 'mqtt.example.com:99999': port must be a number 1-65535" in result.stderr
    assert "broker.ca: %s: no such file" % (tmp_path / "nowhere" / "ca.pem") in result.stderr  # relative to the file
    path.write_text('[agent]\nboard = "%s"\nidentity = "id"\n[broker]\naddress = "mqtt.example.com"\nca = "%s"\n'
                    % (BOARD, pki.ca_cert))
    result = run_cli("config", "check", str(path))
    assert result.returncode == 0, result.stderr
    assert "agent.toml: ok - board %s, identity %s, broker mqtt.example.com (TLS)" % (BOARD, tmp_path / "id") \
        in result.stdout
    path.write_text(path.read_text() + "[agent.ports]\nuart9 = '/dev/ttyUSB0'\n")
    result = run_cli("config", "check", str(path))
    assert "agent.ports.uart9: no bus 'uart9' in %s; name one of its buses: uart0" % BOARD in result.stderr
    path.write_text(path.read_text().replace("[agent.ports]\nuart9 = '/dev/ttyUSB0'\n", ""))
    bad_board = tmp_path / "board.toml"
    bad_board.write_text(open(BOARD).read().replace("schema = 1", "schema = 99", 1))
    path.write_text(path.read_text().replace(BOARD, "board.toml"))
    result = run_cli("config", "check", str(path))
    assert result.returncode == 1 and "agent.board: %s: schema:" % bad_board in result.stderr, result.stderr


def test_run_reports_a_bad_config_and_what_is_missing(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text("[agent]\nbord = 'x'\n")
    result = run_cli("run", "--config", str(path))
    assert result.returncode == 2
    assert "edge-agent: error: --config %s: 1 problem" % path in result.stderr
    path.write_text("[agent]\nboard = '%s'\n" % BOARD)
    result = run_cli("run", "--config", str(path))
    assert result.returncode == 2
    assert "no identity: give --identity DIR or agent.identity in %s" % path in result.stderr
    result = run_cli("run", "--board", BOARD)
    assert result.returncode == 2 and "no identity: give --identity DIR (or agent.identity in --config FILE)" \
        in result.stderr


def test_the_command_line_overrides_the_file(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text("[agent]\nboard = 'b.toml'\ntelemetry_interval_ms = 5000\nports = { a = '/dev/A', b = '/dev/B' }\n"
                    "[console]\nports = ['/dev/ttyS0']\n[logging]\nlevel = 'warning'\n")
    parser, run = _run_parser()

    def parse(*argv):
        argv = list(argv)
        args = parser.parse_args(argv)
        return args.with_config(parser, argv, args)

    args = parse("run", "--config", str(path))
    assert (args.board, args.telemetry_interval_ms, args.log_level) == (str(tmp_path / "b.toml"), 5000, "warning")
    assert args.port == ["a=/dev/A", "b=/dev/B"] and args.console == ["/dev/ttyS0"]
    parser, run = _run_parser()
    args = parse("--log-level", "debug", "run", "--config", str(path), "--board", "other.toml",
                 "--telemetry-interval-ms", "10000", "--port", "a=/dev/X", "--console", "/dev/ttyS1")
    assert (args.board, args.telemetry_interval_ms, args.log_level) == ("other.toml", 10000, "debug")
    assert args.port == ["a=/dev/X"] and args.console == ["/dev/ttyS1"]  # replaced, not added to


def test_the_console_s_idle_logout_is_a_key(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text("[console]\nidle = 600\n")
    assert load_config(path) == {"console_idle": 600}
    path.write_text("[console]\nidle = 0\n")
    with pytest.raises(ConfigError, match="console.idle: must be above 0"):
        load_config(path)


def test_a_metrics_port_alone_is_accepted(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text("[metrics]\naddress = 9108\n")
    assert load_config(str(path))["metrics"] == "9108"
