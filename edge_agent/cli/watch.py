"""`edge-agent watch`: devices' signals from the broker, decoded and (with
--registry) verified, live. The watcher is edge_agent/receiver/watch.py."""

import asyncio
import sys

from edge_agent.cli.common import EXIT_FAILED, EXIT_OK, add_broker_options, broker_settings, load_registry, \
    run_until_signalled


def cmd_watch(args):
    from edge_agent.receiver.watch import Watcher

    settings = broker_settings(args)
    registry = load_registry(args.registry) if args.registry else None
    watcher = Watcher(settings, device=args.device, kinds=args.kind or ["alert"], registry=registry)
    received = asyncio.run(run_until_signalled(watcher.run(count=args.count, timeout_s=args.timeout)))
    if args.count is not None and (received or 0) < args.count:
        print("edge-agent watch: %d of %d signals before the timeout" % (received or 0, args.count), file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def add_commands(sub):
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
