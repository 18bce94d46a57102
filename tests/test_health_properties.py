"""Properties of the health engine under random reading streams (hypothesis):
it never crashes, every transition it reports is one the table allows and
chains from the previous one, and no automatic decision ever cuts the
power of an essential component."""

from hypothesis import example, given, settings
from hypothesis import strategies as st

from edge_agent.core import board as bd
from edge_agent.core import component as cs
from edge_agent.core import device as dv
from edge_agent.core import reading as rd
from edge_agent.core import signals as sg
from edge_agent.core.outputs import SetOutput

BOARD = {
    "schema": 1,
    "board": {"name": "prop", "model": "EA-PROP"},
    "buses": {"uart0": {"port": "/dev/null"}},
    "outputs": {
        "pump_power": {"chip": "/dev/gpiochip0", "line": 1},
        "fan_power": {"chip": "/dev/gpiochip0", "line": 2},
        "doser_power": {"chip": "/dev/gpiochip0", "line": 3, "active_low": True},
        "heater": {"chip": "/dev/gpiochip0", "line": 4},
    },
    "modes": {"cool_down": {"text": "heater off", "cut": ["heater"]}},
    "health": {"storm_min": 2, "storm_hold_s": 1, "dedupe_s": 60, "rate_burst": 2, "rate_per_hour": 60},
    "components": {
        # Essential, *and* declaring a power cut: only an operator may apply it.
        "pump": {"essential": True, "part": "P-1", "quarantine": ["cut_power"], "power_output": "pump_power",
                 "degraded_mode": "cool_down", "supply": "rail", "confirm": [2, 3], "release_after": 3},
        "fan": {"part": "F-1", "quarantine": ["cut_power"], "power_output": "fan_power", "supply": "rail",
                "confirm": [1, 1], "probe_after_s": 2, "max_probes": 2, "release_after": 2},
        "probe": {"quarantine": ["switch", "ignore"], "probe_after_s": 5, "supply": "rail"},
        "probe_b": {},
        "doser": {"quarantine": ["reduce_duty"], "power_output": "doser_power", "duty": 0.3, "duty_period_s": 4,
                  "probe_after_s": 10},
    },
    "sensors": {
        "pump_temp": {"bus": "uart0", "component": "pump", "unit": "degC", "valid_range": [0, 100], "period_ms": 100,
                      "rules": [{"kind": "stuck", "for_s": 1}, {"kind": "rate", "max_per_s": 50},
                                {"kind": "threshold", "above": 90, "clear": 80}]},
        "fan_rpm": {"bus": "uart0", "component": "fan", "unit": "degC", "valid_range": [0, 100], "period_ms": 100,
                    "rules": [{"kind": "flatline", "for_s": 0.5, "tolerance": 1}, {"kind": "jump", "max_step": 40},
                              {"kind": "dropout", "for_s": 1}]},
        "probe_t": {"bus": "uart0", "component": "probe", "unit": "degC", "valid_range": [0, 100], "period_ms": 100,
                    "redundant": "probe_t_b",
                    "rules": [{"kind": "disagree", "with": "probe_t_b", "max_diff": 10, "for_s": 0.2}]},
        "probe_t_b": {"bus": "uart0", "component": "probe_b", "unit": "degC", "valid_range": [0, 100], "period_ms": 100},
        "doser_ma": {"bus": "uart0", "component": "doser", "unit": "degC", "valid_range": [0, 100], "period_ms": 100,
                     "rules": [{"kind": "threshold", "above": 70, "health": True}],
                     "predict": {"above": 95, "history_days": 4}},
    },
}
SENSORS = sorted(BOARD["sensors"])
COMPONENTS = sorted(BOARD["components"])

value = st.one_of(
    st.sampled_from([0.0, 0.5, 50.0, 50.0, 50.0, 60.0, 75.0, 95.0, 99.5, 100.0, 150.0, -5.0]),
    st.floats(-1000, 1000, allow_nan=False),
    st.none(),  # a sensor-reported fault
)
step = st.one_of(
    st.tuples(st.just("read"), st.sampled_from(SENSORS), value, st.sampled_from([0, 10, 100, 100, 300, 1000, 4000])),
    st.tuples(st.just("poll"), st.just(""), st.none(), st.sampled_from([0, 50, 1000, 3000, 20000, 3600000])),
    st.tuples(st.sampled_from(["force", "release"]), st.sampled_from(COMPONENTS), st.none(), st.just(1)),
)


def _run(steps):
    device = dv.Device(bd.board_from_dict(BOARD, "prop"), "prop-1", telemetry_interval_ms=5000)
    t = 1700000000000
    outputs = []
    forced = set()
    for kind, name, val, dt in steps:
        t += dt
        if kind == "read":
            r = rd.Reading(t, name, val) if val is not None else rd.Reading(t, name, None, rd.FAULT, "err")
            out = device.ingest(r, t)
        elif kind == "poll":
            out, deadline = device.poll(t)
        elif kind == "force":
            if device.component_states()[name] == cs.FORCED:
                continue
            out = device.force(name, t)
            forced.add(name)
        else:
            if device.component_states()[name] == cs.OK:
                continue
            out = device.release(name, t)
            forced.discard(name)
        for item in out:
            outputs.append((t, item, set(forced)))
    return device, outputs


@settings(max_examples=300, deadline=None)
@given(st.lists(step, max_size=120))
def test_random_streams_never_break_the_table_or_the_essential_rule(steps):
    device, outputs = _run(steps)
    last_state = dict((c, cs.OK) for c in COMPONENTS)
    for t, item, forced in outputs:
        if isinstance(item, sg.Signal):
            item.encode()  # every signal is encodable
            if item.kind == sg.KIND_STATE:
                b = item.body
                component, before, event, after = b[sg.S_COMPONENT], b[sg.S_FROM], b[sg.S_EVENT], b[sg.S_TO]
                assert cs.next_state(before, event) == after  # allowed by the table
                assert last_state[component] == before  # chains from the last one
                last_state[component] = after
                if component == "pump":
                    # Essential: never quarantined, probed or retired automatically.
                    assert after not in (cs.QUARANTINED, cs.PROBING, cs.SERVICE)
        elif isinstance(item, SetOutput):
            assert item.output in BOARD["outputs"]
            if item.output == "pump_power" and not item.on:
                assert "pump" in forced, "pump power cut without an operator"
    assert last_state == device.component_states()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(SENSORS), value), min_size=1, max_size=400))
def test_deadlines_always_move_forward(readings):
    """Driven like an adapter (poll when the deadline comes), the device
    never returns a deadline at or before the time it was polled: an
    adapter would spin."""
    device = dv.Device(bd.board_from_dict(BOARD, "prop"), "prop-2")
    t = 1700000000000

    last = [t]

    def poll_due(now):
        polls = 0
        while True:
            deadline = device.next_deadline()
            if deadline is None or deadline > now:
                return
            assert deadline >= last[0], (deadline, last[0])  # never behind the clock
            _, after = device.poll(deadline)
            last[0] = deadline
            assert after is None or after > deadline, (deadline, after)
            polls += 1
            assert polls < 10000

    for sensor, val in readings:
        t += 100
        poll_due(t)
        last[0] = t
        r = rd.Reading(t, sensor, val) if val is not None else rd.Reading(t, sensor, None, rd.FAULT, "e")
        device.ingest(r, t)
    # Then nothing but time, for a day: every deadline it asks for.
    poll_due(t + 86400000)


# -- hysteresis and re-raise (issue 18) ---------------------------------------

FLAP_BOARD = {
    "schema": 1,
    "board": {"name": "flap", "model": "EA-PROP"},
    "buses": {"uart0": {"port": "/dev/null"}},
    "components": {"tank": {}},
    "sensors": {
        "level": {"bus": "uart0", "component": "tank", "unit": "cm", "valid_range": [0, 100], "period_ms": 1000,
                  # critical: never rate limited, so every count is A_COUNT's
                  "rules": [{"kind": "threshold", "above": 80, "clear": 75, "clear_for_s": 30, "reraise_s": 300,
                             "severity": "critical"}]},
    },
}
CLEAR_FOR_MS, RERAISE_MS = 30000, 300000


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([50.0, 74.0, 76.0, 79.0, 81.0, 95.0]),
                          st.sampled_from([1000, 1000, 1000, 5000, 20000, 40000, 400000])), max_size=200))
@example([(81.0, 1000), (50.0, 1000), (50.0, 40000), (81.0, 1000)])  # cleared, and over again 41 s later
def test_thresholds_never_flap_faster_than_reraise_and_every_incident_is_raised_once(stream):
    from edge_agent.core.health import HealthEngine
    from edge_agent.core.triage import Triage

    board = bd.board_from_dict(FLAP_BOARD, "flap")
    engine, triage = HealthEngine(board), Triage(board)
    rule = engine.watches["level"].rules[-1]
    t = 1700000000000
    proposed_raises = 0
    sent = []  # (time, active, count, rule active when sent, a summary)
    above_clear = []  # times of readings above the clear level
    for value, dt in stream:
        t += dt
        for item in engine.on_reading(rd.Reading(t, "level", value)):
            if isinstance(item, sg.Signal) and item.kind == sg.KIND_ALERT and item.body[sg.A_CONDITION] == "threshold":
                if item.body[sg.A_ACTIVE]:
                    proposed_raises += 1
                else:
                    # hysteresis: a clear only after clear_for_s at or below the clear level
                    assert not [a for a in above_clear if a > t - CLEAR_FOR_MS], (t, above_clear[-3:])
                for s in triage.submit(item, t):
                    sent.append((t, s.body[sg.A_ACTIVE], s.body.get(sg.A_COUNT, 1), rule.active, "repeated" in s.body[sg.A_TEXT]))
        if value > 75:
            above_clear.append(t)
        for s in triage.poll(t)[0]:
            sent.append((t, s.body[sg.A_ACTIVE], s.body.get(sg.A_COUNT, 1), rule.active, "repeated" in s.body[sg.A_TEXT]))
    for s in triage.poll(t + 10 * RERAISE_MS)[0]:  # the last summaries
        sent.append((t + 10 * RERAISE_MS, s.body[sg.A_ACTIVE], s.body.get(sg.A_COUNT, 1), rule.active, True))
    raises = [s for s in sent if s[1]]
    # no flapping: raises (or summaries of an open incident) at least reraise_s apart
    for a, b in zip(raises, raises[1:]):
        assert b[0] - a[0] >= RERAISE_MS, (a, b)
    # every incident raised once: each proposed raise is in exactly one count
    counted = sum(s[2] for s in sent if s[1] or s[4])  # raises (with their folded repeats) and summaries
    assert counted == proposed_raises, (counted, proposed_raises, sent)
    # nothing sent says cleared while the condition is active, nor active while it is not
    for when, active, _, rule_active, _ in sent:
        assert active == rule_active, (when, active, rule_active, sent)
