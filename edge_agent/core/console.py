"""The technician console: text in, text out, the same on a Pi and an ESP32.

    Console(view, trusted)       one per device: what sessions share (the
                                 view, each port's login lockout, recent alerts)
    console.open_session(name, port)
                                 one per connection (a UART, a socket client);
                                 ``port`` (default: the name) is what failed
                                 logins are counted against: a serial port,
                                 the UART, the socket (all its clients)
    session.feed(bytes)          the port's bytes; then
    session.take_output()        the bytes to write back
    session.close(reason)        the line dropped (a pty hang-up, a socket
                                 closed): the session ends, a login is
                                 logged out and audited with ``reason``
    console.observe(signal)      every signal the device issues: kept for
                                 `alerts`/`components`, shown to sessions as
                                 notices between lines
    console.tick()               every second or so: idle sessions are
                                 logged out (then take_output() again)

The line discipline (console_line.py, console_edit.py) does the terminal;
command words, completion and `?` are in console_words.py; read-only
commands are in console_show.py; this module does commands, sessions,
authorization and audit. No I/O, no clock of its own: everything comes through the
injected *view*, which the agent (console_server.py) or the firmware
provides:

    view.device             the core Device (board, health engine, latest readings, stats)
    view.agent              "edge-agent 0.1.0"
    view.started_ms         when the agent started
    view.now_ms()           the clock
    view.link()             one line on the uplink ("online: broker ...")
    view.store_lanes()      [(lane, records, bytes, oldest ms or None), ...]
    view.log_lines(n)       the last n log lines, oldest first
    view.errors(n)          the last n error lines
    view.settings()         [(name, value), ...] of the agent's own settings
    view.dispatch(outputs)  handle outputs as the agent does its own (numbered
                            Signals stored and sent, SetOutputs applied)
    view.output_is_on(id)   read a GPIO output back: True, False, or None (cannot tell)

Authorization. Before login the console shows what the device measures
and decides (readings, component states, alerts), never who did what nor
how it is configured and connected: `log` and `config show` need a session
(scope "read", which every token has), and `status`, `buffer`,
`components`, `alerts` and the notices leave out the broker, the last
errors, who acted and the audit log (console_show.py). Privileged commands
need a session opened with `login TOKEN`: a technician token (operator.py)
signed by a trusted operator, bound to this device, not expired, with the
command's scope. The session ends when the token expires, at `logout`,
after ``idle_logout_ms`` without a key (15 min by default), and when the
adapter says the line dropped.

Failed logins (console_login.py): text that is not a token is no login
attempt; a token that fails verification counts against its port (the
session's ``port``: Ctrl-D or a new connection does not reset it), and
five in a row lock login there for seconds, never the owner's technicians
out of the device.

Audit. Every privileged action, applied or refused by the device, and
every login (accepted or refused, console_login.py says how failures are
rate-limited) and logout (by command, idle, the line dropping) becomes an
audit signal (audit.py, channel "console") that the view dispatches at
alert priority. Commands refused because nobody is logged in, and text
that is not a token, are not audited: anyone at the port can type them,
and an unauthenticated flood must not evict stored data.
"""

from edge_agent.core import audit
from edge_agent.core import component as cs
from edge_agent.core import console_line as cl
from edge_agent.core import console_login as logins
from edge_agent.core import console_show as show
from edge_agent.core import console_words as words
from edge_agent.core import operator as op
from edge_agent.core import signals as sg
from edge_agent.core.console_show import ConsoleError



class View:
    """The parts of a view (above) the gateway (console_server.py) and the
    firmware (firmware/console_port.py) share; each subclass adds link(),
    dispatch(), output_is_on() and its own lines to settings(). ``host`` is
    the agent or the firmware: its clock(), device and store; ``ring`` holds
    the last log ``lines`` and ``errors``."""

    def __init__(self, host, ring, agent):
        self._host = host
        self._ring = ring
        self.device = host.device
        self.agent = agent
        self.started_ms = host.clock()

    def now_ms(self):
        return self._host.clock()

    def store_lanes(self):
        store = self._host.store
        lanes = []
        for lane in range(store.lanes):
            records, nbytes, _, oldest = store.lane_info(lane)
            lanes.append((lane, records, nbytes, oldest))
        return lanes

    def log_lines(self, n):
        return list(self._ring.lines)[-n:]

    def errors(self, n):
        return list(self._ring.errors)[-n:]

    def settings(self):
        device = self.device
        return [
            ("identity", device.device_id),
            ("telemetry", "every %d ms, at most %d readings" % (device.telemetry_interval_ms,
                                                                device.telemetry_max_readings)),
        ]


# A logged-in session with no key typed for this long is logged out (a
# technician who walked away, a cable pulled where the port cannot tell).
IDLE_LOGOUT_MS = 15 * 60 * 1000
# Words this long may be tokens (~200-300 characters): never kept in history.
TOKEN_LIKE = 40
# Recent alerts kept for `alerts` and `ack` (the rest are in the store and
# at the receiver).
MAX_ALERTS = 20

CHANNEL = audit.CHANNEL_CONSOLE
# The login limits, for `help login` and for tests.
MAX_FAILURES = logins.MAX_FAILURES
FIRST_LOCK_MS = logins.FIRST_LOCK_MS
MAX_LOCK_MS = logins.MAX_LOCK_MS


class AlertRecord:
    __slots__ = ("seq", "time_ms", "severity", "text", "active", "acked_by", "acked_ms")

    def __init__(self, seq, time_ms, severity, text, active):
        self.seq = seq
        self.time_ms = time_ms
        self.severity = severity
        self.text = text
        self.active = active
        self.acked_by = None
        self.acked_ms = None


def acknowledge_alert(device, alert, now):
    """Tell the health engine a person acknowledged ``alert`` (an
    AlertRecord, acked_by set): the outputs to dispatch, [] when its rule
    does not take acknowledgements. The console's `ack` and a signed
    alert.ack both come here."""
    return device.acknowledge_alert(alert.seq, now, alert.acked_by)


# name -> (scope needed or None, usage, one-line summary, details)
COMMANDS = {
    "help": (None, "help [COMMAND]", "list commands, or explain one", ""),
    "status": (None, "status", "uptime, versions, link, store depth per lane, last errors",
               "Before login: the link's state only, without the broker, and no errors."),
    "readings": (None, "readings [SENSOR]", "live values with units and rule state",
                 "Without SENSOR, one line per sensor. With it: valid range, every rule\n"
                 "(active or not, since when, why) and the last few values."),
    "components": (None, "components", "component states, since when, and why",
                   "Before login a hand-made transition does not say whose hand."),
    "alerts": (None, "alerts", "recent alerts and whether they are acknowledged",
               "The last %d alerts since the agent started, numbered by their seq.\n"
               "Before login, not who acknowledged them." % MAX_ALERTS),
    "buffer": (None, "buffer", "what the store holds per lane, waiting for the broker", ""),
    "log": ("read", "log [N]", "the last N log lines (default %d)" % show.DEFAULT_LOG_LINES, ""),
    "config": ("read", "config show", "the board and agent configuration", ""),
    "selftest": (None, "selftest", "check every sensor; pulse every output (scope selftest)",
                 "Sensors pass when their last reading is recent, not a fault and in range.\n"
                 "Outputs are switched off and on again and read back; that drives hardware,\n"
                 "so it needs a session with scope 'selftest' and is audited. Outputs held\n"
                 "off by a quarantine are left alone."),
    "ack": ("ack", "ack ALERT", "acknowledge an alert (scope ack)",
            "ALERT is the number `alerts` shows (e.g. ack 12). Audited."),
    "quarantine": ("override", "quarantine force|release COMPONENT",
                   "force a component into quarantine or release it (scope override)",
                   "force: apply its quarantine actions now (even on an essential part).\n"
                   "release: undo them and return it to ok. Audited, with before and after."),
    "login": (None, "login TOKEN", "open a technician session",
              "TOKEN is the text `edge-agent keys technician-token` prints: signed by a\n"
              "trusted operator, for this device, with an expiry and scopes. %d failed\n"
              "logins in a row lock login on that port for %d s, up to %d s; text that is\n"
              "not a token does not count." % (MAX_FAILURES, FIRST_LOCK_MS // 1000, MAX_LOCK_MS // 1000)),
    "logout": (None, "logout", "end the technician session", ""),
    "whoami": (None, "whoami", "who is logged in, with which scopes, until when", ""),
    "echo": (None, "echo on|off", "terminal echo (programs that edit lines themselves turn it off)", ""),
    "notices": (None, "notices on|off", "show alerts and state changes as they happen (default on)", ""),
}
ORDER = ("status", "readings", "components", "alerts", "buffer", "log", "config", "selftest", "ack",
         "quarantine", "login", "logout", "whoami", "echo", "notices", "help")


class Console:
    def __init__(self, view, trusted=None, max_line=cl.MAX_LINE, idle_logout_ms=IDLE_LOGOUT_MS):
        """``trusted``: {operator kid bytes: verifier or HMAC key}
        (operator.verify_token); None or {} means nobody can log in."""
        self.view = view
        self.logins = logins.Logins(view, trusted)
        self.max_line = max_line
        self.idle_logout_ms = idle_logout_ms
        self.sessions = []
        self.alerts = []  # AlertRecord, oldest first
        self.reasons = {}  # component id -> (reason of its last transition, as shown before login)
        self.internal_errors = []  # bugs caught in commands, for the adapter to log

    def open_session(self, name, port=None):
        session = Session(self, name, port or name)
        self.sessions.append(session)
        session.start()
        return session

    def close_session(self, session):
        if session in self.sessions:
            self.sessions.remove(session)

    def tick(self):
        """Log out sessions idle for idle_logout_ms (call it every second or so)."""
        now = self.view.now_ms()
        for session in list(self.sessions):
            session.check_idle(now)

    def observe(self, signal):
        """A signal the device issued (numbered): remember what the console
        shows and tell every session that wants notices."""
        text = public = None
        body = signal.body
        if signal.kind == sg.KIND_ALERT:
            active = body.get(sg.A_ACTIVE, True)
            record = AlertRecord(signal.seq, signal.time_ms, body.get(sg.A_SEVERITY, ""), body.get(sg.A_TEXT, ""),
                                 active)
            self.alerts.append(record)
            if len(self.alerts) > MAX_ALERTS:
                self.alerts.pop(0)
            text = public = "*** alert #%d %s: %s" % (signal.seq, record.severity if active else "cleared",
                                                    record.text)
        elif signal.kind == sg.KIND_STATE:
            cid = body.get(sg.S_COMPONENT, "")
            reason = body.get(sg.S_REASON, "")
            event = body.get(sg.S_EVENT)
            # A forced or released component names who did it: not before login.
            shown = ("forced into quarantine by hand" if event == cs.FORCE else "released by hand"
                     if event == cs.RELEASE else reason)
            self.reasons[cid] = (reason, shown)
            text = "*** %s: %s -> %s (%s)" % (cid, body.get(sg.S_FROM), body.get(sg.S_TO), reason)
            public = "*** %s: %s -> %s (%s)" % (cid, body.get(sg.S_FROM), body.get(sg.S_TO), shown)
        elif signal.kind == sg.KIND_AUDIT:  # the audit log: only for technicians
            text = "*** audit: %s (%s)" % (audit.describe(body), body.get(sg.U_CHANNEL))
        if text is not None:
            now = self.view.now_ms()
            for session in self.sessions:
                # The session whose command caused a state change or an
                # audit already says so in its reply; alerts it still sees.
                if session.busy and signal.kind != sg.KIND_ALERT:
                    continue
                shown = text if session.logged_in(now) else public
                if shown is not None:
                    session.notice(shown)

    def find_alert(self, seq):
        for alert in self.alerts:
            if alert.seq == seq:
                return alert
        return None

    def prompt(self, session):
        if session.token is not None:
            return "%s (%s)# " % (self.view.device.device_id, session.token.subject)
        return "%s> " % self.view.device.device_id


class Session:
    def __init__(self, console, name, port):
        self.console = console
        self.name = name
        self.port = port
        self.token = None
        self.notices = True
        self.closed = False
        self.busy = False
        self._held = []  # notices that arrived while a command ran
        self.line = cl.LineDiscipline(console.prompt(self), console.max_line)
        self.line.completer = self._candidates
        self.line.helper = self._context_help
        self.last_input_ms = console.view.now_ms()

    def start(self):
        view = self.console.view
        device = view.device
        self.line.respond("%s console on %s (board %s, model %s). Type `help` for commands." % (
            view.agent, device.device_id, device.board.name, device.board.model))

    def feed(self, data):
        """Bytes from the terminal; the answer is in take_output()."""
        now = self.view_now()
        self.check_idle(now)  # a key after the idle limit comes too late: logged out first
        if data:
            self.last_input_ms = now
        self.line.receive(data)
        while not self.closed:
            event = self.line.next_event()
            if event is None:
                break
            kind, text = event
            if kind == cl.LINE:
                self.busy = True
                try:
                    self._run_line(text)
                finally:
                    self.busy = False
                held, self._held = self._held, []
                for notice in held:
                    self.line.notice(notice)
            elif kind == cl.EOF:
                self.close("Ctrl-D")

    def take_output(self):
        return self.line.take_output()

    def notice(self, text):
        if not self.notices or self.closed:
            return
        if self.busy:
            self._held.append(text)
        else:
            self.line.notice(text)

    def close(self, reason="session closed"):
        """End the session (Ctrl-D, the connection closed, the line dropped);
        ``reason`` goes into the logout's audit."""
        if self.closed:
            return
        if self.token is not None:
            self._logout(self.view_now(), reason)
        self.closed = True
        self.console.close_session(self)

    def check_idle(self, now):
        """Log out a session that has typed nothing for idle_logout_ms."""
        idle = now - self.last_input_ms
        if self.token is None or self.closed or idle < self.console.idle_logout_ms:
            return
        subject = self.token.subject
        limit = show.duration(self.console.idle_logout_ms)
        self._logout(now, "idle for %s" % limit)
        self.line.notice("session of %s ended: idle for %s; `login TOKEN` again" % (subject, limit),
                         self.console.prompt(self))

    def view_now(self):
        return self.console.view.now_ms()

    def logged_in(self, now):
        return self.token is not None and now < self.token.expires_ms

    # -- commands ------------------------------------------------------------

    def _run_line(self, text):
        now = self.view_now()
        typed = text.split()
        prefix = self._expire(now)
        if not typed:
            self._reply(prefix, "")
            return
        try:
            name = words.resolve(typed[0].lower(), COMMANDS)
        except words.Ambiguous as exc:
            self._remember(text, None)
            self._reply(prefix, "error: ambiguous command %r: %s; type more of it (Tab completes)"
                        % (exc.word, " or ".join(exc.matches)))
            return
        self._remember(text, name)
        if name is None:
            self._reply(prefix, "error: " + _unknown(typed[0].lower()))
            return
        scope, usage = COMMANDS[name][0], COMMANDS[name][1]
        try:
            args = _spelled_out(usage, typed[1:])
            if len(args) < words.required(usage):  # at any privilege level: what to type comes first
                raise ConsoleError("usage: " + usage)
            if scope is not None:
                self._authorize(name, scope)
            output = self._dispatch(name, args, now)
        except ConsoleError as exc:
            output = "error: %s" % exc
        except Exception as exc:  # a bug must not end the session or the agent
            self.console.internal_errors.append("%s: %s: %s" % (name, type(exc).__name__, exc))
            output = "error: internal error in `%s` (%s: %s); the device carries on" % (name, type(exc).__name__, exc)
        self._reply(prefix, output)

    def _remember(self, text, name):
        """History for Up: not a login, nor any line with a word as long as
        a token (a mistyped `lgoin TOKEN`): a token is a secret, and the
        next person at the port could recall it."""
        if name != "login" and not [w for w in text.split() if len(w) > TOKEN_LIKE]:
            self.line.remember(text)

    def _candidates(self, before):
        return words.candidates(COMMANDS, before, self._names)

    def _context_help(self, before):
        return words.context_help(COMMANDS, ORDER, before, self._names)

    def _names(self, kind):
        """The device's names of a usage line's placeholder, for Tab and ?."""
        device = self.console.view.device
        if kind == "COMPONENT":
            return list(device.health.components)
        if kind == "SENSOR":
            return list(device.board.sensors)
        if kind == "ALERT":
            return [str(alert.seq) for alert in self.console.alerts]
        return []

    def _reply(self, prefix, output):
        self.line.set_prompt(self.console.prompt(self))
        self.line.respond(prefix + output if prefix and output else prefix or output)

    def _dispatch(self, name, args, now):
        handler = getattr(self, "_cmd_" + name, None)
        if handler is not None:
            return handler(args, now)
        return getattr(show, "cmd_" + name)(self.console, args, now, self.token is not None)

    def _expire(self, now):
        token = self.token
        if token is not None and now >= token.expires_ms:
            self.token = None
            return "session of %s ended: the token expired %s ago; log in with a new one\n" % (
                token.subject, show.duration(now - token.expires_ms))
        return ""

    def _authorize(self, name, scope):
        token = self.token
        if token is None and scope == "read":
            raise ConsoleError("`%s` shows what only technicians see; log in first: login TOKEN (the operator "
                               "makes one with `edge-agent keys technician-token`)" % name)
        if token is None:
            raise ConsoleError("`%s` needs a technician session: `login TOKEN` with a token that has scope %r "
                               "(the operator makes one with `edge-agent keys technician-token`)" % (name, scope))
        if scope != "read" and not token.allows(scope):  # every token may read
            raise ConsoleError("%s's token has scopes %s, not %r; ask the operator for a token with it"
                               % (token.subject, ", ".join(token.scopes), scope))

    def _audit(self, now, action, target, before, after, result, reason="", who=None):
        signal = audit.audit_signal(now, who or self.token.subject, action, target, before, after, result, reason,
                                    CHANNEL)
        self.console.view.dispatch([self.console.view.device.number(signal)])

    def _cmd_help(self, args, now):
        if len(args) > 1:
            raise ConsoleError("usage: help [COMMAND]")
        if args:
            try:
                name = words.resolve(args[0].lower(), COMMANDS)
            except words.Ambiguous as exc:
                raise ConsoleError("help %s: could be %s" % (exc.word, " or ".join(exc.matches)))
            if name is None:
                raise ConsoleError(_unknown(args[0].lower()))
            scope, usage, summary, details = COMMANDS[name]
            lines = ["usage: " + usage, summary + "."]
            if scope == "read":
                lines.append("Needs a technician session (`login TOKEN`), any scope.")
            elif scope:
                lines.append("Needs a technician session with scope %r (`login TOKEN`)." % scope)
            if details:
                lines.append(details)
            return "\n".join(lines)
        rows = []
        for name in ORDER:
            scope, usage, summary, _ = COMMANDS[name]
            rows.append(["  " + usage, "*" if scope else " ", summary])
        return ("commands (* needs a technician session: `login TOKEN`):\n" + show.table(None, rows)
                + "\n`help COMMAND` explains one.")

    def _cmd_whoami(self, args, now):
        show._no_args("whoami", args)
        token = self.token
        if token is None:
            return "not logged in (%s): read-only commands only; `login TOKEN` for more" % self.name
        return "%s, token from operator %s, scopes %s, on %s; expires %s (in %s)" % (
            token.subject, token.operator, ", ".join(token.scopes), self.name, show.utc(token.expires_ms),
            show.duration(token.expires_ms - now))

    def _cmd_login(self, args, now):
        if len(args) != 1:
            raise ConsoleError("usage: login TOKEN (paste the whole token on one line)")
        token = self.console.logins.attempt(self.port, self.name, args[0], now)
        previous = self.token
        self.token = token
        self._audit(now, "console.login", self.name, previous.subject if previous else None, token.subject,
                    audit.APPLIED, "scopes %s until %s" % (",".join(token.scopes), show.utc(token.expires_ms)))
        return ("logged in as %s (operator %s); scopes %s; the session ends %s (in %s), after %s idle, "
                "or at `logout`" % (token.subject, token.operator, ", ".join(token.scopes), show.utc(token.expires_ms),
                                    show.duration(token.expires_ms - now), show.duration(self.console.idle_logout_ms)))

    def _cmd_logout(self, args, now):
        show._no_args("logout", args)
        if self.token is None:
            return "not logged in"
        subject = self.token.subject
        self._logout(now, "logout")
        return "logged out %s" % subject

    def _logout(self, now, reason):
        subject = self.token.subject
        self._audit(now, "console.logout", self.name, subject, None, audit.APPLIED, reason)
        self.token = None

    def _cmd_echo(self, args, now):
        self.line.echo = _on_off("echo", args)
        return ""

    def _cmd_notices(self, args, now):
        self.notices = _on_off("notices", args)
        return "notices %s" % ("on" if self.notices else "off")

    def _cmd_ack(self, args, now):
        if len(args) != 1:
            raise ConsoleError("usage: ack ALERT (the number `alerts` shows)")
        text = args[0][1:] if args[0].startswith("#") else args[0]
        if not text.isdigit():
            raise ConsoleError("ack %s: ALERT is a number, e.g. ack 12 (see `alerts`)" % args[0])
        alert = self.console.find_alert(int(text))
        if alert is None:
            raise ConsoleError("no recent alert #%s; `alerts` lists the last %d" % (text, MAX_ALERTS))
        if alert.acked_by is not None:
            return "alert #%d was already acknowledged by %s %s" % (alert.seq, alert.acked_by,
                                                                   show.ago(now, alert.acked_ms))
        alert.acked_by = self.token.subject
        alert.acked_ms = now
        self._audit(now, "alert.ack", "alert #%d" % alert.seq, "unacknowledged", "acknowledged", audit.APPLIED,
                    alert.text)
        # The rule may take it: an acknowledged level shift accepts its new level and clears.
        self.console.view.dispatch(acknowledge_alert(self.console.view.device, alert, now))
        return "alert #%d acknowledged by %s" % (alert.seq, alert.acked_by)

    def _cmd_quarantine(self, args, now):
        if len(args) != 2 or args[0] not in ("force", "release"):
            raise ConsoleError("usage: quarantine force|release COMPONENT")
        verb, cid = args
        device = self.console.view.device
        if cid not in device.health.components:
            raise ConsoleError("no component %r; components: %s" % (cid, ", ".join(sorted(device.health.components))))
        action = "quarantine." + verb
        try:
            before, after, outputs = op.quarantine(device, cid, verb == "force", now, self.token.subject)
        except op.Refused as exc:  # not-allowed: the component is known
            before = device.health.state_of(cid)
            self._audit(now, action, cid, before, None, audit.REFUSED, exc.detail)
            raise ConsoleError("%s is %s: %s" % (cid, before, exc.detail))
        self.console.view.dispatch(outputs)
        self._audit(now, action, cid, before, after, audit.APPLIED, "")
        done = [o.text for o in outputs if getattr(o, "code", None) in ("gpio", "modbus-write")]
        return "%s: %s -> %s%s" % (cid, before, after, "".join("\n  " + line for line in done))

    def _cmd_selftest(self, args, now):
        show._no_args("selftest", args)
        view = self.console.view
        device = view.device
        rows = []
        tally = {"pass": 0, "FAIL": 0, "skip": 0}
        for sid in sorted(device.board.sensors):
            verdict, text = _check_sensor(device, device.board.sensors[sid], now)
            tally[verdict] += 1
            rows.append(["  " + sid, verdict, text])
        lines = ["sensors", show.table(None, rows)]
        outputs = sorted(device.board.outputs)
        if outputs:
            lines.append("outputs")
            rows = []
            results = {}
            allowed = self.token is not None and self.token.allows("selftest")
            for oid in outputs:
                if allowed:
                    verdict, text = self._pulse(oid, now)
                    if verdict != "skip":  # only what was driven is audited
                        results[oid] = verdict
                else:
                    verdict, text = "skip", "not pulsed: needs a session with scope 'selftest'"
                tally[verdict] += 1
                rows.append(["  " + oid, verdict, text])
            lines.append(show.table(None, rows))
            if results:
                failed = [o for o in sorted(results) if results[o] == "FAIL"]
                self._audit(now, "selftest", "outputs", None, results, audit.APPLIED,
                            "failed: " + ", ".join(failed) if failed else "")
        lines.append("selftest: %d passed, %d failed, %d skipped" % (tally["pass"], tally["FAIL"], tally["skip"]))
        return "\n".join(lines)

    def _pulse(self, oid, now):
        """Switch an output off and on through the core's output holders
        (so a quarantine's hold is respected) and read it back."""
        view = self.console.view
        outputs = view.device.health.outputs
        holders = outputs.holders.get(oid, [])
        if holders:
            return "skip", "held off by %s; left alone" % ", ".join(holders)
        seen = []
        for on in (False, True):
            out = []
            if on:
                outputs.release(oid, "selftest", "selftest: back on", now, out)
            else:
                outputs.hold(oid, "selftest", "selftest: pulse off", now, out)
            view.dispatch(out)
            seen.append(view.output_is_on(oid))
        if seen == [None, None]:
            return "pass", "switched off and on (this hardware cannot read it back)"
        if seen == [False, True]:
            return "pass", "switched off and on, read back off then on"
        return "FAIL", "switched off and on, but read back %s then %s" % (_on_text(seen[0]), _on_text(seen[1]))


def _check_sensor(device, sensor, now):
    health = device.health.components.get(sensor.component)
    if health is not None and health.state in cs.ISOLATED:
        return "skip", "%s is %s: its readings are not judged" % (sensor.component, health.state)
    reading = device.latest.get(sensor.id)
    if reading is None:
        return "FAIL", "no reading since the agent started (check its bus %s)" % sensor.bus
    age = now - reading.time_ms
    if age > max(3 * sensor.period_ms, sensor.period_ms + 2000):
        return "FAIL", "silent for %s (a reading every %s expected)" % (show.duration(age), show.duration(sensor.period_ms))
    if reading.value is None:
        return "FAIL", "reports fault %s" % (reading.code,)
    if not sensor.low <= reading.value <= sensor.high:
        return "FAIL", "reads %s %s, outside %s to %s" % (show.num(reading.value), sensor.unit, show.num(sensor.low),
                                                          show.num(sensor.high))
    return "pass", "%s %s, %s ago" % (show.num(reading.value), sensor.unit, show.duration(age))


def _spelled_out(usage, args):
    """``args`` with abbreviated keywords (``quar f fan``: force) spelled
    out, as the usage line names them; raises ConsoleError when ambiguous."""
    spelled = list(args)
    for i, (choices, _) in enumerate(words.arguments(usage)[:len(args)]):
        if choices:
            try:
                spelled[i] = words.resolve(args[i].lower(), choices) or args[i]
            except words.Ambiguous as exc:
                raise ConsoleError("%r could be %s; usage: %s" % (exc.word, " or ".join(exc.matches), usage))
    return spelled


def _on_text(value):
    return "unknown" if value is None else ("on" if value else "off")


def _on_off(name, args):
    if args not in (["on"], ["off"]):
        raise ConsoleError("usage: %s on|off" % name)
    return args[0] == "on"


def _unknown(name):
    close = [c for c in ORDER if c.startswith(name[:3])] if len(name) >= 2 else []
    hint = " (did you mean %s?)" % " or ".join(close) if close else ""
    shown = name if len(name) <= 20 else name[:20] + "..."
    return "unknown command %r%s; `help` lists the commands" % (shown, hint)
