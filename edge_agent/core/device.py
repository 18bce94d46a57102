"""The device pipeline: serial bytes in, numbered signals and notices out.

Sans-I/O. The adapter calls ``feed(bus_id, data, now_ms)`` with whatever
bytes a port produced and ``poll(now_ms)`` when the deadline it returned
comes due; both return a list of outputs. Each bus has its own decoder,
chosen by its protocol (decoders.py); a bus whose protocol asks questions
(Modbus) also has ``poll_bus(bus_id, now_ms)``, which its bus task calls
for the bytes to write and the bus's own deadline, so a slow bus never
delays the others. Outputs are each one of:

- ``Signal`` (signals.py): numbered, for the uplink (alerts, state changes,
  telemetry);
- ``Notice``: for the log, never sent;
- ``SetOutput`` (outputs.py): drive a GPIO output (quarantine cut a power
  pin, a degraded mode switched a heater off); the adapter applies it.

Nothing here reads a clock, sleeps, or touches a file.

    bytes -> bus decoder -> Frame -> Reading -> HealthEngine -> proposed alerts -> Triage -> alert Signal
                                          |            \\-> state Signals, SetOutputs
                                          \\-> telemetry batch (quarantined sensors left out) -> Signal

Counters in ``stats`` record everything the pipeline saw, including every
rejected frame by reason, so the console and tests can inspect it.
"""

from edge_agent.core import decoders
from edge_agent.core import frames as fr
from edge_agent.core.outputs import WriteRegisters
from edge_agent.core import reading as rd
from edge_agent.core import rules
from edge_agent.core import signals as sg
from edge_agent.core.health import HealthEngine
from edge_agent.core.triage import Triage

# Unknown sensor ids are reported once each, up to this many distinct ids,
# then only counted: a miswired bus must not flood the log.
MAX_REPORTED_UNKNOWN = 16

DEFAULT_TELEMETRY_INTERVAL_MS = 10000
DEFAULT_TELEMETRY_MAX_READINGS = 200

INFO = "info"
WARNING = "warning"
ERROR = "error"


class Notice:
    """Something the operator should see in the log (never sent upstream)."""

    __slots__ = ("level", "code", "text")

    def __init__(self, level, code, text):
        self.level = level
        self.code = code
        self.text = text

    def __repr__(self):
        return "Notice(%s, %s, %r)" % (self.level, self.code, self.text)


class Sequencer:
    """Hands out per-device sequence numbers. In-memory for now; the durable
    store persists the high-water mark so numbers survive reboots."""

    def __init__(self, next_seq=1):
        self.next_seq = next_seq

    def take(self):
        seq = self.next_seq
        self.next_seq += 1
        return seq


class Device:
    # Typed for mypyc (`make accelerate`): what ingest touches per reading.
    health: "HealthEngine"
    triage: "Triage"
    stats: dict
    _sensors: dict
    _batch_due_ms: "int | None"
    _batch: list
    telemetry_max_readings: int

    def __init__(
        self,
        board,
        device_id,
        sequencer=None,
        telemetry_interval_ms=DEFAULT_TELEMETRY_INTERVAL_MS,
        telemetry_max_readings=DEFAULT_TELEMETRY_MAX_READINGS,
    ):
        reason = sg.check_device_id(device_id)
        if reason:
            raise ValueError(reason)
        if telemetry_interval_ms <= 0 or telemetry_max_readings <= 0:
            raise ValueError("telemetry interval and batch size must be positive")
        self.board = board
        self._sensors = board.sensors  # looked up per reading: a typed dict for mypyc
        self.device_id = device_id
        self.sequencer = sequencer or Sequencer()
        self.telemetry_interval_ms = telemetry_interval_ms
        self.telemetry_max_readings = telemetry_max_readings
        self.decoders = {}
        for bus_id, bus in board.buses.items():
            self.decoders[bus_id] = decoders.create(bus, board.sensors_on(bus_id))
        self.health = HealthEngine(board)
        self.triage = Triage(board)
        # sensor id -> last Reading: the engine's own map (it records every
        # reading too), one dict for both.
        self.latest = self.health.latest
        self._batch = []
        self._batch_due_ms = None
        self._reported_unknown = []
        self.stats = {
            "frames": 0,
            "readings": 0,
            "bad_frames": 0,
            "unknown_sensor": 0,
            "wrong_bus": 0,
            "alerts": 0,
            "signals": 0,
            "state_changes": 0,
            "gpio_actions": 0,
            "register_writes": 0,
            "quarantined_readings": 0,
            "writes_failed": 0,
        }
        self.bad_by_reason = {}
        # seq -> (sensor, condition) of the active alerts a person's
        # acknowledgement acts on (rules.ACKNOWLEDGED_KINDS: a level
        # shift), so a signed alert.ack, which names only the alert's
        # number, reaches the rule on a board or a gateway without a console.
        self._ackable = {}

    def feed(self, bus_id, data, now_ms):
        """Process bytes from bus ``bus_id``; return outputs."""
        decoder = self.decoders.get(bus_id)
        if decoder is None:
            raise KeyError("no bus %r on board %s" % (bus_id, self.board.name))
        outputs = []
        for event in decoder.feed(data, now_ms):
            self._on_event(bus_id, event, now_ms, outputs)
        outputs.extend(self._flush_if_due(now_ms))
        return outputs

    def poll_bus(self, bus_id, now_ms):
        """For a bus whose protocol asks (``bus_writes``): returns (outputs,
        bytes to write now or None, the bus's next deadline or None). Its
        bus task calls this when the deadline comes and after every feed."""
        events, send, deadline = self.decoders[bus_id].poll(now_ms)
        outputs = []
        for event in events:
            self._on_event(bus_id, event, now_ms, outputs)
        return outputs, send, deadline

    def bus_writes(self, bus_id):
        """Whether the bus's protocol sends requests (its task must write)."""
        return self.decoders[bus_id].writes

    def write_registers(self, bus_id, slave, address, values, tag=None):
        """Queue a Modbus register write on ``bus_id`` (an actuator, a
        quarantine action); its result comes back as a Notice from
        ``poll_bus``/``feed``. Raises KeyError for a bus that is not Modbus
        and modbus.RequestError for a write Modbus cannot express."""
        decoder = self.decoders.get(bus_id)
        if decoder is None or not hasattr(decoder, "write"):
            raise KeyError("bus %r on board %s is not a Modbus bus" % (bus_id, self.board.name))
        decoder.write(slave, address, values, tag)

    def close_bus(self, bus_id, now_ms):
        """The port closed: report what its decoder still held."""
        outputs = []
        for event in self.decoders[bus_id].flush(now_ms):
            self._on_event(bus_id, event, now_ms, outputs)
        return outputs

    def poll(self, now_ms):
        """Emit what is due at ``now_ms``. Returns (outputs, next_deadline_ms
        or None when nothing is pending)."""
        outputs = []
        health_out, _ = self.health.poll(now_ms)
        self._route(health_out, now_ms, outputs)
        outputs.extend(self._poll_triage(now_ms))
        outputs.extend(self._flush_if_due(now_ms))
        return outputs, self.next_deadline()

    def force(self, component_id, now_ms, who="operator"):
        """Quarantine a component by hand (console, signed command): its
        actions apply even if it is essential. Raises KeyError for an unknown
        component and component.IllegalTransition if it is already forced."""
        outputs = []
        self._route(self.health.force(component_id, now_ms, who), now_ms, outputs)
        return outputs

    def release(self, component_id, now_ms, who="operator"):
        """Release a component from any state but ok (same errors as force)."""
        outputs = []
        self._route(self.health.release(component_id, now_ms, who), now_ms, outputs)
        return outputs

    def acknowledge(self, sensor_id, condition, now_ms, who="operator"):
        """A person acknowledged a sensor's alert (``condition``, e.g.
        ``shift``): returns outputs like ``feed`` (the clear, if the rule
        takes the acknowledgement: a level shift accepts its new level)."""
        outputs = []
        self._route(self.health.acknowledge(sensor_id, condition, now_ms, who), now_ms, outputs)
        return outputs

    def acknowledge_alert(self, seq, now_ms, who="operator"):
        """A person acknowledged alert number ``seq``: outputs like
        ``acknowledge`` (the clear of a level shift that takes its present
        level as the new baseline); [] when that alert is not one a person's
        acknowledgement acts on, or no longer active."""
        entry = self._ackable.get(seq)
        if entry is None:
            return []
        return self.acknowledge(entry[0], entry[1], now_ms, who)

    def _track_ackable(self, signal):
        body = signal.body
        condition = body.get(sg.A_CONDITION)
        if condition not in rules.ACKNOWLEDGED_KINDS:
            return
        sensor = body.get(sg.A_SENSOR, "")
        for seq in [k for k, v in self._ackable.items() if v[0] == sensor and v[1] == condition]:
            del self._ackable[seq]  # one incident per rule: the newest alert stands for it
        if body.get(sg.A_ACTIVE, True):
            self._ackable[signal.seq] = (sensor, condition)

    def component_states(self):
        """{component id: state name}, for the console and status."""
        return dict((cid, h.state) for cid, h in self.health.components.items())

    def shown_states(self):
        """{component id: state to show}: as component_states, but ``stale``
        for a component one of whose sensors has lost its link (link_lost)."""
        return dict((cid, self.health.shown_state(cid)) for cid in self.health.components)

    def next_deadline(self) -> "int | None":
        """When ``poll`` next has work (after a ``feed`` or ``ingest`` moved it)."""
        # Asked fresh: a reading may have moved the health or triage timers
        # (computed here, once per poll, rather than after every reading).
        # The simulator asks after every reading: no call in between.
        due = self._batch_due_ms
        t = self.health.deadline()
        if t is not None and (due is None or t < due):
            due = t
        t = self.triage.deadline()
        if t is not None and (due is None or t < due):
            due = t
        return due

    def _poll_triage(self, now_ms):
        sent, _ = self.triage.poll(now_ms)
        out = []
        for signal in sent:
            self.stats["alerts"] += 1
            out.append(self.number(signal))
        return out

    def _route(self, items, now_ms, outputs):
        """Health engine outputs: alerts through triage, the rest as is."""
        for item in items:
            if isinstance(item, sg.Signal):
                if item.kind == sg.KIND_ALERT:
                    for signal in self.triage.submit(item, now_ms):
                        self.stats["alerts"] += 1
                        outputs.append(self.number(signal))
                else:
                    self.stats["state_changes"] += 1
                    outputs.append(self.number(item))
            elif isinstance(item, WriteRegisters):
                # A quarantine write goes out on this device's own bus; the
                # master's WriteResult (tagged with the reason) reports it.
                self.stats["register_writes"] += 1
                try:
                    self.write_registers(item.bus, item.slave, item.address, item.values, tag=item.reason)
                except (KeyError, ValueError) as exc:
                    outputs.append(Notice(ERROR, "modbus-write", "cannot write for %s: %s" % (item.reason, exc)))
                outputs.append(item)
            else:
                self.stats["gpio_actions"] += 1
                outputs.append(item)

    def flush(self, now_ms):
        """Emit the pending telemetry batch now (e.g. on shutdown)."""
        return self._emit_batch(now_ms)

    def _on_event(self, bus_id, event, now_ms, outputs):
        if isinstance(event, fr.WriteResult):
            if not event.ok:
                self.stats["writes_failed"] += 1
            outputs.append(Notice(INFO if event.ok else WARNING, "write",
                                  "bus %s: write %r %s" % (bus_id, event.tag, "done" if event.ok else "failed: " + event.detail)))
            return
        if isinstance(event, fr.BadFrame):
            self.stats["bad_frames"] += 1
            count = self.bad_by_reason.get(event.reason, 0) + 1
            self.bad_by_reason[event.reason] = count
            # The first of each reason is a warning; the rest are summarised
            # by the adapter from bad_by_reason.
            level = WARNING if count == 1 else INFO
            outputs.append(Notice(level, "bad-frame", "bus %s: %s" % (bus_id, event.describe())))
            return
        self.stats["frames"] += 1
        sensor = self.board.sensors.get(event.sensor)
        if sensor is None:
            self.stats["unknown_sensor"] += 1
            if event.sensor not in self._reported_unknown and len(self._reported_unknown) < MAX_REPORTED_UNKNOWN:
                self._reported_unknown.append(event.sensor)
                outputs.append(
                    Notice(
                        WARNING,
                        "unknown-sensor",
                        "bus %s: frame for unknown sensor id %r; add [sensors.%s] to %s or fix the sensor's id"
                        % (bus_id, event.sensor, event.sensor, self.board.source),
                    )
                )
            return
        if sensor.bus != bus_id:
            self.stats["wrong_bus"] += 1
            outputs.append(
                Notice(
                    WARNING,
                    "wrong-bus",
                    "sensor %s arrived on bus %s but the board puts it on %s" % (sensor.id, bus_id, sensor.bus),
                )
            )
            return
        if event.kind == fr.READING:
            reading = rd.Reading(now_ms, sensor.id, event.value)
        else:
            reading = rd.Reading(now_ms, sensor.id, None, rd.FAULT, event.value)
        self._on_reading(reading, now_ms, outputs)

    def ingest(self, reading: "rd.Reading", now_ms: int) -> list:
        """A reading from a source without frames (a GPIO input, a decoder
        that is not a serial bus, the simulator's virtual clock). Returns
        outputs like ``feed``."""
        if reading.sensor not in self._sensors:
            raise KeyError("no sensor %r on board %s" % (reading.sensor, self.board.name))
        outputs: list = []
        self._on_reading(reading, now_ms, outputs)
        due = self._batch_due_ms
        if due is not None and now_ms >= due and self._batch:
            outputs.extend(self._emit_batch(now_ms))
        return outputs

    def _on_reading(self, reading: "rd.Reading", now_ms: int, outputs: list) -> None:
        """A reading of a sensor of this board (``reading.sensor`` is its id)."""
        self.stats["readings"] += 1
        health = self.health
        judged = health.on_reading(reading)
        if judged:
            self._route(judged, now_ms, outputs)
        sid = reading.sensor
        if sid not in health.isolated_sensors:  # health.sends_telemetry, without a call per reading
            batch = self._batch
            if batch and len(batch) + 1 < self.telemetry_max_readings:
                batch.append([reading.time_ms, reading.sensor, reading.value, reading.quality])  # _add_to_batch's usual case
            else:
                self._add_to_batch(reading.time_ms, reading.sensor, reading.value, reading.quality, now_ms, outputs)
        else:
            self.stats["quarantined_readings"] += 1
        if reading.quality == rd.GOOD and health._stand_ins and sid in health._stand_ins:
            for stand_in in health.substitutes(sid):
                self._add_to_batch(reading.time_ms, stand_in, reading.value, rd.SUBSTITUTED, now_ms, outputs)

    def _add_to_batch(self, time_ms, sensor_id, value, quality, now_ms, outputs):
        if not self._batch:
            self._batch_due_ms = now_ms + self.telemetry_interval_ms
        self._batch.append([time_ms, sensor_id, value, quality])
        if len(self._batch) >= self.telemetry_max_readings:
            outputs.extend(self._emit_batch(now_ms))

    def _flush_if_due(self, now_ms):
        if self._batch and self._batch_due_ms is not None and now_ms >= self._batch_due_ms:
            return self._emit_batch(now_ms)
        return []

    def _emit_batch(self, now_ms):
        if not self._batch:
            return []
        body = {sg.T_READINGS: self._batch}
        self._batch = []
        self._batch_due_ms = None
        return [self.number(sg.Signal(sg.KIND_TELEMETRY, sg.PRIORITY_LOW, now_ms, body))]

    def birth(self, now_ms, agent):
        """The boot's first signal: its seq is the boot's first, so receivers
        tell numbers the sequencer skipped at a restart from lost ones. Call
        it before anything else is numbered."""
        body = {sg.B_AGENT: agent, sg.B_MODEL: self.board.model, sg.B_BOARD: self.board.name,
                sg.B_FORMAT: sg.VERSION}
        return self.number(sg.Signal(sg.KIND_BIRTH, sg.PRIORITY_NORMAL, now_ms, body))

    def number(self, signal):
        """Give ``signal`` this device's id and the next seq; return it."""
        signal.device = self.device_id
        signal.seq = self.sequencer.take()
        self.stats["signals"] += 1
        if signal.kind == sg.KIND_ALERT:
            self._track_ackable(signal)
        return signal
