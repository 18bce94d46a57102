"""`edge-agent board check FILE...`: validate board files, every problem listed."""

import sys

from edge_agent.cli.common import EXIT_FAILED, EXIT_OK


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


def add_commands(sub):
    board = sub.add_parser("board", help="work with board files")
    board_sub = board.add_subparsers(dest="board_command", metavar="ACTION")
    board_sub.required = True
    check = board_sub.add_parser("check", help="validate board files and list every problem")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.set_defaults(func=cmd_board_check)
