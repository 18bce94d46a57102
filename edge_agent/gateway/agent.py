"""The gateway agent: the composition root that wires core and adapters.

    serial ports (pyserial) --bytes--> core Device --signals--> durable Store
                                            |                      |
                                            |   notices -> log     v
                                            |                 Uplink (aiomqtt) --> broker
                                            \\-- seq from the store's DurableSequencer

Ingest never waits on the network: signals go into the store (append never
blocks; when full it evicts the least urgent, oldest data), and the uplink
drains it independently. Alerts and audits are appended with an immediate sync; the
rest become durable at the store's group commit. One asyncio task per bus,
one for the uplink, one that serves the core's and the store's deadlines.
Time comes from the wall clock here and only here, as integer ms.
"""

import asyncio
import logging
import shutil
import time

from edge_agent import __version__
from edge_agent.core import device as dv
from edge_agent.core import signals as sg
from edge_agent.core.outputs import SetOutput
from edge_agent.core.evictions import EvictionTally
from edge_agent.core.store import CORRUPT, DISK_ERROR, DISK_FULL, DISK_OK, LOST, OVERFLOW, Store
from edge_agent.core.store_seq import DurableSequencer
from edge_agent.gateway.serial_source import bus_source
from edge_agent.gateway.store_posix import PosixDir
from edge_agent.gateway.uplink import Uplink

log = logging.getLogger("edge_agent.gateway.agent")

_NOTICE_LEVELS = {dv.INFO: logging.DEBUG, dv.WARNING: logging.WARNING, dv.ERROR: logging.ERROR}
SUMMARY_INTERVAL_S = 10.0
# On a clean stop, give the uplink this long to send what is stored, so a
# planned restart does not leave signals waiting for the next start.
DEFAULT_SHUTDOWN_GRACE_S = 3.0


def now_ms():
    return time.time_ns() // 1_000_000


class Agent:
    def __init__(self, board, identity, broker, store_dir, port_overrides=None, clock=now_ms,
                 store_options=None, drain_rate=None, gpio=None, shutdown_grace_s=DEFAULT_SHUTDOWN_GRACE_S,
                 downlink=None, **device_options):
        """``gpio``: the output lines (edge_agent.gateway.gpio.GpiodOutputs on a Pi,
        gpio.SimulatedGpio in development), or None when the board
        declares no outputs."""
        self.board = board
        self.clock = clock
        self.gpio = gpio
        self.shutdown_grace_s = shutdown_grace_s
        self.fs = PosixDir(store_dir)
        self.store = Store(self.fs, clock(), **(store_options or {}))
        self.sequencer = DurableSequencer(self.fs)
        self.device = dv.Device(board, identity.device_id, sequencer=self.sequencer, **device_options)
        self.uplink = Uplink(broker, identity, self.store, drain_rate=drain_rate)
        self.evictions = EvictionTally()
        self._log_store_reports()
        recovery = self.store.recovery
        log.info("store %s: recovered (%s); next seq %d", store_dir, _describe_recovery(recovery),
                 self.sequencer.next_seq)
        self.sources = []
        overrides = port_overrides or {}
        for bus in board.buses.values():
            port = overrides.get(bus.id, bus.port)
            # One task per bus, whatever its protocol (a Modbus bus also
            # writes what the core asks); a bus only ever waits on itself.
            self.sources.append(bus_source(self.device, bus, port, self.clock, self._dispatch))
        self._deadline_wakeup = asyncio.Event()
        self._reported_bad = {}
        # Extensions (the console server): services run beside the agent's
        # own tasks; listeners see every signal dispatched.
        self.services = []
        self.signal_listeners = []
        self._dispatch([self.device.birth(self.clock(), "edge-agent " + __version__)])
        # Signed commands (downlink_cli.Setup, with --operators): verified,
        # applied, audited; None takes no commands.
        self.downlink = downlink.attach(self) if downlink is not None else None

    def _dispatch(self, outputs):
        stored = False
        for item in outputs:
            if isinstance(item, SetOutput):
                log.warning("gpio: %s", item.text)
                if self.gpio is not None:
                    self.gpio.apply(item)
            elif isinstance(item, sg.Signal):
                for listener in self.signal_listeners:
                    listener(item)
                # Urgent alerts and audits (privileged actions) are synced at
                # once: a power cut must not take the record of either.
                urgent = item.kind in (sg.KIND_ALERT, sg.KIND_AUDIT) and item.priority <= sg.PRIORITY_HIGH
                if item.kind == sg.KIND_ALERT and urgent:
                    log.warning("alert #%d: %s", item.seq, item.body.get(sg.A_TEXT))
                elif item.kind == sg.KIND_STATE:
                    log.warning("state #%d: %s", item.seq, _state_text(item.body))
                if not self.store.append(item.priority, item.encode(), self.clock(), urgent=urgent):
                    log.error("store full of more urgent data: %s #%d dropped", item.kind_name, item.seq)
                stored = True
            else:
                log.log(_NOTICE_LEVELS.get(item.level, logging.INFO), "%s", item.text)
        if stored:
            # Out of this process's memory: a crash of the agent now loses
            # nothing; group commit bounds only what a power cut can take.
            self.store.flush()
            self._log_store_reports()
            self.uplink.notify()
        # A new batch or unsynced record may have set an earlier deadline.
        self._deadline_wakeup.set()

    def _log_store_reports(self):
        for report in self.store.take_reports():
            if report.kind in (DISK_FULL, DISK_ERROR, DISK_OK, LOST):
                self._log_disk(report)
                continue
            level = logging.ERROR if report.kind in (OVERFLOW, CORRUPT) else logging.WARNING
            log.log(level, "store: %s", report)
            self.evictions.count(report, self.clock())

    def _log_disk(self, report):
        path = self.store.fs.path
        if report.kind == DISK_FULL:
            try:
                free = shutil.disk_usage(path).free
            except OSError:
                free = -1
            log.error("store: disk full at %s (%d bytes free); holding %d records in memory, evicting telemetry "
                      "beyond %d bytes (%s)", path, free, report.records, self.store.hold_bytes, report.reason)
        elif report.kind == DISK_ERROR:
            log.error("store: I/O error writing at %s (a failing disk or SD card?); holding %d records in memory, "
                      "retrying every second, evicting telemetry beyond %d bytes (%s)", path, report.records,
                      self.store.hold_bytes, report.reason)
        elif report.kind == DISK_OK:
            log.warning("store: disk at %s takes writes again; %d records held in memory written", path, report.records)
        else:
            log.error("store: disk full at %s while stopping: %d records held in memory could not be written",
                      path, report.records)

    async def _deadline_loop(self):
        """Serve the core's telemetry deadline and the store's group commit."""
        while True:
            now = self.clock()
            outputs, device_due = self.device.poll(now)
            self._dispatch(outputs)
            store_due = self.store.poll(self.clock())
            self._log_store_reports()
            evictions = self.evictions.take(self.clock())
            if evictions is not None:
                log.warning("store full: reporting evictions upstream: %s", evictions.body[sg.V_LANES])
                self._dispatch([self.device.number(evictions)])
            self._deadline_wakeup.clear()
            dues = [d for d in (device_due, store_due, self.evictions.due_ms) if d is not None]
            timeout = max(0, min(dues) - self.clock()) / 1000 if dues else None
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns
            # normally when its task is cancelled just as the event is set
            # (gh-86296), so a stop that flushed (and set the event) left this
            # loop running and Agent.run waiting for it forever (seen in the
            # fleet simulator: 50 agents stopping at once).
            try:
                async with asyncio.timeout(timeout):
                    await self._deadline_wakeup.wait()
            except TimeoutError:
                pass

    async def _summary_loop(self):
        """Every few seconds, one log line for bad frames instead of one per
        frame: a noisy line must not drown the log."""
        while True:
            await asyncio.sleep(SUMMARY_INTERVAL_S)
            current = dict(self.device.bad_by_reason)
            if current != self._reported_bad:
                delta = {k: v - self._reported_bad.get(k, 0) for k, v in current.items()}
                log.info(
                    "bad frames in the last %.0f s: %s (totals %s)",
                    SUMMARY_INTERVAL_S,
                    ", ".join("%s %d" % kv for kv in sorted(delta.items()) if kv[1]),
                    self.device.stats,
                )
                self._reported_bad = current

    async def run(self):
        tasks = [asyncio.create_task(source.run(), name="bus-" + source.bus_id) for source in self.sources]
        tasks.append(asyncio.create_task(self.uplink.run(), name="uplink"))
        tasks.append(asyncio.create_task(self._deadline_loop(), name="deadlines"))
        tasks.append(asyncio.create_task(self._summary_loop(), name="summary"))
        tasks.extend(asyncio.create_task(service.run(), name=type(service).__name__) for service in self.services)
        try:
            # Tasks only end by raising: a bug, not a condition to ride out.
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        except asyncio.CancelledError:
            # A clean stop (SIGTERM/SIGINT): stop reading sensors, then let
            # the uplink send what is stored while the grace lasts.
            for task in tasks[: len(self.sources)]:
                task.cancel()
            await asyncio.shield(self._drain_for_shutdown())
            raise
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.close()

    def pending(self):
        """Records stored but not yet acknowledged by the broker."""
        return sum(self.store.lane_info(lane)[0] for lane in range(self.store.lanes))

    async def _drain_for_shutdown(self):
        self._dispatch(self.device.flush(self.clock()))
        if not self.uplink.online.is_set() or self.shutdown_grace_s <= 0:
            return
        deadline = time.monotonic() + self.shutdown_grace_s
        while self.pending() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        left = self.pending()
        if left:
            log.info("stopping with %d signals still stored; they are sent at the next start", left)
        await self.uplink.announce_offline()

    def close(self):
        """Make everything durable and release the store (clean shutdown)."""
        if self.fs is None:
            return
        self._dispatch(self.device.flush(self.clock()))
        if self.gpio is not None:
            self.gpio.close()
        self.store.close()  # seals, syncs, and releases the directory lock
        self.fs = None
        log.info("store closed: everything buffered is durable; last seq issued %d", self.sequencer.next_seq - 1)


def _state_text(body):
    # State bodies are the health engine's (docs/wire-format.md); show the
    # readable parts without depending on every key.
    parts = [str(v) for k, v in sorted(body.items()) if isinstance(v, str) and v]
    return " | ".join(parts[:4])


def _describe_recovery(report):
    try:
        data = report.to_map()
    except AttributeError:
        return str(report)
    parts = []
    for key in sorted(data):
        if data[key] not in (0, [], {}, None, ""):
            parts.append("%s %s" % (key, data[key]))
    return ", ".join(parts) or "clean"
