"""The `edge-agent` command line."""

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys

from edge_agent import __version__

log = logging.getLogger("edge_agent")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """Bad command-line input: printed as 'edge-agent: error: ...', exit 2."""


def parse_broker(text, tls):
    """'HOST:PORT', 'HOST' or '[v6]:PORT' -> (host, port). The default port
    is 8883 with TLS and 1883 without (the IANA MQTT ports)."""
    default_port = 8883 if tls else 1883
    host, port = text, None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise UsageError("--broker %r: missing ']' after the IPv6 address" % text)
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise UsageError("--broker %r: expected ':PORT' after ']'" % text)
            port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not host:
        raise UsageError("--broker %r: no host; write HOST:PORT, e.g. 127.0.0.1:8883" % text)
    if port is None:
        return host, default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError("--broker %r: port must be a number 1-65535" % text)
    return host, int(port)


def default_device_id():
    name = socket.gethostname().split(".")[0]
    cleaned = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name)
    return cleaned[:64] or "device"


def add_broker_options(parser):
    group = parser.add_argument_group("broker connection (TLS unless --insecure)")
    group.add_argument("--broker", required=True, metavar="HOST:PORT", help="MQTT broker address")
    group.add_argument("--ca", metavar="PEM", help="CA certificate that signed the broker's certificate")
    group.add_argument("--cert", metavar="PEM", help="client certificate, for mutual TLS")
    group.add_argument("--key", metavar="PEM", help="client private key, for mutual TLS")
    group.add_argument(
        "--insecure",
        action="store_true",
        help="plaintext MQTT with no broker authentication: for a local test broker only",
    )
    group.add_argument("--keepalive", type=int, default=30, metavar="S",
                       help="MQTT keepalive: a silent link is declared dead after 1.5x this (default %(default)s)")


def broker_settings(args):
    from edge_agent.tls import TLSConfigError, client_context
    from edge_agent.uplink import BrokerSettings

    host, port = parse_broker(args.broker, tls=not args.insecure)
    if args.insecure:
        if args.ca or args.cert or args.key:
            raise UsageError("--insecure turns TLS off: drop --ca/--cert/--key, or drop --insecure")
        log.warning("--insecure: plaintext MQTT to %s:%d; signals and credentials cross the network unprotected", host, port)
        return BrokerSettings(host, port, None, keepalive_s=args.keepalive)
    if not args.ca:
        raise UsageError("TLS needs --ca PEM (the CA that signed the broker's certificate); for a local test broker use --insecure")
    try:
        return BrokerSettings(host, port, client_context(args.ca, args.cert, args.key), keepalive_s=args.keepalive)
    except TLSConfigError as exc:
        raise UsageError(str(exc)) from None


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


def _load_board(path):
    from edge_agent.boardfile import load_board
    from edge_agent.core.board import BoardError

    try:
        return load_board(path)
    except BoardError as exc:
        raise UsageError(str(exc)) from None


async def _run_until_signalled(coroutine):
    """Run ``coroutine`` until it ends or SIGINT/SIGTERM arrives."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(coroutine)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        log.info("stopping on signal")
        return None


def _load_identity(directory):
    from edge_agent.identity import IdentityError, load_identity

    try:
        return load_identity(directory)
    except IdentityError as exc:
        raise UsageError("--identity: %s" % exc) from None


def _open_gpio(choice, board):
    """The output-line backend for --gpio (auto: gpiod when the board
    declares outputs, none otherwise)."""
    outputs = getattr(board, "outputs", None) or {}
    if choice == "none" or (choice == "auto" and not outputs):
        if outputs:
            log.warning("--gpio none: %d outputs of %s are not driven (quarantine power cuts only logged)",
                        len(outputs), board.source)
        return None
    if choice == "simulated":
        from simulator.gpio import SimulatedGpio

        log.info("gpio: simulated lines for %s", ", ".join(sorted(outputs)))
        return SimulatedGpio(outputs)
    from edge_agent.gpio import GpioError, GpiodOutputs

    try:
        return GpiodOutputs(outputs)
    except GpioError as exc:
        raise UsageError("--gpio %s: %s (use --gpio simulated to develop without GPIO hardware)" % (choice, exc)) from None


def cmd_run(args):
    from edge_agent.agent import Agent

    board = _load_board(args.board)
    identity = _load_identity(args.identity)
    device_id = identity.device_id
    overrides = parse_port_overrides(args.port, board)
    settings = broker_settings(args)
    from edge_agent.core.store import StoreError
    from edge_agent.store_cli import store_options

    store_dir = args.store_dir or os.path.join(args.identity, "store")
    from edge_agent import downlink_cli

    secure = downlink_cli.setup(args, board, identity, overrides)  # None without --operators
    board = secure.board if secure is not None else board  # with a remote config overlay
    gpio = _open_gpio(args.gpio, board)
    try:
        agent = Agent(
            board,
            identity,
            settings,
            store_dir,
            port_overrides=overrides,
            store_options=dict(store_options(args), segment_bytes=args.store_segment_bytes),
            drain_rate=args.drain_rate,
            gpio=gpio,
            telemetry_interval_ms=args.telemetry_interval_ms,
            downlink=secure,
        )
    except StoreError as exc:
        raise UsageError("--store-dir %s: %s" % (store_dir, exc)) from None
    from edge_agent import console_server

    try:
        console_server.attach(agent, args)  # --console / --console-socket
    except console_server.ConsoleConfigError as exc:
        raise UsageError(str(exc)) from None
    log.info(
        "edge-agent %s: device %s (%s signatures), board %s (%s), %d sensors on %d buses, broker %s",
        __version__, device_id, identity.algorithm, board.name, board.source, len(board.sensors), len(board.buses),
        settings.describe(),
    )
    asyncio.run(_run_until_signalled(agent.run()))
    if secure is not None:
        secure.finish()  # re-executes the agent if a config update asked
    return EXIT_OK


def cmd_board_check(args):
    from edge_agent.boardfile import load_board
    from edge_agent.core.board import BoardError

    failed = 0
    for path in args.files:
        try:
            board = load_board(path)
        except BoardError as exc:
            print(exc, file=sys.stderr)
            failed += 1
            continue
        essential = sorted(c.id for c in board.components.values() if c.essential)
        print(
            "%s: ok - board %s (model %s): %d buses, %d components (essential: %s), %d sensors"
            % (path, board.name, board.model, len(board.buses), len(board.components),
               ", ".join(essential) or "none", len(board.sensors))
        )
    return EXIT_FAILED if failed else EXIT_OK


def _load_registry(path):
    from edge_agent.registry import Registry, RegistryError

    try:
        return Registry.load(path)
    except RegistryError as exc:
        raise UsageError("--registry: %s" % exc) from None


def cmd_watch(args):
    from edge_agent.watch import Watcher

    settings = broker_settings(args)
    registry = _load_registry(args.registry) if args.registry else None
    watcher = Watcher(settings, device=args.device, kinds=args.kind or ["alert"], registry=registry)
    received = asyncio.run(_run_until_signalled(watcher.run(count=args.count, timeout_s=args.timeout)))
    if args.count is not None and (received or 0) < args.count:
        print("edge-agent watch: %d of %d signals before the timeout" % (received or 0, args.count), file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_keys_init(args):
    from edge_agent.identity import HMAC256, EDDSA, IdentityError, create_identity

    try:
        identity = create_identity(args.dir, args.device_id or default_device_id(), HMAC256 if args.hmac else EDDSA)
    except IdentityError as exc:
        raise UsageError(str(exc)) from None
    print("created %s identity for device %s in %s (private key mode 0600, never printed)"
          % (identity.algorithm, identity.device_id, args.dir))
    print("register it with the receiver: edge-agent keys registry-entry %s >> devices.toml" % args.dir)
    return EXIT_OK


def cmd_keys_registry_entry(args):
    from edge_agent.identity import IdentityError

    identity = _load_identity(args.dir)
    try:
        sys.stdout.write(identity.registry_entry(model=args.model, include_secret=args.include_secret))
    except IdentityError as exc:
        raise UsageError(str(exc)) from None
    return EXIT_OK


def cmd_keys_show(args):
    identity = _load_identity(args.dir)
    print("device_id  %s" % identity.device_id)
    print("algorithm  %s" % identity.algorithm)
    if identity.algorithm == "EdDSA":
        print("public_key %s" % identity.public_key_hex())
    return EXIT_OK


def cmd_receiver_run(args):
    from rich.console import Console

    from edge_agent.receiver import display
    from edge_agent.receiver.service import Receiver
    from edge_agent.receiver.storage import Storage

    settings = broker_settings(args)
    registry = _load_registry(args.registry)
    storage = Storage(args.db)
    from edge_agent.receiver import fleet

    try:
        fleet_watch = fleet.from_args(args, registry, storage)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    receiver = Receiver(settings, registry, storage, group=args.group or None, client_id=args.client_id,
                        fleet=fleet_watch)
    console = Console()
    live = args.live if args.live is not None else console.is_terminal
    log.info("receiver: %d registered devices, database %s", len(registry.devices), args.db)

    async def main():
        show = display.show_live(receiver, console) if live else display.log_summaries(receiver, console)
        await asyncio.gather(receiver.run(), show)

    try:
        asyncio.run(_run_until_signalled(main()))
    finally:
        storage.close()
    return EXIT_OK


def cmd_receiver_report(args):
    import os

    from rich.console import Console

    from edge_agent.receiver import display
    from edge_agent.receiver.storage import Storage

    if not os.path.exists(args.db):
        raise UsageError("--db %s: no such database; the receiver creates it on its first run" % args.db)
    storage = Storage(args.db)
    try:
        Console().print(display.report(storage))
        missing = sum(row[3] for row in storage.device_summary())
    finally:
        storage.close()
    return EXIT_FAILED if (args.fail_on_gaps and missing) else EXIT_OK


def cmd_sim_sensors(args):
    from simulator import sensor_board

    return sensor_board.main_from_args(args)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="edge-agent",
        description="Agent for connected products: reads sensors, quarantines failing parts, "
        "buffers signals offline and forwards alerts over MQTT.",
    )
    parser.add_argument("--version", action="version", version="edge-agent " + __version__)
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    run = sub.add_parser("run", help="run the agent on this gateway")
    run.add_argument("--board", required=True, metavar="FILE", help="board file (TOML), e.g. boards/demo-gateway.toml")
    run.add_argument("--identity", required=True, metavar="DIR",
                     help="this device's identity (id and signing key), made by `edge-agent keys init`; "
                     "its store defaults to DIR/store")
    run.add_argument("--port", action="append", metavar="[BUS=]PATH", help="override a bus's serial port (repeatable)")
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
    add_broker_options(run)
    from edge_agent import console_server

    console_server.add_arguments(run)
    from edge_agent import store_cli

    store_group = store_cli.add_store_options(run)
    store_group.add_argument(
        "--store-segment-bytes", type=int, default=1024 * 1024, metavar="N",
        help="segment file size; eviction frees whole segments, so smaller segments evict finer "
             "(default %(default)s; use a few flash pages on small devices)",
    )
    from edge_agent import downlink_cli

    downlink_cli.add_arguments(run)  # --operators, --state-dir
    run.set_defaults(func=cmd_run)

    board = sub.add_parser("board", help="work with board files")
    board_sub = board.add_subparsers(dest="board_command", metavar="ACTION")
    board_sub.required = True
    check = board_sub.add_parser("check", help="validate board files and list every problem")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.set_defaults(func=cmd_board_check)

    watch = sub.add_parser("watch", help="subscribe and print devices' signals, decoded")
    watch.add_argument("--device", default="+", help="device id to watch (default: all)")
    watch.add_argument(
        "--kind", action="append", choices=["alert", "telemetry", "state", "audit", "birth", "death", "evictions"],
        help="signal kind (repeatable; default: alert)",
    )
    watch.add_argument("--registry", metavar="FILE",
                       help="devices.toml: verify every signature (without it, signals are shown unverified)")
    watch.add_argument("--count", type=int, metavar="N", help="exit after N signals (exit 1 if fewer arrive)")
    watch.add_argument("--timeout", type=float, metavar="S", help="exit after S seconds")
    add_broker_options(watch)
    watch.set_defaults(func=cmd_watch)

    keys = sub.add_parser("keys", help="device identities and signing keys")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION")
    keys_sub.required = True
    init = keys_sub.add_parser("init", help="create a device identity (Ed25519, or HMAC-SHA256 for small boards)")
    init.add_argument("--dir", required=True, help="directory to create (private key written mode 0600)")
    init.add_argument("--device-id", default=None, help="the device id (default: the host name)")
    init.add_argument("--hmac", action="store_true", help="HMAC-SHA256 shared secret instead of Ed25519")
    init.set_defaults(func=cmd_keys_init)
    entry = keys_sub.add_parser("registry-entry", help="print the receiver's devices.toml block for an identity")
    entry.add_argument("dir")
    entry.add_argument("--model", help="product model, for fleet-wide advisories")
    entry.add_argument("--include-secret", action="store_true",
                       help="HMAC identities only: print the shared secret (the receiver needs it)")
    entry.set_defaults(func=cmd_keys_registry_entry)
    show = keys_sub.add_parser("show", help="show an identity's device id, algorithm and public key")
    show.add_argument("dir")
    show.set_defaults(func=cmd_keys_show)
    from edge_agent import operator_cli

    operator_cli.add_commands(keys_sub)  # operator keys and technician tokens

    receiver = sub.add_parser("receiver", help="the reference receiver (cloud side)")
    receiver_sub = receiver.add_subparsers(dest="receiver_command", metavar="ACTION")
    receiver_sub.required = True
    receiver_run = receiver_sub.add_parser(
        "run", help="subscribe, verify, drop duplicates, report gaps, store in SQLite")
    receiver_run.add_argument("--registry", required=True, metavar="FILE", help="devices.toml: the devices' keys")
    receiver_run.add_argument("--db", default="receiver.sqlite", metavar="FILE", help="SQLite database (created)")
    receiver_run.add_argument("--group", default="edge-agent-receivers",
                              help="shared-subscription group: instances in one group split the fleet; '' for none")
    receiver_run.add_argument("--client-id", help="a stable MQTT client id keeps this instance's session (and its "
                              "undelivered messages) across restarts")
    receiver_run.add_argument("--live", action="store_true", default=None, help="live table (default on a terminal)")
    receiver_run.add_argument("--no-live", dest="live", action="store_false", help="summary lines instead")
    add_broker_options(receiver_run)
    from edge_agent.receiver import fleet

    fleet.add_arguments(receiver_run)
    receiver_run.set_defaults(func=cmd_receiver_run)
    receiver_report = receiver_sub.add_parser("report", help="devices, gaps, alerts and rejections from the database")
    receiver_report.add_argument("--db", default="receiver.sqlite", metavar="FILE")
    receiver_report.add_argument("--fail-on-gaps", action="store_true", help="exit 1 if any seq is missing")
    receiver_report.set_defaults(func=cmd_receiver_report)

    sim = sub.add_parser("sim", help="hardware simulator")
    sim_sub = sim.add_subparsers(dest="sim_command", metavar="ACTION")
    sim_sub.required = True
    from simulator import sensor_board

    sensor_board.add_arguments(sim_sub.add_parser("sensors", help=sensor_board.HELP, description=sensor_board.DESCRIPTION))
    sim_sub.choices["sensors"].set_defaults(func=cmd_sim_sensors)
    from simulator import scenario

    scenario.add_commands(sim_sub)  # `sim run`: scenario files on a virtual clock
    from simulator import fleet

    fleet.add_commands(sim_sub)  # `sim fleet`: N devices against mosquitto and the receiver

    store_cli.add_commands(sub)
    from edge_agent import console_client

    console = sub.add_parser("console", help="the technician console of a device (serial port or agent socket)",
                             description=console_client.__doc__.split("\n\n")[1])
    console_client.add_arguments(console)
    console.set_defaults(func=console_client.run)
    downlink_cli.add_commands(sub)  # `cmd send`: signed commands
    from edge_agent import firmware_build

    firmware = sub.add_parser("firmware", help="build, configure and flash the ESP32 firmware (docs/firmware.md)")
    firmware_build.add_arguments(firmware)
    firmware.set_defaults(func=firmware_build.run)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return args.func(args)
    except UsageError as exc:
        parser.exit(EXIT_USAGE, "edge-agent: error: %s\n" % exc)
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
