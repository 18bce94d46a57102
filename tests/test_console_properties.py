"""Hypothesis properties of the console's input side: the line discipline
and a whole session take any bytes, in any chunking, without raising, with
bounded lines, text-only output, and nothing privileged done without login."""

import os
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "core"))

from console_support import Screen, bench  # noqa: E402
from line_feed import feed  # noqa: E402
from vt_screen import VtScreen  # noqa: E402

from edge_agent.core import console_line as cl  # noqa: E402

PRINTABLE = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80)


def _chunks(data, cuts):
    points = sorted(set(c % (len(data) + 1) for c in cuts))
    pieces, last = [], 0
    for point in points + [len(data)]:
        pieces.append(data[last:point])
        last = point
    return pieces


def _drain(discipline, chunks):
    return feed(discipline, chunks, lambda line: discipline.respond("ok"))


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


# -- line editing against a model ---------------------------------------------
WORDS = ["status", "stats", "selftest", "help"]
KEYS = {
    "a": b"a", "s": b"s", "t": b"t", " ": b" ",
    "left": b"\x1b[D", "right": b"\x1bOC", "home": b"\x01", "end": b"\x1b[4~",
    "backspace": b"\x7f", "delete": b"\x1b[3~", "kill_start": b"\x15", "kill_end": b"\x0b", "kill_word": b"\x17",
    "older": b"\x1b[A", "newer": b"\x0e", "tab": b"\t", "help": b"?", "redraw": b"\x0c",
    "enter": b"\r", "cancel": b"\x03",
}


class EditModel:
    """What each key should do to the line, written as plainly as possible."""

    def __init__(self, max_line, history_lines):
        self.max_line = max_line
        self.history_lines = history_lines
        self.line, self.cursor, self.history = "", 0, []
        self.browsing, self.draft = None, ""
        self.dropping = False  # an overlong line, dropped up to Enter
        self.lines = []

    def key(self, key):
        if key in ("enter", "cancel"):
            if key == "enter" and not self.dropping:
                self.lines.append(self.line)
                if self.line.strip() and self.history[-1:] != [self.line]:
                    self.history = (self.history + [self.line])[-self.history_lines:]
            self.line, self.cursor, self.browsing, self.draft, self.dropping = "", 0, None, "", False
            return
        if self.dropping:
            return
        line, cursor = self.line, self.cursor
        if len(key) == 1:
            if len(line) + 1 > self.max_line:
                self.line, self.cursor, self.dropping = "", 0, True
                return
            line, cursor = line[:cursor] + key + line[cursor:], cursor + 1
        elif key == "left":
            cursor = max(cursor - 1, 0)
        elif key == "right":
            cursor = min(cursor + 1, len(line))
        elif key == "home":
            cursor = 0
        elif key == "end":
            cursor = len(line)
        elif key == "backspace" and cursor:
            line, cursor = line[:cursor - 1] + line[cursor:], cursor - 1
        elif key == "delete":
            line = line[:cursor] + line[cursor + 1:]
        elif key == "kill_start":
            line, cursor = line[cursor:], 0
        elif key == "kill_end":
            line = line[:cursor]
        elif key == "kill_word":
            start = len(line[:cursor].rstrip(" "))
            start = line[:start].rfind(" ") + 1
            line, cursor = line[:start] + line[cursor:], start
        elif key == "older" and self.history and self.browsing != 0:
            if self.browsing is None:
                self.draft, self.browsing = line, len(self.history)
            self.browsing -= 1
            line = self.history[self.browsing]
            cursor = len(line)
        elif key == "newer" and self.browsing is not None:
            self.browsing += 1
            line = self.draft if self.browsing == len(self.history) else self.history[self.browsing]
            self.browsing = None if self.browsing == len(self.history) else self.browsing
            cursor = len(line)
        elif key == "tab":
            line, cursor = self._complete(line, cursor)
        self.line, self.cursor = line, cursor

    def _complete(self, line, cursor):
        start = line[:cursor].rfind(" ") + 1
        word = line[start:cursor]
        candidates = WORDS if " " not in line[:cursor] else WORDS[:2]
        matches = [w for w in candidates if w.startswith(word)]
        if not matches:
            return line, cursor
        common = os.path.commonprefix(matches)
        add = common[len(word):]
        if len(matches) == 1 and line[cursor:cursor + 1] != " ":
            add += " "
        if not add or len(line) + len(add) > self.max_line:
            return line, cursor
        return line[:cursor] + add + line[cursor:], cursor + len(add)


# Letters, Enter and Up weigh more, so histories several lines deep get browsed.
KEY_CHOICES = sorted(KEYS) + ["a", "s", "t", "enter", "enter", "older", "older"]


@given(st.lists(st.sampled_from(KEY_CHOICES), max_size=80), st.integers(4, 24), st.integers(1, 4),
       st.integers(1, 5))
@settings(max_examples=400, deadline=None)
def test_any_key_sequence_leaves_the_line_and_the_screen_a_model_expects(keys, max_line, history_lines, chunk):
    model = EditModel(max_line, history_lines)
    discipline = cl.LineDiscipline("dev> ", max_line, history_lines=history_lines, history_chars=1000)
    discipline.completer = lambda before: WORDS if " " not in before else WORDS[:2]
    discipline.helper = lambda before: "help for %r" % before
    discipline.show_prompt()
    screen = VtScreen()
    lines = []
    data = b"".join(KEYS[key] for key in keys)
    for at in range(0, len(data), chunk):  # in pieces, as a UART delivers them
        discipline.receive(data[at:at + chunk])
        while True:
            event = discipline.next_event()
            if event is None:
                break
            if event[0] == cl.LINE:
                lines.append(event[1])
                discipline.remember(event[1])
                discipline.respond("")
        screen.feed(discipline.take_output())
    screen.feed(discipline.take_output())
    for key in keys:
        model.key(key)
    assert lines == model.lines
    assert discipline.partial() == model.line
    assert discipline.editor.cursor == model.cursor
    if not model.dropping:
        assert screen.line() == ("dev> " + model.line).rstrip(" ")
        assert screen.col == len("dev> ") + model.cursor
