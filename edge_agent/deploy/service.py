"""The agent as a systemd service (Type=notify, WatchdogSec=): READY=1 once
the store is open and the bus tasks run (a port that is not there yet does
not hold READY back: its task keeps reopening it, and STATUS says so), a
STATUS= line (the broker link, each bus, the store's depth) when it
changes, and WATCHDOG=1 from the agent's own event loop every half watchdog
interval (at most 5 s), so a stalled loop misses its pings and systemd
restarts the agent. STOPPING=1 on a clean stop.

``attach(agent)`` adds the task to the agent's services when
$NOTIFY_SOCKET is set; elsewhere it does nothing."""

import asyncio
import logging

from edge_agent.deploy.sd_notify import Notifier

log = logging.getLogger("edge_agent.deploy.service")

# STATUS= is refreshed at least this often without a watchdog.
STATUS_INTERVAL_S = 5.0


def status_text(agent):
    """One line for `systemctl status`: the broker link, the buses, the store."""
    link = "online" if agent.uplink.online.is_set() else "offline"
    buses = ", ".join("%s %s" % (source.bus_id, "open" if source.connected.is_set() else "waiting for " + source.port)
                      for source in agent.sources)
    return "broker %s (%s); buses: %s; store: %d signals waiting" % (
        link, agent.uplink.settings.describe(), buses or "none", agent.pending())


class ServiceNotifier:
    def __init__(self, agent, notifier):
        self.agent = agent
        self.notifier = notifier
        self._failed = False

    def _send(self, **fields):
        try:
            self.notifier.send(**fields)
        except OSError as exc:
            if not self._failed:  # once: a vanished socket must not flood the log
                log.warning("systemd notify socket %s: %s (readiness and watchdog pings not delivered)",
                            self.notifier.address.lstrip("\0"), exc)
            self._failed = True
        else:
            self._failed = False

    async def run(self):
        await asyncio.sleep(0)  # the bus and uplink tasks, created before this one, have started
        status = status_text(self.agent)
        self._send(READY=1, STATUS=status)
        watchdog = self.notifier.watchdog_s
        interval = min(watchdog / 2, STATUS_INTERVAL_S) if watchdog else STATUS_INTERVAL_S
        log.info("systemd: ready%s", "; watchdog ping every %.1f s" % interval if watchdog else "")
        try:
            while True:
                await asyncio.sleep(interval)
                fields = {"WATCHDOG": 1} if watchdog else {}
                current = status_text(self.agent)
                if current != status:
                    fields["STATUS"] = status = current
                if fields:
                    self._send(**fields)
        except asyncio.CancelledError:
            self._send(STOPPING=1, STATUS="stopping: sending what is stored")
            raise


def attach(agent, environ=None):
    """Report to systemd when started by it ($NOTIFY_SOCKET); returns the
    ServiceNotifier, or None."""
    notifier = Notifier(environ)
    if not notifier.enabled:
        return None
    service = ServiceNotifier(agent, notifier)
    agent.services.append(service)
    return service
