"""Issue 18, communication loss and re-raise through the whole Device
(health engine and triage), on a virtual clock with the documented
defaults: a sensor silent for 30 s is a lost link, not a failed part; its
first answer is judged and sent; an outage two minutes later is a new
alert; a threshold that swings with noise does not flap."""

from health_support import health_board

from edge_agent.core import component as cs
from edge_agent.core import device as dv
from edge_agent.core import frames as fr
from edge_agent.core import signals as sg

FAN = {"quarantine": ["ignore"], "probe_after_s": 300, "max_probes": 3}


class _Rig:
    def __init__(self, board):
        self.device = dv.Device(board, "link-1", telemetry_interval_ms=1000)
        self.t = 0
        self.out = []  # alerts and state signals
        self.times = []  # telemetry: time of every fan_rpm reading sent (small on MicroPython)

    def _keep(self, outputs):
        for s in outputs:
            if isinstance(s, sg.Signal) and s.kind == sg.KIND_TELEMETRY:
                self.times += [r[0] for r in s.body[sg.T_READINGS] if r[1] == "fan_rpm" and r[0] < 600000]
            elif isinstance(s, sg.Signal):
                self.out.append(s)

    def run_to(self, end_ms, value=None, step_ms=500, sensor="fan_rpm"):
        """Advance to end_ms, a frame every step_ms unless value is None
        (silent), polling at every deadline."""
        device = self.device
        while self.t < end_ms:
            due = device.next_deadline()
            if due is not None and due <= self.t:
                self._keep(device.poll(self.t)[0])
                continue
            if value is not None:
                v = value(self.t) if callable(value) else value
                self._keep(device.feed("uart0", fr.encode_frame(fr.READING, sensor, v), self.t))
            self.t += step_ms
        return None

    def alerts(self, condition):
        return [(s.time_ms, s.body[sg.A_ACTIVE]) for s in self.out
                if isinstance(s, sg.Signal) and s.kind == sg.KIND_ALERT and s.body[sg.A_CONDITION] == condition]

    def sent(self, start, end):
        return [t for t in self.times if start <= t < end]


def test_a_silent_sensor_is_a_lost_link_and_a_second_outage_a_new_alert():
    rig = _Rig(health_board(fan=FAN, fan_rules=[{"kind": "dropout", "for_s": 10}]))
    rig.run_to(60000, 1200)
    rig.run_to(90000)  # silent 30 s
    assert rig.device.shown_states()["fan"] == cs.STALE and rig.device.component_states()["fan"] == cs.OK
    rig.run_to(210000, 1210)  # answers again for 2 min
    assert rig.device.shown_states()["fan"] == cs.OK
    rig.run_to(240000)  # silent again
    assert rig.alerts("link_lost") == [(69500, True), (90000, False), (219500, True)]
    # every reading after the first answer was sent: nothing discarded
    assert rig.sent(90000, 210000) == list(range(90000, 210000, 500))
    assert [s for s in rig.out if isinstance(s, sg.Signal) and s.kind == sg.KIND_STATE] == []
    # a long outage never sends it to service
    rig.run_to(4 * 3600000, step_ms=60000)
    assert rig.device.component_states()["fan"] == cs.OK
    assert [s for s in rig.out if isinstance(s, sg.Signal) and s.kind == sg.KIND_STATE] == []


def test_a_threshold_swinging_with_noise_is_one_incident_and_a_later_one_is_raised():
    rule = {"kind": "threshold", "above": 3000, "clear": 2950}
    rig = _Rig(health_board(fan=FAN, fan_rules=[rule]))
    # around the limit for 10 minutes: every other reading over, every other below clear
    rig.run_to(600000, lambda t: 3010 if (t // 500) % 2 else 2900)
    rig.run_to(700000, 2800)  # below clear for longer than clear_for_s (60 s)
    assert rig.alerts("threshold") == [(0 + 500, True), (660000, False)]
    # over again 2 hours later: a new incident, raised (dedupe_s used to fold it)
    rig.run_to(7200000, 2800, step_ms=50000)
    rig.run_to(7210000, 3100)
    assert rig.alerts("threshold")[2:] == [(7200000, True)]


def _two_on_one_link(extra_rules=None):
    both = [{"kind": "dropout", "for_s": 10}]
    return health_board(fan=FAN, fan_rules=both, temp_rules=list(extra_rules or both))


def test_a_bus_that_goes_quiet_is_one_link_lost_incident_not_one_per_sensor():
    rig = _Rig(_two_on_one_link())
    device = rig.device

    def both(until, silent=False):
        while rig.t < until:
            due = device.next_deadline()
            if due is not None and due <= rig.t:
                rig._keep(device.poll(rig.t)[0])
                continue
            if not silent:
                rig._keep(device.feed("uart0", fr.encode_frame(fr.READING, "fan_rpm", 1200), rig.t))
                if rig.t % 1000 == 0:
                    rig._keep(device.feed("uart0", fr.encode_frame(fr.READING, "coolant_temp", 40.0), rig.t))
            rig.t += 500

    both(60000)
    both(120000, silent=True)  # the cable is pulled: both sensors fall silent
    links = [s for s in rig.out if s.kind == sg.KIND_ALERT and s.body[sg.A_CONDITION] == "link_lost"]
    assert len(links) == 1
    body = links[0].body
    assert body[sg.A_ELEMENT] == "bus:uart0" and body[sg.A_SENSOR] == "" and body[sg.A_COMPONENT] == ""
    assert body[sg.A_ACTIVE] and "link lost on bus:uart0 (sensors coolant_temp, fan_rpm)" in body[sg.A_TEXT]
    assert device.shown_states() == {"coolant_loop": cs.STALE, "fan": cs.STALE}
    both(180000)  # back: one clear, when the last silent sensor answers
    links = [s for s in rig.out if s.kind == sg.KIND_ALERT and s.body[sg.A_CONDITION] == "link_lost"]
    assert [s.body[sg.A_ACTIVE] for s in links] == [True, False]
    assert "answers again" in links[1].body[sg.A_TEXT] and links[1].body[sg.A_SENSOR] == ""
    assert device.shown_states() == {"coolant_loop": cs.OK, "fan": cs.OK}
    both(240000, silent=True)  # quiet again a minute later: a new incident
    links = [s for s in rig.out if s.kind == sg.KIND_ALERT and s.body[sg.A_CONDITION] == "link_lost"]
    assert [s.body[sg.A_ACTIVE] for s in links] == [True, False, True]


def test_one_sensor_silent_while_its_bus_talks_is_its_own_incident_and_hides_no_cable_cut():
    rig = _Rig(_two_on_one_link())
    rig.run_to(60000, 1200)  # fan_rpm talks, coolant_temp never does
    links = [s for s in rig.out if s.kind == sg.KIND_ALERT and s.body[sg.A_CONDITION] == "link_lost"]
    assert len(links) == 1 and links[0].body[sg.A_SENSOR] == "coolant_temp"
    assert links[0].body[sg.A_ELEMENT] == "bus:uart0" and "coolant_temp on coolant_loop" in links[0].body[sg.A_TEXT]
    assert rig.device.shown_states() == {"coolant_loop": cs.STALE, "fan": cs.OK}
    rig.run_to(120000)  # then the cable is cut: the bus's own incident, not hidden by the dead sensor
    links = [s for s in rig.out if s.kind == sg.KIND_ALERT and s.body[sg.A_CONDITION] == "link_lost"]
    assert [(s.body[sg.A_SENSOR], s.body[sg.A_ACTIVE]) for s in links] == [("coolant_temp", True), ("", True)]
    assert links[1].body[sg.A_AFFECTED] == ["fan_rpm"]


def test_a_modbus_slave_that_stops_answering_is_a_lost_link_without_a_declared_rule():
    from support import copy_sources_board
    from edge_agent.core import board as bd
    from edge_agent.core import health as hl
    from edge_agent.core import reading as rd

    board = bd.board_from_dict(copy_sources_board(), "sources.toml")
    defaults = [(sid, [(r.kind, r.params["for_ms"]) for r in s.rules]) for sid, s in sorted(board.sensors.items())]
    # polled registers get the default (3 periods, at least 30 s); pushed sensors do not
    assert defaults == [("air_temp", [("dropout", 30000)]), ("altitude", []), ("cabinet_temp", []),
                        ("door_open", [("dropout", 30000)]), ("latitude", []), ("power", [("dropout", 30000)])]
    engine = hl.HealthEngine(board)
    out = []
    for t in range(0, 60000, 500):
        out += engine.on_reading(rd.Reading(t, "cabinet_temp", 21.0))
        if t < 10000:
            for sid in ("air_temp", "door_open", "power"):
                out += engine.on_reading(rd.Reading(t, sid, 1.0))
        due = engine.deadline()
        if due is not None and due <= t:
            out += engine.poll(t)[0]
    links = sorted((s.body[sg.A_ELEMENT], s.body[sg.A_COMPONENT], s.body[sg.A_SENSOR]) for s in out
                   if s.kind == sg.KIND_ALERT and s.body[sg.A_CONDITION] == "link_lost")
    # slave 1 serves two registers of the cabinet: one alert naming the component; slave 2, one register
    assert links == [("bus:rs485/slave:1", "cabinet", ""), ("bus:rs485/slave:2", "meter", "power")]
    board = bd.board_from_dict(dict(copy_sources_board(), health={"dropout_periods": 0}), "sources.toml")
    assert [sid for sid, s in board.sensors.items() if s.rules] == []
