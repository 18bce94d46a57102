"""agent.toml: every `edge-agent run` option as a key, validated with the
board file's quality of errors (the file, the key, how to fix it).

``load_config(path)`` returns {run option dest: value}; relative paths in
the file are relative to the file's directory, so a config and the files it
names can move together. The command line overrides the file
(edge_agent/cli/run.py). docs/deploy.md documents the keys;
files/agent.toml is the annotated example.
"""

import difflib
import os
import tomllib

from edge_agent.core.board_types import Problem
from edge_agent.metrics_endpoint import parse_address

GPIO_CHOICES = ("auto", "gpiod", "simulated", "none")
LEVELS = ("debug", "info", "warning", "error")

# (table, key) -> (run option dest, kind, what the value is, in words)
KEYS = {
    ("agent", "board"): ("board", "path", "the board file"),
    ("agent", "identity"): ("identity", "path", "the identity directory (edge-agent keys init)"),
    ("agent", "ports"): ("port", "ports", "a table of bus = serial port path"),
    ("agent", "telemetry_interval_ms"): ("telemetry_interval_ms", "positive int", "milliseconds"),
    ("agent", "gpio"): ("gpio", "gpio", "one of " + ", ".join(GPIO_CHOICES)),
    ("agent", "drain_rate"): ("drain_rate", "positive number", "signals per second"),
    ("broker", "address"): ("broker", "address", "HOST:PORT"),
    ("broker", "ca"): ("ca", "path", "the CA certificate (PEM) that signed the broker's"),
    ("broker", "cert"): ("cert", "path", "this device's client certificate (PEM)"),
    ("broker", "key"): ("key", "path", "this device's client key (PEM)"),
    ("broker", "insecure"): ("insecure", "bool", "true or false"),
    ("broker", "keepalive"): ("keepalive", "positive int", "seconds"),
    ("store", "dir"): ("store_dir", "path", "the store directory"),
    ("store", "max_bytes"): ("store_max_bytes", "positive int", "bytes"),
    ("store", "sync_every"): ("sync_every", "positive int", "records"),
    ("store", "sync_ms"): ("sync_ms", "positive int", "milliseconds"),
    ("store", "segment_bytes"): ("store_segment_bytes", "positive int", "bytes"),
    ("store", "window_bytes"): ("store_window_bytes", "int >= 0", "bytes of acknowledged signals kept for repair, 0: none"),
    ("store", "window_hours"): ("store_window_hours", "number >= 0", "hours, 0: no age bound"),
    ("downlink", "replay_rate"): ("replay_rate", "positive number", "repaired signals per second"),
    ("console", "ports"): ("console", "paths", "a list of serial port paths"),
    ("console", "socket"): ("console_socket", "path", "a Unix socket path"),
    ("console", "idle"): ("console_idle", "positive number", "seconds without a key before a technician is logged out"),
    ("downlink", "operators"): ("operators", "path", "the trusted operators file (TOML)"),
    ("downlink", "state_dir"): ("state_dir", "path", "a directory"),
    ("logging", "level"): ("log_level", "level", "one of " + ", ".join(LEVELS)),
    ("metrics", "address"): ("metrics", "metrics address", "[HOST:]PORT for Prometheus (a bare port: loopback)"),
}
TABLES = sorted({table for table, _ in KEYS})
EXAMPLE = "the annotated example: edge-agent service install --print-config, or docs/deploy.md"


class ConfigError(ValueError):
    """An agent.toml is invalid; ``problems`` lists every Problem found.
    Printed like a board file's errors: the file, then key: reason; fix."""

    def __init__(self, source, problems):
        self.source = source
        self.problems = problems
        lines = ["%s: %d problem%s" % (source, len(problems), "" if len(problems) == 1 else "s")]
        lines.extend("  " + problem.describe() for problem in problems)
        super().__init__("\n".join(lines))


def read_toml(path):
    """The file's table, or ConfigError naming the file and the fix."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        fix = "check the path; start from " + EXAMPLE
        raise ConfigError(path, [Problem("", "file not found", fix)]) from None
    except IsADirectoryError:
        raise ConfigError(path, [Problem("", "is a directory", "name the agent.toml file")]) from None
    except PermissionError:
        raise ConfigError(path, [Problem("", "permission denied", "make the file readable by the agent's user")]) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [Problem("", "not valid TOML: %s" % exc, "fix the syntax at the line shown")]) from None


def load_config(path):
    """{run option dest: value} from agent.toml at ``path``; ConfigError
    listing every problem."""
    path = str(path)
    data = read_toml(path)
    base = os.path.dirname(os.path.abspath(path))
    problems = []
    values = {}
    for table, content in data.items():
        if table not in TABLES:
            problems.append(Problem(table, "unknown table", _suggest(table, TABLES, "tables")))
            continue
        if not isinstance(content, dict):
            problems.append(Problem(table, "must be a table, got %s" % _kind(content),
                                    "write [%s] on its own line with its keys under it" % table))
            continue
        known = [key for t, key in KEYS if t == table]
        for key, value in content.items():
            name = "%s.%s" % (table, key)
            if key not in known:
                problems.append(Problem(name, "unknown key", _suggest(key, known, "keys of [%s]" % table)))
                continue
            dest, kind, words = KEYS[(table, key)]
            converted = _convert(name, value, kind, words, base, problems)
            if converted is not None:
                values[dest] = converted
    if "insecure" in values and values["insecure"] and any(k in values for k in ("ca", "cert", "key")):
        problems.append(Problem("broker.insecure", "insecure = true turns TLS off, but ca/cert/key are set",
                                "remove insecure (TLS is the default), or remove ca, cert and key"))
    if ("cert" in values) != ("key" in values):
        problems.append(Problem("broker.cert" if "cert" in values else "broker.key",
                                "cert and key go together", "set both broker.cert and broker.key, or neither"))
    if problems:
        raise ConfigError(path, problems)
    return values


def _convert(name, value, kind, words, base, problems):
    def bad(reason, fix):
        problems.append(Problem(name, reason, fix))

    if kind == "path":
        if not isinstance(value, str) or not value:
            return bad("must be a path (a string), got %s" % _kind(value), "write %s = \"/path\": %s" % (name.split(".")[1], words))
        return os.path.join(base, value)
    if kind in ("positive int", "positive number", "int >= 0", "number >= 0"):
        whole = kind in ("positive int", "int >= 0")
        types = (int,) if whole else (int, float)
        if isinstance(value, bool) or not isinstance(value, types):
            return bad("must be a %s, got %s" % ("whole number" if whole else "number", _kind(value)),
                       "write a number without quotes (%s)" % words)
        if kind.startswith("positive") and value <= 0:
            return bad("must be above 0, got %s" % value, "give a positive value (%s)" % words)
        if value < 0:
            return bad("must be 0 or more, got %s" % value, "give 0 or a positive value (%s)" % words)
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            return bad("must be true or false, got %s" % _kind(value), "write true or false without quotes")
        return value
    if kind in ("gpio", "level"):
        choices = GPIO_CHOICES if kind == "gpio" else LEVELS
        if value not in choices:
            return bad("%r is not one of %s" % (value, ", ".join(choices)), _suggest(str(value), choices, "values"))
        return value
    if kind == "address":
        if not isinstance(value, str) or not value:
            return bad("must be a string, got %s" % _kind(value), "write address = \"mqtt.example.com:8883\"")
        return value
    if kind == "metrics address":
        try:
            parse_address(value if isinstance(value, (str, int)) and not isinstance(value, bool) else "", "address")
        except ValueError:
            return bad("%r is not [HOST:]PORT" % (value,), "write address = \"127.0.0.1:9108\" (or a port: 9108)")
        return str(value)
    if kind == "ports":
        if not isinstance(value, dict) or not value:
            return bad("must be a table of bus = \"/dev/...\", got %s" % _kind(value),
                       "write [agent.ports] with lines like sensors = \"/dev/ttyUSB0\"")
        for bus, port in value.items():
            if not isinstance(port, str) or not port:
                return bad("bus %r: the port must be a path (a string), got %s" % (bus, _kind(port)),
                           "write %s = \"/dev/ttyUSB0\"" % bus)
        return ["%s=%s" % (bus, port) for bus, port in value.items()]
    if kind == "paths":
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            return bad("must be a list of paths, got %s" % _kind(value), "write ports = [\"/dev/ttyS0\"]")
        return list(value)
    raise AssertionError(kind)


def _kind(value):
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "the number %s" % value
    if isinstance(value, str):
        return "the string %r" % value
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _suggest(word, choices, what):
    close = difflib.get_close_matches(word, choices, n=1)
    if close:
        return "did you mean %s? (%s: %s)" % (close[0], what, ", ".join(choices))
    return "%s: %s" % (what, ", ".join(choices))
