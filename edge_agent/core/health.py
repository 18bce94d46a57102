"""The health engine: readings in; proposed alerts, state signals and GPIO
actions out. Pure: time comes from the readings and ``poll(now_ms)``.

    Reading -> SensorWatch (rules.py) -> rule Changes -> rule alerts (proposed)
                     \\-> component evaluation (bad if any health rule active)
                          -> state machine (component.py) -> state Signals
                          -> quarantine / degraded mode -> SetOutput (outputs.py)
            -> Predictor (predict.py) -> predicted-failure alerts (proposed)

Alerts are *proposed*: the Device passes them through triage (triage.py),
which decides what leaves the device. State signals and SetOutputs are not
triaged: they are the record of what the device did.

Quarantine (non-essential components only; an essential one enters its
degraded mode instead, with a critical alert) applies the component's
declared actions:

    ignore       its sensors' readings are not judged and not sent as telemetry
    switch       telemetry carries the redundant sensor's value in their place
                 (quality SUBSTITUTED)
    cut_power    its power output is held off
    reduce_duty  its power output runs ``duty`` of every ``duty_period``

After ``probe_after`` the engine probes: actions undone, readings judged
again. ``release_after`` good evaluations in a row (and at least as long as
its slowest timed rule needs to fire, so a probe can catch what failed)
release it; a confirmed failure quarantines it again with the backoff doubled;
after ``max_probes`` failed probes it stays isolated (SERVICE) and a person
is asked to act.
"""

# Names for annotations only (mypyc, `make accelerate`): never imported at run
# time, so MicroPython, which ignores annotations, needs no typing module.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from edge_agent.core import component as cs
from edge_agent.core import reading as rd
from edge_agent.core import rules
from edge_agent.core import signals as sg
from edge_agent.core.outputs import Outputs, WriteRegisters

# How much evidence a state signal carries: the last few readings of the
# component's sensors, newest last.
EVIDENCE = 6
# Backoff between probes doubles per failed probe, capped at a day: a part
# that failed five times is not worth waking every few minutes.
MAX_BACKOFF_MS = 86400000


def _any_bad(watches: "list[rules.SensorWatch]") -> bool:
    for watch in watches:
        if watch.bad_rules:
            return True
    return False


def _rule_classes(board):
    """kind -> Rule class for the board's declared rules: rules.py's common
    kinds, and rule_kinds.py's only when the board declares one of those
    (a board that does not never loads them)."""
    for sensor in board.sensors.values():
        for spec in sensor.rules:
            if spec.kind not in rules.RULE_CLASSES:
                from edge_agent.core import rule_kinds

                return rule_kinds.RULE_CLASSES
    return rules.RULE_CLASSES


class ComponentHealth:
    """One component's place in the state machine. Fields that sit at their
    default for a healthy component are class attributes, set on the
    instance only once they change: on MicroPython each instance attribute
    is a slot in the instance's own table (``__slots__`` is ignored there)."""

    since_ms: "Any" = None
    probes_failed = 0
    next_probe_ms: "Any" = None
    probe_started_ms: "Any" = None
    duty_next_ms: "Any" = None
    duty_off = False
    culprit: "Any" = None  # the sensor named in the component's open alert
    # Rule alerts raised but never cleared because a probe reset their
    # rules: (watch, rule, since_ms), cleared when the component is back.
    unresolved: "Any" = ()
    state: str
    watches: "list[rules.SensorWatch]"
    debounce: "cs.Debounce"

    def __init__(self, component, watches):
        self.component = component
        self.state = cs.OK
        self.debounce = cs.Debounce(component.confirm_n, component.confirm_m)
        self.watches = watches
        # A probe must last long enough for every timed rule to fire again.
        longest = 0
        for watch in watches:
            for spec in watch.sensor.rules:
                if spec.health:
                    longest = max(longest, spec.params.get("for_ms", 0))
        self.min_probe_ms = longest


class HealthEngine:
    # Typed for mypyc (`make accelerate`): what on_reading touches per reading.
    watches: "dict[str, rules.SensorWatch]"
    latest: dict
    predictors: dict
    isolated_sensors: set
    _health_of: "dict[str, ComponentHealth | None]"
    _stand_ins: dict

    def __init__(self, board):
        self.board = board
        self.latest = {}  # sensor id -> last Reading (shared with the watches)
        self.watches = {}
        classes = _rule_classes(board)
        for sensor in board.sensors.values():
            self.watches[sensor.id] = rules.SensorWatch(sensor, board.components.get(sensor.component), board,
                                                        self.latest, None, classes)
        self.components = {}
        for cid in sorted(board.components):
            mine = [self.watches[s] for s in board.sensors_of(cid)]
            self.components[cid] = ComponentHealth(board.components[cid], mine)
        self.predictors = {}
        for sensor in board.sensors.values():
            spec = sensor.predict
            if spec is not None:
                # Here, not at import: a board whose rules predict nothing
                # never loads it (1 KiB of a 32-bit board's heap).
                from edge_agent.core import predict as pr

                self.predictors[sensor.id] = [
                    pr.Predictor(limit, direction, spec.horizon_ms, spec.history_days)
                    for limit, direction in ((spec.above, "above"), (spec.below, "below"))
                    if limit is not None
                ]
        self.outputs = Outputs(board)
        self.modes = {}  # mode id -> components holding it
        self.started_ms = None
        self.transitions = 0
        # Per sensor, looked up once per reading: its component's health
        # (None for a sensor on no component) and the sensors whose
        # telemetry it stands in for under a ``switch`` quarantine.
        self._health_of = {}
        self._stand_ins = {}
        for sensor in board.sensors.values():
            self._health_of[sensor.id] = self.components.get(sensor.component)
            if sensor.redundant:
                self._stand_ins.setdefault(sensor.redundant, []).append(sensor.id)
        for ids in self._stand_ins.values():
            ids.sort()
        # Sensors on no component: their dropouts are timed here too.
        self._loose = [self.watches[sid] for sid in sorted(self.watches)
                       if self._health_of[sid] is None and self.watches[sid].dropout is not None]
        # Links (a bus, a Modbus slave) of the sensors with a dropout rule:
        # silence on one is one link_lost incident (rules.Link).
        by_link = {}
        for sid in sorted(self.watches):
            watch = self.watches[sid]
            if watch.dropout is not None:
                by_link.setdefault(rules.link_of(watch.sensor), []).append(watch)
        self._link_of = {}
        for name in by_link:
            link = rules.Link(name, by_link[name])
            for watch in link.watches:
                self._link_of[watch.sensor.id] = link
        # The earliest timer, cached: the adapter asks after every reading,
        # and a reading moves at most its own sensor's dropout deadline.
        self._due = None
        self._due_valid = False
        # Sensors of isolated components (quarantined, in service, forced):
        # their readings are neither judged nor sent. Kept by _transition,
        # so a reading asks one set instead of its component's state.
        self.isolated_sensors = set()

    # -- inputs ---------------------------------------------------------------

    def on_reading(self, reading: "rd.Reading") -> list:
        """Judge one reading; return outputs (proposed alert Signals, state
        Signals, SetOutputs)."""
        now = reading.time_ms
        if self.started_ms is None:
            self._start(now)
        sid = reading.sensor
        self.latest[sid] = reading
        out: list = []
        if sid in self.isolated_sensors:
            return out
        watch = self.watches[sid]
        health = self._health_of[sid]
        dropout = watch.dropout
        due_before = watch.dropout_deadline() if dropout is not None else None
        changes = watch.observe(reading)
        if changes:
            for change in changes:
                if change.active and health is not None and health.state in cs.WATCHED_QUIETLY:
                    continue
                self._propose(change, watch, now, out)
        if dropout is not None:
            self._due_moved(due_before, watch.dropout_deadline())
        if health is not None:
            if health.state == cs.OK and not health.debounce.bits and not _any_bad(health.watches):
                # The usual reading: an OK component with nothing bad, now
                # or in its debounce window: a good evaluation, no change.
                health.debounce.good_run += 1
            else:
                self._evaluate(health, now, out)
        if self.predictors and sid in self.predictors and reading.quality == rd.GOOD:
            for predictor in self.predictors[reading.sensor]:
                change = predictor.add(now, reading.value)
                if change is not None:
                    out.append(self._prediction_alert(watch, predictor, change == "raise", now))
        return out

    def poll(self, now_ms):
        """Timers: dropouts, probes, duty cycles. Returns (outputs, deadline)."""
        self._start(now_ms)
        self._due_valid = False
        out = []
        for cid in sorted(self.components):
            health = self.components[cid]
            if health.state in cs.ISOLATED:
                if health.state == cs.QUARANTINED and health.next_probe_ms is not None and now_ms >= health.next_probe_ms:
                    self._probe(health, now_ms, out)
                else:
                    self._duty(health, now_ms, out)
                continue
            # A silent sensor is a lost link (link_lost), not a bad
            # evaluation: silence says nothing about the part, so the
            # component is not judged until it answers again (it shows as
            # stale meanwhile) and is never quarantined or probed for it.
            for watch in health.watches:
                for change in watch.check_dropout(now_ms):
                    self._propose(change, watch, now_ms, out)
        for watch in self._loose:
            for change in watch.check_dropout(now_ms):
                self._propose(change, watch, now_ms, out)
        return out, self.deadline()

    def deadline(self):
        """The earliest timer (dropout, probe, duty cycle, silent tick), or None."""
        if not self._due_valid:
            self._due = self._compute_deadline()
            self._due_valid = True
        return self._due

    def _due_moved(self, before, after):
        """One watch's dropout deadline went from ``before`` to ``after``."""
        if not self._due_valid:
            return
        if before is not None and before == self._due:
            self._due_valid = False  # it was the earliest: find the next one
        elif after is not None and (self._due is None or after < self._due):
            self._due = after

    def _compute_deadline(self):
        times = []
        for health in self.components.values():
            if health.state == cs.QUARANTINED and health.next_probe_ms is not None:
                times.append(health.next_probe_ms)
            if health.state in cs.ISOLATED and health.duty_next_ms is not None:
                times.append(health.duty_next_ms)
            if health.state not in cs.ISOLATED:
                for watch in health.watches:
                    t = watch.dropout_deadline()
                    if t is not None:
                        times.append(t)
        for watch in self._loose:
            t = watch.dropout_deadline()
            if t is not None:
                times.append(t)
        return min(times) if times else None

    def force(self, component_id, now_ms, who="operator"):
        """An operator quarantines a component (even an essential one)."""
        health = self._health(component_id)
        self._due_valid = False
        out = []
        reason = "forced into quarantine by %s" % who
        self._leave_mode(health, now_ms, out)
        self._transition(health, cs.FORCE, reason, now_ms, out, self._isolate(health, now_ms, out))
        return out

    def release(self, component_id, now_ms, who="operator"):
        """An operator releases a component from any non-OK state."""
        health = self._health(component_id)
        self._due_valid = False
        out = []
        undone = self._unisolate(health, now_ms, out)
        self._leave_mode(health, now_ms, out)
        self._transition(health, cs.RELEASE, "released by %s" % who, now_ms, out, undone)
        self._reset(health, now_ms)
        self._clear_unresolved(health, now_ms, out)
        health.probes_failed = 0
        return out

    def acknowledge(self, sensor_id, condition, now_ms, who="operator"):
        """A person acknowledged the ``condition`` alert of a sensor (console
        ``ack``, a signed ``alert.ack``): a level shift takes the sensor's
        present level as its new baseline and clears. Returns outputs (the
        clear alert) like ``on_reading``; [] if nothing was waiting for it."""
        watch = self.watches.get(sensor_id)
        if watch is None:
            return []
        out = []
        for change in watch.acknowledge(condition, now_ms):
            signal = rules.rule_alert(change, watch, now_ms)
            signal.body[sg.A_TEXT] += " (acknowledged by %s: the present level is its new baseline)" % who
            out.append(signal)
        return out

    # -- queries --------------------------------------------------------------

    def state_of(self, component_id):
        return self._health(component_id).state

    def shown_state(self, component_id):
        """The state to show people: ``stale`` (component.STALE) while a
        sensor of a component that is not isolated has lost its link (its
        readings are unknown: neither ok nor failed); ``suspect`` while an
        ok component's sensor holds a level shift (its readings are
        offset until it returns, is recalibrated or is acknowledged: not a
        failure to act on, so not a state of the machine); else the state."""
        health = self._health(component_id)
        if health.state in cs.ISOLATED:
            return health.state
        for watch in health.watches:
            if watch.dropout is not None and watch.dropout.active:
                return cs.STALE
        if health.state == cs.OK:
            for watch in health.watches:
                for rule in watch.rules:
                    if rule.active and rule.kind in rules.ACKNOWLEDGED_KINDS:
                        return cs.SUSPECT
        return health.state

    def sends_telemetry(self, sensor_id):
        """False while the sensor's component is isolated: its readings are
        not trusted (ignored, switched out, or unpowered)."""
        return sensor_id not in self.isolated_sensors

    def substitutes(self, sensor_id):
        """Sensors whose telemetry this sensor's reading stands in for now
        (``switch`` quarantine)."""
        result = []
        for sid in self._stand_ins.get(sensor_id, ()):
            health = self._health_of[sid]
            if health is not None and health.state in cs.ISOLATED and "switch" in health.component.quarantine:
                result.append(sid)
        return result

    # -- the state machine's driver -------------------------------------------

    def _evaluate(self, health, now, out):
        state = health.state
        if state in cs.ISOLATED or state == cs.FAILED:
            return
        bad = _any_bad(health.watches)
        debounce = health.debounce
        debounce.add(bad)
        if state == cs.OK:
            if not bad:
                return
            self._transition(health, cs.BAD, self._reason(health), now, out)
            state = cs.SUSPECT
        if state == cs.SUSPECT:
            if debounce.confirmed():
                self._transition(health, cs.CONFIRM, self._reason(health), now, out)
                self._act_on_failure(health, now, out)
            elif debounce.good_run >= debounce.m:
                self._transition(health, cs.CLEAR, "%d good evaluations in a row" % debounce.good_run, now, out)
        elif state == cs.PROBING:
            if health.probe_started_ms is None:
                health.probe_started_ms = now  # the probe's clock starts with its first reading
            if debounce.confirmed():
                self._probe_failed(health, now, out)
            elif debounce.good_run >= health.component.release_after and now - health.probe_started_ms >= health.min_probe_ms:
                reason = "probe passed: %d good evaluations in %d s" % (debounce.good_run, (now - health.probe_started_ms) // 1000)
                self._transition(health, cs.RECOVER, reason, now, out)
                health.probes_failed = 0
                out.append(self._component_alert(health, sg.C_QUARANTINED, False, reason, now))
                self._clear_unresolved(health, now, out)
        elif state == cs.DEGRADED:
            if debounce.good_run >= health.component.release_after:
                reason = "%d good evaluations in a row" % debounce.good_run
                self._leave_mode(health, now, out)
                self._transition(health, cs.RECOVER, reason, now, out)
                out.append(self._component_alert(health, sg.C_DEGRADED, False, reason, now))

    def _act_on_failure(self, health, now, out):
        component = health.component
        reason = self._reason(health)
        if component.essential:
            mode = self.board.modes.get(component.degraded_mode)
            self._enter_mode(health, mode, now, out)
            self._transition(health, cs.DEGRADE, reason, now, out, ["mode " + mode.id] if mode else [])
            what = "entering degraded mode: %s" % mode.text if mode else "no degraded mode declared; the device carries on"
            text = "%s failed (%s). It is essential, so it is not quarantined automatically; %s" % (component.id, reason, what)
            out.append(self._component_alert(health, sg.C_DEGRADED, True, text, now))
            return
        actions = self._isolate(health, now, out)
        health.next_probe_ms = now + component.probe_after_ms
        self._transition(health, cs.QUARANTINE, reason, now, out, actions)
        text = "%s quarantined after %s: %s; probing again in %d s" % (
            component.id, reason, ", ".join(actions), component.probe_after_ms // 1000)
        out.append(self._component_alert(health, sg.C_QUARANTINED, True, text, now))

    def _probe(self, health, now, out):
        undone = self._unisolate(health, now, out)
        self._transition(health, cs.PROBE, "backoff elapsed after %d failed probe(s)" % health.probes_failed, now, out, undone)
        self._reset(health, now)
        health.probe_started_ms = None
        health.next_probe_ms = None

    def _probe_failed(self, health, now, out):
        component = health.component
        health.probes_failed += 1
        reason = self._reason(health)
        actions = self._isolate(health, now, out)
        if health.probes_failed >= component.max_probes:
            self._transition(health, cs.ESCALATE, reason, now, out, actions)
            text = "%s failed %d probes in a row (%s); it stays isolated until serviced" % (component.id, health.probes_failed, reason)
            out.append(self._component_alert(health, sg.C_NEEDS_SERVICE, True, text, now, sg.PRIORITY_HIGH))
            return
        backoff = min(MAX_BACKOFF_MS, component.probe_after_ms << health.probes_failed)
        health.next_probe_ms = now + backoff
        self._transition(health, cs.PROBE_FAILED, reason, now, out, actions)

    def _transition(self, health, event, reason, now, out, actions=()):
        self._due_valid = False  # probes, duty cycles and dropout checks follow the state
        before = health.state
        health.state = cs.next_state(before, event)
        health.since_ms = now
        ids = [watch.sensor.id for watch in health.watches]
        if health.state in cs.ISOLATED:
            self.isolated_sensors.update(ids)
        else:
            self.isolated_sensors.difference_update(ids)
        self.transitions += 1
        body = {
            sg.S_COMPONENT: health.component.id,
            sg.S_FROM: before,
            sg.S_TO: health.state,
            sg.S_EVENT: event,
            sg.S_REASON: reason,
            sg.S_EVIDENCE: self._evidence(health),
            sg.S_ACTIONS: list(actions),
            sg.S_PROBES: health.probes_failed,
        }
        out.append(sg.Signal(sg.KIND_STATE, sg.PRIORITY_NORMAL, now, body))

    # -- actions ----------------------------------------------------------------

    def _isolate(self, health, now, out):
        """Apply the quarantine actions; return their descriptions."""
        component = health.component
        done = []
        for action in component.quarantine:
            if action == "cut_power":
                self.outputs.hold(component.power_output, "quarantine:" + component.id, component.id + " quarantined", now, out)
                done.append("cut_power " + component.power_output)
            elif action == "reduce_duty" and "cut_power" not in component.quarantine:
                health.duty_off = False
                health.duty_next_ms = now
                self._duty(health, now, out)
                done.append("reduce_duty %s to %d%%" % (component.power_output, int(component.duty * 100 + 0.5)))
            elif action == "switch":
                pairs = ["%s->%s" % (w.sensor.id, w.sensor.redundant) for w in health.watches if w.sensor.redundant]
                done.append("switch " + ", ".join(pairs))
            elif action == "ignore":
                done.append("ignore " + ", ".join(w.sensor.id for w in health.watches))
            elif action == "write_register":
                write = component.quarantine_write
                out.append(WriteRegisters(write.bus, write.slave, write.address, list(write.values),
                                          "quarantine:" + component.id, now))
                done.append("write_register %s/%d@%d" % (write.bus, write.slave, write.address))
        return done

    def _unisolate(self, health, now, out):
        component = health.component
        undone = []
        if component.power_output:
            for holder in ("quarantine:", "duty:"):
                if holder + component.id in self.outputs.holders[component.power_output]:
                    self.outputs.release(component.power_output, holder + component.id, component.id + " probed or released", now, out)
                    undone.append("restore_power " + component.power_output)
        write = component.quarantine_write
        if write is not None and "write_register" in component.quarantine:
            out.append(WriteRegisters(write.bus, write.slave, write.address, list(write.release_values),
                                      "release:" + component.id, now))
            undone.append("write_register %s/%d@%d release" % (write.bus, write.slave, write.address))
        health.duty_next_ms = None
        health.duty_off = False
        return undone

    def _duty(self, health, now, out):
        """Run the reduced duty cycle: on for duty * period, then off."""
        component = health.component
        if health.duty_next_ms is None or now < health.duty_next_ms:
            return
        period = component.duty_period_ms
        on_ms = int(period * component.duty)
        holder = "duty:" + component.id
        if health.duty_off:
            self.outputs.release(component.power_output, holder, component.id + " duty cycle on", now, out)
            health.duty_off = False
            health.duty_next_ms = now + on_ms
        else:
            self.outputs.hold(component.power_output, holder, component.id + " duty cycle off", now, out)
            health.duty_off = True
            health.duty_next_ms = now + period - on_ms

    def _enter_mode(self, health, mode, now, out):
        if mode is None:
            return
        holders = self.modes.setdefault(mode.id, [])
        if health.component.id not in holders:
            holders.append(health.component.id)
        for output_id in mode.cut:
            self.outputs.hold(output_id, "mode:" + mode.id, "degraded mode " + mode.id, now, out)

    def _leave_mode(self, health, now, out):
        mode = self.board.modes.get(health.component.degraded_mode)
        if mode is None:
            return
        holders = self.modes.get(mode.id, [])
        if health.component.id in holders:
            holders.remove(health.component.id)
        if not holders:
            for output_id in mode.cut:
                self.outputs.release(output_id, "mode:" + mode.id, "degraded mode %s left" % mode.id, now, out)

    # -- helpers ---------------------------------------------------------------

    def _start(self, now):
        if self.started_ms is None:
            self.started_ms = now
            self._due_valid = False
            # A sensor that never reports at all is a dropout too: count from start.
            for watch in self.watches.values():
                if watch.last_ms is None:
                    watch.last_ms = now

    def _reset(self, health, now):
        self._due_valid = False
        health.debounce.reset()
        for watch in health.watches:
            for rule in watch.rules:
                if rule.active and not [u for u in health.unresolved if u[1] is rule]:
                    health.unresolved = list(health.unresolved) + [(watch, rule, rule.since_ms)]
            watch.reset()
            watch.last_ms = now

    def _clear_unresolved(self, health, now, out):
        """The component is back: clear the rule alerts its probe reset."""
        for watch, rule, since_ms in health.unresolved:
            if not rule.active:
                rule.since_ms = since_ms  # the clear says when it began
                self._propose(rules.Change(rule, False, None), watch, now, out)
        if health.unresolved:
            health.unresolved = ()

    def _propose(self, change, watch, now, out):
        """The alert for a rule Change; a dropout's goes through its link."""
        if change.rule is watch.dropout:
            signal = self._link_of[watch.sensor.id].change(change, watch, now)
            if signal is not None:
                out.append(signal)
        else:
            out.append(rules.rule_alert(change, watch, now))

    def _health(self, component_id):
        health = self.components.get(component_id)
        if health is None:
            raise KeyError("no component %r; the board has: %s" % (component_id, ", ".join(sorted(self.components))))
        return health

    def _reason(self, health):
        parts = []
        for watch in health.watches:
            for rule in watch.rules:
                if rule.active and rule.health:
                    parts.append("%s %s" % (watch.sensor.id, rule.detail))
        return "; ".join(parts) or "no active condition"

    def _evidence(self, health):
        merged = []
        for watch in health.watches:
            merged.extend(watch.evidence)
        merged.sort(key=lambda e: (e[0], e[1]))
        return [list(e) for e in merged[-EVIDENCE:]]

    def _culprit(self, health, active):
        """The watch to describe a component alert with: for a raise, one
        with an active health rule (remembered, so the clear names the same
        sensor and triage pairs them), else its first sensor."""
        if not active and health.culprit is not None:
            return health.culprit
        found = health.watches[0] if health.watches else None
        for watch in health.watches:
            if watch.bad():
                found = watch
                break
        health.culprit = found
        return found

    def _component_alert(self, health, condition, active, text, now, priority=None):
        component = health.component
        watch = self._culprit(health, active)
        if priority is None:
            if condition == sg.C_DEGRADED:
                priority = sg.PRIORITY_CRITICAL
            else:
                # quarantined: the rule alert already paged; this says what the
                # device did (docs/wire-format.md: the documented priority-2 raise)
                priority = sg.PRIORITY_NORMAL
        if not active:
            priority = sg.PRIORITY_NORMAL
            text = "%s back in service: %s" % (component.id, text)
        if condition == sg.C_NEEDS_SERVICE:
            action = "replace or repair %s%s, then release it from the console" % (
                component.id, " (part %s)" % component.part if component.part else "")
        elif condition == sg.C_DEGRADED:
            action = "book service for %s%s now: the product runs degraded" % (
                component.id, " (part %s)" % component.part if component.part else "")
        else:
            action = "none needed now; if it keeps failing, book service%s" % (" for part %s" % component.part if component.part else "")
        sensor = watch.sensor if watch is not None else None
        last = self.latest.get(sensor.id) if sensor is not None else None
        body = {
            sg.A_CONDITION: condition,
            sg.A_COMPONENT: component.id,
            # A component alert is about the component: no sensor named
            # (its evidence shows the readings of all of them).
            sg.A_SENSOR: "",
            sg.A_VALUE: last.value if last is not None else None,
            sg.A_LIMITS: [sensor.low, sensor.high] if sensor is not None else [0, 0],
            sg.A_SEVERITY: "critical" if priority == sg.PRIORITY_CRITICAL else "warning",
            sg.A_TEXT: text,
            sg.A_ACTION: action if active else "",
            sg.A_PART: component.part,
            sg.A_SINCE: health.since_ms if health.since_ms is not None else now,
            sg.A_ACTIVE: active,
            sg.A_UNIT: sensor.unit if sensor is not None else "",
            sg.A_EVIDENCE: self._evidence(health),
            sg.A_STATE: health.state,
        }
        return sg.Signal(sg.KIND_ALERT, priority, now, body)

    def _prediction_alert(self, watch, predictor, active, now):
        sensor = watch.sensor
        component = watch.component
        spec = sensor.predict
        forecast = predictor.last
        place = rules.where(sensor, component)
        limit = rules.num(predictor.threshold)
        if active:
            days = (forecast.crossing_ms - now) / 86400000.0
            earliest = (forecast.early_ms - now) / 86400000.0
            latest = "%.1f" % ((forecast.late_ms - now) / 86400000.0) if forecast.late_ms is not None else "never"
            text = "%s is trending %s %s %s (%s, %+.3g %s/day): expected to cross in %.1f days (between %.1f and %s)" % (
                place, "up toward" if predictor.direction == "above" else "down toward", limit, sensor.unit,
                forecast.model, forecast.slope_per_day, sensor.unit, days, earliest, latest)
            action = spec.action or "schedule service before the predicted crossing"
            if component is not None and component.part:
                action += " (part %s)" % component.part
            priority = rules.PRIORITY_OF_SEVERITY[spec.severity]
        else:
            text = "%s no longer trending %s %s %s" % (place, predictor.direction, limit, sensor.unit)
            action = ""
            priority = sg.PRIORITY_NORMAL
        last = self.latest.get(sensor.id)
        signal = rules.sensor_alert(sg.C_PREDICTED, sensor, component, last.value if last is not None else None,
                                    spec.severity, text, action, now, active, priority, now)
        if forecast is not None:
            signal.body[sg.A_PREDICTION] = {
                sg.P_CROSSING: forecast.crossing_ms,
                sg.P_EARLIEST: forecast.early_ms,
                sg.P_LATEST: forecast.late_ms,
                sg.P_THRESHOLD: forecast.threshold,
                sg.P_LEVEL: forecast.level,
                sg.P_SLOPE: forecast.slope_per_day,
                sg.P_MODEL: forecast.model,
            }
        return signal
