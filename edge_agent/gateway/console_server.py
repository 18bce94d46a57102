"""The technician console on the gateway: serial ports and a Unix socket.

    --console PORT           a serial port (a pty in tests): one session,
                             renewed when it ends (Ctrl-D) or the port reopens
    --console-socket PATH    a local Unix socket, mode 0600: several sessions
                             at once (`edge-agent console PATH`)
    --console-idle SECONDS   idle logout (default 15 min)

A session ends, and its login is logged out and audited, when the line
drops: the other side of a pty hangs up (EIO), a serial port's carrier
(DCD) goes from on to off (only ports that report it: a pty or a 3-wire
cable cannot tell), a socket client goes away.

The interpreter is the portable core's (edge_agent/core/console.py); this
module only moves bytes and gives it its *view* of the agent (AgentView).
Nothing here may stop the agent: a port that is missing or busy is retried
with backoff, a slow or absent reader loses console output beyond a bound
(never the agent's data), a bug in a command is logged and answered with
an error.
"""

import asyncio
import collections
import errno
import fcntl
import logging
import os
import socket
import stat
import struct
import termios
import tty

from edge_agent import __version__
from edge_agent.core import audit
from edge_agent.core import console as con
from edge_agent.core import signals as sg

log = logging.getLogger("edge_agent.console")

RETRY_FIRST_S = 0.5
RETRY_MAX_S = 10.0
# Unread console output kept per connection; past this the rest is dropped
# (a terminal nobody reads must not grow the agent's memory).
MAX_PENDING_OUTPUT = 64 * 1024
MAX_SOCKET_SESSIONS = 8
LOG_LINES = 500
ERROR_LINES = 20
READ_SIZE = 4096
# How often idle sessions are looked for (the idle limit is minutes).
TICK_S = 1.0


class ConsoleConfigError(ValueError):
    """The console cannot be served as configured (names the path and the fix)."""


class LogRing(logging.Handler):
    """The last log lines, for `log` and `status` (formatted like stderr)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = collections.deque(maxlen=LOG_LINES)
        self.errors = collections.deque(maxlen=ERROR_LINES)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))

    def emit(self, record):
        try:
            line = self.format(record).replace("\n", " | ")
        except Exception:  # a bad log call must not break the console
            return
        self.lines.append(line)
        if record.levelno >= logging.ERROR:
            self.errors.append(line)


class AgentView(con.View):
    """The core console's view of a running Agent (core/console.py lists
    what a view offers; con.View has what the firmware's shares)."""

    def __init__(self, agent, ring):
        super().__init__(agent, ring, "edge-agent " + __version__)

    def link(self):
        uplink = self._host.uplink
        state = "online" if uplink.online.is_set() else "offline"
        return "%s: broker %s (%d signals acknowledged, %d connects)" % (
            state, uplink.settings.describe(), uplink.published, uplink.connects)

    def settings(self):
        agent = self._host
        gpio = agent.gpio
        return super().settings() + [
            ("store", agent.fs.path if agent.fs is not None and hasattr(agent.fs, "path") else "-"),
            ("gpio", gpio.describe() if hasattr(gpio, "describe") else ("none" if gpio is None else type(gpio).__name__)),
        ]

    def dispatch(self, outputs):
        self._host._dispatch(outputs)

    def output_is_on(self, output_id):
        gpio = self._host.gpio
        if gpio is None or not hasattr(gpio, "is_on"):
            return None
        return gpio.is_on(output_id)


class _Writer:
    """Non-blocking writes to a descriptor with a bounded backlog."""

    def __init__(self, fd, name):
        self.fd = fd
        self.name = name
        self.pending = bytearray()
        self.dropped = 0
        self._loop = asyncio.get_running_loop()
        self._waiting = False

    def write(self, data):
        if not data:
            return
        room = MAX_PENDING_OUTPUT - len(self.pending)
        if len(data) > room:
            self.dropped += len(data) - max(room, 0)
            data = data[:max(room, 0)]
        self.pending.extend(data)
        self._flush()

    def _flush(self):
        while self.pending:
            try:
                sent = os.write(self.fd, self.pending)
            except BlockingIOError:
                break
            except OSError:  # the other end went away: the reader notices
                self.pending.clear()
                break
            del self.pending[:sent]
        if self.pending and not self._waiting:
            self._loop.add_writer(self.fd, self._writable)
            self._waiting = True
        elif not self.pending and self._waiting:
            self._loop.remove_writer(self.fd)
            self._waiting = False

    def _writable(self):
        self._flush()

    def close(self):
        if self._waiting:
            self._loop.remove_writer(self.fd)
            self._waiting = False


class ConsoleServer:
    def __init__(self, agent, trusted=None, serial_ports=(), socket_path=None, idle_logout_s=None):
        self.agent = agent
        self.ring = LogRing()
        logging.getLogger("edge_agent").addHandler(self.ring)
        self.view = AgentView(agent, self.ring)
        idle_ms = con.IDLE_LOGOUT_MS if idle_logout_s is None else int(idle_logout_s * 1000)
        self.console = con.Console(self.view, trusted, idle_logout_ms=idle_ms)
        self.serial_ports = list(serial_ports)
        self.socket_path = socket_path
        self.outputs = {}  # session -> _Writer or StreamWriter
        self._socket_count = 0
        if socket_path is not None:
            _check_socket_path(socket_path)
        agent.signal_listeners.append(self.on_signal)

    # -- shared --------------------------------------------------------------

    def on_signal(self, signal):
        """Every signal the agent dispatches: notices for every session."""
        if signal.kind not in (sg.KIND_ALERT, sg.KIND_STATE, sg.KIND_AUDIT):
            return
        if signal.kind == sg.KIND_AUDIT and signal.body.get(sg.U_CHANNEL) == con.CHANNEL:
            log.info("console audit #%s: %s", signal.seq, audit.describe(signal.body))
        try:
            self.console.observe(signal)
            for session in list(self.console.sessions):
                self._send(session)
        except Exception:  # the agent's dispatch must go on whatever the console does
            log.exception("console: notice for signal #%s failed", signal.seq)

    def _send(self, session):
        writer = self.outputs.get(session)
        data = session.take_output()
        if writer is not None and data:
            if isinstance(writer, _Writer):
                writer.write(data)
            elif writer.transport.get_write_buffer_size() < MAX_PENDING_OUTPUT:
                writer.write(data)

    def _feed(self, session, data):
        session.feed(data)
        self._send(session)
        while self.console.internal_errors:
            log.error("console: internal error: %s", self.console.internal_errors.pop(0))

    async def _tick(self):
        """Idle logout: the core decides, this only asks every second."""
        while True:
            await asyncio.sleep(TICK_S)
            try:
                self.console.tick()
                for session in list(self.console.sessions):
                    self._send(session)
            except Exception:  # the console must never stop the agent
                log.exception("console: idle check failed")

    async def run(self):
        tasks = [asyncio.create_task(self._serve_serial(path), name="console-" + path) for path in self.serial_ports]
        tasks.append(asyncio.create_task(self._tick(), name="console-idle"))
        server = None
        if self.socket_path is not None:
            server = await self._start_socket()
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            if server is not None:
                server.close()
                _unlink_socket(self.socket_path)
            for session in list(self.console.sessions):
                session.close()

    # -- serial ports ----------------------------------------------------------

    async def _serve_serial(self, path):
        delay = RETRY_FIRST_S
        while True:
            try:
                fd = _open_serial(path)
            except OSError as exc:
                log.warning("console %s: cannot open (%s); retrying in %.1f s. Check --console", path,
                            _reason(exc), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            delay = RETRY_FIRST_S
            log.info("console: serving %s", path)
            try:
                await self._serial_sessions(fd, path)
            except asyncio.CancelledError:
                raise
            except Exception:  # the console must never stop the agent: log, reopen
                log.exception("console %s: failed; reopening", path)
            finally:
                os.close(fd)
            log.info("console %s: port closed; reopening", path)
            await asyncio.sleep(RETRY_FIRST_S)

    async def _serial_sessions(self, fd, path):
        loop = asyncio.get_running_loop()
        writer = _Writer(fd, path)
        readable = asyncio.Event()
        loop.add_reader(fd, readable.set)
        session = None
        why = "port closed"  # the session's end, for the logout's audit
        carrier = _carrier(fd)  # True/False, None: this port cannot tell
        try:
            while True:
                if session is None or session.closed:
                    session = self.console.open_session("serial " + path)
                    self.outputs[session] = writer
                    self._send(session)
                try:
                    await asyncio.wait_for(readable.wait(), TICK_S)
                except asyncio.TimeoutError:
                    now = _carrier(fd)
                    if carrier and now is False:  # seen on, now off: the other end went away
                        log.info("console %s: carrier lost; session ended", path)
                        session.close("line dropped (carrier lost)")
                        self.outputs.pop(session, None)
                    carrier = now
                    continue
                readable.clear()
                try:
                    data = os.read(fd, READ_SIZE)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    if exc.errno == errno.EIO:  # a pty whose other side closed
                        why = "line dropped (hang-up)"
                        return
                    raise
                if not data:
                    why = "line dropped (hang-up)"
                    return
                self._feed(session, data)
                if session.closed:
                    self.outputs.pop(session, None)
        finally:
            loop.remove_reader(fd)
            writer.close()
            if session is not None:
                if not session.closed:
                    log.info("console %s: %s; session ended", path, why)
                session.close(why)
                self.outputs.pop(session, None)

    # -- Unix socket -----------------------------------------------------------

    async def _start_socket(self):
        path = self.socket_path
        _unlink_socket(path)
        old = os.umask(0o177)  # the socket is born 0600: no window where others may connect
        try:
            server = await asyncio.start_unix_server(self._socket_client, path)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        log.info("console: socket %s (mode 0600)", path)
        return server

    async def _socket_client(self, reader, writer):
        if len([s for s in self.outputs if s.name.startswith("socket")]) >= MAX_SOCKET_SESSIONS:
            writer.write(b"error: %d console sessions are open already; close one and retry\r\n" % MAX_SOCKET_SESSIONS)
            await writer.drain()
            writer.close()
            return
        self._socket_count += 1
        session = self.console.open_session("socket #%d" % self._socket_count, port="socket")
        self.outputs[session] = writer
        self._send(session)
        try:
            while not session.closed:
                data = await reader.read(READ_SIZE)
                if not data:
                    break
                self._feed(session, data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        except Exception:  # a bug: this connection ends, the agent does not
            log.exception("console %s: failed; closing it", session.name)
        finally:
            session.close("connection closed")
            self._send(session)
            self.outputs.pop(session, None)
            writer.close()


def _open_serial(path):
    """Open a serial port raw, non-blocking, and locked against a second
    user (another agent, a terminal program) with flock."""
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        if not os.isatty(fd):
            raise OSError(errno.ENOTTY, "not a terminal device")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OSError(errno.EBUSY, "busy: another program has it open exclusively") from None
        tty.setraw(fd)
        attrs = termios.tcgetattr(fd)
        attrs[4] = attrs[5] = termios.B115200
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _carrier(fd):
    """The port's carrier detect (DCD): True or False, or None when the
    port has no modem lines to ask (a pty: ENOTTY) or refuses."""
    try:
        status = struct.unpack("I", fcntl.ioctl(fd, termios.TIOCMGET, b"\0\0\0\0"))[0]
    except OSError:
        return None
    return bool(status & termios.TIOCM_CAR)


def _reason(exc):
    return exc.strerror or str(exc)


def _check_socket_path(path):
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ConsoleConfigError("--console-socket %s: no directory %s; create it (mode 0700) first" % (path, directory))
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ConsoleConfigError("--console-socket %s: exists and is not a socket; refusing to replace it" % path)
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        return  # stale: a previous agent died without removing it
    finally:
        probe.close()
    raise ConsoleConfigError("--console-socket %s: another process is serving a console there" % path)


def _unlink_socket(path):
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


def attach(agent, serial_ports, socket_path, idle_logout_s=None):
    """Build the console server for ``agent`` on ``serial_ports`` (`run
    --console`) and ``socket_path`` (`--console-socket`, or None) and add it
    to the agent's services; None when no console was asked for. Logins are
    checked against the trusted operators of --operators, as the signed
    downlink loaded them (it exists exactly when --operators was given).
    ``idle_logout_s``: `--console-idle` (None: 15 min)."""
    if not serial_ports and not socket_path:
        return None
    if idle_logout_s is not None and not 0 < idle_logout_s < 7 * 86400:
        raise ConsoleConfigError("--console-idle %g: give seconds, more than 0 and less than a week (default 900)"
                                 % idle_logout_s)
    trusted = agent.downlink.trusted if agent.downlink is not None else None
    if trusted is None:
        log.warning("console: no trusted operators (--operators): read-only commands only, nobody can log in")
    server = ConsoleServer(agent, trusted, serial_ports, socket_path, idle_logout_s)
    agent.services.append(server)
    return server
