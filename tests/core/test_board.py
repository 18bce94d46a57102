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
