"""The health engine end to end on generated reading streams: quarantine
with a power cut, probing, release, escalation, degraded modes, operator
overrides, switch and duty-cycle actions, dropouts."""

from health_support import alerts, gpio, good, health_board, states
from support import copy_board, raises

from edge_agent.core import board as bd
from edge_agent.core import component as cs
from edge_agent.core import device as dv
from edge_agent.core import frames as fr
from edge_agent.core import reading as rd
from edge_agent.core import signals as sg
from edge_agent.core.health import HealthEngine

STUCK_FAN = {"quarantine": ["cut_power"], "power_output": "fan_power", "probe_after_s": 60, "release_after": 5, "max_probes": 2}
STUCK_RULE = [{"kind": "stuck", "epsilon": 0, "for_s": 5}]


def _run(engine, sensor, values, start_ms, step_ms=500):
    """Feed values every step_ms, calling poll when its deadline passes."""
    out = []
    t = start_ms
    for value in values:
        deadline = engine.deadline()
        if deadline is not None and deadline <= t:
            out += engine.poll(t)[0]
        out += engine.on_reading(good(t, sensor, value))
        t += step_ms
    return out, t


def test_stuck_sensor_is_quarantined_power_cut_then_probed_and_released():
    engine = HealthEngine(health_board(fan=STUCK_FAN, fan_rules=STUCK_RULE))
    out, t = _run(engine, "fan_rpm", [1200 + i % 7 for i in range(10)], 0)
    assert states(out) == [] and gpio(out) == []
    out, t = _run(engine, "fan_rpm", [1200] * 16, t)  # stuck for 8 s
    assert states(out) == ["suspect", "failed", "quarantined"]
    assert gpio(out) == [("fan_power", False)]
    stuck = alerts(out, "stuck")
    assert len(stuck) == 1 and stuck[0].priority == sg.PRIORITY_HIGH
    quarantined = alerts(out, "quarantined")[0].body
    assert "fan quarantined after fan_rpm stuck at 1200 rpm" in quarantined[sg.A_TEXT]
    assert "cut_power fan_power" in quarantined[sg.A_TEXT] and quarantined[sg.A_PART] == "F-22"
    assert quarantined[sg.A_STATE] == "quarantined"
    assert quarantined[sg.A_COMPONENT] == "fan" and quarantined[sg.A_SENSOR] == ""  # issue 18: names the component
    state_signal = [o for o in out if isinstance(o, sg.Signal) and o.kind == sg.KIND_STATE][-1].body
    assert state_signal[sg.S_ACTIONS] == ["cut_power fan_power"]
    assert state_signal[sg.S_EVIDENCE][-1][1:] == ["fan_rpm", 1200.0]
    assert engine.state_of("fan") == cs.QUARANTINED and not engine.sends_telemetry("fan_rpm")
    probe_at = engine.deadline()
    # While quarantined the (unpowered) sensor's readings are not judged.
    out, _ = _run(engine, "fan_rpm", [0] * 4, t)
    assert out == []
    out, deadline = engine.poll(probe_at)
    assert states(out) == ["probing"] and gpio(out) == [("fan_power", True)]
    # Repaired: the fan turns again. Released after release_after good
    # evaluations *and* the 5 s the stuck rule needs to fire again.
    out, t = _run(engine, "fan_rpm", [1100 + 10 * i for i in range(12)], probe_at)
    assert states(out) == ["ok"]
    cleared = alerts(out, "quarantined")
    assert len(cleared) == 1 and cleared[0].body[sg.A_ACTIVE] is False
    assert engine.state_of("fan") == cs.OK and engine.sends_telemetry("fan_rpm")


def test_a_quarantine_is_one_page_and_its_notice_goes_at_normal_priority():
    # docs/wire-format.md: `quarantined` is raised at priority 2, severity
    # warning; the rule alert that confirmed the failure is the page.
    engine = HealthEngine(health_board(fan=STUCK_FAN, fan_rules=STUCK_RULE))
    out, _ = _run(engine, "fan_rpm", [1200 + i % 7 for i in range(10)] + [1200] * 16, 0)
    assert engine.state_of("fan") == cs.QUARANTINED
    raised = [(a.body[sg.A_CONDITION], a.priority, a.body[sg.A_SEVERITY]) for a in alerts(out) if a.body[sg.A_ACTIVE]]
    assert raised == [("stuck", sg.PRIORITY_HIGH, "warning"), ("quarantined", sg.PRIORITY_NORMAL, "warning")]
    assert [r[0] for r in raised if r[1] <= sg.PRIORITY_HIGH] == ["stuck"]


def test_failed_probes_back_off_then_escalate():
    engine = HealthEngine(health_board(fan=STUCK_FAN, fan_rules=STUCK_RULE))
    out, t = _run(engine, "fan_rpm", [1200] * 20, 0)
    first_probe = engine.deadline()
    assert engine.state_of("fan") == cs.QUARANTINED and first_probe == 6000 + 60000  # failed at 6 s
    engine.poll(first_probe)
    out, t = _run(engine, "fan_rpm", [1200] * 20, first_probe)
    assert states(out) == ["quarantined"] and gpio(out) == [("fan_power", False)]
    failed_at = [o.time_ms for o in out if isinstance(o, sg.Signal) and o.kind == sg.KIND_STATE][-1]
    assert engine.deadline() == failed_at + 120000  # backoff doubled
    engine.poll(engine.deadline())
    out, t = _run(engine, "fan_rpm", [1200] * 20, t + 120000)
    assert states(out) == ["service"]
    service = alerts(out, "needs_service")[0]
    assert service.priority == sg.PRIORITY_HIGH and "failed 2 probes" in service.body[sg.A_TEXT]
    assert "part F-22" in service.body[sg.A_ACTION]
    assert engine.deadline() is None  # no more probes: a person must act
    out = engine.release("fan", t, who="tech 7")
    assert states(out) == ["ok"] and gpio(out) == [("fan_power", True)]


def test_isolated_sensors_follow_every_state_change():
    # A reading asks engine.isolated_sensors instead of its component's
    # state (kept by _transition): after every step through quarantine,
    # probes, service, release and force the set must be what the states say.
    engine = HealthEngine(health_board(fan=STUCK_FAN, fan_rules=STUCK_RULE))
    seen = []

    def check():
        state = engine.state_of("fan")
        seen.append(state)
        expected = set()
        for health in engine.components.values():
            if health.state in cs.ISOLATED:
                expected.update(watch.sensor.id for watch in health.watches)
        assert engine.isolated_sensors == expected, (state, engine.isolated_sensors)
        assert engine.sends_telemetry("fan_rpm") == (state not in cs.ISOLATED)

    check()
    _, t = _run(engine, "fan_rpm", [1200] * 20, 0)
    check()
    for _ in range(2):
        engine.poll(engine.deadline())
        check()
        _, t = _run(engine, "fan_rpm", [1200] * 20, t + 120000)
        check()
    engine.release("fan", t)
    check()
    engine.force("fan", t + 1)
    check()
    engine.release("fan", t + 2)
    check()
    assert seen == ["ok", "quarantined", "probing", "quarantined", "probing", "service", "ok", "forced", "ok"]


def test_one_spike_does_not_quarantine():
    engine = HealthEngine(health_board(fan=STUCK_FAN, fan_rules=[{"kind": "jump", "max_step": 1000}]))
    values = [1200] * 5 + [4900] + [1200] * 10
    out, _ = _run(engine, "fan_rpm", values, 0)
    assert states(out) == ["suspect", "ok"] and gpio(out) == []
    assert engine.state_of("fan") == cs.OK


def test_essential_component_degrades_and_never_loses_power():
    board = health_board(
        extra={
            "outputs": {"fan_power": {"chip": "c", "line": 1}, "heater": {"chip": "c", "line": 2}},
            "modes": {"cool_down": {"text": "heater off", "cut": ["heater"]}},
        },
    )
    board.components["coolant_loop"].degraded_mode = "cool_down"
    board.components["coolant_loop"].quarantine = ("cut_power",)
    board.components["coolant_loop"].power_output = "fan_power"
    engine = HealthEngine(board)
    out, t = _run(engine, "coolant_temp", [150] * 4, 0)
    assert states(out) == ["suspect", "failed", "degraded"]
    assert gpio(out) == [("heater", False)]  # the mode's output, never the component's own power
    degraded = alerts(out, "degraded")[0]
    assert degraded.priority == sg.PRIORITY_CRITICAL
    assert "essential, so it is not quarantined automatically; entering degraded mode: heater off" in degraded.body[sg.A_TEXT]
    out, t = _run(engine, "coolant_temp", [60] * 10, t)
    assert states(out) == ["ok"] and gpio(out) == [("heater", True)]
    assert alerts(out, "degraded")[0].body[sg.A_ACTIVE] is False


def test_operator_force_applies_actions_even_to_essential_and_release_undoes():
    engine = HealthEngine(health_board(fan=STUCK_FAN))
    out = engine.force("fan", 10, who="console")
    assert states(out) == ["forced"] and gpio(out) == [("fan_power", False)]
    assert "forced into quarantine by console" in out[-1].body[sg.S_REASON]
    raises(cs.IllegalTransition, engine.force, "fan", 11)
    raises(KeyError, engine.force, "pump", 11)
    assert engine.deadline() is None  # forced: no automatic probing
    out = engine.release("fan", 20)
    assert states(out) == ["ok"] and gpio(out) == [("fan_power", True)]
    raises(cs.IllegalTransition, engine.release, "fan", 21)
    out = engine.force("coolant_loop", 30)
    assert states(out) == ["forced"]


def _until(engine, t, end):
    """Run the engine's timers from t to end; return their outputs."""
    out = []
    while True:
        deadline = engine.deadline()
        if deadline is None or deadline > end:
            return out
        t = max(t, deadline)
        out += engine.poll(t)[0]


def test_dropout_is_a_lost_link_not_a_failed_component():
    # Issue 18: silence used to make the component suspect, failed and
    # quarantined (`ignore`), so the first good answers were discarded until
    # a probe 5 min later, and 3 failed probes in a long outage sent it to
    # service. Silence is a lost link: a link_lost alert naming the link,
    # the component shown stale, never quarantined, judged again from the
    # first answer.
    engine = HealthEngine(health_board(fan={"quarantine": ["ignore"], "probe_after_s": 30, "max_probes": 1},
                                       fan_rules=[{"kind": "dropout", "for_s": 3}]))
    _run(engine, "fan_rpm", [1000, 1010], 0)
    out = _until(engine, 500, 600000)  # ten minutes of silence
    assert states(out) == []
    lost = alerts(out, "link_lost")
    assert [a.body[sg.A_ACTIVE] for a in lost] == [True]
    assert lost[0].body[sg.A_SINCE] == 3500 and lost[0].body[sg.A_SENSOR] == "fan_rpm"
    assert lost[0].body[sg.A_ELEMENT] == "bus:uart0" and "link lost on bus:uart0" in lost[0].body[sg.A_TEXT]
    assert engine.state_of("fan") == cs.OK and engine.shown_state("fan") == cs.STALE
    assert engine.sends_telemetry("fan_rpm")
    # The first answer clears it and is judged (and sent) at once.
    out = engine.on_reading(good(600000, "fan_rpm", 1020))
    assert [(a.body[sg.A_CONDITION], a.body[sg.A_ACTIVE]) for a in alerts(out)] == [("link_lost", False)]
    assert engine.shown_state("fan") == cs.OK and engine.sends_telemetry("fan_rpm")
    # Silent again: a new incident, a new alert.
    out = _until(engine, 600000, 620000)
    assert [a.body[sg.A_ACTIVE] for a in alerts(out, "link_lost")] == [True]


def test_reduce_duty_cycles_the_power_output():
    engine = HealthEngine(health_board(
        fan={"quarantine": ["reduce_duty"], "power_output": "fan_power", "duty": 0.25, "duty_period_s": 40, "probe_after_s": 3600},
        fan_rules=STUCK_RULE))
    out, t = _run(engine, "fan_rpm", [1200] * 16, 0)
    assert states(out)[-1] == "quarantined"
    assert gpio(out) == [("fan_power", False)]
    edges = []
    for _ in range(4):
        when = engine.deadline()
        edges.append((when - t, gpio(engine.poll(when)[0])))
        t = when
    # off for 30 s, on for 10 s: 25% of a 40 s period
    assert [e[1] for e in edges] == [[("fan_power", True)], [("fan_power", False)], [("fan_power", True)], [("fan_power", False)]]
    assert [e[0] for e in edges[1:]] == [10000, 30000, 10000]


def test_switch_sends_the_redundant_sensors_value_in_its_place():
    data = copy_board()
    data["sensors"]["coolant_temp"]["unit"] = "rpm"  # the load checks the stand-in measures the same
    data["sensors"]["fan_rpm"].update({"redundant": "coolant_temp", "rules": STUCK_RULE})
    data["components"]["fan"]["quarantine"] = ["switch"]
    board = bd.board_from_dict(data, "switch.toml")
    device = dv.Device(board, "unit-1", telemetry_max_readings=1000)
    t = 0
    for _ in range(16):
        device.feed("uart0", fr.encode_frame(fr.READING, "fan_rpm", 1200), t)
        t += 500
    assert device.component_states()["fan"] == "quarantined"
    device.feed("uart0", fr.encode_frame(fr.READING, "fan_rpm", 1200), t)
    device.feed("uart0", fr.encode_frame(fr.READING, "coolant_temp", 42), t + 1)
    batch = device.flush(t + 2)[0].body[sg.T_READINGS]
    assert [t + 1, "fan_rpm", 42.0, rd.SUBSTITUTED] in batch
    assert [t, "fan_rpm", 1200.0, rd.GOOD] not in batch
    assert device.stats["quarantined_readings"] == 5  # from the reading that confirmed it (6 s) on


def test_device_passes_gpio_actions_and_numbers_state_signals():
    device = dv.Device(health_board(fan=STUCK_FAN, fan_rules=STUCK_RULE), "unit-2", telemetry_interval_ms=10**9)
    out = []
    for i in range(16):
        out += device.feed("uart0", fr.encode_frame(fr.READING, "fan_rpm", 1200), i * 500)
    actions = [o for o in out if not isinstance(o, (sg.Signal, dv.Notice))]
    assert [(a.output, a.on, a.chip, a.line, a.active_low) for a in actions] == [("fan_power", False, "/dev/gpiochip0", 17, False)]
    # An adapter that only knows Signal and Notice can still log it.
    assert actions[0].level == "warning" and "fan_power (/dev/gpiochip0 line 17) -> off" in actions[0].text
    seqs = [o.seq for o in out if isinstance(o, sg.Signal)]
    assert seqs == list(range(1, len(seqs) + 1))
    outputs, deadline = device.poll(8000)
    assert deadline is not None and deadline > 60000  # the probe
    assert device.stats["state_changes"] == 3 and device.stats["gpio_actions"] == 1
