"""Fleet-wide escalation: when K of a model's N devices report the same
fault class within a window, it is the product, not one unit.

The receiver feeds every fresh, verified signal to ``FleetWatch.observe``
inside its transaction. A **fault class** is what a report says went wrong
and where (devices of one model share a board, so a component id names the
same part on each):

    an active alert                 (condition, component)   e.g. stuck on cabinet_fan
                                    (root_cause, <element>)  for a root-cause alert
    a state change to quarantined   (quarantined, component) the event that caused it
                                                             is kept as evidence

For each (model, component, condition) the watch keeps, in the database
(table fleet_reports, so receivers sharing it count together), the devices
that reported it and when: the device's time (a backlog delivered after an
outage still counts when it happened), but never later than the report's
arrival at the receiver. A device clock far ahead would otherwise move the
window into the future and every real report out of it (one alert dated a
century ahead switched escalation off for its model); the receiver flags
such a device (service.CLOCK_SKEW_MS, docs/fleet.md). When the devices whose
last report lies within ``window_ms`` of the newest reach the threshold

    threshold = max(k, ceil(fraction * N))      N = the model's registered devices

a **fleet incident** is stored (table fleet_incidents) and an **advisory**
(a command named "advisory", docs/security.md) is signed by the receiver's
operator key for target ``model:<model>`` and queued for every registered
device of that model (table fleet_advisories): one Ed25519 signature for
the Ed25519 devices, a COSE_Mac0 under each HMAC device's own secret for the
small boards (they cannot verify Ed25519). The receiver publishes the
signed advisory once on the model's command topic (``ea/v1/model/<model>/
cmd``, which every device of the model subscribes to) and each Mac0 one on
its device's own command topic, after its commit, and marks them sent at
the PUBACK, so a crash in between sends them again at the next
start rather than never.

One incident per (model, component) at a time: a stuck fan is also
quarantined a few seconds later, and the fleet needs one advisory about the
fan, not two. Other classes on that component join the open incident as
evidence. An incident closes when no device reported any of its classes for
a window; the next crossing opens a new one.

Delivery is confirmed by the devices themselves: each one that applies
(or refuses) the advisory emits an audit signal (action "advisory"), which
the watch matches to the advisory by its id ("incident-<id>").
"""

import json
import math
import time

from edge_agent.core import operator as op
from edge_agent.core import signals as sg

DEFAULT_K = 3
DEFAULT_FRACTION = 0.1
DEFAULT_WINDOW_MS = 10 * 60 * 1000
# An advisory is refused by devices after this: one that sat undelivered
# for a day (a device offline) is stale news; the next incident sends anew.
DEFAULT_ADVISORY_TTL_S = 24 * 3600
ADVISORY = "advisory"
ADVISORY_ID_PREFIX = "incident-"

def now_ms():
    return time.time_ns() // 1_000_000


def fault_class(signal):
    """(component, condition, detail) for a report that counts, else None."""
    body = signal.body
    if signal.kind == sg.KIND_ALERT:
        if not body.get(sg.A_ACTIVE):
            return None
        condition = body.get(sg.A_CONDITION)
        where = body.get(sg.A_ELEMENT) if condition == sg.C_ROOT_CAUSE else body.get(sg.A_COMPONENT)
        if isinstance(condition, str) and isinstance(where, str) and where:
            return where, condition, body.get(sg.A_SENSOR) or ""
        return None
    if signal.kind == sg.KIND_STATE and body.get(sg.S_TO) == "quarantined":
        component = body.get(sg.S_COMPONENT)
        if isinstance(component, str) and component:
            return component, sg.C_QUARANTINED, body.get(sg.S_EVENT) or ""
    return None


class FleetSettings:
    def __init__(self, k=DEFAULT_K, fraction=DEFAULT_FRACTION, window_ms=DEFAULT_WINDOW_MS,
                 advisory_ttl_s=DEFAULT_ADVISORY_TTL_S, severity="warning"):
        if k < 1:
            raise ValueError("--fleet-k must be at least 1")
        if not 0 <= fraction <= 1:
            raise ValueError("--fleet-fraction must be between 0 and 1")
        if window_ms <= 0:
            raise ValueError("--fleet-window must be positive")
        self.k = k
        self.fraction = fraction
        self.window_ms = window_ms
        self.advisory_ttl_s = advisory_ttl_s
        self.severity = severity

    def threshold(self, fleet_size):
        return max(self.k, int(math.ceil(self.fraction * fleet_size - 1e-9)))


class Incident:
    __slots__ = ("id", "model", "component", "condition", "classes", "devices", "last_ms")

    def __init__(self, incident_id, model, component, condition, classes, devices, last_ms):
        self.id = incident_id
        self.model = model
        self.component = component
        self.condition = condition
        self.classes = classes  # condition -> set of devices
        self.devices = devices  # set
        self.last_ms = last_ms


class FleetWatch:
    """``registry``: the receiver's (device ids -> model, key); ``storage``:
    the receiver's storage (its transaction: storage.py); ``operator``: an
    operator_keys.Operator that signs advisories, or None (incidents are
    still recorded, with why no advisory went).

    Its state is in the database, not in memory (table fleet_reports, the
    latest report time of each device per fault class, and the incidents),
    and every decision reads it under the storage's fleet lock: receivers
    sharing one PostgreSQL database count the same reports and raise each
    incident once, and a restart carries on where the last one stopped."""

    def __init__(self, registry, storage, settings=None, operator=None, clock=now_ms):
        self.registry = registry
        self.storage = storage
        self.settings = settings or FleetSettings()
        self.operator = operator
        self.clock = clock
        self.models = {}  # model -> [device ids]
        for device_id, device in sorted(registry.devices.items()):
            if device.model:
                self.models.setdefault(device.model, []).append(device_id)
        self.raised = []  # incidents raised by this process, for callers and tests
        self.raised_since_send = False  # the receiver publishes after its commit

    # -- reports -------------------------------------------------------------

    def observe(self, signal, received_ms):
        """A fresh, verified signal (inside the receiver's transaction)."""
        if signal.kind == sg.KIND_AUDIT:
            self._audit(signal)
            return
        found = fault_class(signal)
        if found is None:
            return
        device = self.registry.devices.get(signal.device)
        model = device.model if device is not None else None
        if not model:
            return  # no model: no fleet to compare with, nothing to target
        component, condition, _ = found
        window = self.settings.window_ms
        time_ms = report_time(signal.time_ms, received_ms)
        self.storage.fleet_lock()
        seen = self._report(model, component, condition, signal.device, time_ms)
        incident = self._latest_incident(model, component)
        if incident is not None and time_ms > incident.last_ms + window:
            incident = None  # closed: quiet for a window
        if incident is not None:
            incident.classes.setdefault(condition, set()).add(signal.device)
            incident.devices.add(signal.device)
            incident.last_ms = max(incident.last_ms, time_ms)
            self.storage.execute("UPDATE fleet_incidents SET classes = ?, devices = ?, last_ms = ? WHERE id = ?",
                                 (_classes_json(incident.classes), json.dumps(sorted(incident.devices)),
                                  incident.last_ms, incident.id))
            return
        fleet = self.models.get(model, [])
        threshold = self.settings.threshold(len(fleet))
        if len(seen) >= threshold:
            self._raise(model, component, condition, seen, threshold, len(fleet), time_ms, received_ms)

    def _report(self, model, component, condition, device, time_ms):
        """Record the device's report; returns {device: report time} of the
        class's reports within the window of its newest."""
        self.storage.execute(
            "INSERT INTO fleet_reports (model, component, condition, device, time_ms) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (model, component, condition, device) DO UPDATE SET time_ms = "
            "CASE WHEN excluded.time_ms > fleet_reports.time_ms THEN excluded.time_ms ELSE fleet_reports.time_ms END",
            (model, component, condition, device, time_ms))
        key = (model, component, condition)
        return dict(self.storage.query(
            "SELECT device, time_ms FROM fleet_reports WHERE model = ? AND component = ? AND condition = ? "
            "AND time_ms >= (SELECT MAX(time_ms) FROM fleet_reports WHERE model = ? AND component = ? "
            "AND condition = ?) - ?", key + key + (self.settings.window_ms,)))

    def _latest_incident(self, model, component):
        """The (model, component)'s latest incident, open while reports keep
        coming within a window of its last one; None if there is none."""
        rows = self.storage.query(
            "SELECT id, condition, classes, devices, last_ms FROM fleet_incidents "
            "WHERE model = ? AND component = ? ORDER BY id DESC LIMIT 1", (model, component))
        if not rows:
            return None
        incident_id, condition, classes, devices, last_ms = rows[0]
        classes = dict((c, set(d)) for c, d in json.loads(classes).items())
        return Incident(incident_id, model, component, condition, classes, set(json.loads(devices)), last_ms)

    def _raise(self, model, component, condition, seen, threshold, fleet_size, time_ms, received_ms):
        devices = set(seen)
        incident_id = self.storage.execute(
            "INSERT INTO fleet_incidents (model, component, condition, classes, devices, fleet_size, threshold, "
            "first_ms, raised_ms, last_ms, received_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (model, component, condition, _classes_json({condition: devices}), json.dumps(sorted(devices)),
             fleet_size, threshold, min(seen.values()), time_ms, time_ms, received_ms),
        ).fetchone()[0]
        incident = Incident(incident_id, model, component, condition, {condition: set(devices)}, devices, time_ms)
        self.raised.append(incident)
        self._queue_advisory(incident, len(devices), fleet_size)
        self.raised_since_send = True

    # -- advisories ------------------------------------------------------------

    def advisory_text(self, incident, count, fleet_size):
        return ("fleet incident %d: %s on %s reported by %d of %d %s devices within %s; check this unit's %s"
                % (incident.id, incident.condition, incident.component, count, fleet_size, incident.model,
                   _duration(self.settings.window_ms), incident.component))

    def _queue_advisory(self, incident, count, fleet_size):
        if self.operator is None:
            self.storage.execute("UPDATE fleet_incidents SET advisory = ? WHERE id = ?",
                                 ("not sent: the receiver has no operator key (--operator DIR)", incident.id))
            return
        target = "model:" + incident.model
        # The operator's counter file is this host's; receivers elsewhere
        # signed with their own copies: the database knows every counter
        # the fleet's advisories used (read under the fleet lock).
        used = self.storage.execute(
            "SELECT MAX(a.counter) FROM fleet_advisories a JOIN fleet_incidents i ON i.id = a.incident "
            "WHERE i.model = ?", (incident.model,)).fetchone()[0]
        counter = max(self.operator.next_counter(target), (used or 0) + 1)
        args = {"text": self.advisory_text(incident, count, fleet_size),
                "id": ADVISORY_ID_PREFIX + str(incident.id), "severity": self.settings.severity}
        issued = self.clock()
        ttl = self.settings.advisory_ttl_s
        signed = None  # one Ed25519 signature, one message on the model's topic
        for device_id in self.models.get(incident.model, []):
            device = self.registry.devices[device_id]
            if device.secret is not None:
                topic = op.command_topic(device_id)
                payload = self.operator.command(target, ADVISORY, args, counter, ttl, now_ms=issued,
                                                device_secret=device.secret)
            else:
                if signed is None:
                    signed = self.operator.command(target, ADVISORY, args, counter, ttl, now_ms=issued)
                topic, payload = op.topic_for_target(target), signed
            self.storage.execute("INSERT INTO fleet_advisories (incident, device, topic, payload, counter) "
                                 "VALUES (?, ?, ?, ?, ?)", (incident.id, device_id, topic, payload, counter))
        # Persisted before the commit that queues them: a counter is never
        # reused, even if this transaction is lost (a skipped counter is
        # harmless; a reused one is refused as a replay).
        self.operator.record_counter(target, counter)

    def unsent(self, limit=None):
        """[(incident, device, topic, payload)] queued and not yet acknowledged by the broker."""
        sql = "SELECT incident, device, topic, payload FROM fleet_advisories WHERE sent_ms IS NULL ORDER BY incident, device"
        if limit:
            sql += " LIMIT %d" % int(limit)
        return self.storage.query(sql)

    def mark_sent(self, sent, sent_ms):
        """``sent``: [(incident, device)] the broker acknowledged."""
        for incident, device in sent:
            self.storage.execute("UPDATE fleet_advisories SET sent_ms = ? WHERE incident = ? AND device = ?",
                                 (sent_ms, incident, device))

    def _audit(self, signal):
        body = signal.body
        if body.get(sg.U_ACTION) != ADVISORY:
            return
        incident = _incident_id(body)
        if incident is None:
            return
        self.storage.execute(
            "UPDATE fleet_advisories SET audit_seq = ?, audit_result = ?, audit_reason = ? "
            "WHERE incident = ? AND device = ? AND audit_seq IS NULL",
            (signal.seq, _audit_text(body.get(sg.U_RESULT)), _audit_text(body.get(sg.U_REASON)), incident,
             signal.device),
        )


def report_time(time_ms, received_ms):
    """When a report counts: its device time, but never after it arrived (a
    device clock ahead cannot move the window into the future)."""
    return min(time_ms, received_ms)


def _incident_id(body):
    """The incident an advisory audit is about: its id travels as the
    advisory's "id" argument, which the device reports as target or after."""
    for key in (sg.U_TARGET, sg.U_AFTER, sg.U_REASON, sg.U_BEFORE):
        value = body.get(key)
        if isinstance(value, dict):
            value = value.get("id")
        if isinstance(value, str):
            for word in value.replace(",", " ").replace(":", " ").split():
                number = word[len(ADVISORY_ID_PREFIX):]
                # An id has at most 18 digits (64-bit integers); int() of
                # thousands of digits raises ValueError.
                if word.startswith(ADVISORY_ID_PREFIX) and number.isdigit() and len(number) <= 18:
                    return int(number)
    return None


def _audit_text(value, limit=200):
    """An audit's result or reason, as stored: text only, bounded (a
    device's audit is signed, but what it says is still only data)."""
    return value[:limit] if isinstance(value, str) else ""


def _classes_json(classes):
    return json.dumps(dict((c, sorted(d)) for c, d in sorted(classes.items())))


def _duration(ms):
    if ms % 3600000 == 0:
        return "%d h" % (ms // 3600000)
    if ms % 60000 == 0:
        return "%d min" % (ms // 60000)
    return "%.0f s" % (ms / 1000)


# -- queries for reports ---------------------------------------------------------


def incidents(db):
    """[(id, model, component, condition, devices, fleet_size, threshold, raised_ms, advisories,
    sent, confirmed, note)] newest first. ``db``: a storage (storage.py), or a
    sqlite3 connection to a receiver's database."""
    rows = db.execute(
        """
        SELECT i.id, i.model, i.component, i.condition, i.devices, i.fleet_size, i.threshold,
               i.raised_ms, COUNT(a.device), COUNT(a.sent_ms),
               CAST(SUM(CASE WHEN a.audit_result = 'applied' THEN 1 ELSE 0 END) AS BIGINT), i.advisory
        FROM fleet_incidents i LEFT JOIN fleet_advisories a ON a.incident = i.id
        GROUP BY i.id ORDER BY i.id DESC
        """
    ).fetchall()
    return [tuple(row[:4]) + (len(json.loads(row[4])),) + tuple(row[5:]) for row in rows]


# -- from `receiver run`'s options (edge_agent/cli/receiver.py) ------------------------


def from_args(args, registry, storage):
    """A FleetWatch for `receiver run`, or None with --no-fleet. Raises
    ValueError with a message for the command line."""
    if args.no_fleet:
        return None
    from edge_agent.keys.operators import OperatorError, load_operator, parse_duration

    try:
        window_ms = int(parse_duration(args.fleet_window) * 1000)
    except OperatorError as exc:
        raise ValueError("--fleet-window: %s" % exc) from None
    settings = FleetSettings(k=args.fleet_k, fraction=args.fleet_fraction, window_ms=window_ms)
    try:
        operator = load_operator(args.operator) if args.operator else None
    except OperatorError as exc:
        raise ValueError("--operator: %s" % exc) from None
    return FleetWatch(registry, storage, settings, operator)
