"""The store's record, segment and marker format, byte by byte."""

import struct

from edge_agent.core import store_format as fmt


def test_crc32_matches_the_standard_check_value():
    # CRC-32/ISO-HDLC check value from the CRC catalogue.
    assert fmt.crc32(b"123456789") == 0xCBF43926
    assert fmt.table_crc32(b"123456789") == 0xCBF43926


def test_table_crc32_matches_native_with_a_running_value():
    data = bytes(range(256)) * 3
    for split in (0, 1, 100, 767):
        running = fmt.table_crc32(data[split:], fmt.table_crc32(data[:split]))
        assert running == fmt.crc32(data)


def test_record_layout_is_length_then_crc_then_payload():
    record = fmt.encode_record(b"abc")
    assert record[:4] == b"\x03\x00\x00\x00"
    assert struct.unpack("<I", record[4:8])[0] == fmt.crc32(b"\x03\x00\x00\x00abc")
    assert record[8:] == b"abc"


def test_valid_record_checks_out():
    record = fmt.encode_record(b"payload")
    assert fmt.check_record(record, 0, len(record)) == (None, 8, 7, fmt.TYPE_DATA)


def test_every_truncation_of_a_record_is_torn():
    record = fmt.encode_record(b"hello world")
    for cut in range(len(record)):
        reason = fmt.check_record(record[:cut], 0, cut)[0]
        assert reason == fmt.TORN, (cut, reason)


def test_every_single_bit_flip_is_detected():
    record = fmt.encode_record(b"\xa1\x00\x18\x2a")
    for bit in range(len(record) * 8):
        damaged = bytearray(record)
        damaged[bit // 8] ^= 1 << (bit % 8)
        reason = fmt.check_record(bytes(damaged), 0, len(damaged))[0]
        assert reason is not None, bit


def test_zero_filled_header_is_never_a_record():
    # What ext4 can leave after a crash: the file grew, the data never came.
    zeros = bytes(64)
    assert fmt.check_record(zeros, 0, 64)[0] == fmt.BAD_LENGTH
    # A forged zero length with a matching CRC is still refused.
    word = b"\x00\x00\x00\x00"
    forged = word + struct.pack("<I", fmt.crc32(word))
    assert fmt.check_record(forged, 0, 8)[0] == fmt.BAD_LENGTH


def test_oversized_length_and_unknown_type_are_refused():
    big = struct.pack("<II", fmt.MAX_PAYLOAD + 1, 0) + bytes(16)
    assert fmt.check_record(big, 0, len(big))[0] == fmt.BAD_LENGTH
    typed = struct.pack("<II", 4 | (7 << 28), 0) + b"abcd"
    assert fmt.check_record(typed, 0, len(typed))[0] == fmt.BAD_TYPE


def test_segment_header_round_trip_and_damage():
    header = fmt.encode_segment_header(2, 17, 1700000000123)
    assert len(header) == fmt.SEGMENT_HEADER
    assert header[:4] == b"EASG"
    assert fmt.decode_segment_header(header) == (2, 17, 1700000000123)
    for i in range(len(header)):
        damaged = bytearray(header)
        damaged[i] ^= 0x10
        assert fmt.decode_segment_header(bytes(damaged)) is None, i
    assert fmt.decode_segment_header(header[:23]) is None


def test_seal_names_its_count_and_own_offset():
    seal = fmt.encode_seal(5, 200)
    assert len(seal) == fmt.SEAL_SIZE
    assert fmt.decode_seal(seal, 200) == 5
    assert fmt.decode_seal(seal, 216) is None  # not where it says it is
    assert fmt.decode_seal(fmt.encode_record(b"12345678"), 200) is None  # a data record


def test_ack_marker_round_trip_and_damage():
    marker = fmt.encode_ack(1, (3, 1000, 42))
    assert len(marker) == fmt.ACK_SIZE
    assert fmt.decode_ack(marker, 1) == (3, 1000, 42)
    assert fmt.decode_ack(marker, 2) is None  # another lane's marker
    assert fmt.decode_ack(marker[:-1], 1) is None
    damaged = bytearray(marker)
    damaged[10] ^= 1
    assert fmt.decode_ack(bytes(damaged), 1) is None


def test_seq_marker_round_trip_and_damage():
    marker = fmt.encode_seq(5000000000)
    assert len(marker) == fmt.SEQ_SIZE
    assert fmt.decode_seq(marker) == 5000000000
    damaged = bytearray(marker)
    damaged[9] ^= 4
    assert fmt.decode_seq(bytes(damaged)) is None
    assert fmt.decode_seq(b"") is None


def test_segment_names():
    assert fmt.segment_name(0, 7) == "0-00000007.seg"
    assert fmt.parse_segment_name("3-00000012.seg") == (3, 12)
    for name in ("3-00000012.seg.tmp", "x-1.seg", "-1.seg", "3-.seg", "0.ack", "seq"):
        assert fmt.parse_segment_name(name) is None, name
    assert fmt.parse_ack_name("2.ack") == 2
    assert fmt.parse_ack_name("2.ack.tmp") is None


def _segment(payloads, sealed=False):
    body = fmt.encode_segment_header(0, 1, 0)
    for payload in payloads:
        body += fmt.encode_record(payload)
    if sealed:
        body += fmt.encode_seal(len(payloads), len(body))
    return body


def test_scan_of_a_clean_segment():
    data = _segment([b"a", b"bb", b"ccc"])
    scan = fmt.scan_segment(data)
    assert (scan.count, scan.end, scan.sealed, scan.skipped, scan.torn) == (3, len(data), False, [], None)
    sealed = fmt.scan_segment(_segment([b"a", b"bb"], sealed=True))
    assert sealed.sealed and sealed.count == 2


def test_scan_cuts_a_torn_tail_at_every_offset():
    good = _segment([b"first", b"second"])
    last = fmt.encode_record(b"third record")
    for cut in range(len(last)):
        scan = fmt.scan_segment(good + last[:cut])
        assert scan.count == 2 and scan.end == len(good), cut
        if cut:
            assert scan.torn == (len(good), cut, scan.torn[2]), cut
        else:
            assert scan.torn is None


def test_scan_steps_over_corruption_in_the_middle():
    records = [b"one", b"two two", b"three"]
    data = bytearray(_segment(records))
    middle = fmt.SEGMENT_HEADER + len(fmt.encode_record(b"one"))
    data[middle + 9] ^= 0xFF  # inside "two two"
    scan = fmt.scan_segment(bytes(data))
    assert scan.count == 2
    assert scan.skipped == [(middle, len(fmt.encode_record(b"two two")), fmt.BAD_CRC)]
    assert scan.torn is None and scan.end == len(data)


def test_find_next_record_resynchronises_after_a_damaged_length():
    data = bytearray(_segment([b"aaaa", b"bbbb", b"cccc"]))
    second = fmt.SEGMENT_HEADER + 12
    data[second] = 0xEE  # the length of the second record now lies
    assert fmt.find_next_record(bytes(data), second + 1, len(data)) == second + 12
    assert fmt.find_next_record(bytes(data), len(data) - 3, len(data)) == -1
