"""Board definitions: hardware described as data, validated once, whole.

The adapter parses the file (TOML on the gateway, a compiled CBOR/dict on the
device) and hands the resulting dict to ``board_from_dict``. Validation
collects *every* problem before raising, so one run of ``edge-agent board
check`` shows everything to fix; a board with any problem never starts.

Layout (docs/board-file.md is the reference)::

    schema = 1
    [board]            name, model
    [buses.ID]         port, baud, protocol = "line" | "modbus" | "nmea", and the
                       protocol's keys (modbus: parity, stop_bits, timeout_ms, retries)
    [outputs.ID]       chip, line, active_low          (GPIO outputs, e.g. power enables)
    [modes.ID]         text, cut = [output, ...]       (declared degraded modes)
    [health]           triage settings (storm, dedupe, rate limit)
    [components.ID]    part, essential, description, supply, quarantine, ...
    [sensors.ID]       bus, component, unit, valid_range = [low, high], period_ms,
                       redundant, [[sensors.ID.rules]], [sensors.ID.predict],
                       [sensors.ID.modbus] or [sensors.ID.nmea] on such a bus

The health keys (rules, quarantine, prediction) are validated in
``board_health.py`` so this file stays about the hardware's shape; each
protocol's keys by its decoder module (decoders.py lists them).
"""

from edge_agent.core import board_health as bh
from edge_agent.core import decoders
# The data classes live in board_types.py (firmware/config.py frees this
# module after loading a board); they are re-exported here.
from edge_agent.core.board_types import Board, BoardError, Bus, Component, Problem, Sensor  # noqa: F401

SCHEMA = 1
PROTOCOLS = decoders.NAMES
STANDARD_BAUDS = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)
_ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"


def _type_name(value):
    return type(value).__name__


class _Checker:
    """Reads typed values out of nested tables, recording problems instead
    of stopping at the first one."""

    def __init__(self):
        self.problems = []

    def problem(self, key, reason, fix):
        self.problems.append(Problem(key, reason, fix))

    def table(self, parent, name, key, required=True):
        value = parent.get(name)
        if value is None:
            if required:
                self.problem(key, "missing table", "add a [%s] table" % key)
            return None
        if not isinstance(value, dict):
            self.problem(key, "must be a table, not %s" % _type_name(value), "write it as [%s]" % key)
            return None
        return value

    def unknown_keys(self, table, allowed, key):
        for name in sorted(table):
            if name not in allowed:
                self.problem(
                    "%s.%s" % (key, name) if key else name,
                    "unknown key",
                    "remove it or use one of: %s" % ", ".join(allowed),
                )

    def text(self, table, name, key, required=True, default=None):
        value = table.get(name)
        if value is None:
            if required:
                self.problem("%s.%s" % (key, name), "missing", "add %s = \"...\"" % name)
            return default
        if not isinstance(value, str) or not value:
            self.problem("%s.%s" % (key, name), "must be a non-empty string, not %r" % (value,), "quote it")
            return default
        return value

    def integer(self, table, name, key, low, high, default=None):
        value = table.get(name)
        full = "%s.%s" % (key, name)
        if value is None:
            if default is None:
                self.problem(full, "missing", "add %s = <integer %d..%d>" % (name, low, high))
            return default
        if not isinstance(value, int) or isinstance(value, bool):
            self.problem(full, "must be an integer, not %s" % _type_name(value), "write a whole number")
            return default
        if not low <= value <= high:
            self.problem(full, "%d is outside %d..%d" % (value, low, high), "choose a value in range")
            return default
        return value

    def number(self, table, name, key, default):
        value = table.get(name, default)
        if not bh.is_number(value) or value != value or value in (float("inf"), float("-inf")):
            self.problem("%s.%s" % (key, name), "must be a finite number, not %r" % (value,), "write e.g. %s = 0.1" % name)
            return default
        return float(value)

    def boolean(self, table, name, key, default):
        value = table.get(name, default)
        if not isinstance(value, bool):
            self.problem("%s.%s" % (key, name), "must be true or false, not %r" % (value,), "write true or false")
            return default
        return value

    def identifier(self, name, key):
        ok = 0 < len(name) <= 32
        for ch in name:
            if ch not in _ID_CHARS:
                ok = False
        if not ok:
            self.problem(key, "id %r is not 1-32 characters of a-z, 0-9 and _" % name, "rename it")
        return ok


def board_from_dict(data, source="<board>"):
    """Validate ``data`` (a parsed board file) and return a Board, or raise
    BoardError listing every problem. ``source`` names the file in messages."""
    check = _Checker()
    if not isinstance(data, dict):
        raise BoardError(source, [Problem("", "the board must be a table", "start from boards/demo-gateway.toml")])
    check.unknown_keys(data, ("schema", "board", "buses", "outputs", "modes", "health", "components", "sensors"), "")
    schema = data.get("schema")
    if schema != SCHEMA:
        check.problem(
            "schema",
            "missing" if schema is None else "unsupported schema %r" % (schema,),
            "add schema = %d at the top of the file" % SCHEMA,
        )

    name = model = None
    header = check.table(data, "board", "board")
    if header is not None:
        check.unknown_keys(header, ("name", "model"), "board")
        name = check.text(header, "name", "board")
        model = check.text(header, "model", "board")

    buses = _buses(check, data)
    outputs = bh.outputs(check, data)
    modes = bh.modes(check, data, outputs)
    health = bh.settings(check, data)
    components = _components(check, data, outputs, modes)
    sensors = _sensors(check, data, buses, components)
    bh.cross_check(check, sensors, components)
    bh.check_register_writes(check, components, buses)
    if health is not None:
        bh.default_dropouts(sensors, health)

    if check.problems:
        raise BoardError(source, check.problems)
    return Board(name, model, buses, components, sensors, source, outputs, modes, health)


def _buses(check, data):
    buses = {}
    table = check.table(data, "buses", "buses")
    if table is None:
        return buses
    if not table:
        check.problem("buses", "no bus defined", "add a [buses.uart0] table with port, baud and protocol")
    for bus_id in sorted(table):
        key = "buses." + bus_id
        entry = check.table(table, bus_id, key)
        if entry is None or not check.identifier(bus_id, key):
            continue
        protocol = check.text(entry, "protocol", key, required=False, default="line")
        if protocol not in PROTOCOLS:
            check.problem(key + ".protocol", "unknown protocol %r" % protocol, "use one of: %s" % ", ".join(PROTOCOLS))
            protocol = "line"
        module = decoders.protocol(protocol)
        allowed = ("port", "baud", "protocol") + module.BUS_KEYS
        for name in sorted(entry):
            if name in allowed:
                continue
            owners = [p for p in PROTOCOLS if name in decoders.protocol(p).BUS_KEYS]
            if owners:
                check.problem("%s.%s" % (key, name), "only %s buses take %s, this bus speaks %s" % (owners[0], name, protocol),
                              "remove it, or set protocol = \"%s\"" % owners[0])
            else:
                check.problem("%s.%s" % (key, name), "unknown key", "remove it or use one of: %s" % ", ".join(allowed))
        port = check.text(entry, "port", key)
        baud = check.integer(entry, "baud", key, 300, 4000000, default=module.DEFAULT_BAUD)
        if baud not in STANDARD_BAUDS:
            check.problem(key + ".baud", "%d is not a standard rate" % baud, "use one of %s" % (STANDARD_BAUDS,))
        settings = module.check_bus(check, entry, key)
        buses[bus_id] = Bus(bus_id, port, baud, protocol, settings)
    return buses


def _components(check, data, outputs, modes):
    components = {}
    table = check.table(data, "components", "components")
    if table is None:
        return components
    for component_id in sorted(table):
        key = "components." + component_id
        entry = check.table(table, component_id, key)
        if entry is None or not check.identifier(component_id, key):
            continue
        check.unknown_keys(entry, ("part", "essential", "description") + bh.COMPONENT_HEALTH_KEYS, key)
        part = check.text(entry, "part", key, required=False, default="")
        essential = check.boolean(entry, "essential", key, False)
        description = check.text(entry, "description", key, required=False, default="")
        health = bh.component_health(check, entry, key, essential, outputs, modes)
        components[component_id] = Component(component_id, part, essential, description, health)
    return components


def _sensors(check, data, buses, components):
    sensors = {}
    table = check.table(data, "sensors", "sensors")
    if table is None:
        return sensors
    if not table:
        check.problem("sensors", "no sensor defined", "add a [sensors.ID] table")
    for sensor_id in sorted(table):
        key = "sensors." + sensor_id
        entry = check.table(table, sensor_id, key)
        if entry is None or not check.identifier(sensor_id, key):
            continue
        check.unknown_keys(entry, ("bus", "component", "unit", "valid_range", "period_ms") + bh.SENSOR_HEALTH_KEYS
                           + PROTOCOLS, key)
        bus = check.text(entry, "bus", key)
        if bus is not None and bus not in buses:
            check.problem(
                key + ".bus",
                "no bus named %r" % bus,
                "define [buses.%s] or use one of: %s" % (bus, ", ".join(sorted(buses)) or "(none defined)"),
            )
        component = check.text(entry, "component", key)
        if component is not None and component not in components:
            check.problem(
                key + ".component",
                "no component named %r" % component,
                "define [components.%s] or use one of: %s" % (component, ", ".join(sorted(components)) or "(none defined)"),
            )
        unit = check.text(entry, "unit", key)
        low, high = _valid_range(check, entry, key)
        period_ms = check.integer(entry, "period_ms", key, 10, 86400000)
        redundant = check.text(entry, "redundant", key, required=False, default="")
        rules = bh.sensor_rules(check, entry, key)
        predict = bh.sensor_predict(check, entry, key)
        source = _source(check, entry, key, buses.get(bus))
        sensors[sensor_id] = Sensor(sensor_id, bus, component, unit, low, high, period_ms, redundant, rules, predict,
                                    source)
    return sensors


def _valid_range(check, entry, key):
    value = entry.get("valid_range")
    full = key + ".valid_range"
    if value is None:
        check.problem(full, "missing", "add valid_range = [low, high] in the sensor's unit")
        return None, None
    if not bh.is_pair(value):
        check.problem(full, "must be two numbers, not %r" % (value,), "write valid_range = [low, high]")
        return None, None
    low, high = float(value[0]), float(value[1])
    if not low < high:
        check.problem(full, "low %r is not below high %r" % (low, high), "write [low, high] with low < high")
        return None, None
    return low, high


def _source(check, entry, key, bus):
    """The sensor's [sensors.ID.<protocol>] table, checked by its bus's
    protocol; a table for another protocol is a mistake worth naming."""
    protocol = bus.protocol if bus is not None else None
    for name in PROTOCOLS:
        if name in entry and name != protocol and bus is not None:
            check.problem("%s.%s" % (key, name), "the sensor's bus %s speaks %s, not %s" % (bus.id, protocol, name),
                          "remove [%s.%s], or put the sensor on a %s bus" % (key, name, name))
    if protocol is None:
        return None
    module = decoders.protocol(protocol)
    check_sensor = getattr(module, "check_sensor", None)
    if check_sensor is None:
        return None
    table = check.table(entry, protocol, "%s.%s" % (key, protocol))
    if table is None:
        return None
    return check_sensor(check, table, "%s.%s" % (key, protocol))
