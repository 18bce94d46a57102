"""Judge a run against its scenario's expectations.

Windows include both ends: ``after = "10m", within = "1m"`` accepts a
change at exactly t+10m and at exactly t+11m. Where a verdict compares
durations, the evidence prints them exactly (``exactly``): a 6.97-day lead
reads "7.0 days (6d23h16m48s)", never a bare "7.0 days" next to FAIL.

Alerts and state changes are judged as the receiver got them (verified,
decoded, deduplicated), with the device's own timestamps: an expectation
passes only if the signal made it through the whole pipeline. Each Outcome
carries its evidence (times, counts), pass or fail, so a failing CI run
says what happened instead of only that something did not.
"""

from edge_agent.core import signals as sg
from ..hardware import physics
from .spec import KIND_NAMES, exactly, format_duration, format_exact

# How far past the run's end to look for a model's first threshold
# crossing (a prediction scenario may stop before the part fails).
CROSSING_HORIZON_MS = 120 * physics.DAY_MS


class Outcome:
    __slots__ = ("name", "kind", "key", "passed", "evidence")

    def __init__(self, expect, passed, evidence):
        self.name = expect.name
        self.kind = expect.kind
        self.key = expect.key
        self.passed = passed
        self.evidence = evidence

    def __repr__(self):
        return "Outcome(%s, %s, %r)" % (self.name, "pass" if self.passed else "FAIL", self.evidence)


def t(ms):
    return "t+" + format_duration(ms - physics.T0)


def t_exact(ms):
    """t(ms), followed by the exact offset when rounding hid it."""
    return "t+" + exactly(ms - physics.T0).replace("(", "(t+")


def _window(expect, result):
    start = result.start_ms + (expect.args.get("after") or 0)
    within = expect.args.get("within")
    return start, (start + within if within is not None else result.end_ms)


def _describe_window(start, stop, result):
    if (start, stop) == (result.start_ms, result.end_ms):
        return "in the run"
    text = "in [%s, %s]" % (t(start), t(stop))
    if exactly(start - physics.T0) != format_duration(start - physics.T0) or \
            exactly(stop - physics.T0) != format_duration(stop - physics.T0):
        text += " (t+%s to t+%s, both included)" % (format_exact(start - physics.T0), format_exact(stop - physics.T0))
    return text


def _alerts(result, a, active=True):
    out = []
    for s in result.delivered:
        if s.kind != sg.KIND_ALERT:
            continue
        b = s.body
        if active is not None and bool(b.get(sg.A_ACTIVE)) is not active:
            continue
        if a.get("condition") and b.get(sg.A_CONDITION) != a["condition"]:
            continue
        if a.get("component") and b.get(sg.A_COMPONENT) != a["component"]:
            # A root-cause alert stands for the components it names.
            if a["component"] not in (b.get(sg.A_AFFECTED) or []):
                continue
        if a.get("sensor") and b.get(sg.A_SENSOR) != a["sensor"]:
            continue
        out.append(s)
    return out


def _summary(alerts, limit=4):
    parts = ["%s %s %s%s" % (t(s.time_ms), s.body.get(sg.A_CONDITION), s.body.get(sg.A_COMPONENT) or "",
                             (" " + s.body.get(sg.A_SENSOR)) if s.body.get(sg.A_SENSOR) else "") for s in alerts[:limit]]
    if len(alerts) > limit:
        parts.append("... %d more" % (len(alerts) - limit))
    return "; ".join(parts)


def crossing(result, sensor_id, limit, below):
    """When a fresh copy of the sensor's model first reads past ``limit``
    (below it if ``below``), up to CROSSING_HORIZON_MS after the run; None
    if never. Kept in result.crossings: the report marks it too."""
    key = (sensor_id, limit, below)
    if key not in result.crossings:
        model = result.models[sensor_id]
        result.crossings[key] = model.first_crossing(above=None if below else limit, below=limit if below else None,
                                                     end_ms=result.end_ms + CROSSING_HORIZON_MS)
    return result.crossings[key]


def predicted_below(sensor):
    """True when a sensor's [predict] limit is a floor (below), not a ceiling."""
    return sensor.predict is not None and sensor.predict.above is None and sensor.predict.below is not None


def check_state(e, result):
    a = e.args
    comp = a["component"]
    changes = [(s.time_ms, s.body[sg.S_FROM], s.body[sg.S_TO]) for s in result.delivered
               if s.kind == sg.KIND_STATE and s.body.get(sg.S_COMPONENT) == comp]
    history = ", ".join("%s %s->%s" % (t(when), frm, to) for when, frm, to in changes[:8]) or "no state changes"
    if a.get("at_end"):
        final = result.final_states.get(comp, "(device off)")
        return final == a["state"], "%s is %s at the end (%s)" % (comp, final, history)
    start, stop = _window(e, result)
    hits = [when for when, _, to in changes if to == a["state"] and start <= when <= stop]
    if hits:
        return True, "%s entered %s at %s, %s after %s" % (comp, a["state"], t(hits[0]),
                                                           exactly(hits[0] - start), t(start))
    return False, "%s never entered %s %s; saw: %s" % (comp, a["state"], _describe_window(start, stop, result), history)


def check_output(e, result):
    a = e.args
    out = a["output"]
    changes = [(when, on) for when, o, on in result.gpio if o == out]
    history = ", ".join("%s %s" % (t(when), "on" if on else "OFF") for when, on in changes[:8]) or "no changes"
    if a.get("at_end"):
        final = result.final_outputs.get(out)
        return final is a["on"], "%s is %s at the end (%s)" % (out, "on" if final else "off", history)
    start, stop = _window(e, result)
    hits = [when for when, on in changes if on is a["on"] and start <= when <= stop]
    word = "on" if a["on"] else "off"
    if hits:
        return True, "%s switched %s at %s, %s after %s" % (out, word, t(hits[0]), exactly(hits[0] - start),
                                                            t(start))
    return False, "%s never switched %s %s; saw: %s" % (out, word, _describe_window(start, stop, result), history)


def check_alert(e, result):
    a = e.args
    alerts = _alerts(result, a, active=a.get("active", True))
    if a.get("lead_ms") is not None:
        if not alerts:
            return False, "no %s alert arrived (saw: %s)" % (a["condition"], _summary(_alerts(result, {})) or "none")
        below = predicted_below(result.spec.board.sensors[a["sensor"]])
        limit = a["threshold"]
        cross = crossing(result, a["sensor"], limit, below)
        first = alerts[0].time_ms
        if cross is None:
            return False, "alert at %s, but the model never crosses %s %s within %s after the run" % (
                t(first), "below" if below else "above", limit, format_duration(CROSSING_HORIZON_MS))
        lead = cross - first
        ok = lead >= a["lead_ms"]
        short = "" if ok else ", %s short" % format_exact(a["lead_ms"] - lead)
        return ok, "alert at %s, first reading %s %s at %s: %s ahead (needed %s%s)" % (
            t(first), "below" if below else "above", limit, t(cross), exactly(lead),
            exactly(a["lead_ms"]), short)
    start, stop = _window(e, result)
    hits = [s for s in alerts if start <= s.time_ms <= stop]
    word = "raised" if a.get("active", True) else "cleared"
    if len(hits) >= a.get("min_count", 1):
        first = hits[0]
        return True, "%d %s %s, first at %s (%s after %s): %s" % (
            len(hits), a["condition"], word, t(first.time_ms), exactly(first.time_ms - start), t(start),
            (first.body.get(sg.A_TEXT) or "")[:100])
    return False, "%d %s alert%s %s %s (needed %d); alerts that did arrive: %s" % (
        len(hits), a["condition"], "" if len(hits) == 1 else "s", word, _describe_window(start, stop, result),
        a.get("min_count", 1), _summary(_alerts(result, {})) or "none")


def check_no_alert(e, result):
    start, stop = _window(e, result)
    hits = [s for s in _alerts(result, e.args, active=e.args.get("active", True)) if start <= s.time_ms <= stop]
    if not hits:
        total = len(_alerts(result, {}))
        return True, "none %s (%d alert%s of any kind in the whole run)" % (
            _describe_window(start, stop, result), total, "" if total == 1 else "s")
    return False, "%d %s: %s" % (len(hits), "raised" if e.args.get("active", True) else "cleared", _summary(hits))


def check_pages(e, result):
    start, stop = _window(e, result)
    pages = [s for s in _alerts(result, {}) if s.priority <= sg.PRIORITY_HIGH and start <= s.time_ms <= stop]
    ok = len(pages) <= e.args["count"]
    return ok, "%d page%s %s (at most %d): %s" % (len(pages), "" if len(pages) == 1 else "s",
                                                  _describe_window(start, stop, result), e.args["count"],
                                                  _summary(pages) or "none")


def check_delivered(e, result):
    a = e.args
    kind_of = dict((seq, kind) for seq, kind, _, _ in result.issued)
    kinds = None
    if a.get("kinds"):
        kinds = set(KIND_NAMES.index(k) + 1 for k in a["kinds"])
    # Seqs the receiver misses (not skipped at a restart), of the kinds judged.
    lost = sum(1 for first, last in result.receiver_lost for seq in range(first, last + 1)
               if kinds is None or kind_of.get(seq) in kinds)
    skipped = sum(last - first + 1 for first, last in result.receiver_skipped)
    issued = [seq for seq, kind, _, _ in result.issued if kinds is None or kind in kinds]
    missing = [seq for seq in issued if seq not in result.delivered_seqs]
    evicted = sum(lane[1] for s in result.delivered if s.kind == sg.KIND_EVICTIONS for lane in s.body[sg.V_LANES])
    problems = []
    if a.get("allow_reported_evictions"):
        # The receiver cannot tell an evicted seq from a lost one; the
        # device's evictions signals say how many it evicted.
        if lost > a["lost"] + evicted:
            problems.append("receiver misses %d seqs, more than the %d the device reported evicted (+%d allowed)"
                            % (lost, evicted, a["lost"]))
    elif lost > a["lost"]:
        problems.append("receiver reports %d lost (ranges %s; at most %d allowed)" % (
            lost, result.receiver_lost[:5], a["lost"]))
    allowed = a["undelivered"] + (evicted if a.get("allow_reported_evictions") else 0)
    if len(missing) > allowed:
        problems.append("%d issued signal%s never arrived (seqs %s%s; at most %d allowed)" % (
            len(missing), "" if len(missing) == 1 else "s", missing[:8], "..." if len(missing) > 8 else "", allowed))
    backlog = max(result.drains, key=lambda d: len(d[1]), default=None)
    if a.get("alerts_first"):
        for when, order in result.drains:
            priorities = [p for p, _ in order]
            if priorities != sorted(priorities):
                late = next(i for i in range(1, len(priorities)) if priorities[i] < priorities[i - 1])
                problems.append("at %s a priority-%d signal went out after %d less urgent ones" % (
                    t(when), priorities[late], late))
                break
    what = "of kinds %s " % ", ".join(a["kinds"]) if a.get("kinds") else ""
    evidence = "%d signals %sissued, %d arrived (%d messages); receiver: %d missing, %d skipped at restarts, %d duplicates" % (
        len(issued), what, len(issued) - len(missing), result.messages, lost, skipped, result.receiver_duplicates)
    if evicted:
        evidence += "; %d reported evicted by the device" % evicted
    if backlog is not None and len(backlog[1]) > 1:
        urgent = sum(1 for p, _ in backlog[1] if p <= sg.PRIORITY_HIGH)
        evidence += "; largest drain %d signals at %s (%d alerts/high first)" % (len(backlog[1]), t(backlog[0]), urgent)
    if result.rejections:
        problems.append("receiver rejected messages: %s" % result.rejections)
    if problems:
        return False, "; ".join(problems) + ". " + evidence
    return True, evidence


def check_evictions(e, result):
    a = e.args
    reported = 0
    for s in result.delivered:
        if s.kind == sg.KIND_EVICTIONS:
            reported += sum(lane[1] for lane in s.body[sg.V_LANES])
    by_lane = {}
    for _, lane, records, _ in result.evictions:
        by_lane[lane] = by_lane.get(lane, 0) + records
    hit = [lane for lane in a["spared_lanes"] if by_lane.get(lane)]
    evidence = "store evicted %s; %d records reported upstream in evictions signals" % (
        ", ".join("lane %d: %d records" % kv for kv in sorted(by_lane.items())) or "nothing", reported)
    problems = []
    if reported < a["min_records"]:
        problems.append("fewer than %d evicted records reported" % a["min_records"])
    if hit:
        problems.append("lanes %s were not spared" % hit)
    return (not problems), ("; ".join(problems) + ". " if problems else "") + evidence


def check_readings(e, result):
    start, stop = _window(e, result)
    times = result.received_readings.get(e.args["sensor"], [])
    hits = [tm for tm in times if start <= tm <= stop]
    if hits:
        return True, "%d reading%s of %s arrived %s, the first at %s (%s after %s)" % (
            len(hits), "" if len(hits) == 1 else "s", e.args["sensor"], _describe_window(start, stop, result),
            t(hits[0]), exactly(hits[0] - start), t(start))
    before = [tm for tm in times if tm < start]
    after = [tm for tm in times if tm > stop]
    return False, "no reading of %s arrived %s; the last before at %s, the next after at %s" % (
        e.args["sensor"], _describe_window(start, stop, result), t_exact(before[-1]) if before else "none",
        t_exact(after[0]) if after else "none")


CHECKS = {
    "state": check_state,
    "output": check_output,
    "alert": check_alert,
    "no_alert": check_no_alert,
    "pages_at_most": check_pages,
    "readings": check_readings,
    "delivered": check_delivered,
    "evictions": check_evictions,
}


def _repeating(check, e, result):
    """A window with every: one verdict per occurrence (after, after + every,
    ... while it starts before the end); passes when all do."""
    from .spec import ExpectSpec

    every = e.args["every"]
    verdicts = []
    after = e.args.get("after") or 0
    while result.start_ms + after < result.end_ms:
        one = ExpectSpec(e.key, e.kind, e.name, dict(e.args, after=after, every=None))
        verdicts.append(check(one, result))
        after += every
    failed = [evidence for ok, evidence in verdicts if not ok]
    if failed:
        return False, "%d of %d windows (every %s) failed; first: %s" % (
            len(failed), len(verdicts), exactly(every), failed[0])
    return True, "all %d windows (every %s) held; first: %s" % (len(verdicts), exactly(every), verdicts[0][1])


def evaluate(spec, result):
    outcomes = []
    for expect in spec.expects:
        check = CHECKS[expect.kind]
        if expect.args.get("every"):
            passed, evidence = _repeating(check, expect, result)
        else:
            passed, evidence = check(expect, result)
        outcomes.append(Outcome(expect, passed, evidence))
    return outcomes
