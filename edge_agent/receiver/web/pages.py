"""HTML of each page, from the queries' rows (queries.py). Every value that
came from a device or the broker is escaped (html.escape): device ids,
alert texts and component names are attacker-controlled strings."""

import json
import os
import string
from html import escape
from urllib.parse import quote, urlencode

from edge_agent.receiver.printable import short
from edge_agent.receiver.web import chart
from edge_agent.receiver.web.chart import when

TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")


def _template(name):
    with open(os.path.join(TEMPLATES, name)) as f:
        return string.Template(f.read())


LAYOUT = _template("layout.html")
LOGIN = _template("login.html")


def page(title, body, name):
    return LAYOUT.substitute(title=escape(title), body=body, page=name)


def login(message):
    return LOGIN.substitute(message=escape(message))


def text(value, limit=200):
    """An untrusted value as HTML text: printable, bounded, escaped."""
    return escape("" if value is None else short(value, limit))


def device_link(device):
    return '<a href="/device/%s">%s</a>' % (quote(device, safe=""), text(device, 80))


def table(table_id, headers, rows, sort=None, query=None):
    """A <table>; ``sort``: (column, descending) makes headers links that
    sort by them (the query's other parameters kept)."""
    head = []
    for key, label in headers:
        if sort is None or key is None:
            head.append("<th>%s</th>" % escape(label))
            continue
        descending = not sort[1] if sort[0] == key else False
        params = dict(query or {}, sort=key, desc="1" if descending else "0")
        arrow = (" ▼" if sort[1] else " ▲") if sort[0] == key else ""
        head.append('<th data-key="%s"><a href="?%s">%s%s</a></th>' % (key, escape(urlencode(params)), escape(label),
                                                                          arrow))
    return '<table id="%s"><thead><tr>%s</tr></thead><tbody>%s</tbody></table>' % (table_id, "".join(head),
                                                                                  "".join(rows))


# -- fleet ------------------------------------------------------------------------------

FLEET_COLUMNS = (("device", "device"), ("presence", "online"), ("last_seen_ms", "last seen"), ("model", "model"),
                 ("agent", "agent / firmware"), ("signals", "signals"), ("missing", "missing seqs"),
                 ("repaired", "repaired seqs"), ("active_alerts", "active alerts"), ("quarantined", "quarantined"))
FILTERS = (("", "all devices"), ("alerting", "with active alerts"), ("quarantined", "with a quarantined part"),
           ("missing", "with missing seqs"), ("offline", "not online"))


def filter_fleet(rows, q, show):
    if q:
        needle = q.lower()
        rows = [r for r in rows if needle in r.device.lower() or needle in (r.model or "").lower()]
    if show == "alerting":
        rows = [r for r in rows if r.active_alerts]
    elif show == "quarantined":
        rows = [r for r in rows if r.quarantined]
    elif show == "missing":
        rows = [r for r in rows if r.missing]
    elif show == "offline":
        rows = [r for r in rows if not str(r.presence).startswith("yes")]
    return rows


def sort_fleet(rows, key, descending):
    if key not in dict(FLEET_COLUMNS):
        key = "device"

    def value(row):
        v = getattr(row, key)
        if isinstance(v, list):
            return (len(v), ",".join(v))
        return (0, "") if v is None else (1, v)

    return sorted(rows, key=value, reverse=descending)


def fleet(rows, total, q, show, sort_key, descending):
    options = "".join('<option value="%s"%s>%s</option>' % (value, " selected" if value == show else "", label)
                      for value, label in FILTERS)
    form = ('<form class="filter" method="get"><input type="search" name="q" value="%s" placeholder="device or model">'
            ' <select name="show">%s</select> <input type="hidden" name="sort" value="%s">'
            '<input type="hidden" name="desc" value="%s"> <button type="submit">filter</button></form>'
            % (escape(q), options, escape(sort_key), "1" if descending else "0"))
    body = []
    for r in rows:
        presence = str(r.presence)
        body.append(
            '<tr data-device="%s"><td>%s</td><td class="online-%s">%s</td><td>%s</td><td>%s</td><td>%s</td>'
            '<td class="num">%d</td><td class="num">%d</td><td class="num">%d</td><td class="num%s">%d</td>'
            '<td>%s</td></tr>'
            % (text(r.device, 80), device_link(r.device), "yes" if presence.startswith("yes") else "no",
               text(presence), when(r.last_seen_ms), text(r.model), text(r.agent), r.signals, r.missing,
               r.repaired, " critical" if r.active_alerts else "", r.active_alerts, text(", ".join(r.quarantined))))
    query = {"q": q, "show": show}
    summary = "<p>%d of %d devices</p>" % (len(rows), total)
    return form + summary + table("fleet", FLEET_COLUMNS, body, (sort_key, descending), query)


# -- alerts -----------------------------------------------------------------------------

ALERT_HEADERS = ((None, "time"), (None, "device"), (None, "severity"), (None, "state"), (None, "condition"),
                 (None, "component"), (None, "sensor"), (None, "what"))


def alert_rows(alerts, with_device=True):
    rows = []
    for a in alerts:
        # data-key: the live feed finds the raises a clear ends (view.js)
        key = escape(json.dumps([a.device, a.condition or "", a.component or "", a.sensor or ""],
                                ensure_ascii=False, separators=(",", ":")))
        rows.append('<tr class="%s" data-device="%s" data-seq="%d" data-time="%d" data-key="%s"><td>%s</td>%s'
                    '<td class="%s">%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>'
                    % ("active" if a.active else "cleared", text(a.device, 80), a.seq, a.time_ms, key, when(a.time_ms),
                       "<td>%s</td>" % device_link(a.device) if with_device else "", text(a.severity, 20),
                       text(a.severity, 20), "active" if a.active else "cleared", text(a.condition, 40),
                       text(a.component, 60), text(a.sensor, 60), text(a.text)))
    return rows


def alerts_page(alerts, incidents, open_tickets, can_write):
    body = ["<h2>alerts</h2><p>active first, then by severity; new alerts appear here as they arrive</p>",
            table("alerts", ALERT_HEADERS, alert_rows(alerts)), "<h2>fleet incidents and advisories</h2>"]
    rows = []
    for (incident, model, component, condition, devices, fleet_size, threshold, raised_ms, queued, sent, applied,
         note) in incidents:
        rows.append("<tr><td class=\"num\">%d</td><td>%s</td><td>%s</td><td>%s on %s</td><td>%d of %d</td>"
                    "<td class=\"num\">%d</td><td>%s</td><td>%s</td></tr>"
                    % (incident, when(raised_ms), text(model), text(condition), text(component), devices, fleet_size,
                       threshold, text(note) if note else "%d of %d sent" % (sent, queued),
                       "" if note else "%d of %d" % (applied or 0, queued)))
    body.append(table("incidents", ((None, "id"), (None, "raised"), (None, "model"), (None, "fault class"),
                                    (None, "devices"), (None, "threshold"), (None, "advisories"),
                                    (None, "applied")), rows) if rows else "<p>no fleet incident</p>")
    body.append("<h2>tickets</h2><p>unresolved, newest change first (edge_agent/receiver/tickets.py)%s</p>"
                % ("" if can_write else "; acknowledging needs the write token"))
    body.append(tickets_table(open_tickets, can_write) if open_tickets else "<p>no unresolved ticket</p>")
    return "".join(body)


TICKET_HEADERS = ((None, "ticket"), (None, "device"), (None, "component"), (None, "condition"), (None, "state"),
                  (None, "severity"), (None, "opened"), (None, "alerts"), (None, "action"), (None, "acknowledged"))


def tickets_table(tickets, can_write, with_device=True):
    """Tickets (tickets.py's dicts); with write access, an acknowledge form
    on each that may be acknowledged (open, or cleared)."""
    from edge_agent.receiver.tickets import ACK_TRANSITIONS

    rows = []
    for t in tickets:
        acked = "%s at %s%s" % (text(t["acked_by"], 100), when(t["acked_ms"]),
                                ": " + text(t["ack_note"]) if t["ack_note"] else "") if t["acked_by"] else ""
        if can_write and t["state"] in ACK_TRANSITIONS:
            acked = ('<form class="ack" method="post" action="/tickets/%d/ack"><input name="who" required '
                     'maxlength="80" placeholder="your name"> <input name="note" maxlength="1000" placeholder="note">'
                     ' <button type="submit">acknowledge</button></form>' % t["id"])
        rows.append('<tr id="ticket-%d" data-ticket="%d" data-state="%s"><td class="num">%d</td>%s<td>%s</td><td>%s</td>'
                    '<td>%s</td><td class="%s">%s</td><td>%s</td><td class="num">%d</td><td>%s</td><td>%s</td></tr>'
                    % (t["id"], t["id"], escape(t["state"]), t["id"],
                       "<td>%s</td>" % device_link(t["device"]) if with_device else "", text(t["component"], 60),
                       text(t["condition"], 40), text(t["state"], 20), text(t["severity"], 20), text(t["severity"], 20),
                       when(t["opened_ms"]), t["alerts"] or 0, text(t["action"]), acked))
    headers = TICKET_HEADERS if with_device else tuple(h for h in TICKET_HEADERS if h[1] != "device")
    return table("tickets", headers, rows)


# -- device -----------------------------------------------------------------------------

WINDOWS = (("1h", 3600000), ("6h", 6 * 3600000), ("24h", 86400000), ("7d", 7 * 86400000),
           ("30d", 30 * 86400000), ("all", None))


def device_page(device, info, window, span, series, alerts, timeline, audit, device_tickets=(), can_write=False):
    """``series``: {sensor: (readings, [(time_ms, value)] to draw)}."""
    start_ms, end_ms = span
    links = " ".join('<a href="?window=%s"%s>%s</a>' % (name, ' class="current"' if name == window else "", name)
                     for name, _ in WINDOWS)
    body = ['<p>model %s · %s · online %s · last seen %s</p>'
            % (text(info.model) or "?", text(info.agent) or "?", text(info.presence), when(info.last_seen_ms)),
            '<h2>sensors</h2><p>window: %s (%s to %s UTC)</p>' % (links, when(start_ms), when(end_ms))]
    sensors = sorted(set(series) | {a.sensor for a in alerts if a.sensor})
    if not sensors:
        body.append("<p>no readings in this window</p>")
    for sensor in sensors:
        mine = [a for a in alerts if a.sensor == sensor]
        limits = next((a.limits for a in reversed(mine) if a.limits), None)
        count, points = series.get(sensor, (0, []))
        body.append('<h3>%s</h3><p class="chart-note">%d readings, %d points drawn</p>%s'
                    % (text(sensor, 60), count, len(points), chart.svg(sensor, points, start_ms, end_ms, mine, limits)))
    rows = ["<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>"
            % (when(t), text(component), text(before), text(after), text(event), text(reason))
            for t, component, before, after, event, reason in timeline]
    body.append("<h2>component states</h2>")
    body.append(table("states", ((None, "time"), (None, "component"), (None, "from"), (None, "to"),
                                 (None, "event"), (None, "reason")), rows) if rows else "<p>no state change</p>")
    body.append("<h2>tickets</h2>")
    body.append(tickets_table(device_tickets, can_write, with_device=False) if device_tickets else "<p>no ticket</p>")
    body.append("<h2>alerts</h2>")
    body.append(table("device-alerts", tuple(h for h in ALERT_HEADERS if h[1] != "device"),
                      alert_rows(list(reversed(alerts)), with_device=False)) if alerts else "<p>no alert</p>")
    rows = ["<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>"
            % (when(t), text(who), text(channel), text(action), text(target), text(result), text(reason))
            for t, who, channel, action, target, result, reason in audit]
    body.append("<h2>audit trail</h2><p>who did what at the console or by signed command</p>")
    body.append(table("audit", ((None, "time"), (None, "who"), (None, "channel"), (None, "action"), (None, "target"),
                                (None, "result"), (None, "reason")), rows) if rows else "<p>no audited action</p>")
    return "".join(body)
