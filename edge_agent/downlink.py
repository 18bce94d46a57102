"""The signed downlink on the gateway: commands from operators over MQTT.

    ea/v1/<device>/cmd, ea/v1/model/<model>/cmd   (QoS 1, persistent session)
        -> verify (core/operator.py: signature, type, target, expiry, counter)
        -> record the counter (atomic replace: a replay after a restart is refused too)
        -> apply: quarantine force/release, alert ack, config update, advisory
        -> audit signal (applied or refused, with the reason) at alert priority

Nothing changes before verification. Every command, accepted or refused,
becomes an audit signal through the store, so the owner hears about it
even if the device is offline when it happens. Refusals at verification
are rate limited: anyone who can publish on the topic can send garbage or
replay a recorded command, and must not fill the store with audits. Past
REFUSALS_PER_WINDOW in a window they are counted, and the count goes out in
one audit with the first refusal of a later window.

Applied at most once: the counter is made durable *before* the command is
applied, so a crash in between loses the command (the operator sees no
"applied" audit and sends it again with a new counter) and never applies
it twice. Trust comes only from --operators: there is no default.
"""

import logging
import os
import signal as posix_signal

from edge_agent.atomic_file import atomic_write
from edge_agent.core import audit, cbor
from edge_agent.core import operator as op
from edge_agent.core import signals as sg

log = logging.getLogger("edge_agent.downlink")

COUNTERS_FILE = "counters.cbor"
REFUSALS_PER_WINDOW = 20
REFUSAL_WINDOW_MS = 60_000
# Reasons given before the signature was checked (and "malformed", which
# can be either): the claimed operator is not authenticated, so the audit
# says "unverified" instead of naming it.
UNAUTHENTICATED = ("malformed", "unknown-operator", "wrong-algorithm", "bad-signature")


class DownlinkError(ValueError):
    """The downlink cannot start (message names the file and the fix)."""


def load_counters(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return op.Counters()
    try:
        return op.Counters.from_map(cbor.loads(data))
    except (ValueError, cbor.CBORError) as exc:
        # Starting from zero would re-open every unexpired command to replay.
        raise DownlinkError("%s: unreadable (%s); restore it from a backup, or delete it only if every command "
                            "sent to this device has expired" % (path, exc)) from None


class RefusalLimiter:
    """At most ``limit`` refusal audits per window; the rest are counted."""

    def __init__(self, limit=REFUSALS_PER_WINDOW, window_ms=REFUSAL_WINDOW_MS):
        self.limit = limit
        self.window_ms = window_ms
        self.window_start = None
        self.sent = 0
        self.suppressed = 0

    def allow(self, now_ms):
        """(allowed, suppressed count to report now)."""
        report = 0
        if self.window_start is None or now_ms - self.window_start >= self.window_ms:
            report, self.suppressed = self.suppressed, 0
            self.window_start, self.sent = now_ms, 0
        if self.sent < self.limit:
            self.sent += 1
            return True, report
        self.suppressed += 1
        return False, report


class Downlink:
    def __init__(self, device, model, trusted, state_dir, config, clock, dispatch, request_restart=None,
                 acknowledge=None):
        """``device``: the core Device; ``dispatch(outputs)``: the agent's
        path into the store; ``config``: a config_update.ConfigState (or
        None: config updates refused); ``request_restart()``: restart the
        agent on a staged config; ``acknowledge(alert, who, now_ms) ->
        (before, after)``: marks the alert in the console's list, raising
        KeyError or ValueError for an unknown one (None: only recorded)."""
        self.device = device
        self.device_id = device.device_id
        self.model = model
        self.trusted = trusted
        self.config = config
        self.clock = clock
        self.dispatch = dispatch
        self.request_restart = request_restart or _restart_self
        self.acknowledge = acknowledge
        self.counters_path = os.path.join(state_dir, COUNTERS_FILE)
        self.counters = load_counters(self.counters_path)
        self.limiter = RefusalLimiter()
        self.applied = 0
        self.refused = 0

    def topics(self):
        topics = [op.command_topic(self.device_id)]
        if self.model and not sg.check_device_id(self.model):  # usable as a topic level
            topics.append(op.model_command_topic(self.model))
        return topics

    def on_connect(self):
        """The broker is reached: a trial config has passed its self-check."""
        if self.config is not None:
            signal = self.config.confirm(self.clock())
            if signal is not None:
                self._emit(signal)

    def on_message(self, topic, payload):
        """One message from a command topic. Never raises: a bad message is
        refused and audited, the agent runs on."""
        try:
            self._handle(topic, payload)
        except Exception as exc:  # a bug or a full disk must not end the MQTT session
            log.error("downlink: failed on a message on %s: %s: %s", topic, type(exc).__name__, exc)
            self._emit(audit.audit_signal(self.clock(), "?", "command", topic, None, None, audit.REFUSED,
                                          "internal-error: %s" % type(exc).__name__, audit.CHANNEL_DOWNLINK))

    def _handle(self, topic, payload):
        now = self.clock()
        try:
            command = op.verify_command(payload, self.trusted, self.device_id, self.model, now, self.counters)
        except op.Rejection as exc:
            self._refuse_unverified(exc, topic, now)
            return
        self.counters.advance(command)
        atomic_write(self.counters_path, cbor.dumps(self.counters.to_map()), mode=0o600)
        target = _target_of(command.name, command.args) or command.target
        try:
            before, after, note, restart = self._apply(command, now)
        except op.Refused as exc:
            self.refused += 1
            log.warning("downlink: refused %s #%d from %s: %s", command.name, command.counter, command.operator, exc)
            self._emit(audit.audit_signal(now, command.operator, command.name, target, None, None, audit.REFUSED,
                                          "%s: %s" % (exc.reason, exc.detail), audit.CHANNEL_DOWNLINK))
            return
        self.applied += 1
        log.warning("downlink: applied %s #%d from %s on %s: %s -> %s", command.name, command.counter,
                    command.operator, target, before, after)
        self._emit(audit.audit_signal(now, command.operator, command.name, target, before, after, audit.APPLIED,
                                      note, audit.CHANNEL_DOWNLINK))
        if restart:
            log.warning("downlink: restarting on the new config")
            self.request_restart()

    def _refuse_unverified(self, exc, topic, now):
        self.refused += 1
        authentic = exc.reason not in UNAUTHENTICATED
        who = exc.operator if authentic else "unverified"
        action = exc.command_name or "command"
        target = _target_of(exc.command_name, exc.command_args) or topic
        log.warning("downlink: refused a message on %s from %s: %s", topic, who if authentic else
                    "an unverified sender (kid %r)" % (exc.operator,), exc)
        allowed, suppressed = self.limiter.allow(now)
        if suppressed:
            self._emit(audit.audit_signal(now, "unverified", "command", topic, None, None, audit.REFUSED,
                                          "rate-limited: %d more messages refused unaudited" % suppressed,
                                          audit.CHANNEL_DOWNLINK))
        if allowed:
            self._emit(audit.audit_signal(now, who, action, target, None, None, audit.REFUSED,
                                          "%s: %s" % (exc.reason, exc.detail), audit.CHANNEL_DOWNLINK))

    def _emit(self, signal):
        self.dispatch([self.device.number(signal)])

    def _apply(self, command, now):
        """(before, after, note, restart) or raise op.Refused."""
        args = command.args
        note = args.get("note", "")
        if command.name in ("quarantine.force", "quarantine.release"):
            before, after, outputs = op.apply_quarantine(self.device, command, now)
            self.dispatch(outputs)
            return before, after, note, False
        if command.name == "alert.ack":
            if self.acknowledge is None:
                return "unacknowledged", "acknowledged", note or "recorded (no console alert list)", False
            try:
                before, after = self.acknowledge(args["alert"], command.operator, now)
            except (KeyError, ValueError) as exc:
                raise op.Refused("unknown-alert", str(exc)) from None
            return before, after, note, False
        if command.name == "config.update":
            before, after = self._stage(args["patch"], command.operator)
            return before, after, note or "restarting on the new config", True
        if command.name == "advisory":
            return self._advisory(command)
        raise op.Refused("bad-command", "no handler for %s" % command.name)  # COMMANDS and this file disagree

    def _stage(self, patch, who):
        from edge_agent.config_update import ConfigRefused

        if self.config is None:
            raise op.Refused("no-config", "this agent takes no config updates (no state directory)")
        try:
            return self.config.stage(patch, who)
        except ConfigRefused as exc:
            raise op.Refused(exc.reason, exc.detail) from None

    def _advisory(self, command):
        args = command.args
        severity = args.get("severity", "info")
        level = logging.ERROR if severity == "critical" else logging.WARNING
        log.log(level, "advisory %s from %s: %s", args.get("id", ""), command.operator, args["text"])
        if "patch" in args:
            before, after = self._stage(args["patch"], command.operator)
            return before, after, args["text"], True
        return None, severity, args["text"], False


def _target_of(name, args):
    """What a command acts on, for the audit's target field."""
    if not name or not isinstance(args, dict):
        return None
    if name.startswith("quarantine."):
        return args.get("component")
    if name == "alert.ack":
        return "alert #%s" % args.get("alert")
    if name == "config.update":
        return "board"
    if name == "advisory":
        return args.get("id")
    return None


def _restart_self():
    # The agent's own clean stop (SIGTERM): sensors stop, the store drains
    # for the grace period (the audit above goes out), then cli re-executes.
    os.kill(os.getpid(), posix_signal.SIGTERM)
