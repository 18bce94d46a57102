"""The fleet's mosquitto: the project's broker fixture (simulator/fixtures/broker.py)
with what a thousand clients and a restart in the middle need, and the
reading of its log that counts connects per second.

- File descriptors: mosquitto takes one per client and inherits our limit,
  so the fleet raises RLIMIT_NOFILE to the hard limit before starting it
  (``raise_fd_limit``); ``max_connections -1`` (no cap) is stated anyway.
- Persistence on a clean stop: the outage is a broker restart. With
  ``persistence true`` mosquitto writes its database when it exits on
  SIGTERM and reloads it at start, so the receiver's session (a stable
  client id) and the messages queued for it survive the restart; nothing a
  device was PUBACKed for is lost. The fixture's autosave after every change
  would rewrite the whole database per message at fleet rates: here it
  saves only at exit (and every 5 minutes).
- Connect times: ``connection_messages true`` logs "New client connected
  from ... as <client id>" with a timestamp; the log's resolution is the
  second, which is what "connects per second" asks for.
"""

import collections
import datetime
import re
import resource

from ..fixtures.broker import Mosquitto

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S"
_CONNECT = re.compile(r"^(\S+): New client connected from \S+ as (\S+) ")


def raise_fd_limit(wanted=65536):
    """Raise this process's open-file limit (inherited by mosquitto) towards
    ``wanted``, up to the hard limit; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


class FleetBroker(Mosquitto):
    def __init__(self, directory, pki=None, port=None):
        super().__init__(directory, pki=pki, port=port, persistent=True)

    def _config(self):
        lines = []
        for line in super()._config().splitlines():
            if line.startswith(("autosave_on_changes", "autosave_interval")):
                continue
            lines.append(line)
        lines += ["autosave_interval 300", "max_connections -1", "log_timestamp_format %s" % TIMESTAMP_FORMAT]
        return "\n".join(lines) + "\n"

    def connects(self, client_prefix="ea-"):
        """[(unix second, client id)] of every connect logged so far by
        clients whose id starts with ``client_prefix``."""
        found = []
        try:
            with open(self.log_path, errors="replace") as f:
                for line in f:
                    match = _CONNECT.match(line)
                    if match and match.group(2).startswith(client_prefix):
                        when = datetime.datetime.strptime(match.group(1), TIMESTAMP_FORMAT)
                        found.append((int(when.timestamp()), match.group(2)))
        except FileNotFoundError:
            pass
        return found


def per_second(times, start_s=None, end_s=None):
    """{second: connects} for connect times in unix seconds within [start, end]."""
    counts = collections.Counter(t for t in times if (start_s is None or t >= start_s) and (end_s is None or t <= end_s))
    return dict(counts)
