"""The firmware's composition root: the core wired to a board's hardware.

    UART(s) --bytes--> UartSource --> core Device --signals--> Store (flash)
    input pins -----> PinInput ---/        |                      |
                                           |-- SetOutput -> PinOutputs
                                           v                      v
                                       log lines            Uplink (own MQTT client) --> broker

The same shape as the gateway's edge_agent/gateway/agent.py: ingest never waits
on the network (signals go into the store; the uplink drains it on its
own), alerts are synced to flash at once, the rest at the store's group
commit. Everything that touches hardware arrives as a constructor
argument (``uarts``, ``output_pins``, ``input_pins``, ``fs``, ``client``,
``clock``), so firmware/main.py passes machine.UART/Pin and littlefs on
the ESP32 and firmware/unix_main.py passes ptys, simulated pins and a
directory on the unix port.

``clock()`` returns integer ms since the Unix epoch; ``speed`` is how many
clock ms pass per real ms (1 on a device; the tests run a simulated day in
seconds with a faster clock, and timers are waited in real time / speed).
"""

import asyncio
import gc

from edge_agent import __version__
from edge_agent.core import cbor
from edge_agent.core import device as dv
from edge_agent.core import signals as sg
from edge_agent.core import store as store_module
from edge_agent.core.evictions import EvictionTally
from edge_agent.core.outputs import SetOutput, WriteRegisters
from edge_agent.core.store import CORRUPT, OVERFLOW, Store
from edge_agent.core.store_seq import DurableSequencer
from pins import PinInput, PinOutputs
from uart_source import UartSource
from uplink import Uplink

# A board's store: 256 KiB of flash in 16 KiB segments (eviction frees a
# segment at a time); 4 lanes, one per priority. Group commit every 50
# records or 500 ms (flash wear: at most 2 commits a second).
STORE_OPTIONS = {"max_bytes": 256 * 1024, "segment_bytes": 16 * 1024, "sync_every": 50, "sync_ms": 500,
                 "window_bytes": 128 * 1024, "window_ms": 24 * 3600 * 1000}
# The replay window (docs/store.md): 128 KiB, eight segments, half the
# store's flash (it gives way to new records first). The demo board's
# signals cost a board ~15 MiB a day (8 readings a signal: 30 bytes a
# reading, bench/bench_window.py), so it holds ~12 minutes at that rate:
# what a broker drops in a short outage, not a receiver down for a day. A
# board with more flash is provisioned a bigger one (firmware provision
# --window-bytes) and a bigger store; at most a day.
# The core store's buffers are sized for a Pi: 16 KiB read-ahead, 8 KiB of
# appends held before a write, an 8 KiB ack journal written whole. On a
# board each is one contiguous allocation, and a long-running MicroPython
# heap is fragmented: seen on the unix port, MemoryError allocating 8193
# bytes with 90 KiB free, 956 bytes with 39 KiB free. The rule here: no
# allocation over ~512 bytes on the hot paths (a day's run needs 216 KiB of
# heap with 512, 224 KiB with 1 KiB: docs/firmware.md). The store reads
# these module constants at each call, so the firmware sets them once:
# 512 bytes each, and a 16-entry (512-byte) journal whose zeros are written
# from a 128-byte block.
STORE_BUFFERS = {"READ_AHEAD": 256, "WRITE_BUFFER": 512, "JOURNAL_LIMIT": 16, "JOURNAL_BLANK": 128}
# cbor.dumps encodes into one buffer made once and kept, instead of a
# buffer reallocated at every append (core/cbor.py DUMPS_RESERVE): room for
# the largest signals of the memory day (450 bytes); a longer encoding
# grows it.
CBOR_DUMPS_RESERVE = 512
# Readings per telemetry batch: the gateway's 200 cost ~16 KiB of lists and
# floats on the 64-bit port, and the CBOR encoder's list of pieces grows
# to 2-4 KiB (measured: MemoryError in Device._add_to_batch and in
# cbor.dumps under a 320 KiB budget); 8 keep a batch's signal under the
# 512-byte record that the store and a bundle (uplink.BUNDLE_MAX_BYTES) take;
# 6 keep it near 250 bytes: on a 32-bit board the heap's largest free block
# falls to ~550-1,000 bytes under load (the heap log's largest=), and with 8
# the 96 KiB day through 20 broker restarts failed 3 in 3 (docs/firmware.md).
TELEMETRY_MAX_READINGS = 6
HEAP_LOG_MS = 5000  # real time between gc.mem_free() log lines
# A collection after every GC_THRESHOLD bytes allocated (gc.threshold), not
# only when an allocation fails: the pipeline's short-lived objects are
# freed while they are still few, so the next ones reuse the same low
# holes instead of spreading over the heap between long-lived ones. On the
# 32-bit stand-in the day in 80 KiB failed every run without it and passed
# with it (docs/firmware.md, "A 32-bit stand-in"). Set before Firmware
# builds anything: the store's recovery makes short-lived objects too.
GC_THRESHOLD = 4096


async def _stoppable(coroutine):
    """An ingest task that drain() may stop: its cancellation ends it
    quietly, instead of ending gather() in run() and with it the uplink
    that is still draining the store."""
    try:
        await coroutine
    except asyncio.CancelledError:
        pass


def largest_free_block(free):
    """The largest block the heap can give now, to 16 bytes (its
    fragmentation margin: a MemoryError comes when a block is refused, with
    ``free`` bytes free in smaller holes). Found by trying, a collection
    before each try, so it costs a dozen collections: for the heap log only."""
    low, high = 0, free
    while high - low > 16:
        size = (low + high) // 2
        gc.collect()
        try:
            bytearray(size)  # dropped at once: the next collection takes it back
        except MemoryError:
            high = size
        else:
            low = size
    gc.collect()
    return low


class Firmware:
    def __init__(self, board, identity, client, fs, uarts, clock, log, output_pins=None, input_pins=None,
                 speed=1, store_options=None, telemetry_interval_ms=dv.DEFAULT_TELEMETRY_INTERVAL_MS,
                 telemetry_max_readings=TELEMETRY_MAX_READINGS,
                 trusted=None, state=None, heap_log_ms=HEAP_LOG_MS, backoff_max_ms=None, console_uart=None,
                 console_idle_ms=None, operator_scopes=None, gc_threshold=GC_THRESHOLD):
        """``trusted``: the operators whose signed commands this device
        takes (commands.trusted_operators), with ``state`` (a FlashDir) for
        their counters; None takes no commands (nothing is subscribed).
        ``console_uart``: serve the technician console there (logins take
        tokens from the same operators); None: no console, and its modules
        are not even imported (RAM); ``console_idle_ms``: its idle logout
        (None: the core's 15 min); ``operator_scopes``: operators limited
        to some scopes (config.DeviceSettings.scopes); ``gc_threshold``:
        bytes allocated between collections (0: only when the heap is full)."""
        if gc_threshold:  # first (GC_THRESHOLD)
            gc.collect()
            gc.threshold(gc_threshold)
        ring = None
        if console_uart is not None:
            from console_port import LogRing

            ring = log = LogRing(log)
        for name in STORE_BUFFERS:
            if not hasattr(store_module, name):  # renamed in the core: setting it would do nothing
                raise RuntimeError("edge_agent.core.store has no %s any more; update STORE_BUFFERS in "
                                   "firmware/app.py" % name)
            setattr(store_module, name, STORE_BUFFERS[name])
        cbor.DUMPS_RESERVE = CBOR_DUMPS_RESERVE
        self.board = board
        self.clock = clock
        self.log = log
        self.speed = speed
        self.heap_log_ms = heap_log_ms
        self.fs = fs
        options = dict(STORE_OPTIONS)
        options.update(store_options or {})
        self.store = Store(fs, clock(), **options)
        self.sequencer = DurableSequencer(fs)
        self.device = dv.Device(board, identity.device_id, sequencer=self.sequencer,
                                telemetry_interval_ms=telemetry_interval_ms,
                                telemetry_max_readings=telemetry_max_readings)
        uplink_options = {} if backoff_max_ms is None else {"backoff_max_ms": backoff_max_ms}
        self.commands = None
        if trusted:
            from commands import Commands  # here: a board without operators never loads it (RAM)

            self.commands = Commands(self.device, trusted, state, clock, self.dispatch, log, operator_scopes)
            uplink_options["commands"] = self.commands
            from edge_agent.core.repair import RATE_BOARD, SCAN_RECORDS_BOARD, ReplayService

            self.commands.replays = ReplayService(self.store, RATE_BOARD, SCAN_RECORDS_BOARD)
        else:
            log("info", "no trusted operators: signed commands are not taken (provision --operator NAME)")
        self.uplink = Uplink(client, identity, self.store, log, clock=clock, **uplink_options)
        if self.commands is not None:
            self.uplink.replays = self.commands.replays
        self.outputs = PinOutputs(output_pins or {})
        self.evictions = EvictionTally()
        self.sources = []
        for bus_id in sorted(uarts):
            self.sources.append(UartSource(self.device, bus_id, uarts[bus_id], clock, self.dispatch, log))
        self.inputs = []
        for sensor_id in sorted(input_pins or {}):
            if sensor_id not in board.sensors:
                raise KeyError("input pin for sensor %r: no such sensor on board %s" % (sensor_id, board.name))
            # Sampled at the sensor's own period from the board file.
            self.inputs.append(PinInput(self.device, sensor_id, input_pins[sensor_id], clock, self.dispatch,
                                        period_ms=board.sensors[sensor_id].period_ms // speed or 1))
        self.console = None
        if console_uart is not None:
            from console_port import ConsolePort

            self.console = ConsolePort(self, console_uart, ring, trusted, console_idle_ms)
        self._wakeup = asyncio.Event()
        self._ingest = []
        self.heap_min_free = None
        self.alerts = 0
        self._report_store()
        self.log("info", "store recovered: %s; next seq %d" % (self.store.recovery.summary(),
                                                               self.sequencer.next_seq))
        self.dispatch([self.device.birth(clock(), "edge-agent-firmware " + __version__)])

    def dispatch(self, outputs):
        stored = False
        for item in outputs:
            if isinstance(item, SetOutput):
                self.log("warning", "gpio: " + item.text)
                if item.output in self.outputs.pins:
                    self.outputs.apply(item)
            elif isinstance(item, sg.Signal):
                if self.console is not None:
                    self.console.on_signal(item)
                urgent = item.kind == sg.KIND_ALERT and item.priority <= sg.PRIORITY_HIGH
                # The encoding is a view the store copies into its record
                # (cbor.dumps_transient): one block of the signal's size.
                kept = self.store.append(item.priority, item.encode(transient=True), self.clock(), urgent=urgent)
                if not kept:
                    self.log("error", "store full of more urgent data: %s #%d dropped" % (item.kind_name, item.seq))
                if item.kind == sg.KIND_ALERT:
                    self.alerts += 1
                    # Said after the append: "stored" is a promise (an urgent
                    # alert is synced by the append; a power cut after this
                    # line cannot lose it; tests/firmware/test_firmware_power_cut.py).
                    held = not urgent or self.store.disk_full
                    self.log("warning", "alert #%d %s: %s" % (
                        item.seq, "dropped" if not kept else "held" if held else "stored", item.body.get(sg.A_TEXT)))
                stored = True
            elif isinstance(item, WriteRegisters):
                self.log("warning", "modbus: " + item.text)
            else:
                self.log(item.level, item.text)
        if stored:
            # Out of this process's memory (a crash loses nothing); the
            # group commit bounds what a power cut can take.
            self.store.flush()
            self._report_store()
            self.uplink.notify()
        self._wakeup.set()

    def _report_store(self):
        for report in self.store.take_reports():
            self.log("error" if report.kind in (OVERFLOW, CORRUPT) else "warning", "store: %r" % (report,))
            self.evictions.count(report, self.clock())

    async def _deadlines(self):
        """The core's timers (telemetry batch, health, triage) and the
        store's group commit."""
        while True:
            outputs, device_due = self.device.poll(self.clock())
            self.dispatch(outputs)
            store_due = self.store.poll(self.clock())
            self._report_store()
            tally = self.evictions.take(self.clock())
            if tally is not None:
                self.dispatch([self.device.number(tally)])
            self._wakeup.clear()
            dues = [d for d in (device_due, store_due, self.evictions.due_ms) if d is not None]
            wait_s = 1.0
            if dues:
                wait_s = min(wait_s, max(0, min(dues) - self.clock()) / 1000 / self.speed)
            try:
                await asyncio.wait_for(self._wakeup.wait(), wait_s)
            except asyncio.TimeoutError:
                pass

    def heap_sample(self):
        gc.collect()
        free = gc.mem_free()
        if self.heap_min_free is None or free < self.heap_min_free:
            self.heap_min_free = free
        return free

    async def _heap_log(self):
        while True:
            free = self.heap_sample()
            self.log("info", "heap free=%d largest=%d min_free=%s readings=%d signals=%d published=%d pending=%d"
                     % (free, largest_free_block(free), self.heap_min_free, self.device.stats["readings"],
                        self.device.stats["signals"], self.uplink.published, self.pending()))
            await asyncio.sleep(self.heap_log_ms / 1000)

    def pending(self):
        """Records stored but not yet acknowledged by the broker."""
        return sum(self.store.lane_info(lane)[0] for lane in range(self.store.lanes))

    async def run(self):
        self._ingest = [asyncio.create_task(_stoppable(source.run())) for source in self.sources]
        self._ingest.extend(asyncio.create_task(_stoppable(pin.run())) for pin in self.inputs)
        tasks = list(self._ingest)
        if self.console is not None:
            tasks.append(asyncio.create_task(self.console.run()))
        tasks.append(asyncio.create_task(self.uplink.run()))
        tasks.append(asyncio.create_task(self._deadlines()))
        if self.heap_log_ms:
            tasks.append(asyncio.create_task(self._heap_log()))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    async def drain(self, grace_ms):
        """On a clean stop: the pending telemetry batch into the store, then
        let the uplink send what it can within ``grace_ms`` (real time).
        Sensors are no longer read: what the store holds is final."""
        for source in self.sources:
            source.stopped = True
        for task in self._ingest:
            task.cancel()
        self.dispatch(self.device.flush(self.clock()))
        waited = 0
        while self.pending() and self.uplink.online and waited < grace_ms:
            await asyncio.sleep(0.05)
            waited += 50
        left = self.pending()
        if left:
            self.log("info", "stopping with %d signals stored (%s); they are sent at the next start"
                     % (left, "link down" if not self.uplink.online else "grace over"))
        await self.uplink.announce_offline()

    def close(self):
        """Make everything durable (clean stop)."""
        if self.fs is None:
            return
        self.dispatch(self.device.flush(self.clock()))
        self.store.close()
        self.fs.close()
        self.fs = None
        self.log("info", "store closed: last seq issued %d" % (self.sequencer.next_seq - 1))
