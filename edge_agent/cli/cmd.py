"""`edge-agent cmd send`: the operator side of the signed downlink. Sign a
command and publish it on the target's command topic over TLS (QoS 1).
The device side (`run --operators`) is edge_agent/gateway/downlink_setup.py.
"""

import asyncio
import json
import sys

from edge_agent.cli.common import EXIT_OK, UsageError, add_broker_options, broker_settings
from edge_agent.cli.keys import device_secret_for, load_operator, model_boards
from edge_agent.core import operator as op

def _parse_args(values):
    """NAME=VALUE pairs; a VALUE starting with { or [ is JSON (config patches)."""
    args = {}
    for item in values or []:
        if "=" not in item:
            raise UsageError("argument %r: write NAME=VALUE, e.g. component=cabinet_fan" % item)
        name, value = item.split("=", 1)
        if value[:1] in ("{", "["):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise UsageError("argument %s: not valid JSON (%s)" % (name, exc)) from None
        args[name] = value
    return args


def cmd_send(args):
    from edge_agent.keys.operators import OperatorError, parse_duration

    operator = load_operator(args.operator)
    if bool(args.device) == bool(args.model):
        raise UsageError("give one of --device ID or --model MODEL")
    target = args.device or op.model_target(args.model)
    command_args = _parse_args(args.args)
    if args.patch:
        try:
            with open(args.patch) as f:
                command_args["patch"] = json.load(f)
        except (OSError, ValueError) as exc:
            raise UsageError("--patch %s: %s" % (args.patch, exc)) from None
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
        raise UsageError(str(exc)) from None
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
        raise UsageError("broker %s: %s" % (settings.describe(), exc)) from None


def add_commands(sub):
    """`edge-agent cmd send`."""
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
