"""Helpers for core tests that run under pytest and under MicroPython
(which has no pytest): plain functions, plain asserts."""


def raises(exc_type, fn, *args, **kwargs):
    """Call fn and return the exception it raises; fail unless it is exc_type."""
    try:
        fn(*args, **kwargs)
    except exc_type as exc:
        return exc
    raise AssertionError("%s did not raise %s" % (getattr(fn, "__name__", fn), exc_type.__name__))


DEMO_BOARD = {
    "schema": 1,
    "board": {"name": "test-board", "model": "EA-TEST-1"},
    "buses": {"uart0": {"port": "/dev/null", "baud": 115200, "protocol": "line"}},
    "components": {
        "coolant_loop": {"part": "4711", "essential": True, "description": "pump and loop"},
        "fan": {"part": "F-22", "essential": False},
    },
    "sensors": {
        "coolant_temp": {
            "bus": "uart0",
            "component": "coolant_loop",
            "unit": "degC",
            "valid_range": [-20, 110],
            "period_ms": 1000,
        },
        "fan_rpm": {
            "bus": "uart0",
            "component": "fan",
            "unit": "rpm",
            "valid_range": [0, 5000],
            "period_ms": 500,
        },
    },
}


def copy_board():
    """A deep copy of DEMO_BOARD that a test may change."""
    return _deep_copy(DEMO_BOARD)


def _deep_copy(value):
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value
