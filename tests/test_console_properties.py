"""Hypothesis properties of the console's input side: the line discipline
and a whole session take any bytes, in any chunking, without raising, with
bounded lines, text-only output, and nothing privileged done without login."""

import os
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "core"))

from console_support import Screen, bench  # noqa: E402

from edge_agent.core import console_line as cl  # noqa: E402

PRINTABLE = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80)


def _chunks(data, cuts):
    points = sorted(set(c % (len(data) + 1) for c in cuts))
    pieces, last = [], 0
    for point in points + [len(data)]:
        pieces.append(data[last:point])
        last = point
    return pieces


def _drain(discipline, pieces):
    events = []
    for piece in pieces:
        discipline.receive(piece)
        while True:
            event = discipline.next_event()
            if event is None:
                break
            events.append(event)
            if event[0] == cl.LINE:
                discipline.respond("ok")
    return events


@given(st.binary(max_size=3000), st.lists(st.integers(min_value=0), max_size=20), st.integers(8, 600))
@settings(max_examples=200, deadline=None)
def test_any_bytes_any_chunking_never_raise_and_stay_bounded(data, cuts, max_line):
    discipline = cl.LineDiscipline("dev> ", max_line)
    discipline.show_prompt()
    events = _drain(discipline, _chunks(data, cuts))
    for kind, text in events:
        if kind == cl.LINE:
            assert len(text) <= max_line
            assert all(32 <= ord(ch) < 127 for ch in text)
    assert len(discipline.partial()) <= max_line
    out = discipline.take_output()
    assert all(b in (7, 8, 10, 13) or 32 <= b < 127 for b in out)


@given(st.lists(PRINTABLE, max_size=10), st.sampled_from([b"\r", b"\n", b"\r\n", b"\r\x00"]),
       st.lists(st.integers(min_value=0), max_size=10))
@settings(max_examples=200, deadline=None)
def test_printable_lines_come_out_exactly_whatever_the_chunking(lines, eol, cuts):
    data = b"".join(line.encode() + eol for line in lines)
    discipline = cl.LineDiscipline("> ")
    events = _drain(discipline, _chunks(data, cuts))
    assert [text for kind, text in events if kind == cl.LINE] == lines


@given(st.binary(max_size=2000))
@settings(max_examples=100, deadline=None)
def test_a_session_survives_any_bytes_and_does_nothing_privileged_without_login(data):
    view, console = bench()
    screen = Screen(console)
    screen.type(data)
    if screen.session.closed:  # a Ctrl-D on an empty line ends a session: open the next
        screen = Screen(console)
    screen.type(b"\x03status\r")
    assert "device      unit-7" in screen.text
    assert view.device.health.state_of("fan") == "ok"
    assert [s for s in view.audits() if s.body[1] != "console.login"] == []
    assert console.internal_errors == []
