"""The `edge-agent` command: the parser, one command group per module of
this package, and the exit codes (0 ok, 1 failed, 2 usage)."""

import argparse
import sys

from edge_agent import __version__
from edge_agent.cli import (board, cmd, config, console, doctor, firmware, keys, receiver, run, service, sim, store,
                            watch)
from edge_agent.cli.common import EXIT_OK, EXIT_USAGE, UsageError
from edge_agent.deploy import logs

# Each module's add_commands(sub) adds its group, in the order --help lists them.
COMMAND_GROUPS = (run, config, service, doctor, board, watch, keys, receiver, sim, store, console, cmd, firmware)


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
    for group in COMMAND_GROUPS:
        group.add_commands(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        # A command that reads a config file (run --config) parses again
        # with the file's values as defaults: the command line wins.
        if getattr(args, "with_config", None) is not None:
            args = args.with_config(parser, argv, args)
        logs.configure(args.log_level)
        return args.func(args)
    except UsageError as exc:
        parser.exit(EXIT_USAGE, "edge-agent: error: %s\n" % exc)
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
