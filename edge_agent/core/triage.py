"""Triage: out of many candidate alerts, send the few that matter.

The health engine proposes alerts; triage decides which leave the device,
in this order (the first that applies wins):

1. **Storm member**: the component is part of an active storm (below): held
   back and counted in the storm's root-cause alert.
2. **Storm onset**: this raise makes ``storm_min`` components sharing one
   element (a supply rail, a bus) go bad within ``storm_window``: one
   root-cause alert naming the element and the components goes out instead,
   and alerts still held for those components are dropped into its count.
3. **Dedupe and re-raise**: a raise of the same (condition, component,
   sensor, element) whose incident never cleared, sent less than ``dedupe``
   ago, is a repeat: counted, not sent. A raise after its clear is a new
   incident and goes out, unless it comes less than the rule's
   ``reraise_s`` (its minimum re-raise interval) after the last raise sent:
   then it is counted too. The next one sent carries the count
   (``A_COUNT``), and when the window ends with repeats pending a summary
   alert reports them with the condition's state at that moment (active or
   not), so nothing is silently lost and nothing says cleared while it is
   not.
4. **Rate limit**: a token bucket per component (``rate_burst`` at once,
   ``rate_per_hour`` after). Critical alerts are never rate limited: the
   limit protects people from noise, not from an essential part failing.
5. **Hold**: with ``storm_hold`` > 0, a raise from a component that shares
   an element with enough others waits that long, so a storm that is still
   arriving becomes one alert instead of ``storm_min - 1`` plus one.

A clear is sent only if its raise was sent (a clear for an alert nobody saw
is noise); a raise suppressed above stays counted. Every count ends up in an
alert: ``A_COUNT`` (repeats of this alert) and ``A_SUPPRESSED`` (other alerts
of the component held back since its last one).

Pure: time comes in as ``now_ms``; ``poll`` returns what is due and the next
deadline.
"""

from edge_agent.core import rules
from edge_agent.core import signals as sg


class _Key:
    """What triage remembers about one (condition, component, sensor)."""

    __slots__ = ("last_sent_ms", "shown", "repeats", "last_body", "active", "window_ms")

    def __init__(self):
        self.window_ms = 0  # the fold window of the pending repeats
        self.last_sent_ms = None
        self.shown = False  # the last raise was sent (so its clear is too)
        self.repeats = 0  # raises folded since last_sent_ms
        self.last_body = None  # only while repeats wait for their summary
        self.active = False


class _Storm:
    __slots__ = ("element", "components", "started_ms", "last_ms", "suppressed", "priority")

    def __init__(self, element, components, now_ms, priority):
        self.element = element
        self.components = components
        self.started_ms = now_ms
        self.last_ms = now_ms
        self.suppressed = 0
        self.priority = priority


class Triage:
    def __init__(self, board):
        self.board = board
        self.settings = board.health
        # Shared elements: "supply:<rail>" and "bus:<bus>" -> component ids.
        self.members = {}
        self.elements_of = {}
        for component in board.components.values():
            names = []
            if component.supply:
                names.append("supply:" + component.supply)
            for sensor in board.sensors.values():
                if sensor.component == component.id and "bus:" + sensor.bus not in names:
                    names.append("bus:" + sensor.bus)
            self.elements_of[component.id] = names
            for name in names:
                self.members.setdefault(name, []).append(component.id)
        # A link's alert (sensor ""): the shortest reraise_s of the dropout
        # rules of the sensors on that link (rules.Link), known from the board.
        self._link_reraise_ms = {}
        for sensor in board.sensors.values():
            for spec in sensor.rules:
                if spec.kind == "dropout":
                    link = rules.link_of(sensor)
                    ms = spec.params.get("reraise_ms", 0)
                    known = self._link_reraise_ms.get(link)
                    self._link_reraise_ms[link] = ms if known is None else min(known, ms)
        self._keys = {}
        self._tokens = {}  # component -> [tokens, last refill ms]
        self._suppressed = {}  # component -> alerts held back since its last sent alert
        self._onsets = {}  # component -> ms of its latest raise
        self._held = []  # [release_ms, signal], in arrival order
        self._storms = {}  # element -> _Storm
        self.stats = {"proposed": 0, "sent": 0, "deduped": 0, "rate_limited": 0, "storm_suppressed": 0, "storms": 0}
        # deadline(), cached: only submit() and poll() change what is due,
        # and the device asks after every reading.
        self._due = None
        self._due_valid = True

    # -- public -------------------------------------------------------------

    def submit(self, signal, now_ms):
        """Judge one proposed alert; return the Signals to send now."""
        self._due_valid = False
        self.stats["proposed"] += 1
        body = signal.body
        component = body.get(sg.A_COMPONENT, "")
        key = self._key(body)
        if not body.get(sg.A_ACTIVE, True):
            key.active = False
            if not key.shown:
                self._count(component)
                return []
            key.shown = False
            if self._drop_held(body):
                return []  # raised and cleared within the hold: neither is news
            return [self._send(signal, key, now_ms)]
        reopened = not key.active  # cleared since its last raise: a new incident
        key.active = True
        key.shown = False
        storm = self._storm_of(component)
        if storm is not None:
            storm.suppressed += 1
            storm.last_ms = now_ms
            self.stats["storm_suppressed"] += 1
            return []
        if component:
            self._onsets[component] = now_ms
            root = self._storm_onset(component, signal, now_ms)
            if root is not None:
                return [root]
        window = self._reraise_ms(body) if reopened else self.settings.dedupe_ms
        if key.last_sent_ms is not None and now_ms - key.last_sent_ms < window:
            if not key.repeats or window > key.window_ms:
                key.window_ms = window
            key.repeats += 1
            key.last_body = body
            self.stats["deduped"] += 1
            return []
        if signal.priority != sg.PRIORITY_CRITICAL and component and not self._take_token(component, now_ms):
            self._count(component)
            self.stats["rate_limited"] += 1
            return []
        if self._should_hold(component):
            self._held.append([now_ms + self.settings.storm_hold_ms, signal])
            return []
        return [self._send(signal, key, now_ms)]

    def poll(self, now_ms):
        """Held alerts, repeat summaries and storm ends that are due.
        Returns (signals, next deadline or None)."""
        self._due_valid = False
        out = []
        still = []
        for item in self._held:
            if item[0] <= now_ms:
                signal = item[1]
                out.append(self._send(signal, self._key(signal.body), now_ms))
            else:
                still.append(item)
        self._held = still
        for name in sorted(self._keys):
            key = self._keys[name]
            if key.repeats and now_ms - key.last_sent_ms >= key.window_ms:
                out.append(self._summary(key, now_ms))
        for element in sorted(self._storms):
            storm = self._storms[element]
            if now_ms - storm.last_ms >= self.settings.dedupe_ms:
                del self._storms[element]
                out.append(self._root_alert(storm, now_ms, False))
        return out, self.deadline()

    # -- steps ----------------------------------------------------------------

    def _reraise_ms(self, body):
        """The minimum re-raise interval of the rule behind an alert (its
        ``reraise_s``; a lost link is its sensor's dropout rule), 0 for
        alerts no rule raised."""
        kind = body.get(sg.A_CONDITION)
        sensor = self.board.sensors.get(body.get(sg.A_SENSOR, ""))
        if kind == sg.C_LINK_LOST:
            if sensor is None:  # a link's alert
                return self._link_reraise_ms.get(body.get(sg.A_ELEMENT, ""), 0)
            kind = "dropout"
        if sensor is None:
            return 0
        shortest = None
        for spec in sensor.rules:
            if spec.kind == kind:
                ms = spec.params.get("reraise_ms", 0)
                shortest = ms if shortest is None else min(shortest, ms)
        return shortest or 0

    def _key(self, body):
        name = "%s|%s|%s|%s" % (body.get(sg.A_CONDITION), body.get(sg.A_COMPONENT), body.get(sg.A_SENSOR),
                                body.get(sg.A_ELEMENT, ""))
        key = self._keys.get(name)
        if key is None:
            key = self._keys[name] = _Key()
        return key

    def _count(self, component):
        self._suppressed[component] = self._suppressed.get(component, 0) + 1

    def _send(self, signal, key, now_ms):
        body = signal.body
        if key.repeats:
            body[sg.A_COUNT] = key.repeats + 1
        held = self._suppressed.pop(body.get(sg.A_COMPONENT, ""), 0)
        if held:
            body[sg.A_SUPPRESSED] = held
        if body.get(sg.A_ACTIVE, True):
            key.shown = True
            key.last_sent_ms = now_ms
            key.repeats = 0
            key.last_body = None
        self.stats["sent"] += 1
        return signal

    def _summary(self, key, now_ms):
        body = dict(key.last_body)
        count = key.repeats
        body[sg.A_COUNT] = count
        body[sg.A_ACTIVE] = key.active
        body[sg.A_TEXT] = "%s (repeated %d time%s in the last %d min; %s now)" % (
            body.get(sg.A_TEXT, ""), count, "" if count == 1 else "s", max(1, key.window_ms // 60000),
            "still active" if key.active else "cleared")
        key.repeats = 0
        key.last_body = None
        if key.active:
            # It stands for a raise still open: repeats fold from here, and
            # its clear goes out. A summary of flaps that ended stands for
            # no raise: the next incident is timed from the last raise sent.
            key.last_sent_ms = now_ms
        key.shown = key.active
        self.stats["sent"] += 1
        return sg.Signal(sg.KIND_ALERT, sg.PRIORITY_NORMAL, now_ms, body)

    def _take_token(self, component, now_ms):
        s = self.settings
        bucket = self._tokens.get(component)
        if bucket is None:
            bucket = self._tokens[component] = [float(s.rate_burst), now_ms]
        refill = (now_ms - bucket[1]) * s.rate_per_hour / 3600000.0
        bucket[0] = min(float(s.rate_burst), bucket[0] + refill)
        bucket[1] = now_ms
        if bucket[0] < 1.0:
            return False
        bucket[0] -= 1.0
        return True

    def _should_hold(self, component):
        if self.settings.storm_hold_ms <= 0 or not component:
            return False
        for name in self.elements_of.get(component, ()):
            if len(self.members[name]) >= self.settings.storm_min:
                return True
        return False

    def _drop_held(self, clear_body):
        for i in range(len(self._held)):
            body = self._held[i][1].body
            if (body.get(sg.A_CONDITION), body.get(sg.A_COMPONENT), body.get(sg.A_SENSOR)) == (
                clear_body.get(sg.A_CONDITION), clear_body.get(sg.A_COMPONENT), clear_body.get(sg.A_SENSOR)):
                self._held.pop(i)
                self._count(clear_body.get(sg.A_COMPONENT, ""))
                return True
        return False

    def _storm_of(self, component):
        """The active storm on one of the component's elements. A component
        that fails during a storm on its rail or bus joins it: same likely
        cause, no new page."""
        for element in self.elements_of.get(component, ()):
            storm = self._storms.get(element)
            if storm is not None:
                if component not in storm.components:
                    storm.components.append(component)
                    storm.components.sort()
                return storm
        return None

    def _storm_onset(self, component, signal, now_ms):
        """Start a storm if this raise completes one; return its root-cause
        alert. The most specific element wins (fewest members: a rail
        feeding 10 parts explains a failure better than the bus all 30 share),
        then supply before bus, then name."""
        window = self.settings.storm_window_ms
        best = None
        for element in self.elements_of.get(component, ()):
            if element in self._storms:
                continue
            affected = [c for c in self.members[element] if c in self._onsets and now_ms - self._onsets[c] <= window]
            if len(affected) < self.settings.storm_min:
                continue
            rank = (len(self.members[element]), 0 if element.startswith("supply:") else 1, element)
            if best is None or rank < best[0]:
                best = (rank, element, affected)
        if best is None:
            return None
        element, affected = best[1], sorted(best[2])
        essential = [c for c in affected if self.board.components[c].essential]
        storm = _Storm(element, affected, now_ms, sg.PRIORITY_CRITICAL if essential else sg.PRIORITY_HIGH)
        self._storms[element] = storm
        self.stats["storms"] += 1
        # The raise that completed the storm, and alerts still held for its
        # members, are folded into it.
        storm.suppressed = 1
        still = []
        for item in self._held:
            if item[1].body.get(sg.A_COMPONENT) in affected:
                storm.suppressed += 1
            else:
                still.append(item)
        self._held = still
        for c in affected:
            storm.suppressed += self._suppressed.pop(c, 0)
        self.stats["storm_suppressed"] += storm.suppressed
        return self._root_alert(storm, now_ms, True)

    def _root_alert(self, storm, now_ms, active):
        kind, name = storm.element.split(":", 1)
        what = "supply rail" if kind == "supply" else "bus"
        parts = []
        for c in storm.components:
            part = self.board.components[c].part
            parts.append("%s (part %s)" % (c, part) if part else c)
        if active:
            text = "%d components failed within %d s, all on %s %s: likely a shared cause. Affected: %s" % (
                len(storm.components), self.settings.storm_window_ms // 1000, what, name, ", ".join(parts))
            action = "check %s %s first (power, connector, fuse) before replacing any component" % (what, name)
        else:
            text = "no new failures on %s %s for %d min; %d alerts were folded into this root cause" % (
                what, name, self.settings.dedupe_ms // 60000, storm.suppressed)
            action = ""
        body = {
            sg.A_CONDITION: sg.C_ROOT_CAUSE,
            sg.A_COMPONENT: "",
            sg.A_SENSOR: "",
            sg.A_VALUE: None,
            sg.A_LIMITS: [0, 0],
            sg.A_SEVERITY: "critical" if storm.priority == sg.PRIORITY_CRITICAL else "warning",
            sg.A_TEXT: text,
            sg.A_ACTION: action,
            sg.A_PART: "",
            sg.A_SINCE: storm.started_ms,
            sg.A_ACTIVE: active,
            sg.A_UNIT: "",
            sg.A_ELEMENT: storm.element,
            sg.A_AFFECTED: list(storm.components),
            sg.A_COUNT: storm.suppressed,
        }
        self.stats["sent"] += 1
        return sg.Signal(sg.KIND_ALERT, storm.priority if active else sg.PRIORITY_NORMAL, now_ms, body)

    def deadline(self):
        if self._due_valid:
            return self._due
        times = [item[0] for item in self._held]
        for key in self._keys.values():
            if key.repeats:
                times.append(key.last_sent_ms + key.window_ms)
        for storm in self._storms.values():
            times.append(storm.last_ms + self.settings.dedupe_ms)
        self._due = min(times) if times else None
        self._due_valid = True
        return self._due
