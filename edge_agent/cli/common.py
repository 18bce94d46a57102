"""What every `edge-agent` command shares: exit codes, the usage error, the
broker connection options, and loading the files commands take (board,
identity, registry) with errors that say which option and how to fix it."""

import asyncio
import logging
import signal

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


def add_broker_options(parser, required=True):
    """``required`` False: a config file may give the broker instead
    (`run --config`); the command checks it is given somewhere."""
    group = parser.add_argument_group("broker connection (TLS unless --insecure)")
    group.add_argument("--broker", required=required, metavar="HOST:PORT", help="MQTT broker address")
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
    """BrokerSettings from add_broker_options's options."""
    from edge_agent.broker import BrokerSettings, TLSConfigError, client_context

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


def load_board(path):
    from edge_agent.boardfile import load_board as load
    from edge_agent.core.board import BoardError

    try:
        return load(path)
    except BoardError as exc:
        raise UsageError(str(exc)) from None


def load_identity(directory):
    from edge_agent.keys.identity import IdentityError, load_identity as load

    try:
        return load(directory)
    except IdentityError as exc:
        raise UsageError("--identity: %s" % exc) from None


def load_registry(path, option="--registry"):
    from edge_agent.receiver.registry import Registry, RegistryError

    try:
        return Registry.load(path)
    except RegistryError as exc:
        raise UsageError("%s: %s" % (option, exc)) from None


async def run_until_signalled(coroutine):
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
