"""Issue 18, level shifts: a sensor that jumps +6 degC and stays there is
one active `shift` alert for as long as the offset lasts (it used to be one
`jump` alert that cleared on the next reading, the offset then running
silently for weeks), until the level returns or a person acknowledges it.
Generated streams (daily cycle, noise), virtual clock, whole Device."""

import math

from health_support import health_board

from edge_agent.core import device as dv
from edge_agent.core import reading as rd
from edge_agent.core import signals as sg

DAY = 86400000
STEP = 300000  # a reading every 5 minutes
RULES = [{"kind": "shift", "max_shift": 3}, {"kind": "jump", "max_step": 4}]


class _Stream:
    def __init__(self, step_at=None, step=6.0, back_at=None):
        self.device = dv.Device(health_board(temp_rules=RULES), "shift-1", telemetry_interval_ms=DAY)
        self.step_at, self.step, self.back_at = step_at, step, back_at
        self.seed = 12345
        self.t = 0
        self.alerts = []  # (time, condition, active, text)

    def noise(self):
        self.seed = (self.seed * 1103515245 + 12345) % 2147483648
        return self.seed / 2147483648.0 - 0.5  # +-0.5 degC

    def value(self, t):
        v = 40.0 + 3.0 * math.sin(2 * math.pi * t / DAY) + self.noise()  # daily cycle +-3
        if self.step_at is not None and t >= self.step_at and (self.back_at is None or t < self.back_at):
            v += self.step
        return v

    def keep(self, outputs):
        for s in outputs:
            if isinstance(s, sg.Signal) and s.kind == sg.KIND_ALERT:
                self.alerts.append((s.time_ms, s.body[sg.A_CONDITION], s.body[sg.A_ACTIVE], s.body[sg.A_TEXT]))

    def run_to(self, end):
        device = self.device
        while self.t < end:
            self.keep(device.ingest(rd.Reading(self.t, "coolant_temp", self.value(self.t)), self.t))
            due = device.next_deadline()
            if due is not None and due <= self.t:
                device.poll(self.t)  # telemetry and triage timers; their alerts kept below
            self.t += STEP
            device._batch = []  # the telemetry is not under test: keep the heap small on MicroPython


def test_a_step_held_for_30_days_is_one_alert_active_all_along_until_acknowledged():
    s = _Stream(step_at=2 * DAY)
    s.run_to(32 * DAY)
    shifts = [a for a in s.alerts if a[1] == "shift"]
    assert [a[2] for a in shifts] == [True], shifts
    assert 2 * DAY <= shifts[0][0] <= 2 * DAY + 3 * STEP  # within 3 readings of the step
    assert "level moved up" in shifts[0][3] and "stays there" in shifts[0][3]
    rule = s.device.health.watches["coolant_temp"].rules[2]
    assert rule.kind == "shift" and rule.active
    # the sensor is shown suspect while the offset is held (the component's
    # state stays ok: nothing to quarantine for an offset)
    assert s.device.shown_states()["coolant_loop"] == "suspect"
    assert s.device.component_states()["coolant_loop"] == "ok"
    # a technician acknowledges it (recalibration due, offset known): cleared,
    # the present level is the new baseline, and no new alert follows
    out = s.device.acknowledge("coolant_temp", "shift", s.t, "tech-7")
    s.keep(out)
    assert [(a[1], a[2]) for a in s.alerts[-1:]] == [("shift", False)] and "acknowledged by tech-7" in s.alerts[-1][3]
    assert s.device.shown_states()["coolant_loop"] == "ok"
    s.run_to(35 * DAY)
    assert [(a[1], a[2]) for a in s.alerts if a[1] == "shift"] == [("shift", True), ("shift", False)]


def test_a_level_that_returns_clears_and_a_daily_cycle_with_noise_never_raises():
    s = _Stream(step_at=2 * DAY, back_at=5 * DAY)
    s.run_to(12 * DAY)
    shifts = [(a[0], a[2]) for a in s.alerts if a[1] == "shift"]
    assert [active for _, active in shifts] == [True, False], shifts
    assert 5 * DAY <= shifts[1][0] <= 5 * DAY + 3 * STEP
    quiet = _Stream()
    quiet.run_to(30 * DAY)
    assert [a for a in quiet.alerts if a[1] == "shift"] == []


def test_a_spike_is_a_jump_not_a_shift():
    s = _Stream()
    s.run_to(DAY)
    s.keep(s.device.ingest(rd.Reading(s.t, "coolant_temp", 55.0), s.t))
    s.t += STEP
    s.run_to(2 * DAY)
    assert [(a[1], a[2]) for a in s.alerts] == [("jump", True), ("jump", False)]


def test_an_ack_at_the_console_makes_a_held_shift_the_new_baseline():
    # The console's `ack` (core/console.py) reaches the health engine: the
    # shift clears, and the offset is the sensor's level from then on.
    from console_support import Screen, bench, token
    from health_support import health_board as board

    view, console = bench(board=board(temp_rules=[{"kind": "shift", "max_shift": 3}]))
    screen = Screen(console)
    for _ in range(40):
        view.feed("coolant_temp", 40.0, 300000)
    for _ in range(12):
        view.feed("coolant_temp", 46.0, 300000)
    raised = [a for a in console.alerts if "level moved" in a.text and a.active]
    assert len(raised) == 1 and raised[0].text.startswith("coolant_temp"), [(a.text, a.active) for a in console.alerts]
    assert screen.run("login " + token(issued=view.clock)).startswith("logged in")
    out = screen.run("ack %d" % raised[0].seq)
    assert out.startswith("alert #%d acknowledged by alice" % raised[0].seq), out
    assert "shift cleared (acknowledged by alice" in out, out  # the clear, as a notice on the same screen
    cleared = [a for a in console.alerts if "shift cleared" in a.text and not a.active]
    assert len(cleared) == 1 and "acknowledged by alice" in cleared[0].text, [a.text for a in console.alerts]
    for _ in range(24):
        view.feed("coolant_temp", 46.0, 300000)  # the new level: no new alert
    assert len([a for a in console.alerts if "level moved" in a.text or "shift cleared" in a.text]) == 2


def test_an_acknowledgement_by_alert_number_reaches_the_shift_it_names():
    # A signed alert.ack names only the alert's number: Device.acknowledge_alert
    # finds the rule behind it (a board, or a gateway without a console).
    s = _Stream(step_at=DAY)
    seqs = []
    keep = s.keep

    def keep_seqs(outputs):
        seqs.extend((o.seq, o.body[sg.A_CONDITION], o.body[sg.A_ACTIVE]) for o in outputs
                    if isinstance(o, sg.Signal) and o.kind == sg.KIND_ALERT)
        keep(outputs)

    s.keep = keep_seqs
    s.run_to(3 * DAY)
    shift = [seq for seq, condition, active in seqs if condition == "shift" and active]
    jump = [seq for seq, condition, active in seqs if condition == "jump"]
    assert len(shift) == 1 and jump
    assert s.device.acknowledge_alert(shift[0] + 1000, s.t, "tech-7") == []  # no such alert
    assert s.device.acknowledge_alert(jump[0], s.t, "tech-7") == []  # a jump takes no acknowledgement
    out = s.device.acknowledge_alert(shift[0], s.t, "tech-7")
    assert [(o.body[sg.A_CONDITION], o.body[sg.A_ACTIVE]) for o in out] == [("shift", False)]
    keep_seqs(out)
    assert s.device.acknowledge_alert(shift[0], s.t, "tech-7") == []  # once
    s.run_to(5 * DAY)
    assert [(c, a) for _, c, a in seqs if c == "shift"] == [("shift", True), ("shift", False)]
