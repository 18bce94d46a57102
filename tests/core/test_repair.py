"""Gap repair, the device's side (issue 21): operator scopes, the `replay`
command's checks, the answer's ranges, the rate limit. Mac0 commands
(the core's own HMAC); both interpreters."""

from support import raises

from edge_agent.core import operator as op
from edge_agent.core import repair
from edge_agent.core import signals as sg

KEY = b"k" * 32
NOW = 1800000000000
TRUSTED = {b"ops": KEY, b"rx": KEY}
SCOPES = {"rx": ("replay",)}


def _message(name, args, operator="rx", target="unit-17", counter=1):
    return op.mac_command(KEY, operator, target, name, args, counter, NOW, NOW + 60000)


def _verify(message, scopes=SCOPES):
    return op.verify_command(message, TRUSTED, "unit-17", "EA-TEST-1", NOW, 0, scopes)


REQUEST = {"ranges": [[3, 9], [12, 12]], "request": "rx-1/7"}


def test_scopes_gate_replay_and_only_replay():
    command = _verify(_message("replay", REQUEST))
    assert (command.name, command.operator) == ("replay", "rx")
    # An operator without scopes: every command but replay.
    refused = raises(op.Rejection, _verify, _message("replay", REQUEST, "ops"))
    assert refused.reason == "wrong-scope"
    assert refused.detail == "ops may not send replay: its scopes are the default (every command but replay)"
    assert refused.command_name == "replay"  # signed: the audit names it
    assert _verify(_message("quarantine.force", {"component": "fan"}, "ops")).name == "quarantine.force"
    # An operator with scopes = ["replay"]: nothing else.
    refused = raises(op.Rejection, _verify, _message("quarantine.force", {"component": "fan"}))
    assert (refused.reason, refused.detail) == ("wrong-scope", "rx may not send quarantine.force: its scopes are "
                                                               "replay")
    # No scopes map at all: as before, and replay is refused.
    assert raises(op.Rejection, _verify, _message("replay", REQUEST), None).reason == "wrong-scope"


def test_operator_scope_lists_are_checked():
    assert op.check_operator_scopes(["replay"]) is None
    assert "unknown scope 'override'" in op.check_operator_scopes(["override"])
    assert op.check_operator_scopes([]) is not None
    assert op.check_operator_scopes("replay") is not None


def _parse(args, target="unit-17"):
    return repair.parse_request(op.Command("replay", args, 1, "rx", NOW + 60000, NOW, target))


def _refusal(args, target="unit-17"):
    exc = raises(op.Refused, _parse, args, target)
    return exc.reason


def test_a_request_parses_and_bad_ones_are_refused_with_a_reason():
    assert _parse(REQUEST) == ("rx-1/7", [[3, 9], [12, 12]])
    assert _parse({"ranges": [[0, 4095]], "request": "r" * 40})[1] == [[0, 4095]]
    assert _refusal(REQUEST, "model:EA-TEST-1") == "bad-args"
    for args in ({"ranges": [[1, 2]]}, {"request": "r"}, {"ranges": [], "request": "r"},
                 {"ranges": [[1, 2]], "request": ""}, {"ranges": [[1, 2]], "request": "r" * 41},
                 {"ranges": [[1, 2]], "request": 5}, {"ranges": [[2, 1]], "request": "r"},
                 {"ranges": [[1, 5], [5, 9]], "request": "r"}, {"ranges": [[6, 9], [1, 2]], "request": "r"},
                 {"ranges": [[1]], "request": "r"}, {"ranges": [[1, -2]], "request": "r"},
                 {"ranges": [[1, True]], "request": "r"}, {"ranges": [[1, 2]], "request": "r", "x": 1},
                 {"ranges": "1-2", "request": "r"}, {"ranges": [[1, 2.0]], "request": "r"}):
        assert _refusal(args) == "bad-args", args
    assert _refusal({"ranges": [[0, 4096]], "request": "r"}) == "too-large"
    assert _refusal({"ranges": [[n * 2, n * 2] for n in range(33)], "request": "r"}) == "too-large"
    assert _refusal({"ranges": [[0, 2 ** 64 - 1]], "request": "r"}) == "too-large"


def _record(seq, kind=sg.KIND_TELEMETRY, device="unit-17"):
    return sg.Signal(kind, 2, NOW, {0: []}, device, seq).encode()


def test_seq_is_read_from_a_record_without_decoding_it():
    for seq in (0, 23, 24, 255, 256, 65536, 2 ** 32, 2 ** 63):
        for device in ("u", "d" * 23, "d" * 24, "d" * 64):
            assert sg.seq_of(_record(seq, device=device)) == seq
    assert sg.seq_of(b"\xa0") is None
    assert sg.seq_of(b"") is None
    assert sg.seq_of(_record(5)[:9]) is None


def test_the_answer_puts_every_requested_seq_in_sending_or_gone():
    answer = repair.Repair("rx-1/7", [[3, 9], [12, 14]])
    for seq in (1, 5, 6, 9, 12, 40):
        answer.mark(_record(seq))
    answer.mark(_record(5))  # twice in the store: once in the answer
    assert answer.held == 4 and answer.floor(()) == 1
    signal = answer.answer(NOW, True)
    assert (signal.kind, signal.priority, signal.kind_name) == (sg.KIND_REPAIR, sg.PRIORITY_HIGH, "repair")
    assert signal.body == {sg.R_REQUEST: "rx-1/7", sg.R_SENDING: [[5, 6], [9, 9], [12, 12]],
                           sg.R_GONE: [[3, 4, "not-held"], [7, 8, "not-held"], [13, 14, "not-held"]]}
    assert [answer.claim(_record(seq)) for seq in (4, 5, 12, 40, 5)] == [False, True, True, False, False]
    assert answer.held == 2


def test_the_window_floor_is_set_by_the_lanes_it_rolls_through():
    answer = repair.Repair("r", [[1, 30]])
    answer.mark(_record(1), 2)  # a birth alone in its lane
    for seq in range(20, 26):
        answer.mark(_record(seq), 3)  # telemetry: the window dropped 2..19
    answer.mark(_record(28), 1)  # a recent audit
    assert answer.floor([3]) == 20 and answer.floor([]) == 1
    assert answer.answer(NOW, True, [3]).body[sg.R_GONE] == [[2, 19, "outside-window"], [26, 27, "not-held"],
                                                             [29, 30, "not-held"]]


def test_below_the_oldest_record_kept_or_without_a_window_a_seq_is_outside_it():
    answer = repair.Repair("r", [[1, 10]])
    for seq in (5, 7):
        answer.mark(_record(seq))
    assert answer.answer(NOW, True).body[sg.R_GONE] == [[1, 4, "outside-window"], [6, 6, "not-held"],
                                                        [8, 10, "not-held"]]
    assert answer.answer(NOW, False).body[sg.R_GONE] == [[1, 4, "outside-window"], [6, 6, "outside-window"],
                                                         [8, 10, "outside-window"]]
    empty = repair.Repair("r", [[1, 3]])
    assert empty.answer(NOW, True).body[sg.R_GONE] == [[1, 3, "outside-window"]]


def test_one_request_per_ten_seconds_and_4096_seqs_in_service():
    limiter = repair.ReplayLimiter()
    assert limiter.refusal(NOW, 4000, 0) is None
    assert limiter.refusal(NOW + 9999, 1, 0).reason == "rate-limited"
    assert limiter.refusal(NOW + 10000, 97, 4000).reason == "rate-limited"
    assert limiter.refusal(NOW + 10000, 96, 4000) is None


def _served_store(fs, count=60, window_bytes=1024):
    from store_support import drain, open_store

    store = open_store(fs, segment_bytes=512, max_bytes=64 * 1024, window_bytes=window_bytes)
    for seq in range(1, count + 1):
        lane = 1 if seq % 10 == 0 and seq > 40 else 2
        store.append(lane, sg.Signal(sg.KIND_ALERT if lane == 1 else sg.KIND_TELEMETRY, lane, NOW + seq,
                                     {0: seq}, "unit-17", seq).encode(), seq)
    drain(store)
    store.sync()
    return store


def _replay_command(ranges, request="rx-1/1"):
    return op.Command("replay", {"ranges": ranges, "request": request}, 1, "rx", NOW + 60000, NOW, "unit-17")


def test_a_repair_is_answered_from_the_window_and_served_paced_unchanged():
    from store_support import FilesDir

    fs = FilesDir()
    try:
        store = _served_store(fs)
        originals = dict((sg.seq_of(r), r) for _, r in store.scan(None, 1000)[0])
        floor = min(originals)
        assert 1 < floor < 40  # the window let the oldest go
        service = repair.ReplayService(store, rate=20, scan_records=256)
        signal, summary = service.accept(_replay_command([[1, 45], [61, 62]]), NOW)
        assert signal.body[sg.R_SENDING] == [[floor, 45]]
        assert signal.body[sg.R_GONE] == [[1, floor - 1, "outside-window"], [61, 62, "not-held"]]
        assert summary == "sending %d of 47 seqs, %d gone" % (46 - floor, 1 + floor)
        assert service.serving == 46 - floor
        sent = []
        batches = []
        now = NOW
        for _ in range(1000):
            records, wait = service.take(now)
            sent += records
            batches.append(records)
            if wait is None:
                break
            now += wait if wait else 0
        assert sorted(sg.seq_of(r) for _, r in sent) == list(range(floor, 46))
        assert all(originals[sg.seq_of(r)] == r for _, r in sent)  # the stored bytes, unchanged
        assert [lane for lane, r in sent if sg.seq_of(r) > 40 and sg.seq_of(r) % 10 == 0] == []  # 50, 60: not asked
        # Paced: at most 20 a second (the first second's allowance starts
        # empty), and never more than a second's worth at once.
        assert now - NOW >= (len(sent) - 20) * 1000 // 20
        assert max(len(batch) for batch in batches) <= 20
        assert service.serving == 0 and service.served == len(sent)
        # A second request within 10 s is refused, later one is taken.
        assert raises(op.Refused, service.accept, _replay_command([[1, 2]]), NOW + 9000).reason == "rate-limited"
        assert service.accept(_replay_command([[45, 45]]), NOW + 10000)[0].body[sg.R_SENDING] == [[45, 45]]
        store.close()
    finally:
        fs.destroy()


def test_without_a_window_only_unsent_records_are_held():
    from store_support import FilesDir, open_store

    fs = FilesDir()
    try:
        store = _served_store(fs, 20, window_bytes=0)
        store.append(2, sg.Signal(sg.KIND_TELEMETRY, 2, NOW, {}, "unit-17", 21).encode(), 21)  # not yet sent
        service = repair.ReplayService(store)
        signal, _ = service.accept(_replay_command([[5, 22]]), NOW)
        # What is still on disk is held (unsent, and the acknowledged tail
        # of the segment in use); without a window everything else is
        # outside it.
        sending = signal.body[sg.R_SENDING]
        assert len(sending) == 1 and 5 < sending[0][0] <= 21 and sending[0][1] == 21
        assert signal.body[sg.R_GONE] == [[5, sending[0][0] - 1, "outside-window"], [22, 22, "outside-window"]]
        store.close()
    finally:
        fs.destroy()


def test_the_command_flow_audits_every_replay_applied_or_refused():
    from store_support import FilesDir

    from edge_agent.core import board as bd
    from edge_agent.core import device as dv
    from edge_agent.core.command_flow import CommandFlow
    from support import copy_board

    class Flow(CommandFlow):
        def _save_counters(self):
            pass

    fs = FilesDir()
    try:
        store = _served_store(fs)
        out = []
        device = dv.Device(bd.board_from_dict(copy_board(), "demo.toml"), "unit-17")
        flow = Flow(device, "EA-TEST-1", TRUSTED, op.Counters(), lambda: NOW, out.extend, lambda *a: None, SCOPES)
        flow.on_message("t", _message("replay", REQUEST))
        assert [s.kind for s in out] == [sg.KIND_AUDIT]  # no store attached yet: refused, audited
        assert out[0].body[sg.U_REASON].startswith("no-store:")
        flow.replays = repair.ReplayService(store)
        flow.on_message("t", _message("replay", {"ranges": [[50, 60]], "request": "rx-1/2"}, counter=2))
        flow.on_message("t", _message("replay", {"ranges": [[50, 60]], "request": "rx-1/3"}, counter=3))
        flow.on_message("t", _message("replay", {"ranges": [[1, 5000]], "request": "rx-1/4"}, counter=4))
        flow.on_message("t", _message("replay", {"ranges": [[1, 5]], "request": "rx-1/5"}, "ops", counter=5))
        flow.on_message("t", _message("replay", {"ranges": [[1, 5]], "request": "rx-1/6"}, counter=4))
        kinds = [s.kind for s in out[1:]]
        assert kinds == [sg.KIND_REPAIR] + [sg.KIND_AUDIT] * 5
        assert out[1].body[sg.R_REQUEST] == "rx-1/2" and out[1].body[sg.R_SENDING] == [[50, 60]]
        audits = [(s.body[sg.U_WHO], s.body[sg.U_ACTION], s.body[sg.U_TARGET], s.body[sg.U_RESULT],
                   s.body[sg.U_REASON].split(":")[0]) for s in out[2:]]
        assert audits == [("rx", "replay", "rx-1/2", "applied", ""),
                          ("rx", "replay", "rx-1/3", "refused", "rate-limited"),
                          ("rx", "replay", "rx-1/4", "refused", "too-large"),
                          ("ops", "replay", "rx-1/5", "refused", "wrong-scope"),
                          ("rx", "replay", "rx-1/6", "refused", "replay")]
        assert out[2].body[sg.U_AFTER] == "sending 11 of 11 seqs, 0 gone"
        store.close()
    finally:
        fs.destroy()


def test_the_pace_holds_record_by_record_never_a_burst():
    from store_support import FilesDir

    fs = FilesDir()
    try:
        store = _served_store(fs, 300, window_bytes=64 * 1024)
        service = repair.ReplayService(store, rate=20, scan_records=256)
        service.accept(_replay_command([[1, 300]]), NOW)
        now = NOW
        sizes = []
        while True:
            records, wait = service.take(now)
            sizes.append(len(records))
            if wait is None:
                break
            now += wait
        assert sum(sizes) == 300 and max(sizes) <= 20
        assert (now - NOW) // 1000 >= 300 // 20 - 1  # 20 a second, start to end
        store.close()
    finally:
        fs.destroy()


def test_the_window_keeps_what_a_repair_promised_until_it_is_sent():
    from store_support import FilesDir, drain

    fs = FilesDir()
    try:
        store = _served_store(fs, 60, window_bytes=1024)
        service = repair.ReplayService(store, rate=20)
        signal, _ = service.accept(_replay_command([[1, 60]]), NOW)
        promised = [seq for first, last in signal.body[sg.R_SENDING] for seq in range(first, last + 1)]
        # More is sent and acknowledged meanwhile: the window would let the oldest go.
        for seq in range(61, 121):
            store.append(2, sg.Signal(sg.KIND_TELEMETRY, 2, NOW, {0: seq}, "unit-17", seq).encode(), seq)
        drain(store)
        store.sync()
        assert store.window_bytes_held() > 1024
        sent = []
        now = NOW
        while True:
            records, wait = service.take(now)
            sent += [sg.seq_of(r) for _, r in records]
            if wait is None:
                break
            now += wait
        assert sorted(sent) == promised
        store.sync()  # served: the bound holds again
        assert store.window_bytes_held() <= 1024 and not store.window_pinned
        store.close()
    finally:
        fs.destroy()
