"""Remote config updates on the gateway: stage, restart, self-check,
confirm or roll back.

State directory files (all replaced atomically, atomic_file.py):

    overlay.json            the accepted patches merged (config_patch.py);
                            absent: the --board file as shipped
    overlay.previous.json   the overlay before the last update (rollback target)
    overlay.trial.json      present while the last update is unconfirmed:
                            {"attempts": n, "who": ..., "before": ..., "after": ...}

An update is validated whole (board checker) against the base board, then
written, and the agent restarts on it. On that start (the *trial*) the
self-check runs: the overlay loads and validates, and every bus port of
the new board exists. The trial is confirmed once the agent has come up
and reached the broker; if the self-check fails, or the agent restarts
before confirming (a crash on the new config), the previous overlay is put
back. Every step is reported as an audit signal (config.apply,
config.confirm, config.rollback) with both overlay digests.
"""

import json
import logging
import os

from edge_agent.atomic_file import atomic_remove, atomic_rename, atomic_write
from edge_agent.core import audit
from edge_agent.core import config_patch as cp
from edge_agent.core.board import BoardError

log = logging.getLogger("edge_agent.config")

OVERLAY = "overlay.json"
PREVIOUS = "overlay.previous.json"
TRIAL = "overlay.trial.json"


class ConfigRefused(ValueError):
    """An update that is not applied; ``reason`` is a short stable code."""

    def __init__(self, reason, detail):
        super().__init__("%s: %s" % (reason, detail))
        self.reason = reason
        self.detail = detail


class ConfigState:
    def __init__(self, directory, base, base_source, port_overrides=None):
        """``base``: the --board file as a dict; ``port_overrides``: {bus:
        path} from --port, which win over the board's ports."""
        self.directory = directory
        self.base = base
        self.base_source = base_source
        self.port_overrides = port_overrides or {}
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self.overlay = None
        self.trial = None  # the trial marker while unconfirmed
        self.restart_pending = False  # staged: the next start runs the new config

    def _path(self, name):
        return os.path.join(self.directory, name)

    def _read(self, name):
        try:
            with open(self._path(name), "rb") as f:
                return json.loads(f.read().decode())
        except FileNotFoundError:
            return None

    def _write(self, name, value):
        atomic_write(self._path(name), json.dumps(value, sort_keys=True, indent=1).encode(), mode=0o600)

    def source(self):
        return "%s + %s" % (self.base_source, self._path(OVERLAY)) if self.overlay else self.base_source

    def boot(self, now_ms):
        """Load the config in force for this start. Returns (board, audit
        signals). Never raises for a bad overlay: it rolls back instead."""
        signals = []
        trial = None
        try:
            trial = self._read(TRIAL)
        except ValueError:
            trial = {"attempts": 1, "who": "?", "before": "?", "after": "?"}  # a torn marker: treat as failed
        try:
            overlay = self._read(OVERLAY)
            board = cp.validate(self.base, overlay, self._path(OVERLAY))
            if trial is not None:
                trial["attempts"] = trial.get("attempts", 0) + 1
                if trial["attempts"] > 1:
                    raise ConfigRefused("unconfirmed", "the agent restarted before the new config was confirmed")
                self._self_check(board)
                self._write(TRIAL, trial)
                self.trial = trial
        except (ValueError, OSError, BoardError) as exc:
            reason = getattr(exc, "reason", "self-check-failed")
            detail = str(exc).replace("\n", " ")
            overlay, board, signal = self._rollback(now_ms, trial, reason, detail)
            signals.append(signal)
        self.overlay = overlay
        if self.trial:
            log.warning("config: trial start on overlay %s (confirmed once the broker is reached)",
                        cp.digest(overlay))
        elif overlay:
            log.info("config: overlay %s on %s", cp.digest(overlay), self.base_source)
        return board, signals

    def _self_check(self, board):
        for bus in board.buses.values():
            port = self.port_overrides.get(bus.id, bus.port)
            if not os.path.exists(port):
                raise ConfigRefused("self-check-failed", "bus %s: port %s does not exist" % (bus.id, port))

    def _rollback(self, now_ms, trial, reason, detail):
        failed = "?"
        try:
            failed = cp.digest(self._read(OVERLAY))
        except ValueError:
            pass
        if os.path.exists(self._path(PREVIOUS)):
            atomic_rename(self._path(PREVIOUS), self._path(OVERLAY))
        else:
            atomic_remove(self._path(OVERLAY))
        atomic_remove(self._path(TRIAL))
        overlay = self._read(OVERLAY)
        try:
            board = cp.validate(self.base, overlay, self._path(OVERLAY))
        except BoardError:
            # The previous overlay no longer fits the base board (the board
            # file changed under it): fall back to the board file alone.
            atomic_remove(self._path(OVERLAY))
            overlay = None
            board = cp.validate(self.base, None, self.base_source)
        log.error("config: rolled back from %s to %s: %s: %s", failed, cp.digest(overlay), reason, detail)
        who = (trial or {}).get("who", "?")
        signal = audit.audit_signal(now_ms, who, "config.rollback", "board", failed, cp.digest(overlay),
                                    audit.APPLIED, "%s: %s" % (reason, detail), audit.CHANNEL_DOWNLINK)
        return overlay, board, signal

    def confirm(self, now_ms):
        """The trial start reached the broker: keep the new config. Returns
        the audit signal, or None if there was no trial."""
        if self.trial is None:
            return None
        trial, self.trial = self.trial, None
        atomic_remove(self._path(TRIAL))
        log.info("config: overlay %s confirmed", cp.digest(self.overlay))
        return audit.audit_signal(now_ms, trial.get("who", "?"), "config.confirm", "board", trial.get("before"),
                                  cp.digest(self.overlay), audit.APPLIED, "self-check passed",
                                  audit.CHANNEL_DOWNLINK)

    def stage(self, patch, who):
        """Validate ``patch`` over the config in force and write it as the
        next start's trial. Returns (before digest, after digest); raises
        ConfigRefused (nothing written) if the result is not a valid board."""
        if self.trial is not None or self.restart_pending:
            raise ConfigRefused("busy", "the previous update is not yet confirmed; send again after it is")
        try:
            overlay = cp.combine(self.overlay, patch)
            cp.validate(self.base, overlay, "config update")
        except cp.PatchError as exc:
            raise ConfigRefused("bad-config", str(exc)) from None
        except BoardError as exc:
            raise ConfigRefused("bad-config", str(exc).replace("\n", " ")) from None
        before, after = cp.digest(self.overlay), cp.digest(overlay)
        # Order matters for a crash between steps: the previous overlay is
        # saved before the new one replaces it, and the trial marker exists
        # before the new overlay does, so a restart always knows to check.
        self._write(TRIAL, {"attempts": 0, "who": who, "before": before, "after": after})
        if self.overlay:
            self._write(PREVIOUS, self.overlay)
        else:
            atomic_remove(self._path(PREVIOUS))
        self._write(OVERLAY, overlay)
        self.restart_pending = True
        return before, after
