"""Health scenarios on a virtual clock: generated sensor streams through the
real core (Device, health engine, triage) and the simulated GPIO.

A simulated day takes well under a second: there are no ptys or sleeps
here, only readings stamped with virtual time. The scenario library the
tests and the benchmark share is at the bottom; ``python -m
simulator.scenarios.health`` narrates two of them (a stuck fan quarantined
with its power pin cut, and a bearing wearing out, predicted days ahead).
"""

import heapq
import math
import os
import random

from edge_agent.boardfile import load_board
from edge_agent.core import board as bd
from edge_agent.core import device as dv
from edge_agent.core import reading as rd
from edge_agent.core import signals as sg
from edge_agent.core.outputs import SetOutput
from edge_agent.gateway.gpio import SimulatedGpio
from .. import ROOT

T0 = 1767225600000  # 2026-01-01 00:00 UTC: scenarios start at midnight
DAY_MS = 86400000
HOUR_MS = 3600000


class SensorModel:
    """A sensor with physics enough for health tests: a level (constant or a
    function of the day), a daily cycle peaking mid-afternoon, Gaussian
    noise, and slow 'weather' (an hourly AR(1) wander). Faults are windows
    of virtual time:

        ("stuck", start, end)        repeats the value it had at start
        ("silent", start, end)       sends nothing
        ("fault", start, end, code)  reports a sensor error
        ("rail", start, end, value)  reads a constant (a dead rail, a short)
    """

    def __init__(self, sensor_id, period_ms, level, cycle=0.0, noise=0.0, weather=0.0, seed=0, power_output=""):
        self.id = sensor_id
        self.period_ms = period_ms
        self.level = level if callable(level) else (lambda day, v=level: v)
        self.cycle = cycle
        self.noise = noise
        self.weather_sd = weather
        self.rng = random.Random(seed)
        self.power_output = power_output
        self.faults = []
        self._weather = 0.0
        self._weather_hour = None
        self._frozen = {}

    def fail(self, kind, start_ms, end_ms=None, arg=None):
        self.faults.append((kind, start_ms, end_ms if end_ms is not None else 2**62, arg))
        return self

    def value(self, t_ms):
        day = (t_ms - T0) / DAY_MS
        hour = (t_ms - T0) // HOUR_MS
        while self._weather_hour is None or self._weather_hour < hour:
            self._weather_hour = hour if self._weather_hour is None else self._weather_hour + 1
            self._weather = 0.98 * self._weather + self.rng.gauss(0, self.weather_sd)
        # Peak at 15:00: sin is 1 at a quarter period after 09:00.
        cycle = self.cycle * math.sin(2 * math.pi * (day - 0.375))
        return self.level(day) + cycle + self._weather + self.rng.gauss(0, self.noise)

    def sample(self, t_ms):
        """The Reading at t_ms, or None when the sensor sends nothing."""
        value = self.value(t_ms)
        for kind, start, end, arg in self.faults:
            if start <= t_ms < end:
                if kind == "silent":
                    return None
                if kind == "fault":
                    return rd.Reading(t_ms, self.id, None, rd.FAULT, arg or "open")
                if kind == "rail":
                    return rd.Reading(t_ms, self.id, float(arg))
                if kind == "stuck":
                    frozen = self._frozen.setdefault(start, round(value, 1))
                    return rd.Reading(t_ms, self.id, frozen)
        return rd.Reading(t_ms, self.id, round(value, 3))


class Scenario:
    """Drive a Device with models on a virtual clock; apply its GPIO actions
    to a SimulatedGpio; a model whose power output is off sends nothing."""

    def __init__(self, board, models, device_id="sim-001", start_ms=T0, telemetry_interval_ms=60000):
        self.board = board
        self.device = dv.Device(board, device_id, telemetry_interval_ms=telemetry_interval_ms, telemetry_max_readings=500)
        self.gpio = SimulatedGpio(board.outputs)
        self.models = dict((m.id, m) for m in models)
        self.now = start_ms
        self._queue = [(start_ms + i, m.id) for i, m in enumerate(sorted(self.models.values(), key=lambda m: m.id))]
        heapq.heapify(self._queue)
        self.signals = []
        self.actions = []
        self.notices = []
        self.readings = 0
        self.on_output = None  # optional callback(item), for narration

    def run_until(self, end_ms):
        device = self.device
        while True:
            deadline = device.next_deadline()
            t_reading = self._queue[0][0] if self._queue else None
            if deadline is not None and (t_reading is None or deadline <= t_reading) and deadline <= end_ms:
                self.now = max(self.now, deadline)
                outputs, _ = device.poll(self.now)
                self._collect(outputs)
                continue
            if t_reading is None or t_reading > end_ms:
                break
            t, sensor_id = heapq.heappop(self._queue)
            self.now = t
            model = self.models[sensor_id]
            heapq.heappush(self._queue, (t + model.period_ms, sensor_id))
            if model.power_output and not self.gpio.is_on(model.power_output):
                continue  # unpowered: silent
            reading = model.sample(t)
            if reading is None:
                continue
            self.readings += 1
            self._collect(device.ingest(reading, t))
        self.now = end_ms
        return self

    def _collect(self, outputs):
        for item in outputs:
            if isinstance(item, SetOutput):
                self.gpio.apply(item)
                self.actions.append(item)
            elif isinstance(item, sg.Signal):
                self.signals.append(item)
            else:
                self.notices.append(item)
            if self.on_output is not None:
                self.on_output(item)

    # -- what happened ----------------------------------------------------------

    def alerts(self, condition=None, active=None):
        return [s for s in self.signals if s.kind == sg.KIND_ALERT
                and (condition is None or s.body[sg.A_CONDITION] == condition)
                and (active is None or s.body[sg.A_ACTIVE] is active)]

    def pages(self):
        """Alerts that wake someone: raised, critical or high priority."""
        return [s for s in self.alerts(active=True) if s.priority <= sg.PRIORITY_HIGH]

    def transitions(self, component=None):
        return [(s.time_ms, s.body[sg.S_COMPONENT], s.body[sg.S_FROM], s.body[sg.S_TO]) for s in self.signals
                if s.kind == sg.KIND_STATE and (component is None or s.body[sg.S_COMPONENT] == component)]


# -- the scenario library -------------------------------------------------------


def board_file(name):
    return load_board(os.path.join(ROOT, "boards", name + ".toml"))


def bearing_board(history_days=28, horizon_days=7):
    """A one-sensor board: the pump bearing's temperature, sampled every 5
    minutes (the predictor only needs buckets; 5 min keeps 90 days fast)."""
    return bd.board_from_dict({
        "schema": 1,
        "board": {"name": "bearing-monitor", "model": "EA-BRG-1"},
        "buses": {"uart0": {"port": "/dev/null"}},
        "components": {"bearing": {"part": "B-6205", "description": "Pump drive-end bearing"}},
        "sensors": {"bearing_temp": {
            "bus": "uart0", "component": "bearing", "unit": "degC", "valid_range": [-20, 150], "period_ms": 300000,
            "predict": {"above": 90.0, "horizon_days": horizon_days, "history_days": history_days,
                        "action": "order bearing B-6205 and schedule its replacement"},
        }},
    }, "bearing-monitor")


def bearing_model(seed, drift_per_day=0.0, drift_start_day=10.0):
    """55 degC, +-6 daily, noise 1.0, weather wander (sd ~1.5); optional
    wear: a linear rise from ``drift_start_day``."""
    def level(day):
        return 55.0 + (drift_per_day * (day - drift_start_day) if day > drift_start_day else 0.0)
    return SensorModel("bearing_temp", 300000, level, cycle=6.0, noise=1.0, weather=0.3, seed=seed)


def first_crossing_ms(model, threshold, start_ms, end_ms):
    """When a fresh copy of the model's stream first reads above threshold."""
    t = start_ms
    while t < end_ms:
        if model.value(t) > threshold:
            return t
        t += model.period_ms
    return None


def run_drift(seed, drift_per_day=0.5, days=75):
    """Slow bearing wear. Returns (scenario, first alert ms, first crossing ms)."""
    scenario = Scenario(bearing_board(), [bearing_model(seed, drift_per_day)]).run_until(T0 + days * DAY_MS)
    raised = scenario.alerts(sg.C_PREDICTED, active=True)
    crossing = first_crossing_ms(bearing_model(seed, drift_per_day), 90.0, T0, T0 + days * DAY_MS)
    return scenario, raised[0].time_ms if raised else None, crossing


def run_healthy(seed, days=90):
    return Scenario(bearing_board(), [bearing_model(seed)]).run_until(T0 + days * DAY_MS)


def healthy_models(seed, board, level=0.45, noise=0.004):
    """A steady model for every sensor of ``board``: ``level`` and ``noise``
    are shares of each sensor's limits span."""
    rng = random.Random(seed)
    models = []
    for sensor in sorted(board.sensors.values(), key=lambda s: s.id):
        span = sensor.high - sensor.low
        power = board.components[sensor.component].power_output
        models.append(SensorModel(sensor.id, sensor.period_ms, sensor.low + level * span,
                                  noise=noise * span, seed=rng.randrange(1 << 30), power_output=power))
    return models


def run_stuck_fan(seed=1, repair_after_ms=None):
    """demo-gateway: the fan's tachometer sticks 10 minutes in; it is
    repaired ``repair_after_ms`` later (None: never)."""
    board = board_file("demo-gateway")
    models = healthy_models(seed, board)
    fan = [m for m in models if m.id == "fan_speed"][0]
    stuck_at = T0 + 10 * 60000
    fan.fail("stuck", stuck_at, stuck_at + repair_after_ms if repair_after_ms else None)
    scenario = Scenario(board, models)
    scenario.run_until(stuck_at + 30 * 60000)
    return scenario, stuck_at


def run_rail_storm(seed=1, hold=True):
    """pump-station: the 24 V rail feeding ten zone probes dies; every probe
    reports a fault within a second of each other."""
    board = board_file("pump-station")
    if not hold:
        board.health.storm_hold_ms = 0
    models = healthy_models(seed, board, level=0.4, noise=0.003)
    fail_at = T0 + 5 * 60000
    rng = random.Random(seed)
    for m in models:
        if m.id.startswith("zone_"):
            m.fail("fault", fail_at + rng.randrange(0, 1500), None, "no-power")
    scenario = Scenario(board, models)
    scenario.run_until(fail_at + 10 * 60000)
    return scenario, fail_at


def _narrate():
    from rich.console import Console

    console = Console()

    def say(item):
        t = (scenario_now[0] - T0) / 1000.0
        if isinstance(item, SetOutput):
            console.print("  [bold red]GPIO[/] %8.1f s  %s -> %s  (%s)" % (t, item.output, "ON" if item.on else "OFF", item.reason))
        elif isinstance(item, sg.Signal) and item.kind == sg.KIND_STATE:
            b = item.body
            console.print("  [cyan]state[/] %7.1f s  %s: %s -> %s  %s" % (t, b[sg.S_COMPONENT], b[sg.S_FROM], b[sg.S_TO], b[sg.S_REASON][:90]))
        elif isinstance(item, sg.Signal) and item.kind == sg.KIND_ALERT:
            b = item.body
            console.print("  [yellow]alert[/] %7.1f s  p%d %s %s: %s" % (t, item.priority, b[sg.A_CONDITION], "raised" if b[sg.A_ACTIVE] else "cleared", b[sg.A_TEXT][:110]))

    console.rule("stuck fan tachometer on demo-gateway (virtual clock)")
    board = board_file("demo-gateway")
    models = healthy_models(1, board)
    stuck_at = T0 + 10 * 60000
    [m for m in models if m.id == "fan_speed"][0].fail("stuck", stuck_at, stuck_at + 90000)
    scenario = Scenario(board, models)
    scenario_now = [T0]
    scenario.on_output = lambda item: (scenario_now.__setitem__(0, scenario.now), say(item))
    console.print("fan_speed sticks at t=600 s and is repaired at t=690 s")
    scenario.run_until(stuck_at + 5 * 60000)
    console.print("simulated GPIO now: %s" % scenario.gpio.describe())

    console.rule("bearing wearing out: +0.5 degC/day from day 10, limit 90 degC")
    scenario, raised, crossing = run_drift(seed=3)
    alert = scenario.alerts(sg.C_PREDICTED, active=True)[0]
    console.print("  predicted-failure alert on day %.1f: %s" % ((raised - T0) / DAY_MS, alert.body[sg.A_TEXT]))
    console.print("  first reading above 90 degC on day %.1f: warned %.1f days ahead" % ((crossing - T0) / DAY_MS, (crossing - raised) / DAY_MS))


if __name__ == "__main__":
    _narrate()
