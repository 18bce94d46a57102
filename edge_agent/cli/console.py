"""`edge-agent console PORT|SOCKET`: our terminal for the technician console.

Any terminal works (picocom, screen: the device does the line editing);
this one adds what a device cannot: history (kept in
~/.edge_agent_console_history), line editing and tab completion of
commands, sensor and component names (the standard library's readline),
and colours for errors and notices when stdout is a terminal.

It turns the device's echo off (`echo off`) and edits lines itself: what the
device sends is then only answers, notices and the prompt, which becomes
this program's own prompt. Notices arriving while you type are printed
above your line and the line redrawn. Without a terminal on stdin (a pipe,
a script) it sends each input line and prints each answer, then exits.

Leaving (Ctrl-D, end of input) ends the device session, so a serial
console is never left logged in.
"""

import errno
import os
import re
import select
import signal
import socket
import stat
import sys
import threading
import time

HISTORY_FILE = "~/.edge_agent_console_history"
# The device's prompt: "unit-7> " or "unit-7 (alice)# ".
PROMPT = re.compile(r"^[A-Za-z0-9_.-]+( \([A-Za-z0-9_.-]+\))?[>#] $")
ANSWER_TIMEOUT_S = 15.0
RED = "\x1b[31m"
YELLOW = "\x1b[33m"
RESET = "\x1b[0m"


class ConsoleClientError(Exception):
    """Cannot reach the console (the message says why and what to do)."""


class Connection:
    """A serial port or a Unix socket, as one descriptor."""

    def __init__(self, target, baud=115200):
        self.target = target
        self._serial = None
        self._socket = None
        try:
            mode = os.stat(target).st_mode
        except FileNotFoundError:
            raise ConsoleClientError("%s: no such serial port or socket. Is the cable plugged in (ls /dev/ttyUSB* "
                                     "/dev/ttyACM*), or the agent running with --console-socket %s?"
                                     % (target, target)) from None
        except PermissionError:
            raise ConsoleClientError("%s: permission denied (its directory is not readable by you)" % target) from None
        if stat.S_ISSOCK(mode):
            self._open_socket(target)
        elif stat.S_ISCHR(mode):
            self._open_serial(target, baud)
        else:
            raise ConsoleClientError("%s: neither a serial port nor a socket; give the port (/dev/ttyUSB0) or the "
                                     "agent's --console-socket path" % target)

    def _open_socket(self, path):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
        except PermissionError:
            sock.close()
            raise ConsoleClientError("%s: permission denied: the console socket is mode 0600, owned by uid %d; run "
                                     "as the agent's user" % (path, os.stat(path).st_uid)) from None
        except ConnectionRefusedError:
            sock.close()
            raise ConsoleClientError("%s: nothing is listening (a stale socket: is the agent running?)" % path) from None
        self._socket = sock
        self.fd = sock.fileno()

    def _open_serial(self, path, baud):
        import serial

        try:
            self._serial = serial.Serial(path, baud, timeout=0, exclusive=True)
        except serial.SerialException as exc:
            text = str(exc)
            code = getattr(exc, "errno", None)
            if "lock" in text or code in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK):
                raise ConsoleClientError("%s is busy: another program (picocom, screen, another console) has it "
                                         "open; close it and retry" % path) from None
            if code == errno.EACCES:
                raise ConsoleClientError("%s: permission denied; add yourself to the dialout group "
                                         "(sudo usermod -aG dialout $USER, then log in again)" % path) from None
            raise ConsoleClientError("%s: cannot open: %s" % (path, text)) from None
        self.fd = self._serial.fileno()

    def send(self, data):
        view = memoryview(data)
        while view:
            try:
                sent = os.write(self.fd, view)
            except BlockingIOError:
                select.select([], [self.fd], [], 1.0)
                continue
            view = view[sent:]

    def receive(self, timeout_s):
        """Bytes available within ``timeout_s`` (b"" on timeout); None when
        the other side closed."""
        ready, _, _ = select.select([self.fd], [], [], timeout_s)
        if not ready:
            return b""
        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:
            return b""
        except OSError as exc:
            if exc.errno == errno.EIO:
                return None
            raise
        return data if data else None

    def close(self):
        for thing in (self._serial, self._socket):
            if thing is not None:
                thing.close()


class Screen:
    """Turns what the device sends into finished lines and the prompt."""

    def __init__(self):
        self.partial = ""
        self.prompt = "> "

    def add(self, data):
        """Finished lines (without CR, overprinted parts removed); the text
        after the last newline is kept and, when it is a prompt, remembered."""
        text = self.partial + data.decode("utf-8", "replace")
        parts = text.split("\n")
        self.partial = parts.pop()
        lines = [_visible(part) for part in parts]
        tail = _visible(self.partial)
        if PROMPT.match(tail):
            self.prompt = tail
        return lines

    def at_prompt(self):
        return bool(PROMPT.match(_visible(self.partial)))


def _visible(line):
    """What a terminal shows of a line: the part after its last CR (the
    device blanks its prompt with CR + spaces + CR before a notice)."""
    line = line.rstrip("\r")
    return line.rsplit("\r", 1)[-1]


class Session:
    def __init__(self, connection, colour):
        self.connection = connection
        self.screen = Screen()
        self.colour = colour

    def paint(self, line):
        if not self.colour:
            return line
        if line.startswith("error:"):
            return RED + line + RESET
        if line.startswith("***"):
            return YELLOW + line + RESET
        return line

    def ask(self, line, timeout_s=ANSWER_TIMEOUT_S):
        """Send a line; return the answer's lines once the prompt is back."""
        self.screen.partial = ""
        self.connection.send(line.encode() + b"\r")
        return self.wait_prompt(timeout_s)

    def wait_prompt(self, timeout_s=ANSWER_TIMEOUT_S, quiet_s=0.05):
        """Lines until the prompt is shown and the device has been quiet
        for ``quiet_s`` (an answer comes in one write, notices may follow)."""
        lines = []
        deadline = time.monotonic() + timeout_s
        while True:
            data = self.connection.receive(quiet_s)
            if data is None:
                raise ConsoleClientError("%s: the device closed the connection" % self.connection.target)
            lines.extend(self.screen.add(data))
            if data == b"" and self.screen.at_prompt():
                return lines
            if time.monotonic() > deadline:
                raise ConsoleClientError("%s: no prompt from the device within %d s (wrong port or baud rate?)"
                                         % (self.connection.target, timeout_s))

    def start(self):
        """Wake the device, turn its echo off; return the banner lines."""
        self.connection.send(b"\x03")  # drop whatever half-typed line a previous user left
        banner = [line for line in self.wait_prompt(quiet_s=0.3) if line and not line.endswith("^C")]
        self.ask("echo off")
        return [line for line in banner if not PROMPT.match(line + " ")]

    def names(self, command):
        """The ids in the first column of a table command's answer
        (`readings`: sensors, `components`: components), for completion."""
        return [line.split()[0] for line in self.ask(command)[1:] if line.strip()]

    def leave(self):
        try:
            self.connection.send(b"\x03\x04")  # Ctrl-C, Ctrl-D: the device ends the session (logout)
        except OSError:
            pass


def add_commands(sub):
    parser = sub.add_parser("console", help="the technician console of a device (serial port or agent socket)",
                            description=__doc__.split("\n\n")[1])
    parser.set_defaults(func=run)
    parser.add_argument("target", metavar="PORT|SOCKET",
                        help="the device's serial port (e.g. /dev/ttyUSB0) or the agent's --console-socket path")
    parser.add_argument("--baud", type=int, default=115200, help="serial speed (default 115200; 8N1)")
    parser.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                        help="colour errors and notices (default: only when stdout is a terminal)")


def run(args):
    try:
        connection = Connection(args.target, args.baud)
    except ConsoleClientError as exc:
        print("edge-agent console: error: %s" % exc, file=sys.stderr)
        return 1
    colour = args.color == "always" or (args.color == "auto" and sys.stdout.isatty() and not os.environ.get("NO_COLOR"))
    session = Session(connection, colour)
    try:
        for line in session.start():
            print(session.paint(line))
        if sys.stdin.isatty():
            _interactive(session)
        else:
            _scripted(session)
    except ConsoleClientError as exc:
        print("edge-agent console: error: %s" % exc, file=sys.stderr)
        return 1
    finally:
        session.leave()
        connection.close()
    return 0


def _scripted(session):
    for raw in sys.stdin:
        line = raw.rstrip("\r\n")
        for answer in session.ask(line):
            print(session.paint(answer), flush=True)


def _interactive(session):
    import readline

    history = os.path.expanduser(HISTORY_FILE)
    try:
        readline.read_history_file(history)
    except OSError:
        pass
    readline.set_history_length(1000)
    _setup_completion(readline, session)
    reader = _Reader(session, readline)
    reader.start()
    try:
        while not reader.closed:
            try:
                line = input(session.screen.prompt)
            except KeyboardInterrupt:
                if reader.closed:
                    break
                print()
                continue
            except EOFError:
                print()
                break
            reader.expect_answer()
            session.connection.send(line.encode("ascii", "replace") + b"\r")
            reader.wait_answer()
    finally:
        reader.stop()
        try:
            readline.write_history_file(history)
        except OSError:
            pass
    if reader.closed:
        raise ConsoleClientError("%s: the device closed the connection" % session.connection.target)


class _Reader(threading.Thread):
    """Prints what the device sends while the main thread reads input;
    notices that arrive mid-typing go above the line, which is redrawn."""

    def __init__(self, session, readline):
        super().__init__(daemon=True)
        self.session = session
        self.readline = readline
        self.closed = False
        self._stop = False
        self._answered = threading.Event()
        self._answered.set()

    def expect_answer(self):
        self._answered.clear()

    def wait_answer(self):
        self._answered.wait(ANSWER_TIMEOUT_S)

    def stop(self):
        self._stop = True

    def run(self):
        session = self.session
        tty = sys.stdout.isatty()
        while not self._stop:
            try:
                data = session.connection.receive(0.1)
            except OSError:
                data = None
            if data is None:
                self.closed = True
                self._answered.set()
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
                return
            if not data:
                continue
            lines = session.screen.add(data)
            typing = self._answered.is_set()
            if lines:
                if typing and tty:
                    sys.stdout.write("\r\x1b[K")
                for line in lines:
                    sys.stdout.write(session.paint(line) + "\n")
                if typing:
                    sys.stdout.write(session.screen.prompt + self.readline.get_line_buffer())
                sys.stdout.flush()
            if session.screen.at_prompt():
                self._answered.set()


def _setup_completion(readline, session):
    """Tab as on the device (core/console_words.py, the same table), with
    the names the device listed when the session started."""
    from edge_agent.core import console_words
    from edge_agent.core.console import COMMANDS

    names = {"SENSOR": session.names("readings"), "COMPONENT": session.names("components")}

    def complete(text, state):
        before = readline.get_line_buffer()[: readline.get_endidx()]
        choices = console_words.candidates(COMMANDS, before, lambda kind: names.get(kind, []))
        matches = [w + " " for w in choices if w.startswith(text)]
        return matches[state] if state < len(matches) else None

    readline.set_completer(complete)
    readline.set_completer_delims(" ")
    readline.parse_and_bind("tab: complete")
