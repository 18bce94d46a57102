"""What the web view's tests share: a receiver database filled through the
real receiver (sealed signals, verified, stored), and the view served on a
free loopback port from a thread of its own (its own event loop), so tests
and the browser talk to it over real HTTP."""

import asyncio
import contextlib
import threading
import time
import urllib.error
import urllib.request

from edge_agent.core import signals as sg
from edge_agent.keys.identity import create_identity
from edge_agent.receiver.registry import Registry
from edge_agent.receiver.service import Receiver
from edge_agent.receiver.storage import open_storage
from edge_agent.receiver.web import access as acc
from edge_agent.receiver.web import app as web_app
from simulator.fixtures.broker import free_port

T0 = 1_790_000_000_000  # device time of the first reading (2026-09)
READ_TOKEN = "r" * 20 + "-read-token"
WRITE_TOKEN = "w" * 20 + "-write-token"
HOSTILE_TEXT = '<script>alert("x")</script> coolant over its limit & rising'


def now_ms():
    return time.time_ns() // 1_000_000


class Fleet:
    """Devices with identities, a registry and a receiver on ``db``; each
    signal goes through Receiver.handle (COSE verified, then stored)."""

    def __init__(self, directory, db, devices=(("web-1", "EdDSA"), ("web-2", "HMAC256"))):
        self.registry = Registry()
        self.identities = {}
        self.seqs = {}
        for device, algorithm in devices:
            identity = create_identity("%s/%s" % (directory, device), device, algorithm)
            self.registry.add_entries(identity.registry_entry(model="EA-DEMO-1", include_secret=True))
            self.identities[device] = identity
            self.seqs[device] = 0
        self.storage = open_storage(db)
        self.receiver = Receiver(None, self.registry, self.storage)

    def send(self, device, kind, time_ms, body, priority=sg.PRIORITY_NORMAL):
        self.seqs[device] += 1
        signal = sg.Signal(kind, priority, time_ms, body, device, self.seqs[device])
        self.storage.begin()
        outcome = self.receiver.handle(sg.topic(device, kind), self.identities[device].seal(signal.encode()),
                                       now_ms())
        self.storage.commit()
        assert outcome == "accepted", outcome
        return signal

    def birth(self, device, time_ms):
        return self.send(device, sg.KIND_BIRTH, time_ms, {sg.B_AGENT: "edge-agent 0.1.0", sg.B_MODEL: "EA-DEMO-1",
                                                          sg.B_BOARD: "demo-gateway", sg.B_FORMAT: 1})

    def readings(self, device, sensor, start_ms, values, period_ms=1000):
        rows = [[start_ms + i * period_ms, sensor, value, 0] for i, value in enumerate(values)]
        return self.send(device, sg.KIND_TELEMETRY, rows[-1][0], {sg.T_READINGS: rows}, sg.PRIORITY_LOW)

    def alert(self, device, time_ms, active=True, text=HOSTILE_TEXT, sensor="coolant_temp", severity="critical",
              condition="out_of_range"):
        return self.send(device, sg.KIND_ALERT, time_ms, {
            sg.A_CONDITION: condition, sg.A_COMPONENT: "coolant", sg.A_SENSOR: sensor, sg.A_VALUE: 130.0,
            sg.A_LIMITS: [-20.0, 110.0], sg.A_SEVERITY: severity, sg.A_TEXT: text, sg.A_ACTIVE: active},
            sg.PRIORITY_CRITICAL)

    def state(self, device, time_ms, component, before, after, event="stuck"):
        return self.send(device, sg.KIND_STATE, time_ms, {sg.S_COMPONENT: component, sg.S_FROM: before,
                                                          sg.S_TO: after, sg.S_EVENT: event,
                                                          sg.S_REASON: "tachometer repeats one value"})

    def audit(self, device, time_ms, who, action, target, result="applied", channel="console"):
        return self.send(device, sg.KIND_AUDIT, time_ms, {sg.U_WHO: who, sg.U_ACTION: action, sg.U_TARGET: target,
                                                          sg.U_RESULT: result, sg.U_CHANNEL: channel})

    def close(self):
        self.storage.close()


def demo_fleet(directory, db):
    """web-1: a coolant alert at T0 + 60 s over 2 minutes of readings, its
    fan quarantined, an audited release; web-2: readings only."""
    fleet = Fleet(directory, db)
    for device in ("web-1", "web-2"):
        fleet.birth(device, T0)
    fleet.readings("web-1", "coolant_temp", T0, [80.0 + (i % 7) for i in range(60)])
    fleet.readings("web-1", "coolant_temp", T0 + 60_000, [130.0] * 60)
    fleet.alert("web-1", T0 + 60_000)
    fleet.state("web-1", T0 + 70_000, "cabinet_fan", "healthy", "quarantined")
    fleet.audit("web-1", T0 + 100_000, "alice", "quarantine.release", "cabinet_fan")
    fleet.readings("web-2", "coolant_temp", T0, [75.0] * 120)
    return fleet


@contextlib.contextmanager
def serving(db, access=None, ssl_context=None, host="127.0.0.1", routes=None):
    """The view of ``db`` on a free port; yields its base URL. ``routes``:
    routes.Routes for acknowledgements' webhooks."""
    access = access or acc.Access(READ_TOKEN, WRITE_TOKEN)
    port = free_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop = asyncio.Event()
    failure = []

    async def main():
        try:
            app = await web_app.make_app(lambda: open_storage(db), access, routes)
            runner = await web_app.serve(app, host, port, ssl_context)
        except BaseException as exc:  # noqa: BLE001 (reported to the test)
            failure.append(exc)
            started.set()
            return
        started.set()
        await stop.wait()
        await runner.cleanup()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    started.wait(10)
    if failure:
        raise failure[0]
    try:
        yield "%s://%s:%d" % ("https" if ssl_context else "http", host, port)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


def get(url, token=READ_TOKEN, accept="text/html", context=None):
    """(status, body text) of a GET."""
    request = urllib.request.Request(url, headers={"Accept": accept})
    if token:
        request.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
