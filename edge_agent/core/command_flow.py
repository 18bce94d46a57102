"""The signed-command flow shared by the gateway's downlink
(edge_agent/gateway/downlink.py) and the firmware's (firmware/commands.py):

    verify (operator.verify_command: signature, type, target, expiry, counter)
        -> record the counter (durable, before anything changes)
        -> apply (each platform's own _apply)
        -> audit signal, applied or refused, at alert priority

Applied at most once: the counter is saved *before* the command is
applied, so a crash in between loses the command (the operator sees no
"applied" audit and sends it again with a new counter) and never applies
it twice. Every refusal an unauthenticated sender can cause is rate
limited: anyone who can publish on the topic can send garbage (too large,
malformed, hostile headers that trip a bug) or replay a recorded
command, and must not fill the store with audits or the log with lines.
Past REFUSALS_PER_WINDOW in a window they are counted, and the count goes
out in one audit with the first refusal of a later window. What is not
limited: a command whose signature checked out and whose counter is spent
(applied, refused by _apply, or failed after that): it cannot come again,
so each audit of it costs its sender an operator's key and a new counter.
"""

from edge_agent.core import audit
from edge_agent.core import operator as op
from edge_agent.core.signals import check_device_id

REFUSALS_PER_WINDOW = 20
REFUSAL_WINDOW_MS = 60000
# A refusal's log line is cut here: its details quote what the sender sent.
LOG_TEXT = 400
# Reasons given before the signature was checked (and "malformed", which
# can be either): the claimed operator is not authenticated, so the audit
# says "unverified" instead of naming it.
UNAUTHENTICATED = ("too-large", "malformed", "unknown-operator", "wrong-algorithm", "bad-signature")


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


def target_of(name, args):
    """What a command acts on, for the audit's target field: text, or None
    (the args of a refused command may hold anything)."""
    if not isinstance(name, str) or not isinstance(args, dict):
        return None
    if name == "config.update":
        return "board"
    if name == "replay":  # the receiver's id for the request (repair.py)
        value = args.get("request")
        return value if isinstance(value, str) and value else None
    value = args.get("component" if name.startswith("quarantine.") else "alert" if name == "alert.ack" else
                     "id" if name == "advisory" else None)
    if not isinstance(value, str):
        return None
    return "alert #" + value if name == "alert.ack" else value


def alert_number(text):
    """The seq an alert.ack names (its ``alert``, text), or op.Refused
    (unknown-alert): the gateway's and the board's one reading of it."""
    try:
        return int(text)
    except ValueError:
        raise op.Refused("unknown-alert", "alert %r is not an alert number" % audit.clip(text))


QUARANTINE_COMMANDS = ("quarantine.force", "quarantine.release")


class CommandFlow:
    """A subclass gives ``_save_counters()`` (make ``self.counters``
    durable) and ``_apply(command, now_ms) -> (before, after, note)`` for
    every command but quarantine force/release, which act the same on
    every platform (raise op.Refused), and may override
    ``_applied(command)``, called once the applied audit is out.
    ``dispatch(outputs)``: the platform's path into the store;
    ``log(level, text)``, level "warning" or "error"; ``scopes``: {operator
    name: scopes} of the operators trusted with scopes (operator.check_scope).
    ``replays``: a repair.ReplayService over the device's store, set by the
    platform once the store is open (None: `replay` is refused)."""

    def __init__(self, device, model, trusted, counters, clock, dispatch, log, scopes=None):
        self.device = device
        self.device_id = device.device_id
        self.model = model
        self.trusted = trusted
        self.scopes = scopes or {}
        self.replays = None
        self.counters = counters
        self.clock = clock
        self.dispatch = dispatch
        self.log = log
        self.limiter = RefusalLimiter()
        self.applied = 0
        self.refused = 0
        self._spent = None  # the message's command once its counter is spent

    def topics(self):
        """What to subscribe to: the device's command topic, and its
        model's, where one command reaches every device of the model. A
        model that cannot be a topic level (the device id's rule) is not
        subscribed, and logged.

        Only a public-key (Ed25519) signature can be checked by every
        device of a model. An operator trusted with an HMAC key signs under
        this device's own secret, so a Mac0 on the model's topic verifies on
        one device and is refused by all the others: a device that trusts
        only HMAC operators (a board) takes its model's commands on its own
        topic (the target "model:..." is signed, the topic only routes) and
        does not subscribe to the model's, where it would receive only the
        others' Mac0s and the gateways' Ed25519 messages, and audit each
        as a refusal."""
        device_topic = op.command_topic(self.device_id)
        # A trusted key that is not bytes is an Ed25519 verifier (operator.verify_command).
        public_key = any(not isinstance(key, (bytes, bytearray)) for key in self.trusted.values())
        if not self.model or not public_key:
            return (device_topic,)
        problem = check_device_id(self.model)
        if problem:
            self.log("warning", "board model %r cannot be an MQTT topic level (%s): its model's command topic is not "
                                "subscribed; fix [board] model in the board file" % (self.model, problem))
            return (device_topic,)
        return (device_topic, op.model_command_topic(self.model))

    def on_message(self, topic, payload):
        """One message from a command topic. Never raises, and ends in one
        outcome, applied or refused (counted in ``applied``/``refused``): a
        bad message is refused and audited, the device runs on."""
        self._spent = None
        outcomes = self.applied + self.refused
        try:
            self._handle(topic, payload)
        except Exception as exc:  # a bug or a full disk must not end the MQTT session
            try:
                self._failed(topic, exc, self.applied + self.refused == outcomes)
            except Exception:  # the audit's own path (the store) is what failed
                pass
        if self.applied + self.refused == outcomes:
            self.refused += 1

    def _handle(self, topic, payload):
        now = self.clock()
        try:
            command = op.verify_command(payload, self.trusted, self.device_id, self.model, now, self.counters,
                                        self.scopes)
        except op.Rejection as exc:
            self.refused += 1
            authentic = exc.reason not in UNAUTHENTICATED
            who = exc.operator if authentic else "unverified"
            target = target_of(exc.command_name, exc.command_args) or topic
            self._refusal(now, topic, "warning", "command on %s refused (from %s): %s" % (
                topic, who if authentic else "an unverified sender, kid %r" % (exc.operator,), exc),
                who, exc.command_name or "command", target, "%s: %s" % (exc.reason, exc.detail))
            return
        self.counters.advance(command)
        self._spent = command  # it cannot come again: from here on every audit of it goes out
        self._save_counters()
        target = target_of(command.name, command.args) or command.target
        try:
            if command.name in QUARANTINE_COMMANDS:
                before, after, outputs = op.apply_quarantine(self.device, command, now)
                self.dispatch(outputs)
                note = command.args.get("note", "")
            elif command.name == "replay":
                before, after, note = self._replay(command, now)
            else:
                before, after, note = self._apply(command, now)
        except op.Refused as exc:
            self.refused += 1
            self.log("warning", "command %s #%d from %s refused: %s" % (command.name, command.counter,
                                                                       command.operator, audit.clip(exc)))
            self._emit(audit.audit_signal(now, command.operator, command.name, target, None, None, audit.REFUSED,
                                          "%s: %s" % (exc.reason, exc.detail), audit.CHANNEL_DOWNLINK))
            return
        self.applied += 1
        self.log("warning", "command %s #%d from %s applied on %s: %s -> %s" % (
            command.name, command.counter, command.operator, audit.clip(target), audit.clip(before),
            audit.clip(after)))
        self._emit(audit.audit_signal(now, command.operator, command.name, target, before, after, audit.APPLIED,
                                      note, audit.CHANNEL_DOWNLINK))
        self._applied(command)

    def _replay(self, command, now):
        """Accept a gap repair (repair.py): the repair signal goes out now,
        the held records after it, paced by the platform's uplink."""
        if self.replays is None:
            raise op.Refused("no-store", "this device has no store to repair from")
        signal, summary = self.replays.accept(command, now)
        self._emit(signal)
        return None, summary, ""

    def _applied(self, command):
        """After the applied audit: nothing unless the platform needs it."""

    def _failed(self, topic, exc, count):
        """An exception out of the flow: refused as internal-error (counted
        unless the message already has its outcome). Before the command's
        counter is spent the same bytes can come again, so through the
        limiter like any unauthenticated refusal; after, audited always."""
        if count:
            self.refused += 1
        now = self.clock()
        try:
            problem = "%s: %s" % (type(exc).__name__, audit.clip(exc))
        except Exception:  # noqa: BLE001 (str() of an exception can raise too)
            problem = type(exc).__name__
        reason = "internal-error: " + type(exc).__name__
        command = self._spent
        if command is None:
            self._refusal(now, topic, "error", "command on %s failed: %s" % (topic, problem), "unverified",
                          "command", topic, reason)
            return
        self.log("error", "command %s #%d from %s failed: %s" % (command.name, command.counter, command.operator,
                                                                 problem))
        self._emit(audit.audit_signal(now, command.operator, command.name,
                                      target_of(command.name, command.args) or command.target, None, None,
                                      audit.REFUSED, reason, audit.CHANNEL_DOWNLINK))

    def _refusal(self, now, topic, level, line, who, action, target, reason):
        """Log and audit one refusal that anyone on the topic can cause, as
        the limiter allows: past its limit nothing (the log neither), then
        the count, in the summary audit of a later window."""
        allowed, suppressed = self.limiter.allow(now)
        if suppressed:
            text = "rate-limited: %d more messages refused unaudited" % suppressed
            self.log("warning", "commands: " + text)
            self._emit(audit.audit_signal(now, "unverified", "command", topic, None, None, audit.REFUSED, text,
                                          audit.CHANNEL_DOWNLINK))
        if allowed:
            self.log(level, audit.clip(line, LOG_TEXT))
            self._emit(audit.audit_signal(now, who, action, target, None, None, audit.REFUSED, reason,
                                          audit.CHANNEL_DOWNLINK))

    def _emit(self, signal):
        self.dispatch([self.device.number(signal)])
