"""The console's line discipline: terminal bytes in, command lines out.

Sans-I/O, like a tty's cooked mode done by the device itself, so a plain
serial terminal (picocom, screen, PuTTY, a UART bridge) is enough:

    receive(bytes)        queue what the port produced
    next_event()          LINE (text) / INTERRUPT / EOF, or None for "need data"
    respond(text)         a command's output, then the prompt
    notice(text)          an asynchronous line, printed *between* lines: the
                          half-typed line is erased, the notice printed, and
                          prompt and half-typed line drawn again
    remember(text)        add a line to the history (the session decides
                          which: never a token)
    take_output()         the bytes to write to the port (echo included)
    completer, helper     set by the session: f(text before the cursor) ->
                          candidate words for Tab / the text `?` shows

Input, byte by byte (every case is one branch of ``_byte``); the line
itself is a console_edit.LineEditor:

    CR, LF, CR LF, CR NUL   end of line (so any terminal's Enter works once)
    BS (0x08), DEL (0x7f)   erase the character before the cursor
    Left/Right, Ctrl-B/F    move the cursor; Home/End, Ctrl-A/E: to either end
    Delete (ESC [3~)        erase the character under the cursor
    Ctrl-U / Ctrl-K         erase up to / from the cursor; Ctrl-W the word before it
    Up/Down, Ctrl-P/N       history
    TAB                     complete the word at the cursor (a list when ambiguous)
    ?                       context help; the line stays as typed
    Ctrl-C (0x03)           drop the half-typed line, fresh prompt
    Ctrl-L                  redraw (clear the screen first on a VT100)
    Ctrl-D (0x04)           EOF on an empty line (a socket session ends); else Delete
    other ESC sequences     (function keys, Alt-x) ignored whole
    printable ASCII         inserted at the cursor
    anything else           binary garbage: the rest of the line is ignored,
                            and at its end the line is refused with what was wrong

Drawing uses only printable text, BS, CR and LF, so it works on any
terminal, even a dumb one (which sends no escape sequences and just gets
plain lines with Backspace); the one ANSI sequence, clear screen for
Ctrl-L, is sent only to a terminal that has sent escape sequences itself.
The cursor is moved with BS, so editing a line longer than the
terminal is wide is drawn wrong (a token is pasted, not edited).

Memory is bounded: a line holds at most ``max_line`` characters. Past that
the line is refused at once (with a message) and the rest of it, up to the
next end of line, is dropped unechoed. Nothing here raises on any input.

Echo can be switched off (``echo = False``) for programs that edit lines
themselves (``edge-agent console``): output then never contains the typed
text, only responses, notices and the prompt, and Tab and ? are plain
characters (a space and a ?).
"""

from edge_agent.core import console_edit as ce

LINE = "line"
INTERRUPT = "interrupt"
EOF = "eof"

# A `login TOKEN` line is the longest thing a person sends: a token is
# ~200-300 characters of base64url. 512 leaves room and bounds memory.
MAX_LINE = 512
# Refused lines in a row after which their messages stop (noise on the line).
QUIET_AFTER = 3

_CR = 13
_LF = 10
_NUL = 0
_BEL = b"\x07"
_BS = 8
_DEL = 127
_TAB = 9
_ESC = 27
_HELP = 63  # '?'
_EOT = 4  # Ctrl-D
_ETX = 3  # Ctrl-C
_FF = 12  # Ctrl-L
_CLEAR = b"\x1b[H\x1b[2J"

# Escape-sequence parser states.
_PLAIN = 0
_AFTER_ESC = 1  # ESC seen
_CSI = 2  # ESC [ ... until a final byte 0x40-0x7e
_SS3 = 3  # ESC O x (application-mode cursor keys)

# Control keys that edit: byte -> LineEditor method.
_CONTROL = {
    1: "home", 5: "end",  # Ctrl-A, Ctrl-E
    2: "left", 6: "right",  # Ctrl-B, Ctrl-F
    11: "kill_end", 21: "kill_start", 23: "kill_word",  # Ctrl-K, Ctrl-U, Ctrl-W
    16: "older", 14: "newer",  # Ctrl-P, Ctrl-N
    _BS: "backspace", _DEL: "backspace",
}
# Final byte of ESC [ x or ESC O x -> method; ESC [ N ~ by N.
_CURSOR_KEYS = {65: "older", 66: "newer", 67: "right", 68: "left", 72: "home", 70: "end"}  # A B C D H F
_TILDE_KEYS = {1: "home", 7: "home", 4: "end", 8: "end", 3: "delete"}


class LineDiscipline:
    def __init__(self, prompt="> ", max_line=MAX_LINE, echo=True, history_lines=ce.HISTORY_LINES,
                 history_chars=ce.HISTORY_CHARS):
        self.prompt = prompt
        self.max_line = max_line
        self.echo = echo
        self.completer = None
        self.helper = None
        self.ansi = False  # the terminal sent an escape sequence: it is a VT100 or better
        self.editor = ce.LineEditor(history_lines, history_chars)
        self._pending = bytearray()  # received; processed up to _pos
        self._pos = 0
        self._refused = 0  # lines refused in a row (garbage, overlong)
        self._out = bytearray()
        self._after_cr = False
        self._esc = _PLAIN
        self._param = 0  # the number in ESC [ N ~ (-1 - N once a ';' ended it)
        self._garbage = 0  # non-text bytes on this line
        self._garbage_first = None  # (byte, column) of the first one
        self._discarding = False  # overlong: dropping bytes to the end of the line
        self._prompt_shown = False
        self.stats = {"lines": 0, "interrupts": 0, "overlong": 0, "garbled": 0}

    # -- input ---------------------------------------------------------------

    def receive(self, data):
        if self._pos >= len(self._pending):
            self._pending = bytearray(data)
            self._pos = 0
        else:
            self._pending.extend(data)

    def next_event(self):
        """Process queued bytes up to the next event; return (kind, text) or
        None when more bytes are needed. One event at a time, so a pasted
        block's second line is echoed only after the first one's output."""
        pending = self._pending
        i = self._pos
        event = None
        while i < len(pending) and event is None:
            event = self._byte(pending[i])
            i += 1
        self._pos = i
        if i >= len(pending):
            self._pending = bytearray()
            self._pos = 0
        return event

    def remember(self, text):
        self.editor.remember(text)

    def _byte(self, b):
        if self._after_cr:
            self._after_cr = False
            if b == _LF or b == _NUL:
                return None  # the second half of CR LF / CR NUL
        if self._esc != _PLAIN:
            if b >= 32 and b != _DEL:
                return self._escape(b)
            self._esc = _PLAIN  # a control byte (Enter, Ctrl-C) ends any sequence and still counts
        if b == _CR or b == _LF:
            self._after_cr = b == _CR
            return self._end_of_line()
        if b == _ETX:
            return self._interrupt()
        if self._discarding:
            return None
        if self._garbage:  # the line is refused at its end: nothing more on it is kept or drawn
            if not 32 <= b < 127:
                self._garbage += 1
                self._check_length()
            return None
        editor = self.editor
        if b == _EOT:
            if not editor.text:
                self._write(b"\r\n")
                self._prompt_shown = False
                return (EOF, None)
            self._edit("delete")
        elif b in _CONTROL:
            self._edit(_CONTROL[b])
        elif b == _ESC:
            self._esc = _AFTER_ESC
        elif b == _TAB and self.echo and self.completer is not None:
            self._complete()
        elif b == _HELP and self.echo and self.helper is not None:
            self._help()
        elif b == _FF:
            self._redraw(_CLEAR if self.ansi and self.echo else b"\r\n")
        elif b == _TAB:
            self._insert(" ")
        elif 32 <= b < 127:
            self._insert(chr(b))
        else:
            self._garbage_first = (b, len(editor.text) + 1)
            self._garbage += 1
            self._check_length()
        return None

    def _escape(self, b):
        state = self._esc
        if state == _AFTER_ESC:
            self._esc = _CSI if b == 91 else (_SS3 if b == 79 else _PLAIN)  # '[' / 'O'
            self._param = 0
            return None
        if state == _CSI and 48 <= b <= 57:  # a digit: of the first parameter, the one that matters
            if self._param >= 0:
                self._param = min(self._param * 10 + b - 48, 99)
            return None
        if state == _CSI and b == 59:  # ';': modifiers follow (Ctrl-Left is Left here)
            self._param = -1 - self._param if self._param >= 0 else self._param
            return None
        if state == _SS3 or 64 <= b <= 126:
            self._esc = _PLAIN
            self.ansi = True
            param = self._param if self._param >= 0 else -1 - self._param
            method = _TILDE_KEYS.get(param) if b == 126 else _CURSOR_KEYS.get(b)
            if method is not None and not self._discarding and not self._garbage:
                self._edit(method)
        elif not 32 <= b < 64:
            self._esc = _PLAIN  # not a sequence after all: drop it, keep going
        return None

    def _insert(self, text):
        if len(self.editor.text) + len(text) + self._garbage > self.max_line:
            self._overlong()
        else:
            self._edit("insert", text)

    def _edit(self, method, *args):
        editor = self.editor
        old, cursor = editor.text, editor.cursor
        getattr(editor, method)(*args)
        self._draw_change(old, cursor)

    def _complete(self):
        editor = self.editor
        old, cursor = editor.text, editor.cursor
        matches = editor.complete(self.completer(editor.text[:cursor]), self.max_line)
        if matches is None:
            self._draw_change(old, cursor)
        elif matches:
            self._write(b"\r\n" + "  ".join(matches).encode())
            self._redraw(b"\r\n")
        else:
            self._write(_BEL)

    def _help(self):
        editor = self.editor
        self._write(b"?\r\n" + _crlf(self.helper(editor.text[:editor.cursor])))
        self._redraw(b"\r\n")

    def _check_length(self):
        if len(self.editor.text) + self._garbage > self.max_line:
            self._overlong()

    def _overlong(self):
        self.stats["overlong"] += 1
        self._discarding = True
        self.editor.clear()
        self._garbage = 0
        self._write(b"\r\n")
        self._refusal("error: line longer than %d characters, dropped up to the next Enter "
                      "(paste tokens whole, one command per line)" % self.max_line)
        self._prompt_shown = False

    def _end_of_line(self):
        if self._discarding:
            self._discarding = False
            self._show_prompt()
            return None
        self._write(b"\r\n" if self.echo else b"\r")
        self._prompt_shown = False
        text = self.editor.take()
        if self._garbage:
            count, (byte, column) = self._garbage, self._garbage_first
            self._garbage = 0
            self.stats["garbled"] += 1
            self._refusal("error: line ignored: %d byte%s that %s not text (first 0x%02x at column %d); "
                          "the console reads printable ASCII: check the terminal's baud rate (8N1)"
                          % (count, "" if count == 1 else "s", "is" if count == 1 else "are", byte, column))
            self._show_prompt()
            return None
        self._refused = 0
        self.stats["lines"] += 1
        return (LINE, text)

    def _refusal(self, message):
        """Say why a line was refused; on a noisy line (wrong baud rate)
        only the first few times, so the answer is never bigger than the noise."""
        self._refused += 1
        if self._refused < QUIET_AFTER:
            self._write(message.encode() + b"\r\n")
        elif self._refused == QUIET_AFTER:
            self._write(message.encode() + b"\r\n(more refused lines follow; quiet until a good line)\r\n")

    def _interrupt(self):
        self.stats["interrupts"] += 1
        self.editor.clear()
        self._garbage = 0
        self._discarding = False
        self._write(b"^C\r\n" if self.echo else b"\r")
        self._prompt_shown = False
        self._show_prompt()
        return (INTERRUPT, None)

    # -- output --------------------------------------------------------------

    def respond(self, text):
        """Write a command's output (may be empty), then the prompt."""
        if text:
            self._write(_crlf(text))
            if not text.endswith("\n"):
                self._write(b"\r\n")
        self._show_prompt()

    def notice(self, text, prompt=None):
        """An asynchronous message: printed between lines, never inside one;
        ``prompt``, if given, replaces the prompt (a session that ended)."""
        if self._prompt_shown:
            # Erase prompt and half-typed line with blanks (works on any
            # terminal, no ANSI needed), print, then draw them again.
            width = len(self.prompt) + (len(self.editor.text) if self.echo else 0)
            self._write(b"\r" + b" " * width + b"\r")
        self._write(_crlf(text))
        self._write(b"\r\n")
        if prompt is not None:
            self.prompt = prompt
        if self._prompt_shown:
            self._draw_line()

    def show_prompt(self):
        """Draw the prompt if it is not on the screen (session start)."""
        self._show_prompt()

    def set_prompt(self, prompt):
        """Takes effect at the next prompt drawn."""
        self.prompt = prompt

    def take_output(self):
        out = bytes(self._out)
        self._out = bytearray()
        return out

    def partial(self):
        """The half-typed line (for tests and redraws)."""
        return self.editor.text

    def _show_prompt(self):
        if not self._prompt_shown and not self._discarding:
            self._write(self.prompt.encode())
            self._prompt_shown = True

    def _redraw(self, before):
        """``before`` (a new line, or clear screen), then prompt and line again."""
        if self._prompt_shown:
            self._write(before)
            self._draw_line()

    def _draw_line(self):
        editor = self.editor
        self._write(self.prompt.encode())
        if self.echo:
            self._write(editor.text.encode() + b"\b" * (len(editor.text) - editor.cursor))

    def _draw_change(self, old, old_cursor):
        """Bring the screen from ``old`` with the cursor at ``old_cursor`` to
        the editor's line, with BS, text and blanks only: back to where the
        two differ, the new rest, blanks over what is left of the old, back
        to the cursor."""
        if not self.echo:
            return
        new, cursor = self.editor.text, self.editor.cursor
        if new == old:
            if cursor < old_cursor:
                self._write(b"\b" * (old_cursor - cursor))
            elif cursor > old_cursor:
                self._write(new[old_cursor:cursor].encode())
            return
        if old_cursor == len(old) and new.startswith(old):  # typing or pasting at the end: the common case
            self._write(new[len(old):].encode() + b"\b" * (len(new) - cursor))
            return
        start = ce.common_prefix(old, new)
        if start < old_cursor:
            self._write(b"\b" * (old_cursor - start))
        else:
            start = old_cursor
        blanks = max(len(old) - len(new), 0)
        self._write(new[start:].encode() + b" " * blanks + b"\b" * (len(new) + blanks - cursor))

    def _write(self, data):
        self._out.extend(data)


def _crlf(text):
    """Text with bare LFs as CR LF: a raw serial terminal needs both."""
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()
