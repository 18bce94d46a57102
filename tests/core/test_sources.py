"""Board validation of modbus and nmea buses, and the Device reading
several buses of different protocols. Runs under pytest and MicroPython."""

from support import copy_board, copy_sources_board, raises

from edge_agent.core import board as bd
from edge_agent.core import device as dv
from edge_agent.core import frames as fr
from edge_agent.core import modbus as mb
from edge_agent.core import modbus_master as mm
from edge_agent.core import nmea
from edge_agent.core import reading as rd
from edge_agent.core import signals as sg


def _problems(data):
    return [p.describe() for p in raises(bd.BoardError, bd.board_from_dict, data, "b.toml").problems]


def test_sources_board_is_valid_with_defaults():
    board = bd.board_from_dict(copy_sources_board(), "b.toml")
    rs485 = board.buses["rs485"]
    assert rs485.protocol == "modbus" and rs485.settings.timeout_ms == 50 and rs485.settings.parity == "none"
    assert board.buses["uart0"].baud == 115200 and board.buses["uart0"].settings is None
    power = board.sensors["power"].source
    assert (power.slave, power.function, power.address, power.type, power.word_order) == (2, 3, 12, "float32", "little")
    door = board.sensors["door_open"].source
    assert door.type == "bool" and door.scale == 1.0
    assert board.sensors["altitude"].source.field == "altitude"
    assert board.sensors["cabinet_temp"].source is None
    data = copy_sources_board()
    del data["buses"]["gps"]["baud"]
    data["buses"]["rs485"] = {"port": "/dev/ttyS1", "protocol": "modbus"}
    board = bd.board_from_dict(data, "b.toml")
    assert board.buses["gps"].baud == nmea.DEFAULT_BAUD
    settings = board.buses["rs485"].settings
    assert board.buses["rs485"].baud == 19200 and settings.parity == "even" and settings.retries == 2


def test_every_bad_modbus_key_is_named_with_a_fix():
    data = copy_sources_board()
    data["buses"]["rs485"].update({"parity": "mark", "stop_bits": 3, "timeout_ms": 5, "retries": -1})
    data["buses"]["uart0"]["timeout_ms"] = 100
    data["sensors"]["air_temp"]["modbus"] = {"slave": 0, "function": 5, "address": 70000, "type": "int64",
                                             "scale": 0, "offset": "x", "colour": 1}
    data["sensors"]["door_open"]["modbus"]["type"] = "int16"
    data["sensors"]["power"]["modbus"]["type"] = "uint16"  # word_order given for a 1-register type
    del data["sensors"]["cabinet_temp"]["bus"]
    data["sensors"]["cabinet_temp"]["bus"] = "rs485"  # a modbus sensor without its table
    data["sensors"]["altitude"]["modbus"] = {"slave": 1, "address": 0}
    problems = "\n".join(_problems(data))
    for words in [
        "buses.rs485.parity: unknown parity 'mark'; use one of: even, odd, none",
        "buses.rs485.stop_bits: 3 is outside 1..2",
        "buses.rs485.timeout_ms: 5 is outside 10..10000",
        "buses.rs485.retries: -1 is outside 0..5",
        "buses.uart0.timeout_ms: only modbus buses take timeout_ms, this bus speaks line; remove it, or set protocol = \"modbus\"",
        "sensors.air_temp.modbus.colour: unknown key",
        "sensors.air_temp.modbus.slave: 0 is outside 1..247",
        "sensors.air_temp.modbus.function: 5 is outside 1..4",
        "sensors.air_temp.modbus.address: 70000 is outside 0..65535",
        "sensors.air_temp.modbus.type: unknown register type 'int64'",
        "sensors.air_temp.modbus.scale: a scale of 0 makes every reading 0",
        "sensors.air_temp.modbus.offset: must be a finite number, not 'x'",
        "sensors.door_open.modbus.type: function 2 reads bits, so the type is bool, not 'int16'",
        "sensors.power.modbus.word_order: uint16 is one register",
        "sensors.cabinet_temp.modbus: missing table; add a [sensors.cabinet_temp.modbus] table",
        "sensors.altitude.modbus: the sensor's bus gps speaks nmea, not modbus; remove [sensors.altitude.modbus]",
    ]:
        assert words in problems, words


def test_every_bad_nmea_key_is_named_with_a_fix():
    data = copy_sources_board()
    data["sensors"]["altitude"]["nmea"] = {"sentence": "GPGGA", "field": "altitude"}
    data["sensors"]["latitude"]["nmea"] = {"sentence": "RMC", "field": "height"}
    data["sensors"]["cabinet_temp"]["nmea"] = {"sentence": "GGA", "field": 9}
    data["sensors"]["door_open"] = {"bus": "gps", "component": "cabinet", "unit": "x", "valid_range": [0, 1],
                                    "period_ms": 1000, "nmea": {"sentence": "ZDA", "field": "year"}}
    data["sensors"]["power"] = {"bus": "gps", "component": "meter", "unit": "x", "valid_range": [0, 1],
                                "period_ms": 1000, "nmea": {"sentence": "GSA", "field": 0}}
    problems = "\n".join(_problems(data))
    for words in [
        "sensors.altitude.nmea.sentence: 'GPGGA' is not a 3-letter sentence type; write the type without the talker",
        "sensors.latitude.nmea.field: RMC has no field 'height'; use one of: course, latitude, longitude,",
        "sensors.cabinet_temp.nmea: the sensor's bus uart0 speaks line, not nmea",
        "sensors.door_open.nmea.field: no field names for ZDA sentences; give the position instead",
        "sensors.power.nmea.field: position 0 is outside 1..40",
    ]:
        assert words in problems, words


def test_line_boards_are_unchanged():
    board = bd.board_from_dict(copy_board(), "demo.toml")
    assert board.buses["uart0"].protocol == "line" and board.sensors["fan_rpm"].source is None
    data = copy_board()
    data["buses"]["uart0"]["protocol"] = "can"
    assert "buses.uart0.protocol: unknown protocol 'can'; use one of: line, modbus, nmea" in _problems(data)


def _device():
    return dv.Device(bd.board_from_dict(copy_sources_board(), "b.toml"), "unit-3", telemetry_interval_ms=1000)


def _telemetry(outputs):
    rows = []
    for o in outputs:
        if isinstance(o, sg.Signal) and o.kind == sg.KIND_TELEMETRY:
            rows.extend(o.body[sg.T_READINGS])
    return rows


def test_device_reads_three_protocols_side_by_side():
    device = _device()
    assert not device.bus_writes("uart0") and device.bus_writes("rs485") and not device.bus_writes("gps")
    outputs = device.feed("uart0", fr.encode_frame(fr.READING, "cabinet_temp", 31.5), 0)
    outputs += device.feed("gps", nmea.sentence(["GPGGA", "1", "4807.038", "N", "01131.000", "E", "1", "08", "0.9",
                                                 "545.4", "M", "46.9", "M", "", ""]), 0)
    # The modbus bus: the device says what to send; replies go back in.
    served = {}
    now = 0
    while len(served) < 3:
        out, send, deadline = device.poll_bus("rs485", now)
        outputs += out
        if send is None:
            now = deadline
            continue
        slave, function = send[0], send[1]
        if (slave, function) == (1, 4):
            reply = mb.with_crc(bytes((1, 4, 2, 0x00, 0xE6)))  # 230 -> 23.0 degC
        elif (slave, function) == (1, 2):
            reply = mb.with_crc(bytes((1, 2, 1, 0x01)))
        else:
            w = mb.encode_value(1500.0, "float32", "little")
            reply = mb.with_crc(bytes((2, 3, 4, w[0] >> 8, w[0] & 0xFF, w[1] >> 8, w[1] & 0xFF)))
        served[(slave, function)] = True
        now += 3
        outputs += device.feed("rs485", reply, now)
    outputs += device.poll(5000)[0]
    rows = sorted((r[1], r[2], r[3]) for r in _telemetry(outputs))
    assert rows == [("air_temp", 23.0, rd.GOOD), ("altitude", 545.4, rd.GOOD), ("cabinet_temp", 31.5, rd.GOOD),
                    ("door_open", 1.0, rd.GOOD), ("power", 1500.0, rd.GOOD)]


def test_device_counts_a_silent_slave_and_reports_writes():
    device = _device()
    now = 0
    outputs = []
    for _ in range(40):
        out, send, deadline = device.poll_bus("rs485", now)
        outputs += out
        now = deadline if deadline is not None else now + 10
    assert device.bad_by_reason.get(mm.NO_REPLY, 0) >= 2
    notices = [o for o in outputs if isinstance(o, dv.Notice)]
    assert "bus rs485: no-reply: sensor" in notices[0].text
    assert device.stats["readings"] == 0  # silence: the dropout rule's job, not fake readings
    device.write_registers("rs485", 1, 40, [1], tag="heater")
    out, send, deadline = device.poll_bus("rs485", now + 100)
    assert send == mb.write_request(1, 40, [1]).adu
    out = device.feed("rs485", mb.with_crc(bytes.fromhex("010600280001")), now + 101)
    assert [n.text for n in out if isinstance(n, dv.Notice)] == ["bus rs485: write 'heater' done"]
    raises(KeyError, device.write_registers, "gps", 1, 0, [1])
