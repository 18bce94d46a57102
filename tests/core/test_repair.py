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
    assert answer.held == 4 and answer.floor == 1
    signal = answer.answer(NOW, True)
    assert (signal.kind, signal.priority, signal.kind_name) == (sg.KIND_REPAIR, sg.PRIORITY_HIGH, "repair")
    assert signal.body == {sg.R_REQUEST: "rx-1/7", sg.R_SENDING: [[5, 6], [9, 9], [12, 12]],
                           sg.R_GONE: [[3, 4, "not-held"], [7, 8, "not-held"], [13, 14, "not-held"]]}
    assert [answer.wanted(_record(seq)) for seq in (4, 5, 12, 40)] == [False, True, True, False]


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
