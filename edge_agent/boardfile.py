"""Load a board file (TOML) from disk and validate it with the core."""

import tomllib

from edge_agent.core.board import BoardError, Problem, board_from_dict


def load_board(path):
    """Return the validated Board in ``path``; raise BoardError naming the
    file, every bad key and how to fix it."""
    path = str(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise BoardError(path, [Problem("", "file not found", "check the path; example boards are in boards/")]) from None
    except IsADirectoryError:
        raise BoardError(path, [Problem("", "is a directory", "name a .toml board file")]) from None
    except PermissionError:
        raise BoardError(path, [Problem("", "permission denied", "make the file readable by this user")]) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BoardError(path, [Problem("", "not valid TOML: %s" % exc, "fix the syntax at the line shown")]) from None
    return board_from_dict(data, path)
