"""The console's line discipline: terminal bytes in, command lines out.

Sans-I/O, like a tty's cooked mode done by the device itself, so a plain
serial terminal (picocom, screen, a UART bridge) is enough:

    receive(bytes)        queue what the port produced
    next_event()          LINE (text) / INTERRUPT / EOF, or None for "need data"
    respond(text)         a command's output, then the prompt
    notice(text)          an asynchronous line, printed *between* lines: the
                          half-typed line is erased, the notice printed, and
                          prompt and half-typed line drawn again
    take_output()         the bytes to write to the port (echo included)

Input, byte by byte (every case is one branch of ``_byte``):

    CR, LF, CR LF, CR NUL   end of line (so any terminal's Enter works once)
    BS (0x08), DEL (0x7f)   erase the last character
    Ctrl-C (0x03)           drop the half-typed line, fresh prompt
    Ctrl-U (0x15)           erase the half-typed line
    Ctrl-D (0x04)           EOF on an empty line (a socket session ends); else ignored
    TAB                     a space
    ESC sequences           (arrow keys, function keys) ignored whole
    printable ASCII         kept and echoed
    anything else           binary garbage: not kept, not echoed; at the end of
                            the line the line is refused with what was wrong

Memory is bounded: a line holds at most ``max_line`` characters. Past that
the line is refused at once (with a message) and the rest of it, up to the
next end of line, is dropped unechoed. Nothing here raises on any input.

Echo can be switched off (``echo = False``) for programs that edit lines
themselves (``edge-agent console``): output then never contains the typed
text, only responses, notices and the prompt.
"""

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
_BS = 8
_DEL = 127
_TAB = 9
_ETX = 3  # Ctrl-C
_EOT = 4  # Ctrl-D
_NAK = 21  # Ctrl-U
_ESC = 27

# Escape-sequence parser states.
_PLAIN = 0
_AFTER_ESC = 1  # ESC seen
_CSI = 2  # ESC [ ... until a final byte 0x40-0x7e
_SS3 = 3  # ESC O x (application-mode arrow keys)


class LineDiscipline:
    def __init__(self, prompt="> ", max_line=MAX_LINE, echo=True):
        self.prompt = prompt
        self.max_line = max_line
        self.echo = echo
        self._pending = bytearray()  # received; processed up to _pos
        self._pos = 0
        self._refused = 0  # lines refused in a row (garbage, overlong)
        self._line = bytearray()
        self._out = bytearray()
        self._after_cr = False
        self._esc = _PLAIN
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
        if b == _BS or b == _DEL:
            if self._line:
                self._line = self._line[:-1]
                self._echo(b"\b \b")
        elif b == _NAK:
            self._echo(b"\b \b" * len(self._line))
            self._line = bytearray()
        elif b == _EOT:
            if not self._line and not self._garbage:
                self._write(b"\r\n")
                self._prompt_shown = False
                return (EOF, None)
        elif b == _ESC:
            self._esc = _AFTER_ESC
        elif b == _TAB:
            self._char(32)
        elif 32 <= b < 127:
            self._char(b)
        else:
            if not self._garbage:
                self._garbage_first = (b, len(self._line) + 1)
            self._garbage += 1
            self._check_length()
        return None

    def _escape(self, b):
        if self._esc == _AFTER_ESC:
            self._esc = _CSI if b == 91 else (_SS3 if b == 79 else _PLAIN)  # '[' / 'O'
        elif self._esc == _SS3 or 64 <= b <= 126:
            self._esc = _PLAIN
        elif not 32 <= b < 64:
            self._esc = _PLAIN  # not a sequence after all: drop it, keep going
        return None

    def _char(self, b):
        self._line.append(b)
        self._echo(bytes((b,)))
        self._check_length()

    def _check_length(self):
        if len(self._line) + self._garbage <= self.max_line:
            return
        self.stats["overlong"] += 1
        self._discarding = True
        self._line = bytearray()
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
        if self._garbage:
            count, (byte, column) = self._garbage, self._garbage_first
            self._line = bytearray()
            self._garbage = 0
            self.stats["garbled"] += 1
            self._refusal("error: line ignored: %d byte%s that %s not text (first 0x%02x at column %d); "
                          "the console reads printable ASCII: check the terminal's baud rate (8N1)"
                          % (count, "" if count == 1 else "s", "is" if count == 1 else "are", byte, column))
            self._show_prompt()
            return None
        text = self._line.decode()
        self._line = bytearray()
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
        self._line = bytearray()
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

    def notice(self, text):
        """An asynchronous message: printed between lines, never inside one."""
        if self._prompt_shown:
            # Erase prompt and half-typed line with blanks (works on any
            # terminal, no ANSI needed), print, then draw them again.
            width = len(self.prompt) + (len(self._line) if self.echo else 0)
            self._write(b"\r" + b" " * width + b"\r")
        self._write(_crlf(text))
        self._write(b"\r\n")
        if self._prompt_shown:
            self._write(self.prompt.encode())
            if self.echo:
                self._write(bytes(self._line))

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
        return self._line.decode()

    def _show_prompt(self):
        if not self._prompt_shown and not self._discarding:
            self._write(self.prompt.encode())
            self._prompt_shown = True

    def _echo(self, data):
        if self.echo:
            self._write(data)

    def _write(self, data):
        self._out.extend(data)


def _crlf(text):
    """Text with bare LFs as CR LF: a raw serial terminal needs both."""
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()
