"""Signed commands on the firmware: ea/v1/<device>/cmd -> verify -> apply -> audit.

The board's half of the gateway's signed downlink (edge_agent/downlink.py),
with what a board can do:

- verify with the core (edge_agent/core/operator.py): a COSE_Mac0 under
  the device's own secret, whose kid names an operator this device was
  provisioned to trust (`firmware provision --operator NAME`); expiry,
  device binding and a per-(operator, target) counter against replays;
- record the counter in flash *before* applying (atomic replace), so a
  power cut in between loses the command (the operator sees no "applied"
  audit and resends) and never applies it twice;
- apply quarantine.force / quarantine.release (the core's health engine,
  which cuts or restores the component's power pin); alert.ack and
  advisory are recorded; config.update is refused (a board is reflashed
  with a new compiled board, not patched in place);
- every command, applied or refused, becomes an audit signal at alert
  priority; refusals before the signature checks out are rate limited so
  whoever can publish on the topic cannot fill the store.
"""

from edge_agent.core import audit, cbor
from edge_agent.core import operator as op

COUNTERS_NAME = "counters.cbor"
REFUSALS_PER_WINDOW = 20
REFUSAL_WINDOW_MS = 60000
UNAUTHENTICATED = ("malformed", "unknown-operator", "wrong-algorithm", "bad-signature")


class Commands:
    def __init__(self, device, trusted, state, clock, dispatch, log):
        """``state``: a FlashDir for the counters file; ``dispatch``: the
        firmware's path into the store."""
        self.device = device
        self.trusted = trusted
        self.state = state
        self.clock = clock
        self.dispatch = dispatch
        self.log = log
        self.counters = self._load()
        self.applied = 0
        self.refused = 0
        self._window_start = None
        self._window_sent = 0
        self._suppressed = 0

    def _load(self):
        if COUNTERS_NAME not in self.state.list():
            return op.Counters()
        data = self.state.read(COUNTERS_NAME, 0, 65536)
        try:
            return op.Counters.from_map(cbor.loads(data))
        except (ValueError, cbor.CBORError) as exc:
            # Starting from zero would reopen every unexpired command to replay.
            raise ValueError("%s: unreadable (%s); restore it, or delete it only once every command sent "
                             "to this device has expired" % (COUNTERS_NAME, exc))

    def _save(self):
        self.state.write_file(COUNTERS_NAME + ".tmp", cbor.dumps(self.counters.to_map()))
        self.state.rename(COUNTERS_NAME + ".tmp", COUNTERS_NAME)

    def on_message(self, topic, payload):
        """Never raises: a bad message is refused and audited; the firmware runs on."""
        try:
            self._handle(topic, payload)
        except Exception as exc:  # a bug or a full flash must not end the MQTT session
            self.log("error", "command on %s failed: %s: %s" % (topic, type(exc).__name__, exc))
            self._emit(audit.audit_signal(self.clock(), "?", "command", topic, None, None, audit.REFUSED,
                                          "internal-error: %s" % type(exc).__name__, audit.CHANNEL_DOWNLINK))

    def _handle(self, topic, payload):
        now = self.clock()
        device = self.device
        try:
            command = op.verify_command(payload, self.trusted, device.device_id, device.board.model, now,
                                        self.counters)
        except op.Rejection as exc:
            self._refuse_unverified(exc, topic, now)
            return
        self.counters.advance(command)
        self._save()
        target = command.args.get("component") or command.target
        try:
            before, after, note = self._apply(command, now)
        except op.Refused as exc:
            self.refused += 1
            self.log("warning", "command %s #%d from %s refused: %s" % (command.name, command.counter,
                                                                       command.operator, exc))
            self._emit(audit.audit_signal(now, command.operator, command.name, target, None, None, audit.REFUSED,
                                          "%s: %s" % (exc.reason, exc.detail), audit.CHANNEL_DOWNLINK))
            return
        self.applied += 1
        self.log("warning", "command %s #%d from %s applied on %s: %s -> %s" % (
            command.name, command.counter, command.operator, target, before, after))
        self._emit(audit.audit_signal(now, command.operator, command.name, target, before, after, audit.APPLIED,
                                      note, audit.CHANNEL_DOWNLINK))

    def _apply(self, command, now):
        args = command.args
        note = args.get("note", "")
        if command.name in ("quarantine.force", "quarantine.release"):
            before, after, outputs = op.apply_quarantine(self.device, command, now)
            self.dispatch(outputs)
            return before, after, note
        if command.name == "alert.ack":
            return "unacknowledged", "acknowledged", note or "recorded"
        if command.name == "advisory":
            self.log("warning", "advisory %s from %s: %s" % (args.get("id", ""), command.operator, args["text"]))
            if "patch" in args:
                raise op.Refused("no-config", "a board takes a new config by reflashing its compiled board")
            return None, args.get("severity", "info"), args["text"]
        if command.name == "config.update":
            raise op.Refused("no-config", "a board takes a new config by reflashing its compiled board "
                                       "(edge-agent firmware compile-board, make flash)")
        raise op.Refused("bad-command", "no handler for %s on the firmware" % command.name)

    def _refuse_unverified(self, exc, topic, now):
        self.refused += 1
        authentic = exc.reason not in UNAUTHENTICATED
        who = exc.operator if authentic else "unverified"
        self.log("warning", "command on %s refused (%s): %s" % (topic, who, exc))
        if self._window_start is None or now - self._window_start >= REFUSAL_WINDOW_MS:
            if self._suppressed:
                self._emit(audit.audit_signal(now, "unverified", "command", topic, None, None, audit.REFUSED,
                                              "rate-limited: %d more messages refused unaudited" % self._suppressed,
                                              audit.CHANNEL_DOWNLINK))
            self._window_start = now
            self._window_sent = 0
            self._suppressed = 0
        if self._window_sent >= REFUSALS_PER_WINDOW:
            self._suppressed += 1
            return
        self._window_sent += 1
        action = getattr(exc, "command_name", None) or "command"
        self._emit(audit.audit_signal(now, who, action, topic, None, None, audit.REFUSED,
                                      "%s: %s" % (exc.reason, exc.detail), audit.CHANNEL_DOWNLINK))

    def _emit(self, signal):
        self.dispatch([self.device.number(signal)])
