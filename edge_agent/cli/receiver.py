"""`edge-agent receiver run` and `receiver report`: the reference receiver
(edge_agent/receiver/) from the command line; its operations commands and
options are receiver_ops.py's, its web view's receiver_web.py's."""

import asyncio
import logging
import os
import stat

from edge_agent.cli import receiver_ops, receiver_web
from edge_agent.cli.common import (EXIT_FAILED, EXIT_OK, UsageError, add_broker_options, broker_settings,
                                   load_registry, run_until_signalled)

log = logging.getLogger("edge_agent")


# What the receiver writes (the database, its WAL and shared memory, the
# operator's counters) is nobody else's to read: rejected payloads, every
# signal, signed advisories. Files it creates are 0600, directories 0700.
RUNTIME_UMASK = 0o077


def cmd_receiver_run(args):
    from rich.console import Console

    from edge_agent.receiver import display, fleet
    from edge_agent.receiver.service import Receiver
    from edge_agent.receiver.storage import is_postgres_url

    os.umask(RUNTIME_UMASK)
    settings = broker_settings(args)
    registry = load_registry(args.registry)
    if not is_postgres_url(args.db):
        _warn_if_readable(args.db)
    metrics_address = receiver_ops.metrics_address(args)
    storage = _open(args.db)
    try:
        fleet_watch = fleet.from_args(args, registry, storage)
        routing = receiver_ops.routing(args, storage, registry)
    except (ValueError, UsageError) as exc:
        storage.close()
        raise UsageError(str(exc)) from None
    receiver = Receiver(settings, registry, storage, group=args.group or None, client_id=args.client_id,
                        fleet=fleet_watch, routing=routing)
    console = Console()
    live = args.live if args.live is not None else console.is_terminal
    log.info("receiver: %d registered devices, database %s", len(registry.devices), storage.name)
    view = receiver_web.web_view(args) if args.http else None

    async def main():
        show = display.show_live(receiver, console) if live else display.log_summaries(receiver, console)
        await asyncio.gather(receiver.run(), show, *receiver_ops.tasks(receiver, routing, metrics_address),
                             *([view()] if view else []))

    try:
        asyncio.run(run_until_signalled(main()))
    except storage.FATAL_ERRORS as exc:
        # Nothing of the batch was acknowledged: the broker delivers it again.
        log.error("database %s failed: %s; stopping (unacknowledged messages stay with the broker)",
                  storage.name, " ".join(str(exc).split()))
        return EXIT_FAILED
    finally:
        storage.close()
    return EXIT_OK


def _open(db):
    """The storage for --db, or a UsageError saying what is wrong with it."""
    from edge_agent.receiver.storage import StorageError, open_storage

    try:
        return open_storage(db)
    except StorageError as exc:
        raise UsageError(str(exc)) from None


def _warn_if_readable(db):
    """A database made before the umask (or copied in) keeps its mode, and
    SQLite gives its WAL the same: say so, and how to fix it."""
    for path in (db, db + "-wal", db + "-shm", db + "-journal"):
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("%s is readable by group or others (mode %03o); run `chmod 600 %s*`",
                        path, stat.S_IMODE(mode), db)


# Columns for the report when stdout is not a terminal (COLUMNS overrides).
REPORT_WIDTH_OFF_TERMINAL = 1000


def cmd_receiver_report(args):
    from rich.console import Console

    from edge_agent.receiver import display

    storage = receiver_ops.open_existing(args.db)
    try:
        console = Console()
        if not console.is_terminal and "COLUMNS" not in os.environ:
            # A CI log or a file: rich would cut to 80 columns (device ids,
            # gap ranges); no terminal to fit, so tables take their own width.
            console = Console(width=REPORT_WIDTH_OFF_TERMINAL)
        console.print(display.report(storage))
        missing = sum(row[3] for row in storage.device_summary())
    finally:
        storage.close()
    return EXIT_FAILED if (args.fail_on_gaps and missing) else EXIT_OK


def add_fleet_options(parser):
    from edge_agent.receiver.fleet import DEFAULT_FRACTION, DEFAULT_K

    group = parser.add_argument_group(
        "fleet escalation (docs/fleet.md)",
        "K of a model's N devices reporting the same fault class within a window raise a fleet incident; "
        "with --operator, a signed advisory goes to every device of that model")
    group.add_argument("--fleet-k", type=int, default=DEFAULT_K, metavar="K",
                       help="devices that must report the same fault class (default %(default)s)")
    group.add_argument("--fleet-fraction", type=float, default=DEFAULT_FRACTION, metavar="F",
                       help="...and at least this share of the model's registered devices; the threshold is "
                            "max(K, ceil(F * N)) (default %(default)s)")
    group.add_argument("--fleet-window", default="10m", metavar="DURATION",
                       help="sliding window the reports must fall in, by device time (default %(default)s)")
    group.add_argument("--operator", metavar="DIR",
                       help="operator key that signs advisories (`edge-agent keys operator-init`); devices "
                            "trust it in their --operators file. Without it incidents are recorded, not advised")
    group.add_argument("--no-fleet", action="store_true", help="no fleet escalation")


def add_commands(sub):
    receiver = sub.add_parser("receiver", help="the reference receiver (cloud side)")
    receiver_sub = receiver.add_subparsers(dest="receiver_command", metavar="ACTION")
    receiver_sub.required = True
    receiver_run = receiver_sub.add_parser(
        "run", help="subscribe, verify, drop duplicates, report gaps, store in SQLite or PostgreSQL")
    receiver_run.add_argument("--registry", required=True, metavar="FILE", help="devices.toml: the devices' keys")
    receiver_run.add_argument("--db", default="receiver.sqlite", metavar="FILE|URL",
                              help="a SQLite file (created), or postgresql://user[:password]@host[:port]/database: "
                                   "several receivers may share one (docs/receiver.md)")
    receiver_run.add_argument("--group", default="edge-agent-receivers",
                              help="shared-subscription group: instances in one group split the fleet; '' for none")
    receiver_run.add_argument("--client-id", help="a stable MQTT client id keeps this instance's session (and its "
                              "undelivered messages) across restarts")
    receiver_run.add_argument("--live", action="store_true", default=None, help="live table (default on a terminal)")
    receiver_run.add_argument("--no-live", dest="live", action="store_false", help="summary lines instead")
    add_broker_options(receiver_run)
    add_fleet_options(receiver_run)
    receiver_ops.add_run_options(receiver_run)
    receiver_web.add_http_options(receiver_run, required=False)
    receiver_run.set_defaults(func=cmd_receiver_run)
    receiver_report = receiver_sub.add_parser("report", help="devices, gaps, alerts and rejections from the database")
    receiver_report.add_argument("--db", default="receiver.sqlite", metavar="FILE|URL")
    receiver_report.add_argument("--fail-on-gaps", action="store_true", help="exit 1 if any seq is missing")
    receiver_report.set_defaults(func=cmd_receiver_report)
    receiver_ops.add_commands(receiver_sub)
    receiver_web.add_commands(receiver_sub)
