"""Tickets: each raised alert opens or joins the ticket of its (device,
component, condition), so a failing part is one thing for people to
handle, however many alerts it raises (docs/operator-view.md, "Tickets").

The lifecycle, as a table (event, state) -> new state:

    raised        none -> open            open, acknowledged -> (same)   cleared -> open
    cleared       open -> cleared         acknowledged -> resolved      cleared -> cleared
    acknowledge   open -> acknowledged    cleared -> resolved           (anything else: TicketError)

A ticket is resolved when its condition has cleared and someone
acknowledged it, in either order; a later raise opens a new ticket. Alerts
reach the receiver out of order (a device's lanes forward raises before
clears after an outage), so only an alert newer (by the device's seq) than
the one that last set the state changes it; older ones join the ticket.

Everything here runs inside the caller's transaction: the ticket changes
with the alert that changed it. The partial unique index on unresolved
(device, component, condition) lets receivers sharing a PostgreSQL database
open exactly one ticket per key: the second insert waits for the first's
commit and joins it (``ON CONFLICT ... DO UPDATE``).
"""

from edge_agent.core import cbor
from edge_agent.core import signals as sg

OPEN = "open"
ACKNOWLEDGED = "acknowledged"
CLEARED = "cleared"
RESOLVED = "resolved"
STATES = (OPEN, ACKNOWLEDGED, CLEARED, RESOLVED)

RAISED = "raised"
CLEAR = "cleared"
# (event, state) -> new state; an event absent for a state changes nothing.
ALERT_TRANSITIONS = {
    (RAISED, OPEN): OPEN,
    (RAISED, ACKNOWLEDGED): ACKNOWLEDGED,
    (RAISED, CLEARED): OPEN,
    (CLEAR, OPEN): CLEARED,
    (CLEAR, ACKNOWLEDGED): RESOLVED,
    (CLEAR, CLEARED): CLEARED,
}
ACK_TRANSITIONS = {OPEN: ACKNOWLEDGED, CLEARED: RESOLVED}

# Who and a note come from people (the web view, the command line): bounded.
MAX_WHO = 100
MAX_NOTE = 1000

COLUMNS = ("id", "device", "component", "condition", "state", "severity", "text", "action", "opened_ms",
           "updated_ms", "last_seq", "alerts", "acked_by", "acked_ms", "ack_note", "cleared_ms", "resolved_ms")
SELECT = "SELECT %s FROM tickets" % ", ".join(COLUMNS)


class TicketError(ValueError):
    """A ticket cannot be acknowledged (unknown, already acknowledged or
    resolved, a bad name or note): the message says why."""


def alert_key(body):
    """(component, condition) of an alert body; '' for what it lacks."""
    return _text(body.get(sg.A_COMPONENT)), _text(body.get(sg.A_CONDITION))


def alert_action(body):
    """The action text a raised alert gives its ticket; '' if none."""
    return _text(body.get(sg.A_ACTION))


def _after(event, state_column):
    """SQL for ALERT_TRANSITIONS' new state after ``event`` (constants of
    this module, not data) from the state in ``state_column``."""
    cases = " ".join("WHEN '%s' THEN '%s'" % (state, new) for (on, state), new in ALERT_TRANSITIONS.items()
                     if on == event)
    return "CASE %s %s ELSE %s END" % (state_column, cases, state_column)


# An alert's link to its ticket.
TICKET_JOIN = "INSERT INTO ticket_alerts (device, seq, ticket) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
# A raise opens its key's ticket or, in the same statement, changes the
# unresolved one (when it is newer than the ticket's last alert). New
# tickets start with alerts = 1, so ``alerts`` returned as 1 means opened.
RAISE_INTO = ("INSERT INTO tickets (device, component, condition, state, severity, text, action, opened_ms, "
              "updated_ms, last_seq, alerts) ")
RAISE_CONFLICT = (
    "ON CONFLICT (device, component, condition) WHERE resolved_ms IS NULL DO UPDATE SET alerts = tickets.alerts + 1, "
    + ", ".join("%s = CASE WHEN excluded.last_seq > tickets.last_seq THEN %s ELSE tickets.%s END" % (column, value, column)
                for column, value in (("state", _after(RAISED, "tickets.state")), ("severity", "excluded.severity"),
                                      ("text", "excluded.text"), ("action", "excluded.action"),
                                      ("cleared_ms", "NULL"), ("updated_ms", "excluded.updated_ms"),
                                      ("last_seq", "excluded.last_seq"))))
_RAISE = RAISE_INTO + "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1) " + RAISE_CONFLICT + " RETURNING id, alerts"


def clear_set(seq, time_ms, received_ms):
    """The SET clause of a clear: its ticket's state changes only when the
    clear (``seq``, at device time ``time_ms``, stored at ``received_ms``:
    SQL expressions) is newer than the ticket's last alert."""
    return "alerts = alerts + 1, " + ", ".join(
        "%s = CASE WHEN %s > last_seq THEN %s ELSE %s END" % (column, seq, value, column)
        for column, value in (("state", _after(CLEAR, "state")), ("cleared_ms", time_ms), ("updated_ms", received_ms),
                              ("resolved_ms", "CASE WHEN %s = '%s' THEN %s END" % (_after(CLEAR, "state"), RESOLVED,
                                                                                  received_ms)),
                              ("last_seq", seq)))


# A clear changes the unresolved ticket of its key, if any (the state only
# when the clear is newer than the ticket's last alert).
_CLEAR = ("UPDATE tickets SET " + clear_set("?", "?", "?")
          + " WHERE device = ? AND component = ? AND condition = ? AND resolved_ms IS NULL RETURNING id, alerts")


def change(signal, received_ms):
    """The statement that opens, joins or changes the ticket of alert
    ``signal`` once it is stored, as (sql, params): the storage runs it
    (storage.change_ticket) and links the alert to the ticket it returns;
    then finish(). PostgreSQL's store_alerts builds its own from
    RAISE_INTO, RAISE_CONFLICT and clear_set."""
    body = signal.body
    component, condition = alert_key(body)
    if body.get(sg.A_ACTIVE):
        return _RAISE, (signal.device, component, condition, OPEN, _text(body.get(sg.A_SEVERITY)),
                        _text(body.get(sg.A_TEXT)), alert_action(body), signal.time_ms, received_ms,
                        signal.seq)
    seq = signal.seq
    return _CLEAR, (seq, seq, signal.time_ms, seq, received_ms, seq, received_ms, seq, seq, signal.device, component,
                    condition)


def finish(storage, signal, row):
    """After change()'s statement returned ``row`` (id, alerts) or None:
    the ticket's id, or None for a clear that no ticket waits for (its
    raise is late, or came before tickets existed: see _early_clears)."""
    if row is None:
        return None
    ticket_id, alerts = row
    if alerts == 1 and signal.body.get(sg.A_ACTIVE):
        _early_clears(storage, ticket_id, signal, *alert_key(signal.body))
    return ticket_id


def observe(storage, signal, received_ms):
    """Open, join or change the ticket of a freshly stored alert ``signal``;
    returns the ticket's id, or None (finish()). The receiver stores a
    message of one alert and changes its ticket in one go instead
    (storage.store_alerts)."""
    sql, params = change(signal, received_ms)
    return finish(storage, signal, storage.change_ticket(sql, params, signal))


def _early_clears(storage, ticket_id, signal, component, condition):
    """A raise that opens a ticket may come after its own clear (the lanes
    forward raises first, but a clear can still win: a raise evicted and
    sent again, a device's lanes draining in another order). Clears of the
    key newer than the raise and on no ticket join it; the newest sets it
    cleared. (A newer raise would have opened the ticket already.)"""
    clears = storage.query(
        "SELECT seq, time_ms FROM alerts a WHERE device = ? AND COALESCE(component, '') = ? "
        "AND COALESCE(condition, '') = ? AND active = 0 AND seq > ? "
        "AND NOT EXISTS (SELECT 1 FROM ticket_alerts t WHERE t.device = a.device AND t.seq = a.seq) ORDER BY seq",
        (signal.device, component, condition, signal.seq))
    if not clears:
        return
    for seq, _ in clears:
        storage.execute(TICKET_JOIN, (signal.device, seq, ticket_id))
    seq, time_ms = clears[-1]
    storage.execute("UPDATE tickets SET state = ?, cleared_ms = ?, last_seq = ?, alerts = alerts + ? WHERE id = ?",
                    (ALERT_TRANSITIONS[(CLEAR, OPEN)], time_ms, seq, len(clears), ticket_id))


def acknowledge(storage, ticket_id, who, note, now_ms, routing=None):
    """``who`` acknowledges ticket ``ticket_id`` (with an optional note):
    open becomes acknowledged, cleared becomes resolved; audited in
    ticket_audit. Its own transaction; the caller must have checked that
    ``who`` may write. ``routing`` (routing.AlertRouting, or None): queue
    the webhooks of routes that take acknowledgements, in the same
    transaction. Returns the ticket; raises TicketError."""
    who = _checked(who, "who", MAX_WHO, required=True)
    note = _checked(note or "", "note", MAX_NOTE)
    storage.begin()
    try:
        # Lock the row (PostgreSQL) so two people acknowledging at once see
        # each other: the second is told who was first.
        rows = _dicts(storage.query(SELECT + " WHERE id = ?" + storage.FOR_UPDATE,
                                    (ticket_id,)))
        if not rows:
            raise TicketError("no ticket %s" % ticket_id)
        current = rows[0]
        state = ACK_TRANSITIONS.get(current["state"])
        if state is None:
            raise TicketError("ticket %d is %s%s: nothing to acknowledge" % (
                ticket_id, current["state"],
                " (by %s)" % current["acked_by"] if current["acked_by"] else ""))
        storage.execute("UPDATE tickets SET state = ?, acked_by = ?, acked_ms = ?, ack_note = ?, updated_ms = ?, "
                        "resolved_ms = ? WHERE id = ?",
                        (state, who, now_ms, note, now_ms, now_ms if state == RESOLVED else None, ticket_id))
        storage.execute("INSERT INTO ticket_audit (ticket, time_ms, who, action, note) VALUES (?, ?, ?, ?, ?)",
                        (ticket_id, now_ms, who, "acknowledge", note))
        if routing is not None:
            routing.acknowledged(ticket(storage, ticket_id), now_ms)
        storage.commit()
    except BaseException:
        storage.rollback()
        raise
    return ticket(storage, ticket_id)


# --- queries (the web view's and the webhooks') -----------------------------

def ticket(storage, ticket_id):
    """One ticket as a dict (COLUMNS), or None."""
    rows = _dicts(storage.query(SELECT + " WHERE id = ?", (ticket_id,)))
    return rows[0] if rows else None


def tickets(storage, states=None, device=None, limit=100):
    """Tickets, newest change first, as dicts; ``states``: only these
    (e.g. (OPEN, ACKNOWLEDGED, CLEARED): the unresolved)."""
    where, params = [], []
    if states:
        where.append("state IN (%s)" % ", ".join("?" * len(states)))
        params.extend(states)
    if device is not None:
        where.append("device = ?")
        params.append(device)
    sql = SELECT + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY updated_ms DESC, id DESC LIMIT ?"
    return _dicts(storage.query(sql, params + [limit]))


def ticket_detail(storage, ticket_id):
    """A ticket with what belongs to it: ``alerts`` (device seq order:
    seq, time_ms, severity, active, text), ``audit`` (this receiver's:
    time_ms, who, action, note) and ``device_audits`` (the device's audit
    signals about the component since the ticket opened: seq, time_ms,
    who, action, result, reason, channel). None if there is no such ticket."""
    found = ticket(storage, ticket_id)
    if found is None:
        return None
    found["alerts"] = [dict(zip(("seq", "time_ms", "severity", "active", "text"), row)) for row in storage.query(
        "SELECT a.seq, a.time_ms, a.severity, a.active, a.text FROM ticket_alerts t "
        "JOIN alerts a ON a.device = t.device AND a.seq = t.seq WHERE t.ticket = ? ORDER BY a.seq", (ticket_id,))]
    found["audit"] = [dict(zip(("time_ms", "who", "action", "note"), row)) for row in storage.query(
        "SELECT time_ms, who, action, note FROM ticket_audit WHERE ticket = ? ORDER BY id", (ticket_id,))]
    found["device_audits"] = _device_audits(storage, found)
    return found


def _device_audits(storage, found):
    # An audit names its target (a component id) inside its CBOR body: the
    # device's audits since the ticket opened are read and filtered here.
    audits = []
    for seq, time_ms, body in storage.query(
            "SELECT seq, time_ms, body FROM signals WHERE device = ? AND kind = ? AND time_ms >= ? ORDER BY seq",
            (found["device"], sg.KIND_AUDIT, found["opened_ms"])):
        try:
            audit = cbor.loads(bytes(body))
        except cbor.CBORError:
            continue
        if isinstance(audit, dict) and found["component"] and audit.get(sg.U_TARGET) == found["component"]:
            audits.append({"seq": seq, "time_ms": time_ms, "who": audit.get(sg.U_WHO),
                           "action": audit.get(sg.U_ACTION), "result": audit.get(sg.U_RESULT),
                           "reason": audit.get(sg.U_REASON), "channel": audit.get(sg.U_CHANNEL)})
    return audits


def _dicts(rows):
    return [dict(zip(COLUMNS, row)) for row in rows]


def _checked(value, name, limit, required=False):
    if not isinstance(value, str):
        raise TicketError("%s must be text" % name)
    value = value.strip()
    if required and not value:
        raise TicketError("%s is required: the name of the person acknowledging" % name)
    if len(value) > limit:
        raise TicketError("%s is longer than %d characters" % (name, limit))
    if any(ord(c) < 32 and c not in "\n\t" for c in value):
        raise TicketError("%s holds control characters" % name)
    return value


def _text(value):
    return value if isinstance(value, str) else ""
