"""Config updates as JSON merge patches (RFC 7386) over the board file.

A `config.update` command carries a patch, e.g. a tighter threshold:

    {"sensors": {"coolant_temp": {"valid_range": [-20, 95]}}}

Maps merge key by key, a null deletes the key, anything else (lists
included) replaces. The device keeps the *overlay* (all accepted patches
merged into one) rather than a whole new board, so the board file shipped
with the software still applies underneath it. The result is validated
whole by the board checker before anything is written (board.py).
"""

import hashlib

from edge_agent.core import cbor
from edge_agent.core import operator as op
from edge_agent.core.board import board_from_dict

MAX_DEPTH = 8  # a board is 4 levels deep; deeper patches are nonsense or hostile
# A board holds periods, limits and offsets: no integer past a float's exact
# range. A larger one is refused before the board checks would format it
# (CPython cannot print an int of over 4300 digits).
MAX_INT = 2 ** 53
PATCHABLE = op.PATCHABLE  # the board's tables, not its schema, name or model


class PatchError(ValueError):
    """A patch that is not a map of maps, or too deep."""


def merge(target, patch, depth=0):
    """A new value: ``patch`` merged into ``target`` (neither is changed)."""
    if depth > MAX_DEPTH:
        raise PatchError("patch nested deeper than %d levels" % MAX_DEPTH)
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if not isinstance(key, str):
            raise PatchError("patch keys must be text, got a %s" % type(key).__name__)
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge(result.get(key), value, depth + 1)
    return result


def combine(overlay, patch):
    """The overlay after ``patch``: patches compose by merging, but a null
    must survive in the overlay so it still deletes from the base."""
    if not isinstance(patch, dict) or not patch:
        raise PatchError("a config patch must be a non-empty map")
    for key in patch:
        if key not in PATCHABLE:
            raise PatchError("a patch may change %s, not %s" % (", ".join(PATCHABLE), op._shown(key)))
    _check_depth(patch, 0)
    return _combine(overlay or {}, patch, 0)


def _check_depth(value, depth):
    if depth > MAX_DEPTH:
        raise PatchError("patch nested deeper than %d levels" % MAX_DEPTH)
    if isinstance(value, int) and not isinstance(value, bool) and not -MAX_INT <= value <= MAX_INT:
        raise PatchError("patch holds an integer outside +-2^53 (no board value is that large)")
    if isinstance(value, dict):
        for item in value.values():
            _check_depth(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_depth(item, depth + 1)


def _combine(overlay, patch, depth):
    if depth > MAX_DEPTH:
        raise PatchError("patch nested deeper than %d levels" % MAX_DEPTH)
    result = dict(overlay)
    for key, value in patch.items():
        if not isinstance(key, str):
            raise PatchError("patch keys must be text, got a %s" % type(key).__name__)
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _combine(result[key], value, depth + 1)
        else:
            result[key] = value
    return result


def effective(base, overlay):
    """The board dict in force: the base board file with the overlay."""
    return merge(base, overlay or {})


def validate(base, overlay, source="<config update>"):
    """The Board the overlay gives, or raise board.BoardError listing every
    problem (what, where, how to fix)."""
    return board_from_dict(effective(base, overlay), source)


def digest(overlay):
    """A short stable name for an overlay, for audit before/after."""
    if not overlay:
        return "base"
    return hashlib.sha256(cbor.dumps(overlay)).digest()[:8].hex()
