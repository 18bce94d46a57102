"""`edge-agent config check FILE...`: validate agent.toml files the way
`run --config` reads them, and what they name: the board file loads, the
TLS and operator files exist, the broker address parses. Every problem is
listed with its key and a fix (edge_agent/deploy/config.py)."""

import os
import sys

from edge_agent.cli.common import EXIT_FAILED, EXIT_OK, UsageError, parse_broker


def check_file(path):
    """(values, problems) for the agent.toml at ``path``."""
    from edge_agent.boardfile import load_board
    from edge_agent.core.board import BoardError
    from edge_agent.core.board_types import Problem
    from edge_agent.deploy.config import ConfigError, load_config

    try:
        values = load_config(path)
    except ConfigError as exc:
        return None, exc.problems
    problems = []
    for dest, key, fix in (("board", "agent.board", "the board file (TOML), e.g. /etc/edge-agent/board.toml"),
                           ("identity", "agent.identity", "the directory `edge-agent keys init --dir DIR` made"),
                           ("broker", "broker.address", "HOST:PORT of the MQTT broker")):
        if dest not in values:
            problems.append(Problem(key, "missing", "add it: " + fix))
    if "board" in values:
        try:
            board = load_board(values["board"])
        except BoardError as exc:
            for problem in exc.problems:
                problems.append(Problem("agent.board", "%s: %s: %s" % (values["board"], problem.key or "(top level)",
                                                                      problem.reason), problem.fix))
        else:
            for bus in sorted({p.split("=", 1)[0] for p in values.get("port", [])} - set(board.buses)):
                problems.append(Problem("agent.ports.%s" % bus, "no bus %r in %s" % (bus, values["board"]),
                                        "name one of its buses: %s" % ", ".join(sorted(board.buses))))
    if "identity" in values and not os.path.isdir(values["identity"]):
        problems.append(Problem("agent.identity", "%s: no such directory" % values["identity"],
                                "make it with edge-agent keys init --dir %s --device-id ID" % values["identity"]))
    if "broker" in values:
        try:
            parse_broker(values["broker"], tls=not values.get("insecure", False))
        except UsageError as exc:
            problems.append(Problem("broker.address", str(exc).replace("--broker ", ""),
                                    "write HOST:PORT, e.g. mqtt.example.com:8883"))
        if not values.get("insecure") and "ca" not in values:
            problems.append(Problem("broker.ca", "missing: TLS (the default) needs the CA that signed the broker's "
                                    "certificate", "add ca = \"/etc/edge-agent/ca.pem\" (insecure = true only for a "
                                    "local test broker)"))
    for dest, key in (("ca", "broker.ca"), ("cert", "broker.cert"), ("key", "broker.key"),
                      ("operators", "downlink.operators")):
        if dest in values and not os.path.isfile(values[dest]):
            problems.append(Problem(key, "%s: no such file" % values[dest], "check the path (relative paths are "
                                    "relative to the config file's directory)"))
    return values, problems


def cmd_config_check(args):
    failed = 0
    for path in args.files:
        values, problems = check_file(path)
        if problems:
            print("%s: %d problem%s" % (path, len(problems), "" if len(problems) == 1 else "s"), file=sys.stderr)
            for problem in problems:
                print("  " + problem.describe(), file=sys.stderr)
            failed += 1
            continue
        print("%s: ok - board %s, identity %s, broker %s (%s)" % (
            path, values["board"], values["identity"], values["broker"],
            "plaintext: insecure = true" if values.get("insecure") else "TLS"))
    return EXIT_FAILED if failed else EXIT_OK


def add_commands(sub):
    config = sub.add_parser("config", help="work with agent.toml config files")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION")
    config_sub.required = True
    check = config_sub.add_parser(
        "check", help="validate agent.toml files and what they name; list every problem",
        description="Validate agent.toml files as `edge-agent run --config` reads them, and the files they name "
        "(board, identity, TLS files, operators). Exit 0 when all are valid, 1 otherwise.")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.set_defaults(func=cmd_config_check)
