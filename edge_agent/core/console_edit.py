"""The console's line buffer: the text being typed, its cursor and the
history, changed one key at a time. Pure string work, no output: the line
discipline (console_line.py) draws what changed.

    LineEditor(history_lines, history_chars)
    editor.insert(text) / backspace() / delete() / left() / right() / home() / end()
    editor.kill_start() (Ctrl-U) / kill_end() (Ctrl-K) / kill_word() (Ctrl-W)
    editor.older() / newer()        history (Up/Down); a half-typed line is kept
                                    as a draft and comes back after the newest
    editor.complete(candidates)     Tab: the word at the cursor completed
    editor.remember(line)           add a finished line to the history
    editor.take()                   the finished line; the buffer starts empty

The history is bounded twice, by lines and by characters, so a board's
heap never holds more than ``history_chars`` of it whatever is typed.
"""

# Up/Down recall this many lines; they hold at most HISTORY_CHARS together.
HISTORY_LINES = 10
HISTORY_CHARS = 1024


class LineEditor:
    def __init__(self, history_lines=HISTORY_LINES, history_chars=HISTORY_CHARS):
        self.history_lines = history_lines
        self.history_chars = history_chars
        self.history = []  # oldest first
        self.text = ""
        self.cursor = 0
        self._browsing = None  # index in history while Up/Down browse it
        self._draft = ""  # the line being typed when browsing began

    def insert(self, text):
        self.text = self.text[:self.cursor] + text + self.text[self.cursor:]
        self.cursor += len(text)

    def backspace(self):
        if self.cursor:
            self.text = self.text[:self.cursor - 1] + self.text[self.cursor:]
            self.cursor -= 1

    def delete(self):
        self.text = self.text[:self.cursor] + self.text[self.cursor + 1:]

    def left(self):
        if self.cursor:
            self.cursor -= 1

    def right(self):
        if self.cursor < len(self.text):
            self.cursor += 1

    def home(self):
        self.cursor = 0

    def end(self):
        self.cursor = len(self.text)

    def kill_start(self):
        self.text = self.text[self.cursor:]
        self.cursor = 0

    def kill_end(self):
        self.text = self.text[:self.cursor]

    def kill_word(self):
        """The word before the cursor and the spaces after it, as a shell's Ctrl-W."""
        start = self.cursor
        while start and self.text[start - 1] == " ":
            start -= 1
        while start and self.text[start - 1] != " ":
            start -= 1
        self.text = self.text[:start] + self.text[self.cursor:]
        self.cursor = start

    def older(self):
        if self._browsing is None:
            if not self.history:
                return
            self._draft = self.text
            self._browsing = len(self.history)
        if self._browsing:
            self._browsing -= 1
            self._show(self.history[self._browsing])

    def newer(self):
        if self._browsing is None:
            return
        self._browsing += 1
        if self._browsing >= len(self.history):
            self._browsing = None
            self._show(self._draft)
        else:
            self._show(self.history[self._browsing])

    def _show(self, text):
        self.text = text
        self.cursor = len(text)

    def complete(self, candidates, max_len):
        """Complete the word before the cursor from ``candidates``: the one
        match and a space, or as far as the matches agree. Return the
        matches to list when that adds nothing ([] when none match)."""
        start = self.text.rfind(" ", 0, self.cursor) + 1
        word = self.text[start:self.cursor]
        matches = [c for c in candidates if c.startswith(word)]
        if not matches:
            return []
        common = matches[0]
        for match in matches[1:]:
            common = common[:common_prefix(common, match)]
        rest = common[len(word):]
        if len(matches) == 1 and self.text[self.cursor:self.cursor + 1] != " ":
            rest += " "
        if not rest or len(self.text) + len(rest) > max_len:
            return matches if len(matches) > 1 else []
        self.insert(rest)
        return None

    def remember(self, line):
        """Keep ``line`` for Up (not blank lines, nor the newest line again)."""
        if not line.strip() or len(line) > self.history_chars:
            return
        history = self.history
        if not history or history[-1] != line:
            history.append(line)
        total = 0
        for kept in history:
            total += len(kept)
        while len(history) > self.history_lines or total > self.history_chars:
            total -= len(history.pop(0))

    def take(self):
        text = self.text
        self.clear()
        return text

    def clear(self):
        self.text = ""
        self.cursor = 0
        self._browsing = None
        self._draft = ""


def common_prefix(a, b):
    """How many characters ``a`` and ``b`` share at their start."""
    n = 0
    while n < len(a) and n < len(b) and a[n] == b[n]:
        n += 1
    return n
