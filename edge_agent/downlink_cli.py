"""Command-line wiring of the signed downlink.

Device side (`edge-agent run --operators FILE [--state-dir DIR]`): load the
trusted operators (no file, no downlink: there is no default trust), boot
the config (overlay, trial, rollback: config_update.py), attach a Downlink
to the agent, and re-execute the agent when a config update asks for a
restart.

Operator side (`edge-agent cmd send`): sign a command and publish it on the
target's command topic over TLS (QoS 1).
"""

import asyncio
import json
import logging
import os
import sys
import tomllib

from edge_agent.core import operator as op

log = logging.getLogger("edge_agent.downlink")

EXIT_OK = 0


def _usage(message):
    from edge_agent.cli import UsageError

    return UsageError(message)


def add_arguments(run):
    """`run` options for the downlink."""
    group = run.add_argument_group("signed downlink (docs/security.md)")
    group.add_argument("--operators", metavar="FILE",
                       help="trusted operators (TOML of public keys, from `keys operator-entry`): enables signed "
                            "commands on ea/v1/<device>/cmd; without it the agent takes no commands")
    group.add_argument("--state-dir", metavar="DIR",
                       help="command counters and remote config (default: IDENTITY/state)")


class Setup:
    """What `run` needs for the downlink, prepared before the Agent exists."""

    def __init__(self, trusted, state_dir, config, board, boot_signals):
        self.trusted = trusted
        self.state_dir = state_dir
        self.config = config
        self.board = board
        self.boot_signals = boot_signals
        self.restart_requested = False
        self.downlink = None

    def attach(self, agent):
        """Create the Downlink on ``agent``'s device and store, and have its
        uplink listen on the command topics."""
        from edge_agent.downlink import Downlink

        self.downlink = Downlink(agent.device, self.board.model, self.trusted, self.state_dir, self.config,
                                 agent.clock, agent._dispatch, request_restart=self._restart,
                                 acknowledge=lambda alert, who, now: _acknowledge(agent, alert, who, now))
        agent.uplink.listen(self.downlink.topics(), self.downlink.on_message, self.downlink.on_connect)
        for signal in self.boot_signals:
            agent._dispatch([agent.device.number(signal)])
        log.info("downlink: %d trusted operator%s (%s)", len(self.trusted), "" if len(self.trusted) == 1 else "s",
                 ", ".join(sorted(k.decode() for k in self.trusted)))
        return self.downlink

    def _restart(self):
        from edge_agent.downlink import _restart_self

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
    """Mark ``alert`` (its seq, as text) acknowledged in the console's list
    of recent alerts, as `ack` at the console does; without a console the
    ack is only recorded by its audit signal."""
    consoles = [service.console for service in agent.services if hasattr(service, "console")]
    if not consoles:
        return "unacknowledged", "acknowledged"
    try:
        seq = int(alert)
    except ValueError:
        raise ValueError("alert %r is not an alert number" % alert) from None
    record = consoles[0].find_alert(seq)
    if record is None:
        raise KeyError("no recent alert #%d on this device" % seq)
    if record.acked_by is not None:
        return "acknowledged by %s" % record.acked_by, "acknowledged by %s" % record.acked_by
    record.acked_by, record.acked_ms = who, now_ms
    return "unacknowledged", "acknowledged by %s" % who


def setup(args, board, identity, port_overrides):
    """A Setup, or None without --operators. Raises UsageError for a missing
    or bad trusted-operators file or unusable state."""
    if not args.operators:
        log.info("downlink off: no --operators file, so no operator is trusted and no command is taken")
        return None
    from edge_agent.config_update import ConfigState
    from edge_agent.core.board import BoardError
    from edge_agent.downlink import DownlinkError, load_counters
    from edge_agent.operator_keys import OperatorError, load_trusted

    try:
        trusted = load_trusted(args.operators)
    except OperatorError as exc:
        raise _usage("--operators: %s" % exc) from None
    state_dir = args.state_dir or os.path.join(args.identity, "state")
    with open(args.board, "rb") as f:
        base = tomllib.load(f)  # load_board already validated it
    try:
        config = ConfigState(state_dir, base, board.source, port_overrides)
        load_counters(os.path.join(state_dir, "counters.cbor"))  # refuse to start on unreadable counters
        from edge_agent.agent import now_ms

        board, signals = config.boot(now_ms())
    except (DownlinkError, OSError, BoardError) as exc:
        raise _usage("--state-dir %s: %s" % (state_dir, exc)) from None
    return Setup(trusted, state_dir, config, board, signals)


# --- operator side: edge-agent cmd send -------------------------------------

def _parse_args(values):
    """NAME=VALUE pairs; a VALUE starting with { or [ is JSON (config patches)."""
    args = {}
    for item in values or []:
        if "=" not in item:
            raise _usage("argument %r: write NAME=VALUE, e.g. component=cabinet_fan" % item)
        name, value = item.split("=", 1)
        if value[:1] in ("{", "["):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise _usage("argument %s: not valid JSON (%s)" % (name, exc)) from None
        args[name] = value
    return args


def cmd_send(args):
    from edge_agent.cli import broker_settings
    from edge_agent.operator_cli import _load_operator, device_secret_for, model_boards
    from edge_agent.operator_keys import OperatorError, parse_duration

    operator = _load_operator(args.operator)
    if bool(args.device) == bool(args.model):
        raise _usage("give one of --device ID or --model MODEL")
    target = args.device or op.model_target(args.model)
    command_args = _parse_args(args.args)
    if args.patch:
        try:
            with open(args.patch) as f:
                command_args["patch"] = json.load(f)
        except (OSError, ValueError) as exc:
            raise _usage("--patch %s: %s" % (args.patch, exc)) from None
    counter = args.counter if args.counter is not None else operator.next_counter(target)
    boards = model_boards(args.registry, args.model) if args.model else {}
    if args.model and args.registry is None:
        print("note: without --registry, the model's boards (HMAC devices) are not reached: they take model "
              "commands on their own topic, MACed with their own secret", file=sys.stderr)
    secret = device_secret_for(args.registry, args.device) if args.device else None
    try:
        sign = (lambda device_secret: operator.command(target, args.name, command_args, counter,
                                                       parse_duration(args.ttl), device_secret=device_secret))
        messages = [(op.topic_for_target(target), sign(secret))]
        # One Ed25519 message on the model's topic serves its gateways; a
        # board checks only a Mac0 under its own secret, on its own topic.
        messages += [(op.command_topic(device_id), sign(boards[device_id])) for device_id in sorted(boards)]
    except OperatorError as exc:
        raise _usage(str(exc)) from None
    settings = broker_settings(args)
    # Recorded before sending: a counter is never used twice, even if the
    # publish fails (a skipped counter is harmless, a reused one refused).
    operator.record_counter(target, counter)
    asyncio.run(_publish(settings, messages))
    print("sent %s #%d to %s on %s" % (args.name, counter, target, messages[0][0]))
    if boards:
        print("  and to %d board(s) of the model on their own topics: %s" % (len(boards), ", ".join(sorted(boards))))
    return EXIT_OK


async def _publish(settings, messages):
    import aiomqtt

    try:
        async with aiomqtt.Client(settings.host, settings.port, tls_context=settings.tls_context,
                                  timeout=20) as client:
            await asyncio.gather(*(client.publish(topic, message, qos=1) for topic, message in messages))
    except aiomqtt.MqttError as exc:
        raise _usage("broker %s: %s" % (settings.describe(), exc)) from None


def add_commands(sub):
    """`edge-agent cmd send`."""
    from edge_agent.cli import add_broker_options

    cmd = sub.add_parser("cmd", help="signed commands to devices (operator side)")
    cmd_sub = cmd.add_subparsers(dest="cmd_command", metavar="ACTION")
    cmd_sub.required = True
    send = cmd_sub.add_parser("send", help="sign a command and publish it to a device or a model",
                              description="Commands: %s. Arguments as NAME=VALUE, e.g. "
                              "`quarantine.release component=cabinet_fan`." % ", ".join(sorted(op.COMMANDS)))
    send.add_argument("--operator", required=True, metavar="DIR", help="operator directory (keys operator-init)")
    send.add_argument("--device", metavar="ID", help="target device")
    send.add_argument("--model", metavar="MODEL", help="target every device of a model")
    send.add_argument("name", metavar="NAME", help="command name: %s" % ", ".join(sorted(op.COMMANDS)))
    send.add_argument("args", nargs="*", metavar="ARG=VALUE", help="command arguments")
    send.add_argument("--patch", metavar="JSON_FILE", help="config.update/advisory: the patch, a JSON file")
    send.add_argument("--counter", type=int, metavar="N",
                      help="command counter (default: one more than the last sent to this target, kept in DIR)")
    send.add_argument("--ttl", default="10m", help="expiry after signing, e.g. 10m, 2h (default 10m)")
    send.add_argument("--registry", metavar="FILE",
                      help="devices.toml: for an HMAC device, MAC the command with its secret; with --model, "
                           "also send each of the model's HMAC devices (boards) its own copy on its topic")
    add_broker_options(send)
    send.set_defaults(func=cmd_send)
