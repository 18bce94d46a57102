"""Signed commands on the firmware: ea/v1/<device>/cmd -> verify -> apply
-> audit.

The board's half of the gateway's signed downlink (edge_agent/gateway/downlink.py);
the flow both share is the core's (edge_agent/core/command_flow.py):

- ``topics()`` (the core's): what the uplink subscribes to at each
  connect: the device's own topic only. A board's operators sign under
  its own secret, so its model's topic (where a gateway takes the model's
  Ed25519 commands) would bring it only messages it cannot check; a
  command for the model comes on the device's topic, target "model:...";
- verify with the core (edge_agent/core/operator.py): a COSE_Mac0 under
  the device's own secret, whose kid names an operator this device was
  provisioned to trust (`firmware provision --operator NAME`); expiry,
  the signed target (this device, or "model:" + its board's model: any
  other is refused as wrong-device or wrong-model, whatever topic it came
  on) and a per-(operator, target) counter against replays, so commands
  to the device and to its model count apart;
- record the counter in flash *before* applying (atomic replace), so a
  power cut in between loses the command (the operator sees no "applied"
  audit and resends) and never applies it twice;
- apply quarantine.force / quarantine.release (the core's health engine,
  which cuts or restores the component's power pin); alert.ack reaches
  the health engine (Device.acknowledge_alert: a level shift takes its
  present level as the new baseline; any other alert is recorded);
  advisory is logged; config.update is refused (a board is reflashed
  with a new compiled board, not patched in place);
- every command, applied or refused, becomes an audit signal at alert
  priority; every refusal whoever can publish on the topic can cause (all
  but those of a command whose counter is spent) is rate limited, so they
  cannot fill the store.
"""

from edge_agent.core import audit, cbor
from edge_agent.core import operator as op
from edge_agent.core.command_flow import LOG_TEXT, CommandFlow, alert_number

COUNTERS_NAME = "counters.cbor"
# A counter per (operator, target): a few hundred bytes on a real board.
MAX_COUNTERS_BYTES = 65536


class Commands(CommandFlow):
    def __init__(self, device, trusted, state, clock, dispatch, log, scopes=None):
        """``state``: a FlashDir for the counters file; ``dispatch``: the
        firmware's path into the store; ``scopes``: operators limited to
        some scopes (config.DeviceSettings.scopes)."""
        self.state = state
        super().__init__(device, device.board.model, trusted, self._load(), clock, dispatch, log, scopes)

    def _load(self):
        if COUNTERS_NAME not in self.state.list():
            return op.Counters()
        try:
            return op.Counters.from_map(cbor.loads(self.state.read_file(COUNTERS_NAME, MAX_COUNTERS_BYTES)))
        except (ValueError, cbor.CBORError) as exc:
            # Starting from zero would reopen every unexpired command to replay.
            raise ValueError("%s: unreadable (%s); restore it, or delete it only once every command sent "
                             "to this device has expired" % (COUNTERS_NAME, exc))

    def _save_counters(self):
        self.state.write_file(COUNTERS_NAME + ".tmp", cbor.dumps(self.counters.to_map()))
        self.state.rename(COUNTERS_NAME + ".tmp", COUNTERS_NAME)

    def _apply(self, command, now):
        args = command.args
        note = args.get("note", "")
        if command.name == "alert.ack":
            # A level shift takes its present level as the new baseline.
            outputs = self.device.acknowledge_alert(alert_number(args["alert"]), now, command.operator)
            self.dispatch(outputs)
            return "unacknowledged", "acknowledged by %s" % command.operator, note or (
                "the present level is the new baseline" if outputs else "recorded")
        if command.name == "advisory":
            self.log("warning", "advisory %s from %s: %s" % (audit.clip(args.get("id", "")), command.operator,
                                                             audit.clip(args["text"], LOG_TEXT)))
            if "patch" in args:
                raise op.Refused("no-config", "a board takes a new config by reflashing its compiled board")
            return None, args.get("severity", "info"), args["text"]
        if command.name == "config.update":
            raise op.Refused("no-config", "a board takes a new config by reflashing its compiled board "
                                       "(edge-agent firmware compile-board, make flash)")
        raise op.Refused("bad-command", "no handler for %s on the firmware" % command.name)
