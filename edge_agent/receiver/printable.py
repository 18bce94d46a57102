"""Short printable forms of untrusted values, for the receiver's logs,
rejection details and display.

Anything that came off the broker (topics, kids, device ids, rejection
details that quote a payload, alert texts) is shown through ``short``:
bounded in length, every non-printable character (control characters,
escape sequences, bidi overrides) and the backslash escaped, and values
that are not text summarised by type and size, never converted whole (a
5,000-digit integer cannot even be formatted with %d).

Rich markup is a separate concern: the display passes these strings as
``rich.text.Text`` (no markup parsing), see display.py and watch.py.
"""

LIMIT = 80  # characters of the value itself; the summary of what was cut comes on top


def text(value, limit=LIMIT):
    """``value`` (a str) escaped and cut to ``limit`` characters, with the
    cut said: 'abc...(+997 chars)'."""
    head = value[:limit]
    if head.isprintable() and "\\" not in head:  # nearly always: one C call, no loop
        return head if len(value) <= limit else "%s...(+%d chars)" % (head, len(value) - limit)
    out = []
    for ch in value[:limit]:
        if ch == "\\":
            out.append("\\\\")
        elif ch.isprintable():
            out.append(ch)
        else:
            code = ord(ch)
            out.append("\\x%02x" % code if code < 0x100 else "\\u%04x" % code if code < 0x10000 else "\\U%08x" % code)
    if len(value) > limit:
        out.append("...(+%d chars)" % (len(value) - limit))
    return "".join(out)


def short(value, limit=LIMIT):
    """A printable form of any decoded value, at most about ``limit``
    characters plus a short note of what was cut."""
    if isinstance(value, str):
        return text(value, limit)
    if isinstance(value, (bytes, bytearray)):
        # As text (kids are UTF-8 ids); bytes that are not UTF-8 show as U+FFFD.
        shown = text(bytes(value[:limit]).decode("utf-8", "replace"), limit)
        return "b'%s'%s" % (shown, "...(%d bytes)" % len(value) if len(value) > limit else "")
    if value is None or isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        if value.bit_length() > 64:
            return "<%s%d-bit integer>" % ("-" if value < 0 else "", value.bit_length())
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "<array of %d>" % len(value)
    if isinstance(value, dict):
        return "<map of %d>" % len(value)
    return "<%s>" % type(value).__name__


def describe(exc, limit=200):
    """'TypeName: message' of an exception, bounded and escaped (the
    message of an unexpected exception may quote hostile input)."""
    try:
        message = str(exc)
    except Exception:  # a message that cannot even be made
        message = "(no message)"
    return "%s: %s" % (type(exc).__name__, text(message, limit))



def duration(ms):
    """A rough, readable length of time: '100 y', '3 d', '5 min', '12 s'."""
    seconds = abs(ms) / 1000
    for unit, size in (("y", 365.25 * 86400), ("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return "%.0f %s" % (seconds / size, unit)
    return "%.0f s" % seconds
