"""Webhook bodies and their signature (docs/operator-view.md, "Alert
routing"): no I/O here; the outbox stores the body, webhook_sender.py
posts it.

Two formats: ``json`` (the alert and its ticket, for trackers and custom
receivers) and ``slack`` (a Slack incoming-webhook message: ``text`` and
``blocks``). Every delivery is signed as Stripe signs its webhooks: the
header

    X-EdgeAgent-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>

so the target can refuse a forged body and, by the timestamp, a replayed
one (verify() is the reference check). X-EdgeAgent-Delivery carries the
outbox row's id: the same for every attempt, so a target that saw a
delivery (its answer lost) can drop the repeat.
"""

import hashlib
import hmac
import json
import math
import time

from edge_agent.core import signals as sg

SIGNATURE_HEADER = "X-EdgeAgent-Signature"
DELIVERY_HEADER = "X-EdgeAgent-Delivery"
EVENT_HEADER = "X-EdgeAgent-Event"
# A signature older (or further ahead) than this is refused by verify():
# Stripe's default tolerance.
TOLERANCE_S = 300

EMOJI = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "info": ":large_blue_circle:"}


class SignatureError(ValueError):
    """A webhook's signature does not verify: the message says why."""


def alert_fields(signal):
    """The alert's fields as a JSON-ready dict."""
    body = signal.body
    limits = body.get(sg.A_LIMITS)
    return {
        "seq": signal.seq, "time_ms": signal.time_ms, "priority": signal.priority,
        "active": bool(body.get(sg.A_ACTIVE)), "condition": _text(body.get(sg.A_CONDITION)),
        "component": _text(body.get(sg.A_COMPONENT)), "sensor": _text(body.get(sg.A_SENSOR)),
        "severity": _text(body.get(sg.A_SEVERITY)), "text": _text(body.get(sg.A_TEXT)),
        "action": _text(body.get(sg.A_ACTION)), "part": _text(body.get(sg.A_PART)),
        "value": _number(body.get(sg.A_VALUE)), "unit": _text(body.get(sg.A_UNIT)),
        "limits": [_number(v) for v in limits] if isinstance(limits, list) else None,
    }


def ticket_fields(ticket):
    """What a tracker needs to mirror the ticket (tickets.COLUMNS, minus
    what repeats the alert)."""
    keys = ("id", "state", "device", "component", "condition", "severity", "action", "opened_ms", "alerts",
            "acked_by", "acked_ms", "ack_note", "cleared_ms", "resolved_ms")
    return {key: ticket.get(key) for key in keys} if ticket else None


def payload(fmt, event, device, model, alert, ticket):
    """The body (bytes) of one delivery: ``event`` "alert.raised",
    "alert.cleared" (``alert`` from alert_fields, ``ticket`` from
    ticket_fields or None) or "ticket.acknowledged" (``alert`` None)."""
    if fmt == "slack":
        document = _slack(event, device, model, alert, ticket) if alert else _slack_ticket(device, model, ticket)
    else:
        document = {"event": event, "device": device, "model": model, "alert": alert, "ticket": ticket}
    return json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def _slack(event, device, model, alert, ticket):
    raised = event == "alert.raised"
    head = "%s %s %s on %s/%s" % (EMOJI.get(alert["severity"], ":white_circle:") if raised else ":white_check_mark:",
                                  alert["severity"] or "alert", alert["condition"] if raised else "cleared:",
                                  device, alert["component"] or alert["sensor"])
    if not raised:
        head += " (%s)" % alert["condition"]
    lines = [head, alert["text"]]
    if raised and alert["action"]:
        lines.append("Action: " + alert["action"])
    if ticket:
        lines.append("Ticket #%d: %s%s" % (ticket["id"], ticket["state"],
                                         ", acknowledged by %s" % ticket["acked_by"] if ticket["acked_by"] else ""))
    text = "\n".join(line for line in lines if line)
    context = "device %s%s, seq %d" % (device, " (model %s)" % model if model else "", alert["seq"])
    return {"text": text, "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
    ]}


def _slack_ticket(device, model, ticket):
    text = ":eyes: Ticket #%d %s by %s: %s on %s/%s" % (
        ticket["id"], ticket["state"], ticket["acked_by"], ticket["condition"], device, ticket["component"] or "-")
    if ticket["ack_note"]:
        text += "\n" + ticket["ack_note"]
    context = "device %s%s" % (device, " (model %s)" % model if model else "")
    return {"text": text, "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
    ]}


def sign(secret, body, timestamp_s):
    """The signature header's value for ``body`` sent at ``timestamp_s``."""
    t = int(timestamp_s)
    return "t=%d,v1=%s" % (t, _mac(secret, t, body))


def _mac(secret, t, body):
    return hmac.new(secret, b"%d." % t + body, hashlib.sha256).hexdigest()


def verify(secret, body, header, now_s=None, tolerance_s=TOLERANCE_S):
    """Check a received webhook: ``header`` is the X-EdgeAgent-Signature
    value, ``body`` the raw bytes as received (not re-encoded JSON).
    Returns the timestamp; raises SignatureError."""
    now_s = time.time() if now_s is None else now_s
    fields = {}
    for part in (header or "").split(","):
        key, _, value = part.strip().partition("=")
        fields.setdefault(key, []).append(value)
    try:
        t = int(fields["t"][0])
    except (KeyError, ValueError):
        raise SignatureError("no timestamp (t=) in the signature header") from None
    if abs(now_s - t) > tolerance_s:
        raise SignatureError("timestamp %d is %d s from now: a replay, or a clock off (tolerance %d s)"
                             % (t, abs(now_s - t), tolerance_s))
    expected = _mac(secret, t, body)
    if not any(hmac.compare_digest(expected, given) for given in fields.get("v1", [])):
        raise SignatureError("no v1 signature matches the body")
    return t


def _text(value):
    return value if isinstance(value, str) else ""


def _number(value):
    # JSON has no NaN or infinity (json.dumps would write invalid JSON): null.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None
