"""`edge-agent store inspect DIR` and `edge-agent store verify DIR`.

edge_agent/cli/main.py wires these in with ``add_commands(subparsers)``;
``python -m edge_agent.cli.store`` runs them standalone. Both only read:
they never repair, so they are safe on the directory of a running agent
(its active segments then show as unsealed, which is normal).

``add_store_options(parser)`` and ``store_options(args)`` give the agent's
run command the store's settings, with the durability bound in --help.
"""

import argparse
import datetime
import os
import sys

from rich.console import Console
from rich.table import Table

from edge_agent.core import cbor
from edge_agent.core import store as st
from edge_agent.core import store_format as fmt
from edge_agent.core import store_recovery as recovery
from edge_agent.gateway.store_posix import PosixDir

EXIT_OK = 0
EXIT_CORRUPT = 1
EXIT_USAGE = 2

LANE_NAMES = {0: "critical", 1: "high", 2: "normal", 3: "telemetry"}

DURABILITY = (
    "Durability bound: appended signals are fsynced every --sync-every records "
    "(default %d) or --sync-ms ms after the first unsynced one (default %d), "
    "whichever comes first, and at once for urgent alerts; a power cut loses "
    "at most the signals of that window, a crash of the agent process none "
    "(each append reaches the OS at once). Acknowledgements follow the same "
    "bound (a lost ack means a resend, never a loss)." % (st.DEFAULT_SYNC_EVERY, st.DEFAULT_SYNC_MS)
)


# The gateway's replay window: 16 MiB, half the default 32 MiB store (it
# gives way to new records first, so it never costs the backlog room),
# holds ~30 hours of the demo board's signals (bench/bench_window.py: 12.3
# MiB a day, docs/benchmarks.md): a receiver down for a day can still be
# repaired. 48 hours bounds what a device keeps of signals it delivered.
WINDOW_BYTES = 16 * 1024 * 1024
WINDOW_HOURS = 48.0


def add_commands(subparsers):
    """Add `store inspect` and `store verify` to an argparse subparsers object."""
    store = subparsers.add_parser(
        "store",
        help="inspect or verify a durable store directory",
        description="Look at a durable store directory (docs/store.md). " + DURABILITY,
    )
    commands = store.add_subparsers(dest="store_command", metavar="COMMAND")
    commands.required = True
    inspect = commands.add_parser(
        "inspect",
        help="lanes, depth, bytes, oldest record, segments, last recovery report",
        description="Print each lane's depth, bytes, oldest record and segments, and the last "
        "recovery report, as a table. Reads only (safe on a running agent's store).",
    )
    inspect.add_argument("directory", metavar="DIR", help="the store directory")
    inspect.add_argument("--lanes", type=int, default=st.DEFAULT_LANES, help="lanes (default %(default)s)")
    inspect.set_defaults(func=run_inspect)
    verify = commands.add_parser(
        "verify",
        help="check every record's checksum; exit 1 on corruption",
        description="Check every record, seal and marker. Exit 0 when all is well, 1 when anything "
        "is damaged (each problem is listed), 2 when DIR is not a store.",
    )
    verify.add_argument("directory", metavar="DIR", help="the store directory")
    verify.add_argument("--lanes", type=int, default=st.DEFAULT_LANES, help="lanes (default %(default)s)")
    verify.set_defaults(func=run_verify)
    return store


def add_store_options(parser):
    """The store's settings for a command that runs the agent."""
    group = parser.add_argument_group("durable store", DURABILITY)
    group.add_argument("--store-dir", metavar="DIR", help="where signals are buffered")
    group.add_argument(
        "--store-max-bytes",
        type=int,
        default=st.DEFAULT_MAX_BYTES,
        metavar="N",
        help="bound on the store's size; when full the least urgent, oldest signals are evicted "
        "(default %(default)s)",
    )
    group.add_argument(
        "--sync-every", type=int, default=st.DEFAULT_SYNC_EVERY, metavar="N", help="fsync every N signals"
    )
    group.add_argument(
        "--sync-ms", type=int, default=st.DEFAULT_SYNC_MS, metavar="MS", help="fsync MS ms after the first unsynced"
    )
    group.add_argument(
        "--store-window-bytes", type=int, default=WINDOW_BYTES, metavar="N",
        help="replay window: acknowledged signals kept, up to N bytes of them, so a receiver can ask for what "
        "the broker lost (gap repair, docs/store.md); the first to go when room is needed; 0: none "
        "(default %(default)s)",
    )
    group.add_argument(
        "--store-window-hours", type=float, default=WINDOW_HOURS, metavar="H",
        help="replay window: keep acknowledged signals at most H hours (default %(default)g; 0: no age bound)",
    )
    return group


def store_options(args):
    """Store keyword arguments from options added by add_store_options."""
    return {"max_bytes": args.store_max_bytes, "sync_every": args.sync_every, "sync_ms": args.sync_ms,
            "window_bytes": args.store_window_bytes, "window_ms": int(args.store_window_hours * 3600 * 1000)}


def _open_dir(directory, console):
    if not os.path.isdir(directory):
        console.print("[red]error:[/red] %s is not a directory; give the store's directory" % directory)
        return None
    return PosixDir(directory, lock=False, create=False)


def _when(ms):
    if ms is None:
        return "-"
    if ms > 946684800000:  # after 2000-01-01: wall-clock ms since the epoch
        when = datetime.datetime.fromtimestamp(ms / 1000.0, datetime.timezone.utc)
        return when.strftime("%Y-%m-%d %H:%M:%SZ")
    return "%d ms (device clock)" % ms


def run_inspect(args, console=None):
    console = console or Console()
    fs = _open_dir(args.directory, console)
    if fs is None:
        return EXIT_USAGE
    state = recovery.load(fs, args.lanes, repair=False)
    table = Table(title="store %s" % os.path.abspath(args.directory))
    for column in ("lane", "depth", "bytes", "of which acked", "oldest", "segments", "unsealed", "acked through"):
        table.add_column(column, justify="left" if column in ("lane", "oldest") else "right")
    total = 0
    for lane in range(args.lanes):
        segments = state.lanes[lane]
        depth, nbytes, count, oldest = fmt.summarize_lane(segments, state.acks[lane])
        total += nbytes
        unsealed = sum(1 for seg in segments if not seg.sealed)
        ack = state.acks[lane]
        table.add_row(
            "%d %s" % (lane, LANE_NAMES.get(lane, "")),
            "{:,}".format(depth),
            "{:,}".format(nbytes),
            "{:,}".format(fmt.acked_bytes(segments, state.acks[lane])),
            _when(oldest),
            str(count),
            str(unsealed),
            "seg %d @%d" % (ack[0], ack[1]) if ack[0] else "-",
        )
    console.print(table)
    console.print("total %s bytes in segments (acknowledged ones: the replay window's, kept for gap repair)"
                  % "{:,}".format(total))
    _print_last_recovery(fs, console)
    if state.report.discards:
        console.print("[yellow]reading it now, an open would discard:[/yellow]")
        for discard in state.report.discards:
            console.print("  %s at offset %d: %d bytes, %s" % (discard.name, discard.offset, discard.nbytes, discard.reason))
        console.print("(normal for the active segments of a running agent; run `store verify` to check)")
    if state.foreign:
        console.print("files the store does not use: %s" % ", ".join(sorted(state.foreign)))
    return EXIT_OK


def _print_last_recovery(fs, console):
    if fmt.RECOVERY_NAME not in fs.list():
        console.print("last recovery: none recorded (the store was never opened by the agent)")
        return
    try:
        report = cbor.loads(fs.read(fmt.RECOVERY_NAME, 0, fs.size(fmt.RECOVERY_NAME)))
    except cbor.CBORError as exc:
        console.print("[red]last recovery report is unreadable:[/red] %s" % exc)
        return
    discards = report.get("discards", [])
    line = "last recovery (at %s): %d records in %d segments, %d scanned" % (
        _when(report.get("at_ms")),
        report.get("records", 0),
        report.get("segments", 0),
        report.get("scanned", 0),
    )
    if not discards:
        console.print(line + ", nothing discarded")
        return
    console.print(line + ", [yellow]%d bytes discarded[/yellow]:" % report.get("discarded_bytes", 0))
    for discard in discards:
        console.print(
            "  %s at offset %d: %d bytes, %s%s"
            % (
                discard["file"],
                discard["offset"],
                discard["bytes"],
                discard["reason"],
                " (valid records followed: skipped)" if discard.get("middle") else "",
            )
        )


def run_verify(args, console=None):
    console = console or Console()
    fs = _open_dir(args.directory, console)
    if fs is None:
        return EXIT_USAGE
    records, problems = recovery.verify(fs, args.lanes)
    if not problems:
        console.print("store %s: %s records checked, no damage" % (args.directory, "{:,}".format(records)))
        return EXIT_OK
    console.print("[red]store %s: %d problems[/red] (%s good records)" % (args.directory, len(problems), "{:,}".format(records)))
    for problem in problems:
        console.print("  %s at offset %d: %s (%d bytes)" % (problem.name, problem.offset, problem.reason, problem.nbytes))
    console.print(
        "The agent skips damaged records and cuts torn tails when it opens the store "
        "(see docs/store.md, 'Recovery'); keep a copy of DIR if you need to investigate."
    )
    return EXIT_CORRUPT


def main(argv=None):
    parser = argparse.ArgumentParser(prog="edge-agent")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
