"""Quarantine by Modbus register write: a failing meter is stopped by writing
a holding register on its own bus, and the release value goes back when it
is probed. Both interpreters."""

from support import copy_sources_board, raises

from edge_agent.core import board as bd
from edge_agent.core import device as dv
from edge_agent.core import reading as rd
from edge_agent.core.modbus import crc16
from edge_agent.core.outputs import WriteRegisters


def _board(**write):
    data = copy_sources_board()
    meter = data["components"]["meter"]
    meter["quarantine"] = ["write_register"]
    meter["probe_after_s"] = 60
    meter["quarantine_write"] = dict({"bus": "rs485", "slave": 2, "address": 40, "value": 0, "release_value": 1}, **write)
    return data


def _writes(outputs):
    return [o for o in outputs if isinstance(o, WriteRegisters)]


def test_quarantine_writes_then_probe_releases():
    device = dv.Device(bd.board_from_dict(_board(), "q.toml"), "unit-9")
    outputs = []
    t = 0
    while not _writes(outputs) and t < 60000:
        t += 2000
        outputs += device.ingest(rd.Reading(t, "power", 250000.0), t)  # far outside [0, 100000]
    writes = _writes(outputs)
    assert len(writes) == 1, outputs
    assert (writes[0].bus, writes[0].slave, writes[0].address, writes[0].values) == ("rs485", 2, 40, [0])
    assert writes[0].reason == "quarantine:meter"
    assert device.stats["register_writes"] == 1
    _, send, _ = device.poll_bus("rs485", t)
    # Function 06 (write single register) to slave 2, register 40, value 0.
    body = bytes([2, 6, 0, 40, 0, 0])
    crc = crc16(body)
    assert send == body + bytes([crc & 0xFF, crc >> 8]), send
    later = []
    t2 = t
    while not _writes(later) and t2 < t + 120000:
        t2 += 1000
        out, _ = device.poll(t2)
        later += out
    release = _writes(later)
    assert release and release[0].values == [1] and release[0].reason == "release:meter"


def test_bad_quarantine_write_tables_are_reported():
    cases = [
        (dict(bus="gps"), "components.meter.quarantine_write.bus", "speaks nmea, not modbus"),
        (dict(bus="nope"), "components.meter.quarantine_write.bus", "no bus named"),
        (dict(value=70000), "components.meter.quarantine_write.value", "0-65535"),
        (dict(value=[1, 2]), "components.meter.quarantine_write.release_value", "same number"),
        (dict(slave=0), "components.meter.quarantine_write.slave", "outside"),
    ]
    for write, key, words in cases:
        err = raises(bd.BoardError, bd.board_from_dict, _board(**write), "q.toml")
        problems = dict((p.key, p) for p in err.problems)
        assert key in problems, (write, sorted(problems))
        assert words in problems[key].describe(), problems[key].describe()
    data = _board()
    del data["components"]["meter"]["quarantine_write"]
    err = raises(bd.BoardError, bd.board_from_dict, data, "q.toml")
    assert "components.meter.quarantine_write" in [p.key for p in err.problems]
    data = _board()
    data["components"]["meter"]["quarantine"] = ["ignore"]
    err = raises(bd.BoardError, bd.board_from_dict, data, "q.toml")
    assert "quarantine does not list write_register" in str(err)
