"""Gap repair, the device's side, on real parts (issue 21): a real agent
process, a mutual-TLS mosquitto with the shipped ACL, operator keys with
real Ed25519, a receiver key trusted with scopes = ["replay"]. The
answers are read as a receiver reads them: every message verified by the
registry."""

import time

import pytest

from edge_agent.core import frames as fr
from edge_agent.core import operator as op
from edge_agent.core import signals as sg
from edge_agent.keys.operators import create_operator

from conftest import REGISTRY
from test_downlink import audits, publish, summary

pytestmark = pytest.mark.integration

# Small segments and window, so a few seconds of telemetry overflow it.
WINDOW = ("--store-segment-bytes", "4096", "--store-window-bytes", "8192", "--telemetry-interval-ms", "50")


@pytest.fixture
def keys(tmp_path):
    ops = create_operator(str(tmp_path / "ops"), "ops-team")
    rx = create_operator(str(tmp_path / "rx"), "rx-repair")
    path = tmp_path / "operators.toml"
    path.write_text(ops.public_entry() + rx.public_entry(["replay"]))
    return ops, rx, str(path)


def start(start_agent, broker, device, pty, operators, extra=()):
    agent = start_agent(broker.port, device, pty.path, extra=("--operators", operators) + WINDOW + extra)
    agent.child.wait_for("listening for signed commands", 20)
    return agent


def feed(pty, seconds):
    """Readings for ``seconds``: telemetry signals every 50 ms."""
    end = time.monotonic() + seconds
    value = 0
    while time.monotonic() < end:
        pty.write(fr.encode_frame(fr.READING, "coolant_temp", 40 + value % 7))
        value += 1
        time.sleep(0.01)


def signals_of(messages):
    """[(topic, message bytes, signal)] of every message, verified."""
    out = []
    for topic, payload in messages:
        if topic.endswith("/status") or topic.endswith("/cmd"):
            continue
        for signal in REGISTRY.open_signals(payload, topic):
            out.append((topic, payload, signal))
    return out


def seq_counts(messages):
    counts = {}
    for _, _, signal in signals_of(messages):
        counts[signal.seq] = counts.get(signal.seq, 0) + 1
    return counts


def repairs(messages):
    return [s for t, p, s in signals_of(messages) if s.kind == sg.KIND_REPAIR]


def unique(signals):
    """Once per seq (a repair republishes audits too)."""
    return list(dict((s.seq, s) for s in signals).values())


def seqs_in(ranges):
    out = []
    for item in ranges:
        out += list(range(item[0], item[1] + 1))
    return out


def test_a_repair_is_answered_from_the_window_and_bad_requests_refused_and_audited(
        broker, start_agent, subscribe, pty, pki, keys, tmp_path):
    ops, rx, operators = keys
    device = "rp-gw"
    agent = start(start_agent, broker, device, pty, operators)
    topic = op.command_topic(device)
    everything = ["ea/v1/%s/#" % device]
    # Telemetry until the window (8 KiB) has let old segments go.
    seen = subscribe(broker.port, everything, lambda ms: max(seq_counts(ms) or [0]) >= 100, timeout_s=40,
                     action=lambda: feed(pty, 8))
    newest = max(seq_counts(seen))
    impostor = create_operator(str(tmp_path / "impostor"), "rx-repair")  # the right name, another key
    request = [[1, newest + 200]]
    good = rx.replay_command(device, request, "rq-1", 1, 600)
    model = op.command_payload("model:EA-DEMO-1", "replay", {"ranges": [[1, 2]], "request": "rq-4"}, 4,
                               op_now(), op_now() + 600000)
    sequence = [
        (topic, impostor.replay_command(device, request, "rq-0", 1, 600)),  # forged
        (topic, ops.replay_command(device, request, "rq-w", 1, 600)),  # wrong scope
        (topic, good),
        (topic, good),  # replayed
        (topic, rx.command(device, "replay", {"ranges": [[0, 5000]], "request": "rq-2"}, 2, 600)),  # oversized
        (topic, rx.replay_command(device, [[1, 5]], "rq-3", 3, 600)),  # within 10 s of rq-1
        (topic, rx._seal(model, None)),  # a model target: bad-args
    ]

    def done(messages):
        answers = repairs(messages)
        if len(unique(audits(messages))) < len(sequence) or not answers:
            return False
        counts = seq_counts(messages)  # each seq it sends, after the request (again, or a first time)
        return all(counts.get(seq, 0) >= 1 for seq in seqs_in(answers[0].body[sg.R_SENDING]))

    try:
        messages = subscribe(broker.port, everything, done, timeout_s=30,
                             action=lambda: publish(pki, broker.port, sequence))
    except AssertionError:
        print(agent.child.text()[-6000:])
        raise
    assert summary(unique(audits(messages))) == [
        ("command", topic, "refused", "bad-signature"),
        ("replay", "rq-w", "refused", "wrong-scope"),
        ("replay", "rq-1", "applied", ""),
        ("replay", "rq-1", "refused", "replay"),
        ("replay", "rq-2", "refused", "too-large"),
        ("replay", "rq-3", "refused", "rate-limited"),
        ("replay", "rq-4", "refused", "bad-args"),
    ]
    reasons = dict((s.body[sg.U_TARGET], s.body[sg.U_REASON]) for s in audits(messages))
    assert reasons["rq-w"] == "wrong-scope: ops-team may not send replay: its scopes are the default (every " \
                              "command but replay)"
    answer = repairs(messages)[0]
    assert answer.priority == sg.PRIORITY_HIGH and answer.body[sg.R_REQUEST] == "rq-1"
    sending = seqs_in(answer.body[sg.R_SENDING])
    gone = answer.body[sg.R_GONE]
    # Every requested seq in exactly one of sending and gone.
    assert sorted(sending + seqs_in(gone)) == list(range(1, newest + 201))
    # The window let the oldest telemetry go: outside it (the birth, seq 1,
    # alone in its lane, is still held); seqs never used yet are not held.
    outside = [item for item in gone if item[2] == "outside-window"]
    assert outside and outside[0][0] <= 2 and outside[-1][1] > 20, gone
    assert gone[-1][1] == newest + 200 and gone[-1][2] == "not-held"
    assert newest in sending and 1 in sending
    # Republished unchanged: a signal sealed alone comes back byte for byte.
    # The audits of the two refusals before rq-1 were in the store when it
    # was scanned: sent live, then again.
    sealed = {}
    for t, payload, s in signals_of(messages):
        if s.kind == sg.KIND_AUDIT:
            sealed.setdefault(s.seq, []).append(payload)
    twice = [copies for copies in sealed.values() if len(copies) > 1]
    assert len(twice) >= 2 and all(len(set(copies)) == 1 for copies in twice)
    telemetry = dict((s.seq, s.body) for t, p, s in signals_of(seen) if s.kind == sg.KIND_TELEMETRY)
    replayed = [(s.seq, s.body) for t, p, s in signals_of(messages) if s.seq in telemetry]
    assert replayed and all(telemetry[seq] == body for seq, body in replayed)


def op_now():
    return time.time_ns() // 1_000_000


def test_a_device_killed_while_serving_a_repair_restarts_cleanly_and_answers_again(
        broker, start_agent, subscribe, pty, pki, keys):
    ops, rx, operators = keys
    device = "rp-kill"
    agent = start(start_agent, broker, device, pty, operators, ("--replay-rate", "5"))
    everything = ["ea/v1/%s/#" % device]
    seen = subscribe(broker.port, everything, lambda ms: max(seq_counts(ms) or [0]) >= 60, timeout_s=40,
                     action=lambda: feed(pty, 4))
    newest = max(seq_counts(seen))
    topic = op.command_topic(device)
    first = subscribe(broker.port, everything, lambda ms: len(repairs(ms)) == 1 and len(signals_of(ms)) >= 8,
                      action=lambda: publish(pki, broker.port, [
                          (topic, rx.replay_command(device, [[1, newest]], "rq-k1", 1, 600))]))
    assert len(seqs_in(repairs(first)[0].body[sg.R_SENDING])) > 20
    # A live alert is not held back by the repair in service.
    raised = time.monotonic()
    subscribe(broker.port, ["ea/v1/%s/alert" % device], lambda ms: len(ms) >= 1, timeout_s=10,
              action=lambda: pty.write(fr.encode_frame(fr.READING, "coolant_temp", 150)))
    assert time.monotonic() - raised < 3
    agent.child.kill()  # a power cut mid-repair (5 records/s: most still to send)
    agent = start(start_agent, broker, device, pty, operators)
    # It does not resume; asked again, it answers and serves it all.
    got = []

    def served(ms):
        got[:] = ms
        return repairs(ms) and all(seq_counts(ms).get(seq, 0) >= 1 for seq in seqs_in(repairs(ms)[0].body[sg.R_SENDING]))

    try:
        second = subscribe(broker.port, everything, served, timeout_s=30, action=lambda: publish(pki, broker.port, [
                               (topic, rx.replay_command(device, [[1, newest]], "rq-k2", 2, 600))]))
    except AssertionError:
        print(agent.child.text()[-5000:])
        answer = repairs(got)
        if answer:
            counts = seq_counts(got)
            kinds = dict((s.seq, (s.kind, s.priority)) for t, p, s in signals_of(seen + first))
            missing = [seq for seq in seqs_in(answer[0].body[sg.R_SENDING]) if seq not in counts]
            print("MISSING", answer[0].body, [(seq, kinds.get(seq)) for seq in missing])
        raise
    answer = repairs(second)[0]
    assert answer.body[sg.R_REQUEST] == "rq-k2"
    assert sorted(seqs_in(answer.body[sg.R_SENDING]) + seqs_in(answer.body[sg.R_GONE])) == list(range(1, newest + 1))
    text = agent.child.text()
    assert "Traceback" not in text and "recovered" in text
