"""The routes file (`receiver run --routes FILE`): which alerts go to which
webhook, in which format, signed with which secret, and the outbox's retry
policy (docs/operator-view.md, "Alert routing").

    [outbox]
    max_attempts = 12          # then the row is a dead letter
    first_retry = "5s"         # doubling after each failure...
    max_retry = "1h"           # ...up to this

    [[route]]
    name = "ops-slack"                          # unique; kept with each outbox row
    url = "https://hooks.slack.com/services/..."
    format = "slack"                            # or "json" (the default)
    secret_file = "/etc/edge-agent/slack.secret"   # or secret_env = "VAR"
    severity = ["critical"]                     # each key optional: absent matches all
    model = ["EA-PUMP-*"]                       # globs for model and device
    device = ["pump-*"]
    condition = ["out_of_range", "predicted_failure"]
    component = ["coolant_pump"]
    event = ["raised", "cleared"]               # the default: these and "acknowledged"

Secrets never sit in the routes file (it is copied around, committed) and
are never logged: a route names a file (readable by its owner only) or an
environment variable. Every route is signed: there is no unsigned webhook.
"""

import fnmatch
import os
import stat
from urllib.parse import urlsplit

from edge_agent.keys.identity import load_toml
from edge_agent.keys.operators import OperatorError, parse_duration

FORMATS = ("json", "slack")
EVENTS = ("raised", "cleared", "acknowledged")
MATCH_KEYS = ("severity", "model", "device", "condition", "component", "event")
GLOB_KEYS = ("model", "device")
ROUTE_KEYS = ("name", "url", "format", "secret_file", "secret_env") + MATCH_KEYS

# Retry policy defaults: 5 s doubling to 1 h, 12 attempts: a target down
# for about 8.5 hours (5 + 10 + ... + 2560 + 3600 s) before a row is dead.
MAX_ATTEMPTS = 12
FIRST_RETRY_S = 5.0
MAX_RETRY_S = 3600.0


class RoutesError(ValueError):
    """The routes file is invalid: the message names the file, the route,
    the key and the fix."""


class Route:
    def __init__(self, name, url, fmt, secret, match):
        self.name = name
        self.url = url
        self.format = fmt
        self.secret = secret  # bytes; never logged, never in repr
        self.match = match  # key -> tuple of accepted values (globs for GLOB_KEYS)

    def __repr__(self):
        return "Route(%r, %r, %s)" % (self.name, self.where, self.format)

    @property
    def where(self):
        """The URL as it may be logged: scheme and host only (a Slack
        webhook URL's path is itself a secret)."""
        parts = urlsplit(self.url)
        return "%s://%s/..." % (parts.scheme, parts.netloc.rpartition("@")[2])

    def accepts(self, values):
        """True if an alert with ``values`` (MATCH_KEYS -> str) goes here."""
        for key, accepted in self.match.items():
            value = values.get(key) or ""
            if key in GLOB_KEYS:
                if not any(fnmatch.fnmatchcase(value, pattern) for pattern in accepted):
                    return False
            elif value not in accepted:
                return False
        return True


class Routes:
    def __init__(self, routes=(), max_attempts=MAX_ATTEMPTS, first_retry_s=FIRST_RETRY_S, max_retry_s=MAX_RETRY_S):
        self.routes = list(routes)
        self.by_name = {route.name: route for route in self.routes}
        self.max_attempts = max_attempts
        self.first_retry_s = first_retry_s
        self.max_retry_s = max_retry_s

    def matching(self, values):
        return [route for route in self.routes if route.accepts(values)]

    def retry_delay_ms(self, attempts):
        """How long after its ``attempts``-th failed attempt a row is tried again."""
        return int(min(self.first_retry_s * 2 ** (attempts - 1), self.max_retry_s) * 1000)


def load_routes(path, environ=None):
    """Routes from the TOML file ``path``; raises RoutesError."""
    environ = os.environ if environ is None else environ
    data = load_toml(path, RoutesError, "%s: no such routes file" % path)
    unknown = set(data) - {"outbox", "route"}
    if unknown:
        raise RoutesError("%s: unknown table %s; a routes file has [outbox] and [[route]] tables"
                          % (path, ", ".join(sorted(unknown))))
    policy = _policy(path, data.get("outbox", {}))
    raw = data.get("route", [])
    if not isinstance(raw, list) or not raw:
        raise RoutesError("%s: no [[route]]: add one with name, url and secret_file or secret_env" % path)
    routes = []
    for index, entry in enumerate(raw):
        route = _route(path, index, entry, environ)
        if route.name in {r.name for r in routes}:
            raise RoutesError("%s: route %r named twice; names must be unique (the outbox keeps them)"
                              % (path, route.name))
        routes.append(route)
    return Routes(routes, **policy)


def _policy(path, table):
    where = "%s: [outbox]" % path
    if not isinstance(table, dict):
        raise RoutesError("%s must be a table" % where)
    unknown = set(table) - {"max_attempts", "first_retry", "max_retry"}
    if unknown:
        raise RoutesError("%s: unknown key %s (max_attempts, first_retry, max_retry)"
                          % (where, ", ".join(sorted(unknown))))
    policy = {}
    attempts = table.get("max_attempts", MAX_ATTEMPTS)
    if not isinstance(attempts, int) or isinstance(attempts, bool) or not 1 <= attempts <= 1000:
        raise RoutesError("%s: max_attempts must be a whole number from 1 to 1000, got %r" % (where, attempts))
    policy["max_attempts"] = attempts
    for key, dest, default in (("first_retry", "first_retry_s", FIRST_RETRY_S),
                               ("max_retry", "max_retry_s", MAX_RETRY_S)):
        value = table.get(key)
        try:
            policy[dest] = default if value is None else parse_duration(str(value))
        except OperatorError as exc:
            raise RoutesError("%s: %s: %s" % (where, key, exc)) from None
    if policy["max_retry_s"] < policy["first_retry_s"]:
        raise RoutesError("%s: max_retry must be at least first_retry" % where)
    return policy


def _route(path, index, entry, environ):
    where = "%s: route %d" % (path, index + 1)
    if not isinstance(entry, dict):
        raise RoutesError("%s must be a table ([[route]])" % where)
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise RoutesError("%s: name is required (a unique word, kept with each outbox row)" % where)
    where = "%s: route %r" % (path, name)
    unknown = sorted(set(entry) - set(ROUTE_KEYS))
    if unknown:
        raise RoutesError("%s: unknown key %s; a route has %s" % (where, ", ".join(unknown), ", ".join(ROUTE_KEYS)))
    url = entry.get("url")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise RoutesError("%s: url must be an http:// or https:// URL, got %r" % (where, url))
    fmt = entry.get("format", "json")
    if fmt not in FORMATS:
        raise RoutesError("%s: format must be one of %s, got %r" % (where, ", ".join(FORMATS), fmt))
    match = {}
    for key in MATCH_KEYS:
        if key not in entry:
            continue
        values = entry[key]
        values = [values] if isinstance(values, str) else values
        if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            raise RoutesError("%s: %s must be a string or a list of strings" % (where, key))
        if key == "event" and set(values) - set(EVENTS):
            raise RoutesError("%s: event must be among %s, got %r" % (where, ", ".join(EVENTS), values))
        match[key] = tuple(values)
    return Route(name, url, fmt, _secret(where, entry, environ), match)


def _secret(where, entry, environ):
    if ("secret_file" in entry) == ("secret_env" in entry):
        raise RoutesError("%s: give exactly one of secret_file (a file holding the secret) or secret_env (an "
                          "environment variable); every webhook is signed (make one with: "
                          "python -c 'import secrets; print(secrets.token_hex(32))')" % where)
    if "secret_env" in entry:
        secret = environ.get(str(entry["secret_env"]), "")
        if not secret.strip():
            raise RoutesError("%s: environment variable %s is not set or empty" % (where, entry["secret_env"]))
        return secret.strip().encode()
    secret_path = entry["secret_file"]
    if not isinstance(secret_path, str):
        raise RoutesError("%s: secret_file must be a path" % where)
    try:
        mode = os.stat(secret_path).st_mode
        with open(secret_path, "rb") as f:
            secret = f.read().strip()
    except OSError as exc:
        raise RoutesError("%s: secret_file %s: %s" % (where, secret_path, exc.strerror)) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise RoutesError("%s: secret_file %s is readable by group or others (mode %03o); run `chmod 600 %s`"
                          % (where, secret_path, stat.S_IMODE(mode), secret_path))
    if len(secret) < 16:
        raise RoutesError("%s: secret_file %s holds fewer than 16 bytes: too short a key for HMAC-SHA256"
                          % (where, secret_path))
    return secret
