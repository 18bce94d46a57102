"""The console's line discipline, byte by byte, on both interpreters."""

from line_feed import feed, pieces
from vt_screen import VtScreen

from edge_agent.core import console_line as cl


def _run(data, prompt="> ", max_line=cl.MAX_LINE, echo=True, chunk=None):
    """Feed ``data`` (in chunks of ``chunk`` bytes, or whole); answer each
    line with 'ok <line>'. Returns (events, output bytes)."""
    d = cl.LineDiscipline(prompt, max_line, echo)
    d.show_prompt()
    events = feed(d, pieces(data, chunk), lambda line: d.respond("ok " + line))
    return events, d.take_output()


def _lines(events):
    return [text for kind, text in events if kind == cl.LINE]


def test_every_end_of_line_convention_gives_one_line():
    for eol in (b"\r", b"\n", b"\r\n", b"\r\x00"):
        events, out = _run(b"status" + eol + b"help" + eol)
        assert _lines(events) == ["status", "help"], (eol, events)
        assert out == b"> status\r\nok status\r\n> help\r\nok help\r\n> ", (eol, out)


def test_lf_cr_is_two_lines_but_empty_line_is_harmless():
    events, _ = _run(b"a\n\rb\r")
    assert _lines(events) == ["a", "", "b"]


def test_crlf_split_across_reads_is_still_one_line():
    events, out = _run(b"status\r\nhelp\r\n", chunk=1)
    assert _lines(events) == ["status", "help"]
    assert out.count(b"> ") == 3


def test_backspace_and_delete_erase_and_echo_the_erasure():
    events, out = _run(b"stat\x7f\x08atus\r")
    assert _lines(events) == ["status"]
    assert b"stat\b \b\b \batus" in out
    events, out = _run(b"\x7f\x7fok\r")  # backspace on an empty line does nothing
    assert _lines(events) == ["ok"]
    assert b"\b" not in out


def test_ctrl_c_drops_the_half_typed_line():
    events, out = _run(b"quarantine force fa\x03status\r")
    assert events[0] == (cl.INTERRUPT, None)
    assert _lines(events) == ["status"]
    assert b"^C\r\n> status" in out


def test_ctrl_u_erases_the_line():
    events, out = _run(b"abc\x15status\r")
    assert _lines(events) == ["status"]
    assert b"abc\b\b\b   \b\b\bstatus" in out


def test_ctrl_d_on_an_empty_line_is_eof_else_ignored():
    events, _ = _run(b"ab\x04c\r\x04")
    assert events == [(cl.LINE, "abc"), (cl.EOF, None)]


def test_keys_with_nothing_to_do_and_unknown_escape_sequences_are_ignored_whole():
    events, out = _run(b"st\x1b[Aat\x1b[1;5Cus\x1bOB\r")
    assert _lines(events) == ["status"]
    assert b"\x1b" not in out and b"[A" not in out


def test_a_broken_escape_sequence_does_not_swallow_enter_or_ctrl_c():
    events, _ = _run(b"ab\x1b\x03status\x1b[\r")
    assert events == [(cl.INTERRUPT, None), (cl.LINE, "status")]


def test_tab_is_a_space_without_a_completer():
    events, _ = _run(b"help\tstatus\r")
    assert _lines(events) == ["help status"]


def test_overlong_line_is_refused_at_once_and_memory_stays_bounded():
    d = cl.LineDiscipline("> ", 16)
    d.show_prompt()
    d.receive(b"x" * 17)
    assert d.next_event() is None
    out = d.take_output()
    assert b"error: line longer than 16 characters" in out
    # The rest of the line, however long, is dropped unechoed and unkept.
    for _ in range(100):
        d.receive(b"y" * 1000)
        assert d.next_event() is None
        assert d.partial() == ""
    assert d.take_output() == b""
    d.receive(b"\rstatus\r")
    assert d.next_event() == (cl.LINE, "status")
    assert d.take_output() == b"> status\r\n"
    assert d.stats["overlong"] == 1


def test_a_line_of_exactly_max_is_accepted():
    events, _ = _run(b"z" * 16 + b"\r", max_line=16)
    assert _lines(events) == ["z" * 16]


def test_binary_garbage_refuses_the_line_with_where_and_why():
    events, out = _run(b"sta\xff\x00\x01tus\r")
    assert _lines(events) == []
    assert b"error: line ignored: 3 bytes that are not text (first 0xff at column 4)" in out
    assert b"\xff" not in out
    assert out.endswith(b"> ")


def test_random_bytes_never_raise_and_output_stays_text():
    seed = 12345
    data = bytearray()
    for _ in range(6000):
        seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
        data.append((seed >> 16) & 0xFF)
    for chunk in (1, 7, 4096):
        events, out = _run(bytes(data), max_line=64, chunk=chunk)
        for byte in out:
            assert byte in (7, 8, 10, 13) or 32 <= byte < 127, byte
        for kind, text in events:
            assert kind != cl.LINE or len(text) <= 64
        # Noise never makes the console say much more than it heard (echo
        # of the printable part, a backspace's 3-byte erasure, few errors).
        assert len(out) < 2 * len(data), (chunk, len(out))


def test_noisy_line_errors_go_quiet_until_a_good_line():
    events, out = _run(b"\xff\r" * 10 + b"ok\r" + b"\xfe\r")
    assert out.count(b"error: line ignored") == 4
    assert out.count(b"quiet until a good line") == 1
    assert _lines(events) == ["ok"]


def test_notice_between_lines_redraws_prompt_and_half_typed_line():
    d = cl.LineDiscipline("dev> ")
    d.show_prompt()
    d.receive(b"quar")
    assert d.next_event() is None
    d.take_output()
    d.notice("*** alert #3")
    out = d.take_output()
    # Blank out "dev> quar", print the notice on its own line, redraw.
    assert out == b"\r" + b" " * 9 + b"\r*** alert #3\r\ndev> quar", out
    d.receive(b"antine\r")
    assert d.next_event() == (cl.LINE, "quarantine")


def test_notice_while_a_command_runs_does_not_redraw_a_prompt():
    d = cl.LineDiscipline("dev> ")
    d.show_prompt()
    d.receive(b"x\r")
    d.next_event()
    d.take_output()
    d.notice("*** n")  # no prompt on screen: just the line
    assert d.take_output() == b"*** n\r\n"


def test_echo_off_shows_no_typed_text():
    events, out = _run(b"stat\x7fus\r\x03", echo=False)
    assert _lines(events) == ["stau"[:3] + "us"]
    assert b"stat" not in out and b"\b" not in out
    assert out == b"> \rok staus\r\n> \r> "


def test_multibyte_utf8_is_refused_not_mangled():
    events, out = _run("temp°\r".encode())
    assert _lines(events) == []
    assert b"2 bytes that are not text (first 0xc2 at column 5)" in out


# -- line editing (VT100 keys), checked on the screen a terminal shows -------

LEFT, RIGHT, UP, DOWN = b"\x1b[D", b"\x1b[C", b"\x1b[A", b"\x1b[B"
HOME, END, DELETE = b"\x1b[H", b"\x1b[F", b"\x1b[3~"


def _editing(keys, completer=None, helper=None, chunk=None):
    """(discipline, screen) after typing ``keys`` at a 'dev> ' prompt."""
    d = cl.LineDiscipline("dev> ")
    d.completer = completer
    d.helper = helper
    d.show_prompt()
    screen = VtScreen()

    def run(line):
        d.remember(line)
        d.respond("ran " + line)

    feed(d, pieces(keys, chunk), run)
    screen.feed(d.take_output())
    return d, screen


def _cursor_at(d, screen):
    return screen.col == len("dev> ") + d.editor.cursor


def test_left_three_times_then_a_key_inserts_there():
    d, screen = _editing(b"statu" + LEFT * 3 + b"X")
    assert d.partial() == "stXatu"
    assert screen.line() == "dev> stXatu" and _cursor_at(d, screen)
    d, screen = _editing(b"sttus" + LEFT * 3 + b"a\r")
    assert "ran status" in screen.text()


def test_application_mode_arrows_and_ctrl_b_f_move_too():
    d, screen = _editing(b"ac\x1bODb\x02\x02\x06\x1bOC\x1bOCd")
    assert d.partial() == "abcd" and screen.line() == "dev> abcd" and _cursor_at(d, screen)


def test_home_end_and_their_other_spellings():
    for home, end in ((HOME, END), (b"\x01", b"\x05"), (b"\x1b[1~", b"\x1b[4~"), (b"\x1bOH", b"\x1bOF"),
                      (b"\x1b[7~", b"\x1b[8~")):
        d, screen = _editing(b"tatu" + home + b"s" + end + b"s")
        assert d.partial() == "status", (home, end)
        assert screen.line() == "dev> status" and _cursor_at(d, screen)


def test_delete_and_backspace_in_the_middle():
    d, screen = _editing(b"staXtus" + LEFT * 4 + DELETE)
    assert d.partial() == "status" and screen.line() == "dev> status" and _cursor_at(d, screen)
    d, screen = _editing(b"staXtus" + LEFT * 3 + b"\x7f")
    assert d.partial() == "status" and screen.line() == "dev> status" and _cursor_at(d, screen)
    d, screen = _editing(b"statXus" + LEFT * 3 + b"\x04")  # Ctrl-D on a non-empty line deletes
    assert d.partial() == "status" and screen.line() == "dev> status"


def test_ctrl_k_u_w_cut_around_the_cursor():
    d, screen = _editing(b"quarantine force fan" + LEFT * 3 + b"\x0b")
    assert d.partial() == "quarantine force " and screen.line() == "dev> quarantine force"
    d, screen = _editing(b"junk status" + LEFT * 6 + b"\x15")
    assert d.partial() == "status" and screen.line() == "dev> status" and d.editor.cursor == 0
    d, screen = _editing(b"quarantine force fan\x17\x17")
    assert d.partial() == "quarantine " and screen.line() == "dev> quarantine"


def test_up_and_down_recall_history_and_the_draft_comes_back():
    d, screen = _editing(b"status\rhelp\rcomp" + UP + UP + UP)
    assert d.partial() == "status" and screen.line() == "dev> status" and _cursor_at(d, screen)
    d, screen = _editing(b"status\rhelp\rcomp" + UP + UP + DOWN + DOWN)
    assert d.partial() == "comp" and screen.line() == "dev> comp"
    d, screen = _editing(b"status\rhelp\r" + UP + UP + b"\x10\x0e\r")  # Ctrl-P, Ctrl-N too
    assert screen.text().endswith("ran help\ndev>")


def test_history_is_bounded_by_lines_and_characters():
    d = cl.LineDiscipline("> ", history_lines=3, history_chars=20)
    for line in ("a", "b", "b", "c", "d"):
        d.remember(line)
    assert d.editor.history == ["b", "c", "d"]  # a repeat is kept once
    d.remember("x" * 19)  # 1 + 1 + 19 > 20 characters: the oldest goes
    assert d.editor.history == ["d", "x" * 19]
    d.remember("y" * 21)  # longer than the whole budget: not kept
    d.remember("   ")
    assert d.editor.history == ["d", "x" * 19]


def _names(before):
    words = before.split(" ")
    if len(words) == 1:
        return ["status", "selftest", "help", "components", "config"]
    return ["cabinet_fan", "cabinet_light", "coolant"]


def test_tab_completes_a_unique_word_and_adds_a_space():
    d, screen = _editing(b"sta\t", completer=_names)
    assert d.partial() == "status " and screen.line() == "dev> status" and _cursor_at(d, screen)
    d, screen = _editing(b"quarantine force coo\t", completer=_names)
    assert d.partial() == "quarantine force coolant "


def test_tab_on_an_ambiguous_word_extends_it_then_lists_the_choices():
    d, screen = _editing(b"quarantine force c\t", completer=_names)
    assert d.partial() == "quarantine force c"  # cabinet_* and coolant agree on nothing more
    assert "cabinet_fan  cabinet_light  coolant" in screen.text()
    assert screen.line() == "dev> quarantine force c" and _cursor_at(d, screen)
    d, screen = _editing(b"quarantine force cab\t", completer=_names)
    assert d.partial() == "quarantine force cabinet_"
    d, screen = _editing(b"x\t", completer=_names)  # nothing matches: a bell, nothing else
    assert d.partial() == "x" and d.take_output() == b""


def test_tab_in_the_middle_of_a_line_completes_the_word_before_the_cursor():
    d, screen = _editing(b"co fan" + LEFT * 4 + b"m\t", completer=_names)
    assert d.partial() == "components fan"
    assert screen.line() == "dev> components fan" and _cursor_at(d, screen)


def test_question_mark_shows_help_and_keeps_the_line():
    d, screen = _editing(b"quarantine ?", helper=lambda before: "usage: quarantine force|release COMPONENT")
    assert d.partial() == "quarantine "
    assert "dev> quarantine ?\nusage: quarantine force|release COMPONENT\ndev> quarantine" in screen.text()


def test_ctrl_l_redraws_and_clears_only_a_terminal_that_speaks_ansi():
    d, screen = _editing(b"stat\x0c")
    assert b"\x1b" not in d.take_output() and screen.line() == "dev> stat"
    d, screen = _editing(b"stt" + LEFT + b"a\x0c")
    assert screen.rows == ["dev> stat"] and _cursor_at(d, screen)  # cleared, then drawn at the top


def test_a_dumb_terminal_gets_plain_lines_with_backspace():
    d, screen = _editing(b"stat\x08\x08tus\rhelp\r")
    assert screen.text() == "dev> sttus\nran sttus\ndev> help\nran help\ndev>"


def test_echo_off_keeps_tab_and_question_mark_as_text():
    d = cl.LineDiscipline("> ", echo=False)
    d.completer = _names
    d.helper = lambda before: "help"
    d.receive(b"sta\t?\r")
    assert d.next_event() == (cl.LINE, "sta ?")


def test_completion_never_makes_a_line_longer_than_max():
    d = cl.LineDiscipline("> ", max_line=4)
    d.completer = _names
    d.receive(b"sta\t")
    assert d.next_event() is None
    assert d.partial() == "sta"


def test_garbage_on_a_line_stops_its_editing_until_enter():
    d, screen = _editing(b"sta\xfftus" + LEFT + b"\r" + b"help\r")
    # The arrow's ESC counts as one more non-text byte; its "[D" and "tus" are dropped.
    assert "error: line ignored: 2 bytes that are not text (first 0xff at column 4)" in screen.text()
    assert "ran help" in screen.text()


def test_keys_split_across_reads_still_work():
    d, screen = _editing(b"sttus" + LEFT * 3 + b"a" + HOME + DELETE + b"S", chunk=1)
    assert d.partial() == "Status" and screen.line() == "dev> Status" and _cursor_at(d, screen)


def test_a_notice_redraws_the_line_with_the_cursor_where_it_was():
    d, screen = _editing(b"quarantine fan" + LEFT * 3)
    d.notice("*** alert #4")
    screen.feed(d.take_output())
    assert screen.text().endswith("*** alert #4\ndev> quarantine fan")
    assert _cursor_at(d, screen) and d.editor.cursor == len("quarantine ")
    d.receive(b"force ")
    d.next_event()
    screen.feed(d.take_output())
    assert screen.line() == "dev> quarantine force fan" and _cursor_at(d, screen)
