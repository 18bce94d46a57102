"""The health part of a board file: rules, quarantine, prediction, triage.

``board.py`` validates the hardware's shape (buses, components, sensors);
this module validates what the health engine needs on top, with the same
checker, so one run of ``edge-agent board check`` still reports every
problem with file, key and fix. docs/board-file.md and docs/health.md are
the references for every key.

Defaults are chosen so a board with no health keys at all behaves like the
agent did before the health engine: valid-range and sensor-fault alerts,
and a component that keeps failing is ignored (never powered off) until it
reads well again.
"""

# The data classes live in board_types.py (firmware/config.py frees this
# module after loading a board); they are re-exported here.
from edge_agent.core.board_types import (COMPONENT_ATTRS, CROSS_CHECKED, DEFAULT_DROPOUT_MIN_MS,  # noqa: F401
                                         HealthSettings, Mode, Output, PredictSpec, RegisterWrite, RuleSpec,
                                         component_defaults)

# Rule kinds and the keys each accepts besides the common ones.
RULE_KEYS = {
    "threshold": ("above", "below", "clear"),
    "stuck": ("epsilon", "for_s"),
    "flatline": ("for_s", "tolerance", "rails"),
    "rate": ("max_per_s",),
    "jump": ("max_step",),
    "dropout": ("for_s",),
    "disagree": ("with", "max_diff", "for_s"),
    "shift": ("max_shift", "baseline_s"),
}
RULE_KINDS = ("disagree", "dropout", "flatline", "jump", "rate", "shift", "stuck", "threshold")
COMMON_RULE_KEYS = ("kind", "severity", "action", "health", "clear_for_s", "reraise_s")
# Hysteresis in time and the minimum re-raise interval, per rule kind
# (docs/health.md): a threshold tracks a process that swings with the day
# and with noise, so it clears only after a minute below its clear level and
# is not raised again within 15 minutes of its last raise; a dropout is a
# lost link, which is news again a minute after it came back.
CLEAR_FOR_S = {"threshold": 60}
RERAISE_S = {"threshold": 900, "dropout": 60}
SEVERITIES = ("critical", "warning", "info")

# Quarantine actions, in the order the engine applies them.
QUARANTINE_ACTIONS = ("ignore", "switch", "cut_power", "reduce_duty", "write_register")

COMPONENT_HEALTH_KEYS = (
    "supply",
    "quarantine",
    "power_output",
    "duty",
    "duty_period_s",
    "confirm",
    "release_after",
    "probe_after_s",
    "max_probes",
    "degraded_mode",
    "quarantine_write",
)
SENSOR_HEALTH_KEYS = ("redundant", "rules", "predict")
PREDICT_KEYS = ("above", "below", "horizon_days", "history_days", "severity", "action")
HEALTH_KEYS = ("storm_min", "storm_window_s", "storm_hold_s", "dedupe_s", "rate_burst", "rate_per_hour", "dropout_periods")


def is_number(value):
    return (isinstance(value, int) or isinstance(value, float)) and not isinstance(value, bool)


def is_pair(value):
    """A [low, high] list of two numbers (valid_range, rails)."""
    return isinstance(value, list) and len(value) == 2 and is_number(value[0]) and is_number(value[1])


def number(check, table, name, key, default=None, required=False, positive=False):
    value = table.get(name)
    full = "%s.%s" % (key, name)
    if value is None:
        if required:
            check.problem(full, "missing", "add %s = <number>" % name)
        return default
    if not is_number(value):
        check.problem(full, "must be a number, not %r" % (value,), "write a number such as 1.5")
        return default
    if positive and not value > 0:
        check.problem(full, "%r is not above zero" % (value,), "write a number above zero")
        return default
    if not positive and value < 0:
        check.problem(full, "%r is negative" % (value,), "write zero or more")
        return default
    return float(value)


def _choice(check, table, name, key, choices, default):
    value = table.get(name)
    if value is None:
        return default
    if value not in choices:
        check.problem("%s.%s" % (key, name), "%r is not one of %s" % (value, ", ".join(choices)), "use one of: %s" % ", ".join(choices))
        return default
    return value


def _text(check, table, name, key):
    value = table.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        check.problem("%s.%s" % (key, name), "must be a string, not %r" % (value,), "quote it")
        return ""
    return value


def outputs(check, data):
    result = {}
    table = check.table(data, "outputs", "outputs", required=False)
    for output_id in sorted(table or {}):
        key = "outputs." + output_id
        entry = check.table(table, output_id, key)
        if entry is None or not check.identifier(output_id, key):
            continue
        check.unknown_keys(entry, ("chip", "line", "active_low"), key)
        chip = check.text(entry, "chip", key)
        line = check.integer(entry, "line", key, 0, 1023)
        active_low = check.boolean(entry, "active_low", key, False)
        result[output_id] = Output(output_id, chip, line, active_low)
    return result


def modes(check, data, outs):
    result = {}
    table = check.table(data, "modes", "modes", required=False)
    for mode_id in sorted(table or {}):
        key = "modes." + mode_id
        entry = check.table(table, mode_id, key)
        if entry is None or not check.identifier(mode_id, key):
            continue
        check.unknown_keys(entry, ("text", "cut"), key)
        text = check.text(entry, "text", key)
        cut = _output_list(check, entry.get("cut", []), key + ".cut", outs)
        result[mode_id] = Mode(mode_id, text, cut)
    return result


def _output_list(check, value, key, outs):
    if not isinstance(value, list):
        check.problem(key, "must be a list of output ids, not %r" % (value,), 'write cut = ["heater_power"]')
        return []
    good = []
    for name in value:
        if name not in outs:
            check.problem(key, "no output named %r" % (name,), "define [outputs.%s] or use one of: %s" % (name, ", ".join(sorted(outs)) or "(none defined)"))
        else:
            good.append(name)
    return good


def settings(check, data):
    table = check.table(data, "health", "health", required=False)
    if table is None:
        return HealthSettings()
    check.unknown_keys(table, HEALTH_KEYS, "health")
    return HealthSettings(
        storm_min=check.integer(table, "storm_min", "health", 2, 1000, default=3),
        storm_window_ms=1000 * check.integer(table, "storm_window_s", "health", 1, 86400, default=60),
        storm_hold_ms=1000 * check.integer(table, "storm_hold_s", "health", 0, 300, default=0),
        dedupe_ms=1000 * check.integer(table, "dedupe_s", "health", 0, 604800, default=3600),
        rate_burst=check.integer(table, "rate_burst", "health", 1, 1000, default=5),
        rate_per_hour=check.integer(table, "rate_per_hour", "health", 1, 3600, default=6),
        dropout_periods=check.integer(table, "dropout_periods", "health", 0, 1000, default=3),
    )


def default_dropouts(sensors, settings):
    """Give every polled sensor (a Modbus register: the agent asks, so
    silence is a request nobody answered) without a dropout rule of its own
    the board's default one: ``dropout_periods`` sample periods of silence,
    at least DEFAULT_DROPOUT_MIN_MS (0 periods: none). A slave that stops
    answering is a lost link whether or not the board file thought to ask.
    Sensors that push their readings (line protocol, NMEA) may be quiet by
    design and keep needing a declared rule. Sensors with the same timeout
    share one spec (RAM on a board)."""
    if not settings.dropout_periods:
        return
    shared = {}
    for sensor in sensors.values():
        polled = getattr(sensor.source, "slave", None) is not None
        if not polled or sensor.period_ms is None or [spec for spec in sensor.rules if spec.kind == "dropout"]:
            continue
        for_ms = max(DEFAULT_DROPOUT_MIN_MS, settings.dropout_periods * sensor.period_ms)
        spec = shared.get(for_ms)
        if spec is None:
            spec = shared[for_ms] = RuleSpec("dropout", None, "", False,
                                             {"for_ms": for_ms, "reraise_ms": 1000 * RERAISE_S["dropout"]}, "")
        sensor.rules = list(sensor.rules) + [spec]


def component_health(check, entry, key, essential, outs, mode_table):
    """Return a dict of the component's health attributes (defaults filled)."""
    result = {}
    supply = entry.get("supply")
    if supply is not None and (not isinstance(supply, str) or not check.identifier(supply, key + ".supply")):
        supply = None
    result["supply"] = supply or ""
    actions = entry.get("quarantine", ["ignore"])
    if not isinstance(actions, list) or not actions:
        check.problem(key + ".quarantine", "must be a non-empty list, not %r" % (actions,), 'write quarantine = ["ignore"]')
        actions = ["ignore"]
    good_actions = []
    for action in actions:
        if action not in QUARANTINE_ACTIONS:
            check.problem(key + ".quarantine", "unknown action %r" % (action,), "use any of: %s" % ", ".join(QUARANTINE_ACTIONS))
        elif action not in good_actions:
            good_actions.append(action)
    result["quarantine"] = tuple(good_actions)
    power = entry.get("power_output")
    if power is not None and power not in outs:
        check.problem(key + ".power_output", "no output named %r" % (power,), "define [outputs.%s] or use one of: %s" % (power, ", ".join(sorted(outs)) or "(none defined)"))
        power = None
    result["quarantine_write"] = _quarantine_write(check, entry, key, "write_register" in good_actions)
    needs_power = [a for a in good_actions if a in ("cut_power", "reduce_duty")]
    if needs_power and power is None and "power_output" not in entry:
        check.problem(key + ".power_output", "missing: quarantine action %s drives a power output" % needs_power[0], 'add power_output = "<an [outputs] id>"')
    result["power_output"] = power or ""
    duty = number(check, entry, "duty", key, default=0.5, positive=True)
    if duty >= 1:
        check.problem(key + ".duty", "%r is not below 1" % duty, "write the fraction of time on, e.g. 0.3")
        duty = 0.5
    result["duty"] = duty
    result["duty_period_ms"] = 1000 * check.integer(entry, "duty_period_s", key, 2, 86400, default=60)
    confirm = entry.get("confirm", [3, 5])
    if (
        not isinstance(confirm, list)
        or len(confirm) != 2
        or not all(isinstance(x, int) and not isinstance(x, bool) for x in confirm)
        or not 1 <= confirm[0] <= confirm[1] <= 16
    ):
        check.problem(key + ".confirm", "must be [N, M] with 1 <= N <= M <= 16, not %r" % (confirm,), "write confirm = [3, 5] (3 bad of the last 5 evaluations)")
        confirm = [3, 5]
    result["confirm_n"], result["confirm_m"] = confirm[0], confirm[1]
    result["release_after"] = check.integer(entry, "release_after", key, 1, 100000, default=10)
    result["probe_after_ms"] = 1000 * check.integer(entry, "probe_after_s", key, 1, 2592000, default=300)
    result["max_probes"] = check.integer(entry, "max_probes", key, 1, 1000, default=3)
    mode = entry.get("degraded_mode")
    if mode is not None:
        if not essential:
            check.problem(key + ".degraded_mode", "only an essential component enters a degraded mode", "remove degraded_mode or set essential = true")
        elif mode not in mode_table:
            check.problem(key + ".degraded_mode", "no mode named %r" % (mode,), "define [modes.%s] or use one of: %s" % (mode, ", ".join(sorted(mode_table)) or "(none defined)"))
        mode = mode if mode in mode_table else None
    result["degraded_mode"] = mode or ""
    return result


def sensor_rules(check, entry, key):
    value = entry.get("rules", [])
    if not isinstance(value, list):
        check.problem(key + ".rules", "must be an array of tables", "write each rule as [[%s.rules]] with kind = ..." % key)
        return []
    specs = []
    for index, rule in enumerate(value):
        rule_key = "%s.rules[%d]" % (key, index + 1)
        spec = _rule(check, rule, rule_key)
        if spec is not None:
            specs.append(spec)
    return specs


def _rule(check, rule, key):
    if not isinstance(rule, dict):
        check.problem(key, "must be a table", "write it as [[...rules]] with kind = ...")
        return None
    kind = rule.get("kind")
    if kind not in RULE_KEYS:
        check.problem(key + ".kind", "missing" if kind is None else "unknown rule kind %r" % (kind,), "use one of: %s" % ", ".join(RULE_KINDS))
        return None
    check.unknown_keys(rule, COMMON_RULE_KEYS + RULE_KEYS[kind], key)
    severity = _choice(check, rule, "severity", key, SEVERITIES, None)
    action = _text(check, rule, "action", key)
    health = check.boolean(rule, "health", key, kind not in ("threshold", "dropout", "shift"))
    if kind == "dropout" and health:
        check.problem(key + ".health", "silence is a lost link, not a failing component: it never counts toward the component's state",
                      "remove health = true; the link_lost alert says the sensor went silent")
        return None
    params = {}
    clear_for = number(check, rule, "clear_for_s", key, default=float(CLEAR_FOR_S.get(kind, 0)))
    reraise = number(check, rule, "reraise_s", key, default=float(RERAISE_S.get(kind, 0)))
    for name, seconds in (("clear_for_s", clear_for), ("reraise_s", reraise)):
        if seconds is not None and not 0 <= seconds <= 86400:
            check.problem(key + "." + name, "must be 0 to 86400 s, not %r" % seconds, "write a number of seconds, 0 to turn it off")
            return None
    if kind == "dropout" and clear_for:
        check.problem(key + ".clear_for_s", "a dropout clears on the first reading: readings resume as soon as the sensor answers",
                      "remove clear_for_s")
        return None
    if clear_for:
        params["clear_for_ms"] = int(1000 * clear_for)
    if reraise:
        params["reraise_ms"] = int(1000 * reraise)
    if kind == "threshold":
        above = number(check, rule, "above", key)
        below = number(check, rule, "below", key)
        if (above is None) == (below is None):
            check.problem(key, "needs exactly one of above or below", "write above = <limit> or below = <limit>")
            return None
        clear = number(check, rule, "clear", key, default=above if above is not None else below)
        if above is not None and clear > above or below is not None and clear < below:
            check.problem(key + ".clear", "the clear level %r is on the wrong side of the limit" % clear, "write clear below above (or above below): that gap is the hysteresis")
            return None
        params["above"], params["below"], params["clear"] = above, below, clear
    elif kind == "rate":
        params["max_per_s"] = number(check, rule, "max_per_s", key, required=True, positive=True)
    elif kind == "jump":
        params["max_step"] = number(check, rule, "max_step", key, required=True, positive=True)
    elif kind == "shift":
        params["max_shift"] = number(check, rule, "max_shift", key, required=True, positive=True)
        baseline = number(check, rule, "baseline_s", key, default=3600.0, positive=True)
        params["baseline_ms"] = int(1000 * baseline) if baseline is not None else None
    elif kind == "disagree":
        other = rule.get("with")
        if not isinstance(other, str):
            check.problem(key + ".with", "missing", 'add with = "<the redundant sensor id>"')
        params["with"] = other
        params["max_diff"] = number(check, rule, "max_diff", key, required=True, positive=True)
    if kind in ("stuck", "flatline", "dropout") or kind == "disagree":
        required = kind != "disagree"
        for_s = number(check, rule, "for_s", key, default=0.0, required=required, positive=required)
        params["for_ms"] = int(1000 * (for_s or 0))
    if kind == "stuck":
        params["epsilon"] = number(check, rule, "epsilon", key, default=0.0)
    if kind == "flatline":
        params["tolerance"] = number(check, rule, "tolerance", key, default=0.0)
        rails = rule.get("rails")
        if rails is not None and not is_pair(rails):
            check.problem(key + ".rails", "must be two numbers, not %r" % (rails,), "write rails = [low, high] or leave it out to use valid_range")
            rails = None
        params["rails"] = None if rails is None else (float(rails[0]), float(rails[1]))
    if None in [v for k, v in params.items() if k not in ("above", "below", "rails")]:
        return None
    return RuleSpec(kind, severity, action, health, params, key)


def sensor_predict(check, entry, key):
    table = entry.get("predict")
    if table is None:
        return None
    key = key + ".predict"
    if not isinstance(table, dict):
        check.problem(key, "must be a table", "write it as [%s]" % key)
        return None
    check.unknown_keys(table, PREDICT_KEYS, key)
    above = number(check, table, "above", key)
    below = number(check, table, "below", key)
    if above is None and below is None:
        check.problem(key, "needs above or below (the level a failure crosses)", "add above = <limit> or below = <limit>")
        return None
    horizon = check.integer(table, "horizon_days", key, 1, 60, default=7)
    # Up to 4 weeks: a part that wears over months under a weather that
    # wanders for days needs weeks of history for its slope (2.7 KB of
    # float32 rings at 28 days, 1.3 KB at the default 14).
    history = check.integer(table, "history_days", key, 4, 28, default=14)
    severity = _choice(check, table, "severity", key, SEVERITIES, "warning")
    action = _text(check, table, "action", key)
    return PredictSpec(above, below, horizon * 86400000, history, severity, action)


def _register_values(check, table, name, key):
    value = table.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if (not isinstance(value, list) or not 1 <= len(value) <= 123
            or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 0xFFFF for v in value)):
        check.problem(key + "." + name, "must be a register value 0-65535 or a list of up to 123, not %r" % (value,),
                      "write %s = 0 (or [0, 1] for consecutive registers)" % name)
        return None
    return tuple(value)


def _quarantine_write(check, entry, key, wanted):
    """The [components.ID.quarantine_write] table: bus, slave, address, value,
    release_value. Required by the write_register action, refused without it."""
    table = entry.get("quarantine_write")
    key = key + ".quarantine_write"
    if table is None:
        if wanted:
            check.problem(key, "missing: quarantine action write_register needs it",
                          "add [%s] with bus, slave, address, value, release_value" % key)
        return None
    if not isinstance(table, dict):
        check.problem(key, "must be a table", "write it as [%s]" % key)
        return None
    if not wanted:
        check.problem(key, "given, but quarantine does not list write_register", 'add "write_register" to quarantine, or remove the table')
    check.unknown_keys(table, ("bus", "slave", "address", "value", "release_value"), key)
    bus = check.text(table, "bus", key)
    slave = check.integer(table, "slave", key, 1, 247)
    address = check.integer(table, "address", key, 0, 65535)
    values = _register_values(check, table, "value", key)
    release = _register_values(check, table, "release_value", key)
    if values is not None and release is not None and len(values) != len(release):
        check.problem(key + ".release_value", "writes %d registers, value writes %d" % (len(release), len(values)),
                      "give value and release_value the same number of registers")
    if None in (bus, slave, address, values, release):
        return None
    return RegisterWrite(bus, slave, address, values, release)


def check_register_writes(check, components, buses):
    """A quarantine write must go to a Modbus bus of this board."""
    for component_id in sorted(components):
        write = components[component_id].quarantine_write
        if write is None:
            continue
        key = "components.%s.quarantine_write.bus" % component_id
        bus = buses.get(write.bus)
        if bus is None:
            check.problem(key, "no bus named %r" % write.bus, "use one of: %s" % ", ".join(sorted(buses)))
        elif bus.protocol != "modbus":
            check.problem(key, "bus %s speaks %s, not modbus" % (write.bus, bus.protocol), "name a modbus bus")


def cross_check(check, sensors, components):
    """Checks that need every sensor and component parsed first."""
    for sensor_id in sorted(sensors):
        sensor = sensors[sensor_id]
        key = "sensors." + sensor_id
        if sensor.redundant:
            other = sensors.get(sensor.redundant)
            if other is None:
                check.problem(key + ".redundant", "no sensor named %r" % sensor.redundant, "use one of: %s" % ", ".join(sorted(sensors)))
            elif other.component == sensor.component:
                check.problem(key + ".redundant", "%s is on the same component, so it is quarantined with it" % other.id, "name a sensor on another component")
            elif other.unit != sensor.unit:
                check.problem(key + ".redundant", "%s measures %s, not %s" % (other.id, other.unit, sensor.unit), "name a sensor with the same unit")
        for spec in sensor.rules:
            if spec.kind == "disagree":
                other = sensors.get(spec.params["with"])
                if other is None or other.id == sensor_id:
                    check.problem(spec.key + ".with", "no other sensor named %r" % (spec.params["with"],), "name the redundant sensor to compare with")
                elif other.unit != sensor.unit:
                    check.problem(spec.key + ".with", "%s measures %s, not %s" % (other.id, other.unit, sensor.unit), "compare sensors of the same unit")
            if spec.kind == "dropout" and sensor.period_ms is not None and spec.params["for_ms"] < 2 * sensor.period_ms:
                check.problem(spec.key + ".for_s", "shorter than two sample periods (%d ms): it would fire on every late frame" % sensor.period_ms, "write for_s >= %g" % (2 * sensor.period_ms / 1000.0))
    for component_id in sorted(components):
        component = components[component_id]
        if "switch" in component.quarantine and not [s for s in sensors.values() if s.component == component_id and s.redundant]:
            check.problem("components.%s.quarantine" % component_id, "switch needs a sensor of this component with a redundant sensor", 'add redundant = "<sensor id>" to one of its sensors, or drop "switch"')
