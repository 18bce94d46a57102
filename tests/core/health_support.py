"""Builders for health-engine tests (CPython and MicroPython alike)."""

from support import copy_board

from edge_agent.core import board as bd
from edge_agent.core import reading as rd
from edge_agent.core import signals as sg
from edge_agent.core.outputs import SetOutput


def health_board(fan=None, fan_rules=None, temp_rules=None, extra=None):
    """The support DEMO_BOARD plus a fan power output and whatever health
    keys a test adds (``fan``: keys for components.fan)."""
    data = copy_board()
    data["outputs"] = {"fan_power": {"chip": "/dev/gpiochip0", "line": 17}}
    data["components"]["fan"].update(fan or {})
    if fan_rules is not None:
        data["sensors"]["fan_rpm"]["rules"] = fan_rules
    if temp_rules is not None:
        data["sensors"]["coolant_temp"]["rules"] = temp_rules
    for key, value in (extra or {}).items():
        data[key] = value
    return bd.board_from_dict(data, "health.toml")


def many_sensor_board(count, predict=True, supply_groups=4):
    """A board with ``count`` sensors, one component each, every rule kind
    declared once per sensor: the memory and speed benchmark's board."""
    components = {}
    sensors = {}
    for i in range(count):
        cid = "part_%02d" % i
        components[cid] = {"part": "P-%d" % i, "supply": "rail_%d" % (i % supply_groups)}
        sid = "s_%02d" % i
        rules = [
            {"kind": "threshold", "above": 80.0, "clear": 75.0},
            {"kind": "stuck", "epsilon": 0.0, "for_s": 60},
            {"kind": "flatline", "tolerance": 0.5, "for_s": 30},
            {"kind": "rate", "max_per_s": 20.0},
            {"kind": "jump", "max_step": 30.0},
            {"kind": "dropout", "for_s": 300},
        ]
        if i % 2 == 1:
            rules.append({"kind": "disagree", "with": "s_%02d" % (i - 1), "max_diff": 25.0, "for_s": 5})
        sensors[sid] = {
            "bus": "uart0",
            "component": cid,
            "unit": "degC",
            "valid_range": [-40, 125],
            "period_ms": 1000,
            "rules": rules,
        }
        if predict:
            sensors[sid]["predict"] = {"above": 90.0}
    data = {
        "schema": 1,
        "board": {"name": "many", "model": "EA-MANY"},
        "buses": {"uart0": {"port": "/dev/null"}},
        "components": components,
        "sensors": sensors,
    }
    return bd.board_from_dict(data, "many.toml")


def good(t, sensor, value):
    return rd.Reading(t, sensor, float(value))


def fault(t, sensor, code="open"):
    return rd.Reading(t, sensor, None, rd.FAULT, code)


def alerts(outputs, condition=None):
    return [o for o in outputs if isinstance(o, sg.Signal) and o.kind == sg.KIND_ALERT
            and (condition is None or o.body[sg.A_CONDITION] == condition)]


def states(outputs):
    return [o.body[sg.S_TO] for o in outputs if isinstance(o, sg.Signal) and o.kind == sg.KIND_STATE]


def gpio(outputs):
    return [(o.output, o.on) for o in outputs if isinstance(o, SetOutput)]
