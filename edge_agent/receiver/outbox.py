"""The webhook outbox: a table in the receiver's database (docs/operator-view.md,
"Alert routing").

A row is written in the transaction that stores its alert, so an alert is
never stored without its deliveries, nor a delivery queued for an alert
rolled back. A sender claims due rows by taking a lease (owner, until):
another sender, in this receiver or another sharing the database, skips a
row under a live lease, so at most one delivery of a row is in flight; a
sender killed mid-delivery leaves a lease that expires, and the row is
delivered again (at least once: the delivery id lets a target drop a
repeat). A failure sets the next attempt after an exponential backoff
(routes.Routes.retry_delay_ms); after ``max_attempts`` the row is a dead
letter, kept, shown, and sent again only if someone requeues it.

Row states: pending (delivered_ms and dead_ms NULL), delivered, dead.
"""

PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"
# A lease outlives the slowest attempt (webhook_sender's timeout) with room.
LEASE_MS = 60_000
# Delivered rows are kept this long (what was sent, for people and the
# view), then pruned; pending rows and dead letters are never pruned.
KEEP_DELIVERED_MS = 30 * 24 * 3600 * 1000
MAX_ERROR = 300

COLUMNS = ("id", "route", "event", "device", "seq", "ticket", "payload", "created_ms", "attempts", "next_ms",
           "lease_owner", "lease_until_ms", "delivered_ms", "dead_ms", "last_error")
SELECT = "SELECT %s FROM outbox" % ", ".join(COLUMNS)
WHERE_PENDING = "delivered_ms IS NULL AND dead_ms IS NULL"


def enqueue(storage, route, event, device, seq, ticket_id, body, now_ms):
    """Queue one delivery inside the caller's transaction; returns its id."""
    return storage.execute(
        "INSERT INTO outbox (route, event, device, seq, ticket, payload, created_ms, attempts, next_ms) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?) RETURNING id",
        (route, event, device, seq, ticket_id, body, now_ms, now_ms)).fetchone()[0]


def claim(storage, owner, routes, now_ms, limit=50, lease_ms=LEASE_MS):
    """Lease up to ``limit`` due rows of the named ``routes`` to ``owner``
    and count the attempt; returns them as dicts, oldest first. Its own
    transaction. Rows of routes this receiver does not know are left to a
    receiver that does."""
    routes = list(routes)
    if not routes:
        return []
    marks = ", ".join("?" * len(routes))
    storage.begin()
    try:
        ids = [row[0] for row in storage.query(
            "SELECT id FROM outbox WHERE %s AND next_ms <= ? AND route IN (%s) "
            "AND (lease_until_ms IS NULL OR lease_until_ms < ?) ORDER BY id LIMIT ?%s"
            % (WHERE_PENDING, marks, storage.SKIP_LOCKED), [now_ms] + routes + [now_ms, limit])]
        claimed = []
        for row_id in ids:
            # The lease is checked again on the row itself: what another
            # sender leased between the SELECT and here is not taken twice.
            rows = storage.query(
                "UPDATE outbox SET lease_owner = ?, lease_until_ms = ?, attempts = attempts + 1 WHERE id = ? AND "
                "%s AND (lease_until_ms IS NULL OR lease_until_ms < ?) RETURNING %s"
                % (WHERE_PENDING, ", ".join(COLUMNS)), (owner, now_ms + lease_ms, row_id, now_ms))
            claimed.extend(_dicts(rows))
        storage.commit()
    except BaseException:
        storage.rollback()
        raise
    return claimed


def delivered(storage, row_id, owner, now_ms):
    """The target took the row (2xx)."""
    storage.execute("UPDATE outbox SET delivered_ms = ?, lease_owner = NULL, lease_until_ms = NULL, last_error = NULL "
                    "WHERE id = ? AND lease_owner = ?", (now_ms, row_id, owner))


def failed(storage, row, owner, error, now_ms, routes):
    """An attempt failed (``error``: what happened, no secret): retry after
    the backoff, or dead-letter the row once it has had max_attempts.
    Returns True if it is now a dead letter."""
    dead = row["attempts"] >= routes.max_attempts
    storage.execute(
        "UPDATE outbox SET lease_owner = NULL, lease_until_ms = NULL, last_error = ?, next_ms = ?, dead_ms = ? "
        "WHERE id = ? AND lease_owner = ?",
        (error[:MAX_ERROR], now_ms + routes.retry_delay_ms(row["attempts"]), now_ms if dead else None, row["id"],
         owner))
    return dead


def release(storage, owner):
    """Hand back ``owner``'s leases on rows not delivered (a clean stop)."""
    storage.execute("UPDATE outbox SET lease_owner = NULL, lease_until_ms = NULL WHERE lease_owner = ? AND %s"
                    % WHERE_PENDING, (owner,))


def prune(storage, now_ms, keep_ms=KEEP_DELIVERED_MS):
    """Delete rows delivered more than ``keep_ms`` ago; returns how many."""
    return storage.execute("DELETE FROM outbox WHERE delivered_ms IS NOT NULL AND delivered_ms < ?",
                           (now_ms - keep_ms,)).rowcount


def requeue(storage, row_id, now_ms):
    """Send a dead letter again (its attempts start over); False if
    ``row_id`` is not a dead letter."""
    cursor = storage.execute("UPDATE outbox SET dead_ms = NULL, attempts = 0, next_ms = ? WHERE id = ? "
                             "AND dead_ms IS NOT NULL", (now_ms, row_id))
    return cursor.rowcount == 1


# --- queries (the web view's, the metrics') ---------------------------------

def rows(storage, state=None, limit=100):
    """Outbox rows, newest first, as dicts with ``state`` (PENDING,
    DELIVERED or DEAD) and the payload as text; ``state``: only those."""
    where = {None: "", PENDING: " WHERE " + WHERE_PENDING, DELIVERED: " WHERE delivered_ms IS NOT NULL",
             DEAD: " WHERE dead_ms IS NOT NULL"}[state]
    found = _dicts(storage.query(SELECT + where + " ORDER BY id DESC LIMIT ?", (limit,)))
    for row in found:
        row["state"] = DELIVERED if row["delivered_ms"] is not None else DEAD if row["dead_ms"] is not None else PENDING
        row["payload"] = bytes(row["payload"]).decode("utf-8", "replace")
    return found


def dead_letters(storage, limit=100):
    return rows(storage, DEAD, limit)


def depth(storage):
    """{route: {state: rows}} over the whole outbox."""
    counts = {}
    for route, state, count in storage.query(
            "SELECT route, CASE WHEN delivered_ms IS NOT NULL THEN 'delivered' WHEN dead_ms IS NOT NULL THEN 'dead' "
            "ELSE 'pending' END AS s, COUNT(*) FROM outbox GROUP BY route, s"):
        counts.setdefault(route, {})[state] = count
    return counts


def _dicts(found):
    return [dict(zip(COLUMNS, row)) for row in found]
