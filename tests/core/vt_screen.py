"""The smallest terminal that reads what the console draws, for tests on
both interpreters: printable text, CR, LF, BS (stops at the left margin,
as a VT100's does), BEL, and the one ANSI sequence the console sends
(ESC [H ESC [2J, clear screen). Anything else fails the test: the console
must not send it. No wrapping: the screen is wider than any test's line."""


class VtScreen:
    def __init__(self, width=2000):
        self.width = width
        self.rows = [""]
        self.row = 0
        self.col = 0

    def feed(self, data):
        i = 0
        while i < len(data):
            b = data[i]
            if data[i:i + 7] == b"\x1b[H\x1b[2J":
                self.rows, self.row, self.col = [""], 0, 0
                i += 7
                continue
            assert b != 27, "unexpected escape sequence %r" % data[i:i + 8]
            if b == 13:
                self.col = 0
            elif b == 10:
                self.row += 1
                if self.row == len(self.rows):
                    self.rows.append("")
            elif b == 8:
                self.col = max(self.col - 1, 0)
            elif b == 7:
                pass
            else:
                assert 32 <= b < 127, "not text: 0x%02x" % b
                assert self.col < self.width, "line too wide for the test screen"
                line = self.rows[self.row]
                if len(line) < self.col:
                    line += " " * (self.col - len(line))
                self.rows[self.row] = line[:self.col] + chr(b) + line[self.col + 1:]
                self.col += 1
            i += 1

    def line(self):
        """The cursor's row, trailing blanks dropped."""
        return self.rows[self.row].rstrip(" ")

    def text(self):
        return "\n".join(row.rstrip(" ") for row in self.rows)
