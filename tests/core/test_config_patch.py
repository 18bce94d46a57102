"""Config patches (RFC 7386 merge) over a board, validated whole."""

from support import copy_board, raises

from edge_agent.core import config_patch as cp
from edge_agent.core.board import BoardError


def test_merge_rules():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 4}
    assert cp.merge(base, {"a": {"b": 2}}) == {"a": {"b": 2, "c": [1, 2]}, "d": 4}
    assert cp.merge(base, {"a": {"c": [3]}, "d": None}) == {"a": {"b": 1, "c": [3]}}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 4}  # unchanged


def test_combined_patches_keep_deletions():
    overlay = cp.combine(None, {"sensors": {"fan_rpm": {"period_ms": 250}}})
    overlay = cp.combine(overlay, {"components": {"fan": {"part": None}}})
    board = cp.validate(copy_board(), overlay)
    assert board.sensors["fan_rpm"].period_ms == 250
    assert board.components["fan"].part in ("", None)


def test_tighter_threshold_validates():
    overlay = cp.combine(None, {"sensors": {"coolant_temp": {"valid_range": [-20, 95]}}})
    board = cp.validate(copy_board(), overlay)
    assert (board.sensors["coolant_temp"].low, board.sensors["coolant_temp"].high) == (-20, 95)


def test_bad_results_are_refused_whole():
    overlay = cp.combine(None, {"sensors": {"coolant_temp": {"valid_range": [95, -20]},
                                            "fan_rpm": {"component": "nothing"}}})
    err = raises(BoardError, cp.validate, copy_board(), overlay)
    assert len(err.problems) == 2


def test_patch_shape_limits():
    raises(cp.PatchError, cp.combine, None, {})
    raises(cp.PatchError, cp.combine, None, [1])
    raises(cp.PatchError, cp.combine, None, {"board": {"model": "OTHER"}})
    raises(cp.PatchError, cp.combine, None, {"schema": 2})
    deep = {"x": 1}
    for _ in range(12):
        deep = {"k": deep}
    raises(cp.PatchError, cp.combine, None, {"sensors": deep})
    raises(cp.PatchError, cp.merge, {}, {"sensors": deep})


def test_a_patch_number_too_large_for_any_board_is_refused_unprinted():
    # A signed patch with a 5,000-digit integer used to reach the board
    # checks, which format values: a ValueError on CPython, an internal
    # error audited at every message.
    huge = 10 ** 5000
    for patch in ({"sensors": {"t": {"period_ms": huge}}}, {"health": {"x": [1, -huge]}}):
        err = raises(cp.PatchError, cp.combine, None, patch)
        assert "outside +-2^53" in str(err) and len(str(err)) < 100, str(err)[:200]
    assert cp.combine(None, {"sensors": {"t": {"period_ms": 2 ** 53}}})


def test_digest():
    assert cp.digest(None) == "base"
    one = cp.digest({"sensors": {"a": {"period_ms": 1}}})
    assert len(one) == 16 and one == cp.digest({"sensors": {"a": {"period_ms": 1}}})
    assert one != cp.digest({"sensors": {"a": {"period_ms": 2}}})
