"""Audit signals: every privileged action, applied or refused.

One builder for the console (engineer D) and the signed downlink, so both
report the same way: a KIND_AUDIT signal, body keys U_* (signals.py,
docs/wire-format.md), sent at alert priority (PRIORITY_HIGH) because the
owner must hear about an override at once. The device numbers it
(Device.number) like any other signal.

Values are kept small and CBOR-friendly: ``before``/``after`` are whatever
short state the action changed (a component state name, a config digest),
or None.
"""

from edge_agent.core import signals as sg

APPLIED = "applied"
REFUSED = "refused"
RESULTS = (APPLIED, REFUSED)
CHANNEL_CONSOLE = "console"
CHANNEL_DOWNLINK = "downlink"
MAX_TEXT = 200  # one line; a hostile reason string must not bloat the signal


def clip(value, limit=MAX_TEXT):
    """``value`` as one short line (``limit`` characters at most), for an
    audit field or a log line: control characters (C0, DEL, C1), line
    separators and bidi controls are written as escapes, so a sender's
    text cannot forge lines or reorder what a terminal shows. Never raises
    (CPython refuses str() of an integer of more than 4300 digits: a
    hostile message can carry one)."""
    if value is None:
        return ""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = str(value)
        except ValueError:
            text = "<%s>" % type(value).__name__
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    for ch in text:
        if _control(ch):
            text = "".join(("\\x%02x" if c < "\x80" else "\\u%04x") % ord(c) if _control(c) else c for c in text)
            return text if len(text) <= limit else text[: limit - 3] + "..."
    return text


def _control(ch):
    return ch < " " or "\x7f" <= ch < "\xa0" or ch in "\u2028\u2029\u200e\u200f" or \
        "\u202a" <= ch <= "\u202e" or "\u2066" <= ch <= "\u2069"


def _value(value):
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return clip(value) if isinstance(value, str) else value
    if isinstance(value, (list, tuple)):
        return [_value(v) for v in value]
    if isinstance(value, dict):
        return dict((k, _value(v)) for k, v in value.items())
    return clip(value)


def audit_signal(now_ms, who, action, target, before, after, result, reason, channel):
    """An unnumbered KIND_AUDIT signal. ``result`` is APPLIED or REFUSED."""
    if result not in RESULTS:
        raise ValueError("audit result must be %r or %r, not %r" % (APPLIED, REFUSED, result))
    body = {
        sg.U_WHO: clip(who),
        sg.U_ACTION: clip(action),
        sg.U_TARGET: clip(target),
        sg.U_BEFORE: _value(before),
        sg.U_AFTER: _value(after),
        sg.U_RESULT: result,
        sg.U_REASON: clip(reason),
        sg.U_CHANNEL: clip(channel),
    }
    return sg.Signal(sg.KIND_AUDIT, sg.PRIORITY_HIGH, now_ms, body)


def describe(body):
    """One line for logs and the console: 'applied quarantine.force fan by alice'."""
    line = "%s %s %s by %s" % (body.get(sg.U_RESULT), body.get(sg.U_ACTION), body.get(sg.U_TARGET),
                               body.get(sg.U_WHO) or "?")
    if body.get(sg.U_REASON):
        line += " (%s)" % body.get(sg.U_REASON)
    return line
