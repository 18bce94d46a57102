"""The web view's read queries over the receiver's storage (SQLite and
PostgreSQL alike: storage_sql.py's SQL dialect, ``?`` placeholders). Read
only, never on the receiver's hot path: the view opens its own connection.

Bodies are stored as the device signed them (CBOR): model and agent
version come from a device's latest birth signal, component states from its
state signals, readings from its telemetry bundles (series.py)."""

import time

from edge_agent.core import cbor
from edge_agent.core import signals as sg
from edge_agent.receiver import storage as receiver_storage

SEVERITY_ORDER = {"critical": 0, "warning": 1}


def _body(blob):
    try:
        body = cbor.loads(bytes(blob))
    except Exception:  # noqa: BLE001 (a body is a verified device's CBOR; one odd body must not break the page)
        return {}
    return body if isinstance(body, dict) else {}


def _text(value):
    return value if isinstance(value, str) else ""


class FleetRow:
    __slots__ = ("device", "presence", "last_seen_ms", "model", "agent", "signals", "missing", "repaired",
                 "active_alerts", "quarantined")

    def __init__(self, **values):
        for name in self.__slots__:
            setattr(self, name, values.get(name))


def fleet(storage):
    """One FleetRow per device the receiver has heard of, by device id."""
    births = latest_births(storage)
    quarantined = components_in_state(storage, sg.C_QUARANTINED)
    repaired = repaired_seqs(storage)
    rows = []
    for (device, count, _max_seq, missing, _dups, active, last_seen, _online, presence, _ahead,
         _anomalies) in storage.device_summary():
        birth = births.get(device, {})
        rows.append(FleetRow(
            device=device, presence=presence, last_seen_ms=last_seen or None,
            model=_text(birth.get(sg.B_MODEL)), agent=_text(birth.get(sg.B_AGENT)), signals=count,
            missing=missing, repaired=repaired.get(device, 0), active_alerts=active,
            quarantined=sorted(quarantined.get(device, ())),
        ))
    return rows


def latest_births(storage):
    """{device: birth body} of each device's latest birth signal."""
    rows = storage.query("SELECT device, seq, body FROM signals WHERE kind = ? ORDER BY device, seq", (sg.KIND_BIRTH,))
    return {device: _body(body) for device, _seq, body in rows}


def component_states(storage):
    """{device: {component: state}}: each component's latest state signal."""
    states = {}
    for dev, body in storage.query("SELECT device, body FROM signals WHERE kind = ? ORDER BY device, seq",
                                   (sg.KIND_STATE,)):
        body = _body(body)
        component = _text(body.get(sg.S_COMPONENT))
        if component:
            states.setdefault(dev, {})[component] = _text(body.get(sg.S_TO))
    return states


def components_in_state(storage, state):
    return {device: {c for c, s in components.items() if s == state}
            for device, components in component_states(storage).items()}


def repaired_seqs(storage):
    """{device: seqs repaired after being missing}: empty (0 for every
    device) until gap repair is merged. Its branch (repair-receiver) keeps
    repair_ranges (device, state, first_seq, last_seq); then this becomes
    SELECT device, SUM(last_seq - first_seq + 1) FROM repair_ranges
    WHERE state = 'repaired' GROUP BY device."""
    return {}


def device_info(storage, device, birth):
    """A FleetRow with what the device page's header shows (presence, last
    seen, model, agent from ``birth``, its latest birth's body), or None for
    a device never heard of."""
    rows = storage.query("SELECT last_seen_ms, online, confirmed FROM devices WHERE device = ?", (device,))
    if not rows:
        return None
    last_seen, online, confirmed = rows[0]
    return FleetRow(device=device, presence=receiver_storage.presence(online, confirmed), last_seen_ms=last_seen or None,
                    model=_text(birth.get(sg.B_MODEL)), agent=_text(birth.get(sg.B_AGENT)))


def time_span(storage, device):
    """(first, last) device time of ``device``'s stored signals, or None."""
    row = storage.query("SELECT MIN(time_ms), MAX(time_ms) FROM signals WHERE device = ?", (device,))[0]
    return None if row[0] is None else (row[0], row[1])


class Alert:
    __slots__ = ("device", "seq", "time_ms", "received_ms", "severity", "active", "condition", "component",
                 "sensor", "text", "action", "value", "limits", "prediction")

    def __init__(self, **values):
        for name in self.__slots__:
            setattr(self, name, values.get(name))

    def to_json(self):
        return {name: getattr(self, name) for name in self.__slots__}


def _alert(device, seq, time_ms, received_ms, body):
    body = _body(body)
    limits = body.get(sg.A_LIMITS)
    prediction = body.get(sg.A_PREDICTION)
    return Alert(device=device, seq=seq, time_ms=time_ms, received_ms=received_ms,
                 severity=_text(body.get(sg.A_SEVERITY)), active=bool(body.get(sg.A_ACTIVE)),
                 condition=_text(body.get(sg.A_CONDITION)), component=_text(body.get(sg.A_COMPONENT)),
                 sensor=_text(body.get(sg.A_SENSOR)), text=_text(body.get(sg.A_TEXT)),
                 action=_text(body.get(sg.A_ACTION)), value=_number(body.get(sg.A_VALUE)),
                 limits=[_number(v) for v in limits[:2]] if isinstance(limits, list) and len(limits) >= 2 else None,
                 prediction=_prediction(prediction) if isinstance(prediction, dict) else None)


def _number(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _prediction(body):
    return {"crossing": _number(body.get(sg.P_CROSSING)), "earliest": _number(body.get(sg.P_EARLIEST)),
            "latest": _number(body.get(sg.P_LATEST)), "threshold": _number(body.get(sg.P_THRESHOLD))}


ALERT_COLUMNS = "device, seq, time_ms, received_ms, body"


class History:
    """One device's signals for its page, from one pass over its rows (a
    device's rows are read once: a month at 1 Hz is ~43,000 bundles, and
    each pass over them costs as much as the page's other work):
    ``birth`` its latest birth's body, ``alerts`` (oldest first),
    ``states`` [(time_ms, component, from, to, event, reason)], ``audit``
    [(time_ms, who, channel, action, target, result, reason)], ``bundles``
    [(seq, time_ms)] of its telemetry (bodies left in the database)."""

    def __init__(self, storage, device):
        self.birth, self.alerts, self.states, self.audit, self.bundles = {}, [], [], [], []
        for seq, kind, time_ms, received_ms, body in storage.query(
                "SELECT seq, kind, time_ms, received_ms, CASE WHEN kind = ? THEN NULL ELSE body END "
                "FROM signals WHERE device = ? ORDER BY seq", (sg.KIND_TELEMETRY, device)):
            if kind == sg.KIND_TELEMETRY:
                self.bundles.append((seq, time_ms))
            elif kind == sg.KIND_ALERT:
                self.alerts.append(_alert(device, seq, time_ms, received_ms, body))
            elif kind == sg.KIND_STATE:
                b = _body(body)
                self.states.append((time_ms, _text(b.get(sg.S_COMPONENT)), _text(b.get(sg.S_FROM)),
                                    _text(b.get(sg.S_TO)), _text(b.get(sg.S_EVENT)), _text(b.get(sg.S_REASON))))
            elif kind == sg.KIND_AUDIT:
                b = _body(body)
                self.audit.append((time_ms, _text(b.get(sg.U_WHO)), _text(b.get(sg.U_CHANNEL)),
                                   _text(b.get(sg.U_ACTION)), _text(b.get(sg.U_TARGET)), _text(b.get(sg.U_RESULT)),
                                   _text(b.get(sg.U_REASON))))
            elif kind == sg.KIND_BIRTH:
                self.birth = _body(body)
        # Read in seq order; shown in time order (a sort keeps seq order within a time).
        self.alerts.sort(key=lambda alert: alert.time_ms)
        self.states.sort(key=lambda row: row[0])
        self.audit.sort(key=lambda row: row[0])


def alerts(storage, limit=500):
    """The latest ``limit`` alerts of the fleet, each marked active when it is
    a raise not cleared since (the latest of its condition, component and
    sensor); active first, then by severity, newest first."""
    # kind as a literal: the partial index signals_alert_arrival serves it, not a scan of every signal
    rows = [_alert(*row) for row in storage.query(
        "SELECT %s FROM signals WHERE kind = %d ORDER BY received_ms DESC, seq DESC LIMIT ?"
        % (ALERT_COLUMNS, sg.KIND_ALERT), (limit,))]
    latest = {}
    for alert in sorted(rows, key=lambda a: (a.device, a.seq)):
        latest[(alert.device, alert.condition, alert.component, alert.sensor)] = alert
    current = {id(a) for a in latest.values()}
    for alert in rows:
        alert.active = alert.active and id(alert) in current
    return sorted(rows, key=lambda a: (not a.active, SEVERITY_ORDER.get(a.severity, 2), -a.time_ms, a.device))


def alerts_since(storage, received_ms, seqs_seen):
    """Alerts stored at or after ``received_ms`` (receiver time), oldest
    first, leaving out ``seqs_seen`` {(device, seq)}: what the live feed
    has not pushed yet."""
    # kind as a literal: the partial index signals_alert_arrival (storage_sql.py) is used only then
    rows = storage.query("SELECT %s FROM signals WHERE kind = %d AND received_ms >= ? ORDER BY received_ms, seq"
                         % (ALERT_COLUMNS, sg.KIND_ALERT), (received_ms,))
    return [_alert(*row) for row in rows if (row[0], row[1]) not in seqs_seen]


def latest_alert_received_ms(storage):
    return storage.query("SELECT COALESCE(MAX(received_ms), 0) FROM signals WHERE kind = %d"
                         % sg.KIND_ALERT)[0][0]


def now_ms():
    return time.time_ns() // 1_000_000


def incidents(storage):
    from edge_agent.receiver.fleet import incidents as fleet_incidents

    return fleet_incidents(storage)
