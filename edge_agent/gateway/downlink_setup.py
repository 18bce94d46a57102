"""The signed downlink prepared before the Agent exists (`edge-agent run
--operators FILE [--state-dir DIR]`): load the trusted operators (no file,
no downlink: there is no default trust), boot the config (overlay, trial,
rollback: config_update.py), attach a Downlink to the agent, with a gap
repair service over its store (core/repair.py, served by the uplink at
``replay_rate``), and re-execute the agent when a config update asks for
a restart.
"""

import logging
import os
import sys
import tomllib

from edge_agent.core.command_flow import alert_number

log = logging.getLogger("edge_agent.downlink")


class SetupError(ValueError):
    """The downlink cannot start: the message names the option, the file and
    the fix (the command line prints it and exits 2)."""


class Setup:
    """What `run` needs for the downlink, prepared before the Agent exists."""

    def __init__(self, trusted, state_dir, config, board, boot_signals, scopes=None):
        self.trusted = trusted
        self.scopes = scopes or {}
        self.replay_rate = None  # repaired records/s (run --replay-rate); None: the core's gateway default
        self.state_dir = state_dir
        self.config = config
        self.board = board
        self.boot_signals = boot_signals
        self.restart_requested = False
        self.downlink = None

    def attach(self, agent):
        """Create the Downlink on ``agent``'s device and store, and have its
        uplink listen on the command topics."""
        from edge_agent.gateway.downlink import Downlink

        self.downlink = Downlink(agent.device, self.board.model, self.trusted, self.state_dir, self.config,
                                 agent.clock, agent._dispatch, request_restart=self._restart,
                                 acknowledge=lambda alert, who, now: _acknowledge(agent, alert, who, now),
                                 scopes=self.scopes)
        from edge_agent.core.repair import RATE_GATEWAY, ReplayService

        self.downlink.replays = ReplayService(agent.store, rate=self.replay_rate or RATE_GATEWAY)
        agent.uplink.replays = self.downlink.replays
        agent.uplink.listen(self.downlink.topics(), self.downlink.on_message, self.downlink.on_connect)
        for signal in self.boot_signals:
            agent._dispatch([agent.device.number(signal)])
        log.info("downlink: %d trusted operator%s (%s)", len(self.trusted), "" if len(self.trusted) == 1 else "s",
                 ", ".join(sorted(k.decode() for k in self.trusted)))
        return self.downlink

    def _restart(self):
        from edge_agent.gateway.downlink import _restart_self

        self.restart_requested = True
        _restart_self()

    def finish(self):
        """After the agent stopped: re-execute it if a config update asked."""
        if not self.restart_requested:
            return
        argv = [sys.executable] + sys.orig_argv[1:]
        log.warning("restarting: %s", " ".join(argv[1:3]))
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, argv)


def _acknowledge(agent, alert, who, now_ms):
    """Acknowledge ``alert`` (its seq, as text): the health engine hears it
    (Device.acknowledge_alert: a level shift takes its present level as the
    new baseline), and the console's list of recent alerts, if this agent
    serves a console, marks it as `ack` at the console does."""
    seq = alert_number(alert)
    consoles = [service.console for service in agent.services if hasattr(service, "console")]
    record = consoles[0].find_alert(seq) if consoles else None
    if consoles and record is None:
        raise KeyError("no recent alert #%d on this device" % seq)
    if record is not None:
        if record.acked_by is not None:
            return "acknowledged by %s" % record.acked_by, "acknowledged by %s" % record.acked_by
        record.acked_by, record.acked_ms = who, now_ms
    agent._dispatch(agent.device.acknowledge_alert(seq, now_ms, who))
    return "unacknowledged", "acknowledged by %s" % who


def setup(operators_path, state_dir, board_path, board, port_overrides):
    """A Setup, or None when ``operators_path`` is None (no --operators).
    Raises SetupError for a missing or bad trusted-operators file or unusable
    state in ``state_dir``."""
    if not operators_path:
        log.info("downlink off: no --operators file, so no operator is trusted and no command is taken")
        return None
    from edge_agent.core.board import BoardError
    from edge_agent.gateway.agent import now_ms
    from edge_agent.gateway.config_update import ConfigState
    from edge_agent.gateway.downlink import DownlinkError, load_counters
    from edge_agent.keys.operators import OperatorError, load_operators

    try:
        trusted, scopes = load_operators(operators_path)
    except OperatorError as exc:
        raise SetupError("--operators: %s" % exc) from None
    with open(board_path, "rb") as f:
        base = tomllib.load(f)  # load_board already validated it
    try:
        config = ConfigState(state_dir, base, board.source, port_overrides)
        load_counters(os.path.join(state_dir, "counters.cbor"))  # refuse to start on unreadable counters
        board, signals = config.boot(now_ms())
    except (DownlinkError, OSError, BoardError) as exc:
        raise SetupError("--state-dir %s: %s" % (state_dir, exc)) from None
    return Setup(trusted, state_dir, config, board, signals, scopes)
