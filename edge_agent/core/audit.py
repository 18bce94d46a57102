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


def _text(value):
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."


def _value(value):
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return _text(value) if isinstance(value, str) else value
    if isinstance(value, (list, tuple)):
        return [_value(v) for v in value]
    if isinstance(value, dict):
        return dict((k, _value(v)) for k, v in value.items())
    return _text(value)


def audit_signal(now_ms, who, action, target, before, after, result, reason, channel):
    """An unnumbered KIND_AUDIT signal. ``result`` is APPLIED or REFUSED."""
    if result not in RESULTS:
        raise ValueError("audit result must be %r or %r, not %r" % (APPLIED, REFUSED, result))
    body = {
        sg.U_WHO: _text(who),
        sg.U_ACTION: _text(action),
        sg.U_TARGET: _text(target),
        sg.U_BEFORE: _value(before),
        sg.U_AFTER: _value(after),
        sg.U_RESULT: result,
        sg.U_REASON: _text(reason),
        sg.U_CHANNEL: _text(channel),
    }
    return sg.Signal(sg.KIND_AUDIT, sg.PRIORITY_HIGH, now_ms, body)


def describe(body):
    """One line for logs and the console: 'applied quarantine.force fan by alice'."""
    line = "%s %s %s by %s" % (body.get(sg.U_RESULT), body.get(sg.U_ACTION), body.get(sg.U_TARGET),
                               body.get(sg.U_WHO) or "?")
    if body.get(sg.U_REASON):
        line += " (%s)" % body.get(sg.U_REASON)
    return line
