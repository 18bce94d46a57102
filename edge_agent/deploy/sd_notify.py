"""systemd's notify protocol (sd_notify(3)), client side: newline-separated
VAR=value assignments in one datagram to the unix socket $NOTIFY_SOCKET
('@name' is an abstract socket). A few lines instead of a dependency."""

import os
import socket


class Notifier:
    """Sends to $NOTIFY_SOCKET; ``enabled`` False (not under systemd, or
    Type= not notify) makes every send a no-op."""

    def __init__(self, environ=None):
        environ = os.environ if environ is None else environ
        path = environ.get("NOTIFY_SOCKET", "")
        self.address = ("\0" + path[1:]) if path.startswith("@") else path
        self.enabled = bool(path) and (path.startswith("/") or path.startswith("@"))
        self.watchdog_s = watchdog_interval(environ)
        self._socket = None

    def send(self, **fields):
        """send(READY=1, STATUS='...'): one datagram. Raises OSError when
        the socket is gone (the caller decides whether that matters)."""
        if not self.enabled:
            return False
        message = "\n".join("%s=%s" % (key, str(value).replace("\n", " ")) for key, value in fields.items())
        if self._socket is None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._socket.sendto(message.encode("utf-8"), self.address)
        return True

    def close(self):
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def watchdog_interval(environ):
    """WatchdogSec= in seconds from $WATCHDOG_USEC, or None when the
    watchdog is off or meant for another process ($WATCHDOG_PID)."""
    usec = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 1_000_000
