"""Logins at the technician console: a token checked, failures counted
per port and locked for seconds, every attempt audited, one by one or in a
count (docs/console.md, "Failed logins" and "Audit").

    Logins(view, trusted)        one per Console (view: the console's view,
                                 for the clock-free audit's dispatch)
    logins.attempt(port, target, text, now)
                                 the Token of a good login (its failed
                                 attempts' count audited first), or
                                 ConsoleError saying why not, in plain words
    logins.guard(port)           the port's LoginGuard

Text that is not a token (not base64url, not COSE) is no login attempt:
not counted, not audited. A token that fails verification counts against
its port (a serial port, the UART, the socket with all its clients): the
third and fourth failures in a row warn, the fifth locks login there for
2 s, doubling up to 8 s, while tokens typed there are not even checked
(but count, and are audited). Other ports are not locked: a passer-by
cannot lock the owner's technicians out, and a genuine token on the
passer-by's port waits at most 8 s. (Guessing an Ed25519 signature or an
HMAC-SHA256 tag is infeasible whatever the lockout; it only slows a script
and bounds the work and the audits.)

Audits (audit.py, channel "console"): a refused token whose signature
verified is audited under its subject (expired, another device: the
technician is known); one that did not, as "unverified (operator X)". The
failure that locks a port says so. Five are audited one by one; then, for
a quiet period of 30 s doubling up to an hour (device-wide), they are
counted, and the count (with how many were typed at a locked port, and
the lockouts) goes out in one audit before the next one audited or the
next successful login's.
"""

from edge_agent.core import audit
from edge_agent.core import console_show as show
from edge_agent.core import cose
from edge_agent.core import operator as op
from edge_agent.core.console_show import ConsoleError

# Lockout: MAX_FAILURES failed logins in a row on a port lock login there
# for FIRST_LOCK_MS, doubled at each further lockout, at most MAX_LOCK_MS.
# Five tries forgive a mistyped paste; a few seconds slow a script, and are
# all a passer-by can make the owner's technician wait.
MAX_FAILURES = 5
FIRST_LOCK_MS = 2000
MAX_LOCK_MS = 8000
# A refusal says how many tries are left once they are this few.
WARN_TRIES_LEFT = 2
# Audits of failed logins: MAX_FAILURES of them, then a quiet period of
# FIRST_QUIET_MS doubling up to MAX_QUIET_MS (device-wide) in which they are
# counted, not audited one by one: what an unauthenticated flood can add to
# the store's alert lane stays at a few an hour.
FIRST_QUIET_MS = 30000
MAX_QUIET_MS = 3600000


class LoginGuard:
    """Counts failures and locks after too many (on the injected clock):
    login on a port, or the one-by-one audit of failed logins."""

    def __init__(self, max_failures=MAX_FAILURES, first_lock_ms=FIRST_LOCK_MS, max_lock_ms=MAX_LOCK_MS):
        self.max_failures = max_failures
        self.first_lock_ms = first_lock_ms
        self.max_lock_ms = max_lock_ms
        self.failures = 0  # in a row, since the last lockout or success
        self.lockouts = 0  # since the last success
        self.locked_until_ms = None

    def locked_for(self, now_ms):
        """Milliseconds of lockout left (0: login allowed)."""
        if self.locked_until_ms is None or now_ms >= self.locked_until_ms:
            return 0
        return self.locked_until_ms - now_ms

    def failed(self, now_ms):
        """Count a failure; return the lockout it starts in ms (0: none)."""
        self.failures += 1
        if self.failures < self.max_failures:
            return 0
        lock = self.next_lock_ms()
        self.failures = 0
        self.lockouts += 1
        self.locked_until_ms = now_ms + lock
        return lock

    def tries_left(self):
        return self.max_failures - self.failures

    def next_lock_ms(self):
        """How long the next lockout will be."""
        lock = self.first_lock_ms
        for _ in range(self.lockouts):
            lock = min(lock * 2, self.max_lock_ms)
        return lock

    def succeeded(self):
        self.failures = 0
        self.lockouts = 0
        self.locked_until_ms = None


class Logins:
    def __init__(self, view, trusted):
        """``trusted``: {operator kid bytes: verifier or HMAC key}
        (operator.verify_token); None or {} means nobody can log in."""
        self.view = view
        self.trusted = trusted or {}
        self.guards = {}  # port -> LoginGuard of its logins
        self.audit_guard = LoginGuard(MAX_FAILURES, FIRST_QUIET_MS, MAX_QUIET_MS)
        # Counted in a quiet period, not yet audited: failed logins, how many
        # of them were typed while their port was locked, and lockouts.
        self.unaudited = 0
        self.unaudited_locked = 0
        self.unaudited_lockouts = 0

    def guard(self, port):
        guard = self.guards.get(port)
        if guard is None:
            guard = self.guards[port] = LoginGuard()
        return guard

    def attempt(self, port, target, text, now):
        """Log in with token ``text`` on ``port`` (``target``: the session,
        for the audit); the Token, or ConsoleError."""
        if not self.trusted:
            raise ConsoleError("this device trusts no operator key, so nobody can log in; "
                               "start the agent with a trusted-operators file")
        try:  # text that is not a token is no login attempt: not counted, not audited
            data = op.token_from_text(text)
            envelope = cose.parse(data)
        except (op.Rejection, cose.COSEError):
            raise ConsoleError("login refused: not a technician token: paste the token from "
                               "`edge-agent keys technician-token` (this did not count as a failed login)")
        guard = self.guard(port)
        locked = guard.locked_for(now)
        if locked:
            self._failed(now, target, "locked: a token typed while login is locked on this port (not checked)",
                         _unverified(_text(envelope.kid)), locked=True)
            raise ConsoleError("login is locked for %s on this port after repeated failures; wait, then try again"
                               % show.duration(locked))
        try:
            token = op.verify_token(data, self.trusted, self.view.device.device_id, now)
        except op.Rejection as exc:
            raise ConsoleError(self._refused(now, target, guard, exc))
        guard.succeeded()
        self._audit_count(now)
        self.audit_guard.succeeded()
        return token

    def _refused(self, now, target, guard, exc):
        """Count and audit a token that failed verification; return what to say."""
        lock = guard.failed(now)
        locking = ""
        if lock:
            locking = "; %d failed logins in a row: login locked for %s on this port" % (
                guard.max_failures, show.duration(lock))
        who = exc.subject if exc.verified and exc.subject else _unverified(exc.operator)
        self._failed(now, target, "%s: %s%s" % (exc.reason, exc.detail, locking), who, lockout=bool(lock))
        message = "login refused: %s (%s)%s" % (exc.reason, exc.detail, locking)
        left = guard.tries_left()
        if not lock and left <= WARN_TRIES_LEFT:
            message += "; %d %s left, then login locks on this port for %s" % (
                left, "try" if left == 1 else "tries", show.duration(guard.next_lock_ms()))
        return message

    def _failed(self, now, target, reason, who, locked=False, lockout=False):
        """Audit a failed login, or count it in a quiet period (a LoginGuard
        on the audit, not on login). ``locked``: typed at a locked port;
        ``lockout``: this failure locked it."""
        if self.audit_guard.locked_for(now):
            self.unaudited += 1
            self.unaudited_locked += 1 if locked else 0
            self.unaudited_lockouts += 1 if lockout else 0
            return
        self._audit_count(now)
        self.audit_guard.failed(now)
        self._audit(now, target, reason, who)

    def _audit_count(self, now):
        count = self.unaudited
        if not count:
            return
        detail = []
        if self.unaudited_locked:
            detail.append("%d typed while login was locked" % self.unaudited_locked)
        if self.unaudited_lockouts:
            detail.append("%d lockout%s" % (self.unaudited_lockouts, "" if self.unaudited_lockouts == 1 else "s"))
        self.unaudited = self.unaudited_locked = self.unaudited_lockouts = 0
        self._audit(now, "console", "rate-limited: %d more failed logins refused unaudited%s"
                    % (count, " (%s)" % ", ".join(detail) if detail else ""), "unverified")

    def _audit(self, now, target, reason, who):
        signal = audit.audit_signal(now, who, "console.login", target, None, None, audit.REFUSED, reason,
                                    audit.CHANNEL_CONSOLE)
        self.view.dispatch([self.view.device.number(signal)])


def _text(kid):
    """A key id as text for people and audits (never a bytes repr)."""
    try:
        return kid.decode()
    except UnicodeError:
        return "?"


def _unverified(operator):
    return "unverified (operator %s)" % (operator or "?")
