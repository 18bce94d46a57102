"""Board validation: every problem reported, with key, reason and fix."""

from support import copy_board, raises

from edge_agent.core import board as bd


def test_valid_board_loads():
    board = bd.board_from_dict(copy_board(), "demo.toml")
    assert board.name == "test-board"
    assert board.model == "EA-TEST-1"
    assert sorted(board.sensors) == ["coolant_temp", "fan_rpm"]
    temp = board.sensors["coolant_temp"]
    assert (temp.low, temp.high, temp.unit, temp.period_ms) == (-20.0, 110.0, "degC", 1000)
    assert board.components["coolant_loop"].essential is True
    assert board.components["fan"].essential is False
    assert board.buses["uart0"].baud == 115200
    assert sorted(s.id for s in board.sensors_on("uart0")) == ["coolant_temp", "fan_rpm"]
    assert board.sensors_on("uart9") == []


def _problems(data):
    err = raises(bd.BoardError, bd.board_from_dict, data, "x.toml")
    return err, dict((p.key, p) for p in err.problems)


def test_every_problem_reported_at_once():
    data = copy_board()
    data["sensors"]["coolant_temp"]["valid_range"] = [110, -20]
    data["sensors"]["fan_rpm"]["bus"] = "uart9"
    data["sensors"]["fan_rpm"]["colour"] = "red"
    data["buses"]["uart0"]["baud"] = 12345
    del data["board"]["model"]
    err, problems = _problems(data)
    assert sorted(problems) == [
        "board.model",
        "buses.uart0.baud",
        "sensors.coolant_temp.valid_range",
        "sensors.fan_rpm.bus",
        "sensors.fan_rpm.colour",
    ]
    text = str(err)
    assert text.startswith("x.toml: 5 problems")
    assert "define [buses.uart9] or use one of: uart0" in text
    assert "low 110.0 is not below high -20.0" in text


def test_missing_tables_and_schema():
    err, problems = _problems({})
    assert "schema" in problems and "board" in problems and "buses" in problems and "sensors" in problems
    assert "add schema = 1" in problems["schema"].fix


def test_wrong_types_reported():
    data = copy_board()
    data["sensors"]["coolant_temp"]["period_ms"] = "fast"
    data["sensors"]["fan_rpm"]["valid_range"] = "0..5000"
    data["components"]["fan"]["essential"] = "yes"
    data["buses"]["uart0"]["protocol"] = "modbus-tcp"
    err, problems = _problems(data)
    assert sorted(problems) == [
        "buses.uart0.protocol",
        "components.fan.essential",
        "sensors.coolant_temp.period_ms",
        "sensors.fan_rpm.valid_range",
    ]
    assert "must be an integer" in problems["sensors.coolant_temp.period_ms"].reason


def test_bad_ids_and_references():
    data = copy_board()
    data["sensors"]["Bad-Id"] = data["sensors"].pop("fan_rpm")
    data["sensors"]["coolant_temp"]["component"] = "pump"
    err, problems = _problems(data)
    assert "sensors.Bad-Id" in problems
    assert "sensors.coolant_temp.component" in problems
    assert "define [components.pump]" in problems["sensors.coolant_temp.component"].fix


def test_not_a_table():
    err = raises(bd.BoardError, bd.board_from_dict, [1, 2], "x.toml")
    assert len(err.problems) == 1
    data = copy_board()
    data["sensors"]["coolant_temp"] = 5
    err, problems = _problems(data)
    assert "sensors.coolant_temp" in problems


def test_bool_is_not_a_number():
    data = copy_board()
    data["sensors"]["coolant_temp"]["valid_range"] = [False, True]
    data["sensors"]["fan_rpm"]["period_ms"] = True
    err, problems = _problems(data)
    assert sorted(problems) == ["sensors.coolant_temp.valid_range", "sensors.fan_rpm.period_ms"]


# --- health keys (board_health.py) -----------------------------------------


def _health_data():
    data = copy_board()
    data["outputs"] = {"fan_power": {"chip": "/dev/gpiochip0", "line": 17, "active_low": True}}
    data["modes"] = {"cool_down": {"text": "heater off", "cut": ["fan_power"]}}
    data["health"] = {"storm_hold_s": 5, "dedupe_s": 600}
    data["components"]["fan"].update({"quarantine": ["cut_power"], "power_output": "fan_power", "confirm": [2, 4], "supply": "rail_12v"})
    data["components"]["coolant_loop"]["degraded_mode"] = "cool_down"
    data["sensors"]["fan_rpm"]["rules"] = [
        {"kind": "stuck", "epsilon": 0.5, "for_s": 30, "severity": "warning", "action": "check the fan"},
        {"kind": "threshold", "above": 4500, "clear": 4000},
        {"kind": "dropout", "for_s": 5},
    ]
    data["sensors"]["coolant_temp"]["predict"] = {"above": 95}
    return data


def test_health_keys_load_with_defaults_filled():
    board = bd.board_from_dict(_health_data(), "h.toml")
    fan = board.components["fan"]
    assert (fan.quarantine, fan.power_output, fan.confirm_n, fan.confirm_m, fan.supply) == (("cut_power",), "fan_power", 2, 4, "rail_12v")
    assert (fan.probe_after_ms, fan.max_probes, fan.release_after) == (300000, 3, 10)
    assert board.components["coolant_loop"].degraded_mode == "cool_down"
    assert board.components["coolant_loop"].quarantine == ("ignore",)  # the default
    assert board.outputs["fan_power"].active_low is True and board.outputs["fan_power"].line == 17
    assert board.modes["cool_down"].cut == ["fan_power"]
    assert (board.health.storm_hold_ms, board.health.dedupe_ms, board.health.storm_min) == (5000, 600000, 3)
    kinds = [r.kind for r in board.sensors["fan_rpm"].rules]
    assert kinds == ["stuck", "threshold", "dropout"]
    stuck, threshold, dropout = board.sensors["fan_rpm"].rules
    assert stuck.params == {"epsilon": 0.5, "for_ms": 30000} and stuck.health and stuck.severity == "warning"
    assert threshold.health is False and threshold.params["clear"] == 4000
    predict = board.sensors["coolant_temp"].predict
    assert (predict.above, predict.below, predict.horizon_ms, predict.history_days) == (95.0, None, 7 * 86400000, 14)
    assert board.sensors_of("fan") == ["fan_rpm"]


def test_bad_rules_are_rejected_with_file_key_and_fix():
    data = _health_data()
    data["sensors"]["fan_rpm"]["rules"] = [
        {"kind": "stuk", "for_s": 3},
        {"kind": "stuck"},
        {"kind": "threshold", "above": 10, "below": 2},
        {"kind": "threshold", "above": 10, "clear": 12},
        {"kind": "rate", "max_per_s": -1},
        {"kind": "dropout", "for_s": 0.6},
        {"kind": "disagree", "with": "fan_rpm", "max_diff": 3},
        {"kind": "jump", "max_step": 5, "colour": "red"},
        {"kind": "stuck", "for_s": 5, "severity": "urgent"},
        "stuck",
    ]
    err, problems = _problems(data)
    text = str(err)
    assert text.startswith("x.toml: ")
    expected = {
        "sensors.fan_rpm.rules[1].kind": "use one of: disagree, dropout, flatline, jump, rate, shift, stuck, threshold",
        "sensors.fan_rpm.rules[2].for_s": "add for_s = <number>",
        "sensors.fan_rpm.rules[3]": "write above = <limit> or below = <limit>",
        "sensors.fan_rpm.rules[4].clear": "that gap is the hysteresis",
        "sensors.fan_rpm.rules[5].max_per_s": "write a number above zero",
        "sensors.fan_rpm.rules[6].for_s": "write for_s >= 1",
        "sensors.fan_rpm.rules[7].with": "name the redundant sensor to compare with",
        "sensors.fan_rpm.rules[8].colour": "remove it or use one of",
        "sensors.fan_rpm.rules[9].severity": "use one of: critical, warning, info",
        "sensors.fan_rpm.rules[10]": "write it as [[...rules]]",
    }
    for key, fix in expected.items():
        assert key in problems, (key, sorted(problems))
        assert fix in problems[key].fix, (key, problems[key].fix)


def test_hysteresis_and_re_raise_keys_default_per_kind_and_are_checked():
    board = bd.board_from_dict(_health_data(), "h.toml")
    stuck, threshold, dropout = board.sensors["fan_rpm"].rules
    assert "clear_for_ms" not in stuck.params and "reraise_ms" not in stuck.params
    assert (threshold.params["clear_for_ms"], threshold.params["reraise_ms"]) == (60000, 900000)
    assert "clear_for_ms" not in dropout.params and dropout.params["reraise_ms"] == 60000
    assert dropout.health is False  # silence is a lost link
    data = _health_data()
    data["sensors"]["fan_rpm"]["rules"] = [
        {"kind": "threshold", "above": 4500, "clear_for_s": 0, "reraise_s": 0},
        {"kind": "dropout", "for_s": 5, "health": True},
        {"kind": "dropout", "for_s": 5, "clear_for_s": 10},
        {"kind": "stuck", "for_s": 5, "reraise_s": -1},
        {"kind": "stuck", "for_s": 5, "clear_for_s": 90000},
        {"kind": "shift"},
        {"kind": "shift", "max_shift": 3, "baseline_s": 600},
    ]
    err, problems = _problems(data)
    assert sorted(problems) == ["sensors.fan_rpm.rules[2].health", "sensors.fan_rpm.rules[3].clear_for_s",
                                "sensors.fan_rpm.rules[4].reraise_s", "sensors.fan_rpm.rules[5].clear_for_s",
                                "sensors.fan_rpm.rules[6].max_shift"], sorted(problems)
    data["sensors"]["fan_rpm"]["rules"] = [{"kind": "shift", "max_shift": 3, "baseline_s": 600}]
    (shift,) = bd.board_from_dict(data, "h.toml").sensors["fan_rpm"].rules
    assert shift.params == {"max_shift": 3.0, "baseline_ms": 600000} and shift.health is False
    assert "silence is a lost link" in problems["sensors.fan_rpm.rules[2].health"].reason
    assert "write zero or more" in problems["sensors.fan_rpm.rules[4].reraise_s"].fix


def test_bad_quarantine_and_components_rejected():
    data = _health_data()
    fan = data["components"]["fan"]
    fan["quarantine"] = ["cut_power", "unplug"]
    fan["power_output"] = "fan_pwr"
    fan["confirm"] = [6, 5]
    fan["degraded_mode"] = "cool_down"  # not essential
    data["components"]["coolant_loop"]["quarantine"] = ["switch"]  # no redundant sensor
    data["modes"]["cool_down"]["cut"] = ["heater"]
    data["outputs"]["fan_power"]["line"] = 5000
    data["sensors"]["coolant_temp"]["predict"] = {"horizon_days": 7}
    data["health"]["storm_min"] = 1
    err, problems = _problems(data)
    assert "unknown action 'unplug'" in problems["components.fan.quarantine"].reason
    assert "define [outputs.fan_pwr]" in problems["components.fan.power_output"].fix
    assert "3 bad of the last 5" in problems["components.fan.confirm"].fix
    assert "set essential = true" in problems["components.fan.degraded_mode"].fix
    assert "switch needs a sensor" in problems["components.coolant_loop.quarantine"].reason
    assert "define [outputs.heater]" in problems["modes.cool_down.cut"].fix
    assert "outputs.fan_power.line" in problems
    assert "add above = <limit>" in problems["sensors.coolant_temp.predict"].fix
    assert "health.storm_min" in problems


def test_redundant_sensor_must_be_elsewhere_and_alike():
    data = copy_board()
    data["sensors"]["coolant_temp"]["redundant"] = "fan_rpm"
    data["sensors"]["fan_rpm"]["redundant"] = "nope"
    err, problems = _problems(data)
    assert "fan_rpm measures rpm, not degC" in problems["sensors.coolant_temp.redundant"].reason
    assert "no sensor named 'nope'" in problems["sensors.fan_rpm.redundant"].reason


def test_cut_power_without_an_output_is_an_error():
    data = copy_board()
    data["components"]["fan"]["quarantine"] = ["reduce_duty"]
    err, problems = _problems(data)
    assert "quarantine action reduce_duty drives a power output" in problems["components.fan.power_output"].reason


def test_shipped_boards_are_valid():
    # The example boards are data the tests and the demo rely on.
    for name in ("demo-gateway", "pump-station"):
        path = "boards/%s.toml" % name
        try:
            import tomllib
        except ImportError:
            return  # MicroPython has no TOML parser; CPython checks them
        with open(path, "rb") as f:
            board = bd.board_from_dict(tomllib.load(f), path)
        assert board.sensors
