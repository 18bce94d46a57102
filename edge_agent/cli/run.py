"""`edge-agent run`: the agent on this gateway. Its options (board, identity,
ports, GPIO, broker, console, store, signed downlink) are all here, and
each has a key in agent.toml (`--config FILE`, edge_agent/deploy/config.py;
the command line overrides the file); the wiring of core and adapters is
edge_agent/gateway/agent.py."""

import argparse
import asyncio
import logging
import os

from edge_agent import __version__
from edge_agent.cli import store as store_cli
from edge_agent.cli.common import (EXIT_OK, UsageError, add_broker_options, broker_settings, load_board,
                                   load_identity, run_until_signalled)

log = logging.getLogger("edge_agent")


def parse_port_overrides(values, board):
    """--port PATH (the board's only bus) or --port BUS=PATH, repeatable."""
    overrides = {}
    for value in values or []:
        if "=" in value:
            bus, path = value.split("=", 1)
        elif len(board.buses) == 1:
            bus, path = next(iter(board.buses)), value
        else:
            raise UsageError("--port %s: the board has several buses (%s); write --port BUS=PATH" % (value, ", ".join(sorted(board.buses))))
        if bus not in board.buses:
            raise UsageError("--port %s: no bus %r in %s (buses: %s)" % (value, bus, board.source, ", ".join(sorted(board.buses))))
        overrides[bus] = path
    return overrides


def open_gpio(choice, board):
    """The output-line backend for --gpio (auto: gpiod when the board
    declares outputs, none otherwise)."""
    outputs = getattr(board, "outputs", None) or {}
    if choice == "none" or (choice == "auto" and not outputs):
        if outputs:
            log.warning("--gpio none: %d outputs of %s are not driven (quarantine power cuts only logged)",
                        len(outputs), board.source)
        return None
    from edge_agent.gateway.gpio import GpioError, GpiodOutputs, SimulatedGpio

    if choice == "simulated":
        log.info("gpio: simulated lines for %s", ", ".join(sorted(outputs)))
        return SimulatedGpio(outputs)
    try:
        return GpiodOutputs(outputs)
    except GpioError as exc:
        raise UsageError("--gpio %s: %s (use --gpio simulated to develop without GPIO hardware)" % (choice, exc)) from None


# What the agent writes (store segments and markers, state, counters) is
# its owner's alone: files 0600, new directories 0700, whatever umask it
# was started with (a shell's 022 made segments 0644). docs/store.md.
RUN_UMASK = 0o077


class RepeatableOverride(argparse.Action):
    """A repeatable option (--port, --console) whose values on the command
    line replace the config file's list instead of adding to it."""

    def __call__(self, parser, namespace, values, option_string=None):
        flag = "_given_" + self.dest
        current = getattr(namespace, self.dest) if getattr(namespace, flag, False) else []
        setattr(namespace, flag, True)
        setattr(namespace, self.dest, list(current or []) + [values])


# The run subparser, for with_config to set the file's values as its defaults.
_PARSERS = {}
# Required, from the command line or the config file: option -> config key.
REQUIRED = (("board", "--board FILE", "agent.board"), ("identity", "--identity DIR", "agent.identity"),
            ("broker", "--broker HOST:PORT", "broker.address"))


def with_config(parser, argv, args):
    """Parse again with agent.toml's values as defaults (main calls this)."""
    if not args.config:
        return args
    from edge_agent.deploy.config import ConfigError, load_config

    try:
        values = load_config(args.config)
    except ConfigError as exc:
        raise UsageError("--config %s" % exc) from None
    level = values.pop("log_level", None)
    if level is not None:
        parser.set_defaults(log_level=level)
    _PARSERS["run"].set_defaults(**values)
    return parser.parse_args(argv)


def _metrics_address(text):
    from edge_agent.metrics_endpoint import parse_address

    try:
        return parse_address(text) if text else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def cmd_run(args):
    from edge_agent.core.store import StoreError
    from edge_agent.gateway import console_server
    from edge_agent.gateway.agent import Agent
    from edge_agent.gateway.downlink_setup import SetupError, setup

    for dest, option, key in REQUIRED:
        if getattr(args, dest) is None:
            where = (" or %s in %s" % (key, args.config)) if args.config else (" (or %s in --config FILE)" % key)
            raise UsageError("no %s: give %s%s" % (dest, option, where))
    metrics_address = _metrics_address(args.metrics)
    os.umask(RUN_UMASK)  # before anything is created; a restart on a new config (exec) keeps it
    board = load_board(args.board)
    identity = load_identity(args.identity)
    device_id = identity.device_id
    overrides = parse_port_overrides(args.port, board)
    settings = broker_settings(args)
    store_dir = args.store_dir or os.path.join(args.identity, "store")
    state_dir = args.state_dir or os.path.join(args.identity, "state")
    try:
        secure = setup(args.operators, state_dir, args.board, board, overrides)  # None without --operators
    except SetupError as exc:
        raise UsageError(str(exc)) from None
    board = secure.board if secure is not None else board  # with a remote config overlay
    if secure is not None:
        secure.replay_rate = args.replay_rate
    gpio = open_gpio(args.gpio, board)
    try:
        agent = Agent(
            board,
            identity,
            settings,
            store_dir,
            port_overrides=overrides,
            store_options=dict(store_cli.store_options(args), segment_bytes=args.store_segment_bytes),
            drain_rate=args.drain_rate,
            gpio=gpio,
            telemetry_interval_ms=args.telemetry_interval_ms,
            downlink=secure,
        )
    except StoreError as exc:
        raise UsageError("--store-dir %s: %s" % (store_dir, exc)) from None
    try:
        console_server.attach(agent, args.console, args.console_socket, args.console_idle)
    except console_server.ConsoleConfigError as exc:
        raise UsageError(str(exc)) from None
    if args.metrics:
        from edge_agent.gateway import metrics

        metrics.attach(agent, metrics_address)
    from edge_agent.deploy import service

    service.attach(agent)  # READY, STATUS and watchdog pings under systemd ($NOTIFY_SOCKET)
    log.info(
        "edge-agent %s: device %s (%s signatures), board %s (%s), %d sensors on %d buses, broker %s",
        __version__, device_id, identity.algorithm, board.name, board.source, len(board.sensors), len(board.buses),
        settings.describe(),
    )
    asyncio.run(run_until_signalled(agent.run()))
    if secure is not None:
        secure.finish()  # re-executes the agent if a config update asked
    return EXIT_OK


def add_commands(sub):
    run = sub.add_parser(
        "run", help="run the agent on this gateway",
        description="Run the agent. Every option has a key in the config file (--config, docs/deploy.md); "
        "options given here override the file's values.")
    _PARSERS["run"] = run
    run.add_argument("--config", metavar="FILE",
                     help="agent.toml with the options below as keys (e.g. /etc/edge-agent/agent.toml; "
                          "check it with `edge-agent config check FILE`)")
    run.add_argument("--board", metavar="FILE", help="board file (TOML), e.g. boards/demo-gateway.toml (required)")
    run.add_argument("--identity", metavar="DIR",
                     help="this device's identity (id and signing key), made by `edge-agent keys init`; "
                     "its store defaults to DIR/store (required)")
    run.add_argument("--port", action=RepeatableOverride, metavar="[BUS=]PATH",
                     help="override a bus's serial port (repeatable)")
    run.add_argument(
        "--telemetry-interval-ms", type=int, default=10000, metavar="MS",
        help="send buffered readings at least this often (default 10000)",
    )
    run.add_argument(
        "--gpio", choices=["auto", "gpiod", "simulated", "none"], default="auto",
        help="output lines for quarantine actions: gpiod (libgpiod v2), simulated, or none "
             "(default auto: gpiod when the board declares outputs)",
    )
    run.add_argument(
        "--drain-rate", type=float, metavar="N",
        help="after an outage, send the backlog at most N signals/s (alerts are never held back; default: no limit)",
    )
    add_broker_options(run, required=False)
    console = run.add_argument_group("technician console (docs/console.md)")
    console.add_argument("--console", action=RepeatableOverride, default=[], metavar="PORT",
                         help="serve the console on this serial port (repeatable; 115200 8N1)")
    console.add_argument("--console-socket", metavar="PATH",
                         help="serve the console on a local Unix socket (mode 0600, several sessions)")
    console.add_argument("--console-idle", type=float, default=900.0, metavar="SECONDS",
                         help="log a technician out after this long without a key (default %(default)g: 15 min)")
    run.add_argument("--metrics", metavar="[HOST:]PORT",
                     help="serve Prometheus metrics at http://HOST:PORT/metrics: store, uplink, bad frames, "
                          "component states (a bare port binds 127.0.0.1; docs/operator-view.md)")
    store_group = store_cli.add_store_options(run)
    store_group.add_argument(
        "--store-segment-bytes", type=int, default=1024 * 1024, metavar="N",
        help="segment file size; eviction frees whole segments, so smaller segments evict finer "
             "(default %(default)s; use a few flash pages on small devices)",
    )
    downlink = run.add_argument_group("signed downlink (docs/security.md)")
    downlink.add_argument("--operators", metavar="FILE",
                          help="trusted operators (TOML of public keys, from `keys operator-entry`): enables signed "
                               "commands on ea/v1/<device>/cmd; without it the agent takes no commands")
    downlink.add_argument("--state-dir", metavar="DIR",
                          help="command counters and remote config (default: IDENTITY/state)")
    downlink.add_argument("--replay-rate", type=float, metavar="N",
                          help="gap repair: republish at most N signals/s a receiver asked for again (signed "
                               "replay commands from an operator with the replay scope; default 200), only while "
                               "no alert waits")
    run.set_defaults(func=cmd_run, with_config=with_config)
