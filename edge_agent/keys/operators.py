"""Operator keys (CPython): the signing side of tokens and commands.

An operator directory holds:

    operator.toml   name and public key (public)
    operator.key    Ed25519 private key, PKCS#8 PEM, mode 0600
    counters.toml   last command counter used per target (public)

`edge-agent keys operator-init DIR --name NAME` creates it; `keys
operator-entry DIR` prints the block a device's trusted-operators file
(``agent run --operators PATH``) needs:

    [operators.ops-team]
    public_key = "<64 hex digits>"

An entry may add ``scopes = ["replay"]``: that operator (a receiver's key
asking devices for lost signals) may then send only `replay` commands;
without ``scopes`` an operator sends every command but `replay`
(operator.check_scope, docs/security.md).

Private material is never printed or logged (Operator's repr shows only the
name); key files readable by group or others are refused, as for device
identities (identity.py).
"""

import os
import stat
import time
import tomllib

from edge_agent.atomic_file import atomic_write
from edge_agent.core import cose
from edge_agent.core import operator as op
from edge_agent.keys.identity import ed25519_verifier_from_hex, load_ed25519_key, load_toml, new_ed25519_key, public_key_bytes

MANIFEST = "operator.toml"
KEY_FILE = "operator.key"
COUNTERS_FILE = "counters.toml"


class OperatorError(ValueError):
    """An operator directory or trusted-operators file is unusable (the
    message names the file and the fix)."""


def _now_ms():
    return time.time_ns() // 1_000_000


class Operator:
    def __init__(self, name, private_key, directory):
        self.name = name
        self._private_key = private_key
        self.directory = directory

    def __repr__(self):  # never show key material
        return "Operator(%r)" % self.name

    @property
    def kid(self):
        return self.name.encode()

    def public_key_hex(self):
        return public_key_bytes(self._private_key).hex()

    def public_entry(self, scopes=None):
        """The TOML block a device's trusted-operators file needs (with
        ``scopes``, a list of op.OPERATOR_SCOPES, that operator may send
        only the commands they name)."""
        entry = '[operators.%s]\npublic_key = "%s"\n' % (self.name, self.public_key_hex())
        if scopes:
            problem = op.check_operator_scopes(list(scopes))
            if problem:
                raise OperatorError("--scopes: " + problem)
            entry += "scopes = [%s]\n" % ", ".join('"%s"' % scope for scope in scopes)
        return entry

    def _seal(self, payload, device_secret):
        if device_secret is not None:  # an HMAC board: COSE_Mac0 under its secret
            return cose.mac0(payload, self.kid, device_secret)
        return cose.sign1(payload, self.kid, self._private_key.sign)

    def technician_token(self, device_id, subject, scopes, ttl_s, now_ms=None, device_secret=None):
        """A signed token for ``subject`` on ``device_id`` (COSE bytes)."""
        problem = op.check_name(subject)
        if problem:
            raise OperatorError("--subject: " + problem)
        scopes = list(scopes)
        for scope in scopes:
            if scope not in op.SCOPES:
                raise OperatorError("--scopes: unknown scope %r (known: %s)" % (scope, ", ".join(op.SCOPES)))
        if not scopes:
            raise OperatorError("--scopes: give at least one scope (%s)" % ", ".join(op.SCOPES))
        ttl_ms = int(ttl_s * 1000)
        if not 0 < ttl_ms <= op.MAX_TOKEN_TTL_MS:
            raise OperatorError("--ttl: a token lives between 1 s and %d h" % (op.MAX_TOKEN_TTL_MS // 3600000))
        issued = _now_ms() if now_ms is None else now_ms
        return self._seal(op.token_payload(device_id, subject, scopes, issued, issued + ttl_ms), device_secret)

    def command(self, target, name, args, counter, ttl_s, now_ms=None, device_secret=None):
        """A signed command (COSE bytes). ``target`` is a device id or
        "model:<model>"."""
        problem = op.check_command(name, args)
        if problem:
            raise OperatorError(problem)
        if not isinstance(counter, int) or counter < 1:
            raise OperatorError("--counter must be an integer >= 1")
        ttl_ms = int(ttl_s * 1000)
        if ttl_ms <= 0:
            raise OperatorError("--ttl must be positive")
        issued = _now_ms() if now_ms is None else now_ms
        payload = op.command_payload(target, name, args, counter, issued, issued + ttl_ms)
        message = self._seal(payload, device_secret)
        if len(message) > op.MAX_COMMAND_BYTES:
            # Every device refuses it unread (too-large): say so here instead.
            raise OperatorError("the signed %s is %d bytes; devices take commands of at most %d bytes: send a "
                                "smaller patch (several config.update commands)" % (name, len(message),
                                                                                   op.MAX_COMMAND_BYTES))
        return message

    def replay_command(self, device_id, ranges, request, counter, ttl_s, now_ms=None, device_secret=None):
        """A signed `replay` command (COSE bytes) asking ``device_id`` to
        republish the seqs of ``ranges`` ([[first, last], ...], ascending,
        at most 32 ranges and 4096 seqs) under the receiver's ``request``
        id (1-40 characters), echoed in the device's repair signal
        (docs/wire-format.md). ``device_secret``: an HMAC board's secret
        (COSE_Mac0). The device trusts it only from an operator listed with
        scopes = ["replay"]."""
        from edge_agent.core import repair

        ranges = [list(r) if isinstance(r, tuple) else r for r in ranges]
        problem = repair.request_problem(ranges, request)
        if problem:
            raise OperatorError("replay: " + problem)
        if op.check_name(device_id) or device_id.startswith(op.MODEL_PREFIX):
            raise OperatorError("replay: the target must be one device id, not %r" % (device_id,))
        return self.command(device_id, repair.COMMAND, {"ranges": ranges, "request": request},
                            counter, ttl_s, now_ms=now_ms, device_secret=device_secret)

    # Counters: the next counter per target, persisted so the operator
    # never reuses one (a reused counter is refused as a replay).
    def _counters_path(self):
        return os.path.join(self.directory, COUNTERS_FILE)

    def counters(self):
        path = self._counters_path()
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            return {}
        except tomllib.TOMLDecodeError as exc:
            raise OperatorError("%s: not valid TOML (%s); fix it or pass --counter" % (path, exc)) from None
        counters = data.get("counters", {})
        if not isinstance(counters, dict) or not all(isinstance(v, int) for v in counters.values()):
            raise OperatorError("%s: [counters] must map targets to integers" % path)
        return counters

    def next_counter(self, target):
        return self.counters().get(target, 0) + 1

    def record_counter(self, target, counter):
        """Remember ``counter`` as used for ``target`` (never lowers it)."""
        counters = self.counters()
        counters[target] = max(counter, counters.get(target, 0))
        lines = ["# last command counter used per target (edge-agent cmd send)", "[counters]"]
        lines += ['"%s" = %d' % (t, c) for t, c in sorted(counters.items())]
        atomic_write(self._counters_path(), ("\n".join(lines) + "\n").encode(), mode=0o600)


def create_operator(directory, name):
    problem = op.check_name(name)
    if problem:
        raise OperatorError("--name: " + problem)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    manifest = os.path.join(directory, MANIFEST)
    if os.path.exists(manifest):
        raise OperatorError("%s already holds an operator key; refusing to overwrite it" % directory)
    key = new_ed25519_key(os.path.join(directory, KEY_FILE))
    operator = Operator(name, key, directory)
    with open(manifest, "w") as f:
        f.write("# edge-agent operator (public; the private key is beside it, mode 0600)\n")
        f.write('name = "%s"\npublic_key = "%s"\n' % (name, operator.public_key_hex()))
    return operator


def load_operator(directory):
    manifest = os.path.join(directory, MANIFEST)
    data = load_toml(manifest, OperatorError, "%s: no operator here; create one with `edge-agent keys operator-init "
                     "%s --name NAME`" % (directory, directory))
    name = data.get("name")
    problem = op.check_name(name)
    if problem:
        raise OperatorError("%s: name: %s" % (manifest, problem))
    key = load_ed25519_key(os.path.join(directory, KEY_FILE), OperatorError,
                           "create the operator with `edge-agent keys operator-init`")
    return Operator(name, key, directory)


def load_trusted(path):
    """{operator kid bytes: verify} from a trusted-operators TOML file.
    There is no default: a missing or empty file is an error, so a device
    never trusts anyone by accident."""
    return load_operators(path)[0]


def load_operators(path):
    """(trusted, scopes) from a trusted-operators TOML file: ``trusted`` as
    load_trusted gives it, ``scopes`` {operator name: tuple of scopes} for
    the entries that list ``scopes`` (the others send every command but
    `replay`: operator.check_scope)."""
    data = load_toml(path, OperatorError, "%s: not found; create it from `edge-agent keys operator-entry "
                     "OPERATOR_DIR` output" % path)
    if os.stat(path).st_mode & stat.S_IWOTH:
        raise OperatorError("%s: writable by others, so anyone could add an operator; run `chmod o-w %s`"
                            % (path, path))
    entries = data.get("operators")
    if not isinstance(entries, dict) or not entries:
        raise OperatorError("%s: no [operators.NAME] entries; a device trusts no operator by default" % path)
    trusted = {}
    scopes = {}
    problems = []
    for name, entry in sorted(entries.items()):
        problem = op.check_name(name)
        if problem:
            problems.append("operators.%s: %s" % (name, problem))
            continue
        if isinstance(entry, dict) and "scopes" in entry:
            problem = op.check_operator_scopes(entry["scopes"])
            if problem:
                problems.append("operators.%s: %s; write e.g. scopes = [\"replay\"], or no scopes for every "
                                "command but replay" % (name, problem))
                continue
            scopes[name] = tuple(entry["scopes"])
        try:
            trusted[name.encode()] = ed25519_verifier_from_hex(entry.get("public_key") if isinstance(entry, dict)
                                                               else None, OperatorError)
        except OperatorError as exc:
            problems.append("operators.%s: %s" % (name, exc))
    if problems:
        raise OperatorError("%s:\n  %s" % (path, "\n  ".join(problems)))
    return trusted, scopes


def parse_duration(text):
    """'90s', '30m', '8h', '2d' or plain seconds -> seconds (float)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip()
    scale = units.get(text[-1:].lower())
    number = text[:-1] if scale else text
    try:
        value = float(number)
    except ValueError:
        raise OperatorError("duration %r: write e.g. 90s, 30m, 8h or 2d" % text) from None
    if value <= 0:
        raise OperatorError("duration %r must be positive" % text)
    return value * (scale or 1)
