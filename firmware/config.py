"""The device's configuration, read from CBOR files made at build time by
`edge-agent firmware compile-board` and `edge-agent firmware provision`
(edge_agent/tools/firmware_build.py): no TOML parser on the device.

    board.cbor   {"format": 1, "source": name, "board": the board table,
                  "uarts": {bus: [uart id, tx, rx]}, "inputs": {sensor: pin},
                  "console": [uart id, tx, rx] (absent: no console),
                  "console_idle_ms": its idle logout (absent: 15 min)}
    device.cbor  {"format": 1, "device_id", "secret" (HMAC key),
                  "broker": {"host", "port", "keepalive_s"},
                  "tls": {"ca", "cert", "key"} (DER; absent: plaintext),
                  "insecure": True when provisioned with --insecure (no TLS, chosen),
                  "operators": [names] whose Mac0 commands the device takes,
                  "scopes": {name: [scopes]} of operators limited to those
                  scopes' commands (provision --operator NAME:replay),
                  "window_bytes", "window_ms": the store's replay window
                  (absent: app.py's STORE_OPTIONS; 0 bytes: none),
                  "wifi": {"ssid", "password"} (absent: the network is up already)}

The board is validated again here by the same core code as on the
gateway (board_from_dict), so a damaged or hand-edited file is refused
with every problem listed, never half-applied. The validator is needed
once: load_board imports it, then drops it from memory (the board's data
classes live apart, in board_types.py).
"""

import sys

from edge_agent.core import cbor
from edge_agent.core.cose import MIN_HMAC_KEY
from edge_agent.core.signals import check_device_id

FORMAT = 1


class ConfigError(ValueError):
    """A config file is missing, damaged or of another format version."""


def _read(path, what):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError("%s: cannot read the %s (%s); copy it with `make flash`" % (path, what, exc))
    try:
        value = cbor.loads(data)
    except cbor.CBORError as exc:
        raise ConfigError("%s: the %s is not valid CBOR (%s); rebuild it with edge-agent firmware" % (path, what, exc))
    if not isinstance(value, dict) or value.get("format") != FORMAT:
        raise ConfigError("%s: not a format-%d %s; rebuild it with this version's edge-agent firmware"
                          % (path, FORMAT, what))
    return value


class BoardConfig:
    def __init__(self, board, uarts, inputs, console=None, console_idle_ms=None):
        self.board = board
        self.console = console  # [uart id, tx, rx] for the technician console, or None
        self.console_idle_ms = console_idle_ms  # its idle logout, None: the core's default
        self.uarts = uarts  # bus id -> [uart id, tx pin or None, rx pin or None]
        self.inputs = inputs  # sensor id -> pin number


# Imported by load_board only, and dropped after: ~23 KiB of functions on
# the 64-bit unix port that nothing needs once the board is checked.
VALIDATORS = ("edge_agent.core.board", "edge_agent.core.board_health")
# Dropped once the firmware is built (main.py, unix_main.py): this module,
# and the store's recovery, which only opening the store uses (~0.6 KiB of
# a 32-bit board's heap frozen; a store opened again imports it again).
BUILD_ONLY = ("config", "edge_agent.core.store_recovery")


def load_board(path):
    data = _read(path, "board config")
    if not _text_keys(data.get("board")):
        raise ConfigError("%s: the board config is damaged (a table key is not text); rebuild it with "
                          "edge-agent firmware compile-board" % path)
    from edge_agent.core.board import board_from_dict

    try:
        board = board_from_dict(data.get("board"), data.get("source", path))  # raises BoardError
    finally:
        forget(VALIDATORS)
    idle = data.get("console_idle_ms")
    if idle is not None and (not isinstance(idle, int) or idle <= 0):
        raise ConfigError("%s: console_idle_ms %r is not a positive number of ms; rebuild it with "
                          "edge-agent firmware compile-board --console-idle SECONDS" % (path, idle))
    return BoardConfig(board, data.get("uarts") or {}, data.get("inputs") or {}, data.get("console"), idle)


def _text_keys(value, depth=0):
    """Every table key in ``value`` is a string (a board file's always are;
    damaged CBOR can decode to others, which the validator cannot sort)."""
    if depth > 16:
        return False
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str) or not _text_keys(value[key], depth + 1):
                return False
    elif isinstance(value, list):
        for item in value:
            if not _text_keys(item, depth + 1):
                return False
    return True


def forget(names):
    """Drop modules so the collector can free them (nothing else may hold
    their functions); a later import loads them again."""
    import edge_agent.core as package

    for name in names:
        sys.modules.pop(name, None)
        short = name.rsplit(".", 1)[-1]
        if short in package.__dict__:
            delattr(package, short)


class DeviceSettings:
    def __init__(self, data, path):
        self.device_id = data.get("device_id")
        reason = check_device_id(self.device_id)
        if reason:
            raise ConfigError("%s: device_id: %s" % (path, reason))
        self.secret = data.get("secret")
        if not isinstance(self.secret, bytes) or len(self.secret) < MIN_HMAC_KEY:
            raise ConfigError("%s: the HMAC secret is missing or under %d bytes; re-provision the device"
                              % (path, MIN_HMAC_KEY))
        broker = data.get("broker") or {}
        self.host = broker.get("host")
        self.port = broker.get("port")
        self.keepalive_s = broker.get("keepalive_s", 30)
        if not isinstance(self.host, str) or not isinstance(self.port, int):
            raise ConfigError("%s: broker host and port missing; re-provision with --broker HOST:PORT" % path)
        self.tls = data.get("tls")  # {"ca", "cert", "key"} DER bytes (uplink.client_for: {"context"}), or None
        self.insecure = data.get("insecure") is True  # plaintext chosen at provisioning (--insecure)
        self.operators = data.get("operators") or []  # operator names whose signed commands count
        scopes = data.get("scopes") or {}
        self.scopes = dict((name, tuple(scopes[name])) for name in scopes)  # operator -> scopes (check_scope)
        self.wifi = data.get("wifi")  # {"ssid", "password"} on a board; None on the unix port
        # The replay window, when provisioned (firmware provision --window-bytes/--window-hours).
        self.store_options = {}
        for key in ("window_bytes", "window_ms"):
            value = data.get(key)
            if value is None:
                continue
            if not isinstance(value, int) or value < 0:
                raise ConfigError("%s: %s %r is not a whole number >= 0; re-provision the device" % (path, key, value))
            self.store_options[key] = value

    def __repr__(self):  # never show the secret
        return "DeviceSettings(%r, broker %s:%s, %s)" % (self.device_id, self.host, self.port,
                                                          "TLS" if self.tls else "plaintext")


def load_device(path):
    return DeviceSettings(_read(path, "device settings"), path)


def warn_plaintext(settings, log):
    """At boot, one warning line when the device talks MQTT without TLS
    (nothing with TLS): `firmware provision --insecure` chose it, or the
    settings predate that option and have no TLS."""
    if not settings.tls:
        log("warning", "plaintext MQTT to %s:%d (%s)" % (
            settings.host, settings.port, "provisioned with --insecure" if settings.insecure
            else "no TLS in the device settings: re-provision with --ca, --cert and --key"))
