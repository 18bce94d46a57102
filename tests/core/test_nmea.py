"""NMEA 0183 decoder: real sentences (the GGA/RMC/VTG examples that gpsd's
and the NMEA references quote), checksums, resynchronisation, field maps.
Runs under pytest and MicroPython."""

from edge_agent.core import board as bd
from edge_agent.core import frames as fr
from edge_agent.core import nmea

from support import copy_sources_board

GGA = b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n"
RMC = b"$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A\r\n"
VTG = b"$GPVTG,054.7,T,034.4,M,005.5,N,010.2,K*48\r\n"


def _decoder(fields):
    """A decoder for sensors reading {sensor id: (sentence, field)}."""
    data = copy_sources_board()
    sensors = data["sensors"]
    for sid in list(sensors):
        if sensors[sid]["bus"] == "gps":
            del sensors[sid]
    for sid, (sentence, field) in fields.items():
        sensors[sid] = {"bus": "gps", "component": "tracker", "unit": "x", "valid_range": [-1000, 1000],
                        "period_ms": 1000, "nmea": {"sentence": sentence, "field": field}}
    board = bd.board_from_dict(data, "gps.toml")
    return nmea.Decoder(board.buses["gps"], board.sensors_on("gps"))


def _values(events):
    return sorted((e.sensor, e.kind, e.value) for e in events if isinstance(e, fr.Frame))


def _close(a, b):
    return abs(a - b) < 1e-4


def test_checksum_and_sentence_builder():
    assert nmea.checksum(b"GPVTG,054.7,T,034.4,M,005.5,N,010.2,K") == 0x48
    assert nmea.sentence(["GPVTG", "054.7", "T", "034.4", "M", "005.5", "N", "010.2", "K"]) == VTG


def test_gga_fields():
    decoder = _decoder({"alt": ("GGA", "altitude"), "lat": ("GGA", "latitude"), "lon": ("GGA", "longitude"),
                        "sats": ("GGA", "satellites"), "raw8": ("GGA", 8)})
    values = dict((s, v) for s, k, v in _values(decoder.feed(GGA, 0)))
    assert values["alt"] == 545.4 and values["sats"] == 8.0 and values["raw8"] == 0.9
    assert _close(values["lat"], 48 + 7.038 / 60)
    assert _close(values["lon"], 11 + 31.0 / 60)


def test_rmc_and_vtg_fields_any_talker():
    decoder = _decoder({"lat": ("RMC", "latitude"), "knots": ("RMC", "speed_knots"), "kmh": ("VTG", "speed_kmh")})
    # GN (multi-constellation) talker: same sentence type, same sensor.
    gn = nmea.sentence(["GNRMC", "123519", "A", "3345.120", "S", "15112.500", "W", "022.4", "084.4", "230394", "", ""])
    values = _values(decoder.feed(RMC + VTG + gn, 0))
    assert ("kmh", fr.READING, 10.2) in values and ("knots", fr.READING, 22.4) in values
    south, north = [v for s, k, v in values if s == "lat"]
    assert _close(north, 48 + 7.038 / 60)
    assert _close(south, -(33 + 45.12 / 60))  # south is negative


def test_no_fix_is_a_sensor_error_and_empty_fields_read_nothing():
    decoder = _decoder({"lat": ("GGA", "latitude"), "sats": ("GGA", "satellites"), "alt": ("GGA", "altitude"),
                        "rlat": ("RMC", "latitude")})
    no_fix = nmea.sentence(["GPGGA", "123520", "", "", "", "", "0", "00", "", "", "M", "", "M", "", ""])
    void = nmea.sentence(["GPRMC", "123520", "V", "", "", "", "", "", "", "230394", "", ""])
    assert _values(decoder.feed(no_fix + void, 0)) == [
        ("alt", fr.SENSOR_ERROR, nmea.NO_FIX), ("lat", fr.SENSOR_ERROR, nmea.NO_FIX),
        ("rlat", fr.SENSOR_ERROR, nmea.NO_FIX), ("sats", fr.READING, 0.0)]
    fix_no_altitude = nmea.sentence(["GPGGA", "1", "4807.038", "N", "01131.000", "E", "1", "05", "", "", "M", "", "M", "", ""])
    assert [s for s, k, v in _values(decoder.feed(fix_no_altitude, 0))] == ["lat", "sats"]


def test_bad_sentences_are_counted_not_raised():
    decoder = _decoder({"alt": ("GGA", "altitude")})
    corrupt = GGA.replace(b"545.4", b"545.5")
    events = decoder.feed(b"xx" + corrupt + b"$GPGGA,1*" + b"$PGRME,15.0,M*00\r\n" + GGA[:20] + GGA, 0)
    reasons = [e.reason for e in events if isinstance(e, fr.BadFrame)]
    assert reasons == [fr.GARBAGE, fr.BAD_CHECKSUM, fr.TRUNCATED, fr.BAD_CHECKSUM, fr.TRUNCATED]
    assert _values(events) == [("alt", fr.READING, 545.4)]
    # Overlong: abandoned at 82 bytes, the rest of the line is garbage.
    assert [e.reason for e in decoder.feed(b"$GPGGA" + b"1" * 100, 0) + decoder.flush(0)] == [fr.OVERLONG, fr.GARBAGE]
    assert [e.reason for e in decoder.feed(b"$GPGGA,1", 0) + decoder.flush(0)] == [fr.TRUNCATED]
    assert [e.reason for e in decoder.feed(b"$GPGGA,1\r\n", 0)] == [fr.NO_CHECKSUM]
    # Proprietary sentences are valid and ignored; a malformed address is not.
    ignored = decoder.ignored
    assert decoder.feed(nmea.sentence(["PGRME", "15.0", "M"]), 0) == []
    assert decoder.ignored == ignored + 1
    assert [e.reason for e in decoder.feed(nmea.sentence(["GPgga", "1"]), 0)] == [fr.UNKNOWN_TYPE]


def test_byte_by_byte_equals_whole():
    decoder = _decoder({"alt": ("GGA", "altitude"), "kmh": ("VTG", "speed_kmh")})
    whole = _values(decoder.feed(GGA + VTG, 0))
    pieces = []
    for byte in GGA + VTG:
        pieces.extend(decoder.feed(bytes((byte,)), 0))
    assert _values(pieces) == whole and len(whole) == 2


def test_bad_coordinates_are_bad_fields():
    decoder = _decoder({"lat": ("GGA", "latitude")})
    for lat, hemi in (("9107.038", "N"), ("4860.000", "N"), ("4807.038", "E"), ("807.038", "N")):
        line = nmea.sentence(["GPGGA", "1", lat, hemi, "01131.000", "E", "1", "05", "1", "1", "M", "", "M", "", ""])
        assert _values(decoder.feed(line, 0)) == [("lat", fr.SENSOR_ERROR, "bad-field")], lat
