"""Log lines for where they go. On a terminal or a file: our own timestamp
and the level. Under systemd with stderr connected to the journal
(JOURNAL_STREAM names stderr's device and inode, systemd.exec(5)): no
timestamp (journald stamps each line) and a syslog priority prefix such as
<4> on every line, so `journalctl -u edge-agent -p warning` selects
warnings and worse (sd-daemon(3))."""

import logging
import os
import sys

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# syslog priorities (sd-daemon(3)): 2 crit, 3 err, 4 warning, 6 info, 7 debug.
PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))


def priority(levelno):
    for level, value in PRIORITIES:
        if levelno >= level:
            return value
    return 7


class JournalFormatter(logging.Formatter):
    """'<PRIORITY>name: message', every line of a multi-line message (a
    traceback) prefixed, since journald reads each line as one entry."""

    def __init__(self):
        super().__init__("%(name)s: %(message)s")

    def format(self, record):
        prefix = "<%d>" % priority(record.levelno)
        return "\n".join(prefix + line for line in super().format(record).split("\n"))


def stderr_is_journal(environ=None, stream=None):
    """True when JOURNAL_STREAM is set and names this process's stderr (a
    child whose stderr was redirected keeps the variable but not the link)."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        st = os.fstat((stream or sys.stderr).fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return st.st_dev == int(device) and st.st_ino == int(inode)


def configure(level):
    """Root logging at ``level`` (a name: 'info') to stderr, formatted for
    the journal when stderr is the journal. Like logging.basicConfig, a
    no-op when the root logger already has handlers."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JournalFormatter() if stderr_is_journal() else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler])
