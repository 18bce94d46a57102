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


# A board with one bus of each protocol: our line protocol, a Modbus RTU
# slave (a temperature/humidity transmitter and an energy meter), and a
# GPS speaking NMEA 0183.
SOURCES_BOARD = {
    "schema": 1,
    "board": {"name": "sources-board", "model": "EA-TEST-2"},
    "buses": {
        "uart0": {"port": "/dev/null", "protocol": "line"},
        "rs485": {"port": "/dev/null", "baud": 115200, "protocol": "modbus", "parity": "none",
                  "timeout_ms": 50, "retries": 1},
        "gps": {"port": "/dev/null", "baud": 9600, "protocol": "nmea"},
    },
    "components": {
        "cabinet": {"part": "C-1"},
        "meter": {"part": "EM-3"},
        "tracker": {"part": "GPS-7"},
    },
    "sensors": {
        "cabinet_temp": {"bus": "uart0", "component": "cabinet", "unit": "degC", "valid_range": [-10, 70],
                         "period_ms": 1000},
        "air_temp": {"bus": "rs485", "component": "cabinet", "unit": "degC", "valid_range": [-40, 80],
                     "period_ms": 1000,
                     "modbus": {"slave": 1, "function": 4, "address": 0, "type": "int16", "scale": 0.1}},
        "power": {"bus": "rs485", "component": "meter", "unit": "W", "valid_range": [0, 100000],
                  "period_ms": 2000,
                  "modbus": {"slave": 2, "function": 3, "address": 12, "type": "float32", "word_order": "little"}},
        "door_open": {"bus": "rs485", "component": "cabinet", "unit": "bool", "valid_range": [0, 1],
                      "period_ms": 500, "modbus": {"slave": 1, "function": 2, "address": 3}},
        "altitude": {"bus": "gps", "component": "tracker", "unit": "m", "valid_range": [-500, 9000],
                     "period_ms": 1000, "nmea": {"sentence": "GGA", "field": "altitude"}},
        "latitude": {"bus": "gps", "component": "tracker", "unit": "deg", "valid_range": [-90, 90],
                     "period_ms": 1000, "nmea": {"sentence": "RMC", "field": "latitude"}},
    },
}


def copy_sources_board():
    """A deep copy of SOURCES_BOARD that a test may change."""
    return _deep_copy(SOURCES_BOARD)
