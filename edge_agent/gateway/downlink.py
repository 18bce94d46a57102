"""The signed downlink on the gateway: commands from operators over MQTT.

    ea/v1/<device>/cmd, ea/v1/model/<model>/cmd   (QoS 1, persistent session)
        -> verify (core/operator.py: signature, type, target, expiry, counter)
        -> record the counter (atomic replace: a replay after a restart is refused too)
        -> apply: quarantine force/release, alert ack, config update, advisory
        -> audit signal (applied or refused, with the reason) at alert priority

Nothing changes before verification. Every command, accepted or refused,
becomes an audit signal through the store, so the owner hears about it
even if the device is offline when it happens. The flow (counter saved
before applying, refusals rate limited) is the core's, shared with the
firmware: edge_agent/core/command_flow.py. Trust comes only from
--operators: there is no default.
"""

import logging
import os
import signal as posix_signal

from edge_agent.atomic_file import atomic_write
from edge_agent.core import audit, cbor
from edge_agent.core import operator as op
from edge_agent.core.command_flow import LOG_TEXT, CommandFlow, RefusalLimiter

__all__ = ("COUNTERS_FILE", "Downlink", "DownlinkError", "RefusalLimiter", "load_counters")

log = logging.getLogger("edge_agent.gateway.downlink")

COUNTERS_FILE = "counters.cbor"


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


def _log(level, text):
    getattr(log, level)("downlink: %s", text)


class Downlink(CommandFlow):
    def __init__(self, device, model, trusted, state_dir, config, clock, dispatch, request_restart=None,
                 acknowledge=None, scopes=None):
        """``device``: the core Device; ``dispatch(outputs)``: the agent's
        path into the store; ``config``: a config_update.ConfigState (or
        None: config updates refused); ``request_restart()``: restart the
        agent on a staged config; ``acknowledge(alert, who, now_ms) ->
        (before, after)``: marks the alert in the console's list, raising
        KeyError or ValueError for an unknown one (None: only recorded);
        ``scopes``: operators limited to some scopes (keys/operators.py)."""
        self.counters_path = os.path.join(state_dir, COUNTERS_FILE)
        super().__init__(device, model, trusted, load_counters(self.counters_path), clock, dispatch, _log, scopes)
        self.config = config
        self.request_restart = request_restart or _restart_self
        self.acknowledge = acknowledge

    def on_connect(self):
        """The broker is reached: a trial config has passed its self-check."""
        if self.config is not None:
            signal = self.config.confirm(self.clock())
            if signal is not None:
                self._emit(signal)

    def _save_counters(self):
        atomic_write(self.counters_path, cbor.dumps(self.counters.to_map()), mode=0o600)

    def _applied(self, command):
        if "patch" in command.args:  # config.update, or an advisory with a patch: staged
            log.warning("downlink: restarting on the new config")
            self.request_restart()

    def _apply(self, command, now):
        """(before, after, note) or raise op.Refused; a staged patch restarts in _applied."""
        args = command.args
        note = args.get("note", "")
        if command.name == "alert.ack":
            if self.acknowledge is None:
                return "unacknowledged", "acknowledged", note or "recorded (no console alert list)"
            try:
                before, after = self.acknowledge(args["alert"], command.operator, now)
            except (KeyError, ValueError) as exc:
                raise op.Refused("unknown-alert", str(exc)) from None
            return before, after, note
        if command.name == "config.update":
            before, after = self._stage(args["patch"], command.operator)
            return before, after, note or "restarting on the new config"
        if command.name == "advisory":
            return self._advisory(command)
        raise op.Refused("bad-command", "no handler for %s" % command.name)  # COMMANDS and this file disagree

    def _stage(self, patch, who):
        from edge_agent.gateway.config_update import ConfigRefused

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
        log.log(level, "advisory %s from %s: %s", audit.clip(args.get("id", "")), command.operator,
                audit.clip(args["text"], LOG_TEXT))
        if "patch" in args:
            before, after = self._stage(args["patch"], command.operator)
            return before, after, args["text"]
        return None, severity, args["text"]


def _restart_self():
    # The agent's own clean stop (SIGTERM): sensors stop, the store drains
    # for the grace period (the audit above goes out), then cli re-executes.
    os.kill(os.getpid(), posix_signal.SIGTERM)
