"""The console's line discipline, byte by byte, on both interpreters."""

from edge_agent.core import console_line as cl


def _run(data, prompt="> ", max_line=cl.MAX_LINE, echo=True, chunk=None):
    """Feed ``data`` (in chunks of ``chunk`` bytes, or whole); answer each
    line with 'ok <line>'. Returns (events, output bytes)."""
    d = cl.LineDiscipline(prompt, max_line, echo)
    d.show_prompt()
    events = []
    pieces = [data] if chunk is None else [data[i:i + chunk] for i in range(0, len(data), chunk)]
    for piece in pieces:
        d.receive(piece)
        while True:
            event = d.next_event()
            if event is None:
                break
            events.append(event)
            if event[0] == cl.LINE:
                d.respond("ok " + event[1])
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
    assert b"abc\b \b\b \b\b \bstatus" in out


def test_ctrl_d_on_an_empty_line_is_eof_else_ignored():
    events, _ = _run(b"ab\x04c\r\x04")
    assert events == [(cl.LINE, "abc"), (cl.EOF, None)]


def test_arrow_keys_and_escape_sequences_are_ignored_whole():
    events, out = _run(b"st\x1b[Aat\x1b[1;5Cus\x1bOB\r")
    assert _lines(events) == ["status"]
    assert b"\x1b" not in out and b"[A" not in out


def test_a_broken_escape_sequence_does_not_swallow_enter_or_ctrl_c():
    events, _ = _run(b"ab\x1b\x03status\x1b[\r")
    assert events == [(cl.INTERRUPT, None), (cl.LINE, "status")]


def test_tab_is_a_space():
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
