"""Virtual sensors with physical behaviour, for scenarios on a virtual clock.

A ``PhysicalSensor`` is a process (what the quantity really does) plus
faults (what the sensor or the part does wrong, in windows of virtual
time), quantised like a real converter. The processes:

    steady        a level with a daily cycle (peak at peak_hour, 15:00 by
                  default), Gaussian noise and
                  slow "weather" (an hourly AR(1) wander): fans, flows, rails
    coolant_loop  a thermal mass heated by a load and cooled through a
                  thermostat-controlled radiator, losing heat to an ambient
                  that follows a daily cycle; integrated at the sample period
    bearing       a temperature or vibration level that grows with wear from
                  a start day, linearly or exponentially, plus cycle and noise
    battery       a battery's terminal voltage: sags under load through its
                  internal resistance, recovers when the load stops, and
                  ages (capacity fade, rising resistance): simulator/hardware/battery.py

Faults (``add_fault``), each active in [start, end):

    stuck         repeats the value it had when the fault began
    drift         adds ``per_day`` per day since the fault began (sensor ageing);
                  or goes from adding ``from`` to adding ``to`` over ``over_ms``,
                  ``shape`` "linear" or "exponential" (time constant ``tau_ms``),
                  then holds ``to``: wear or ageing on any process
    offset        adds ``by`` while active (a step: a shifted calibration,
                  a blocked vent); ``step`` is the same fault
    spike         adds ``size`` to ``count`` consecutive readings
    noise_burst   adds Gaussian noise of sd ``sd``
    dropout       sends nothing (a loose connector, a dead sensor)
    sensor_fault  reports its own error code (an ``E`` frame: ``code``)
    rail          reads a constant ``value`` (a dead supply, a short)
    cooling_loss  coolant_loop only: the radiator stops (a failed pump)

Everything random comes from one ``random.Random`` per sensor seeded by the
scenario, so a run is repeatable; ``fresh()`` returns an identical copy
that has not run yet (the expectations use it to find when a model first
crosses a limit).
"""

import math
import random
from typing import Any, Callable, Final

from edge_agent.core import reading as rd
from .battery import Battery

# Final: constants to mypyc (`make accelerate`), not a lookup per use. The
# per-sample code calls math.sin etc. by name: mypyc makes those C calls
# on unboxed floats, where an alias would be a generic call.
T0: Final = 1767225600000  # 2026-01-01 00:00 UTC: scenarios start at midnight
DAY_MS: Final = 86400000
HOUR_MS: Final = 3600000
TWO_PI: Final = 2 * math.pi

# Standard normals are drawn a block at a time (see PhysicalSensor._gauss).
NORMALS_BLOCK = 256


def _normal_block(rng: Any, n: int) -> "list[float]":
    """The next ``n`` standard normals of ``rng.gauss``, in order: the same
    arithmetic as CPython's Random.gauss (a pair from two random() calls,
    Box-Muller), without a Python call per number."""
    random = rng.random
    out: "list[float]" = []
    pending = rng.gauss_next  # the second of a pair gauss() already made
    if pending is not None:
        rng.gauss_next = None
        out.append(pending)
    for _ in range(n // 2):
        u1: float = random()  # random() returns a float: the hints convert nothing
        u2: float = random()
        x2pi = u1 * TWO_PI
        g2rad = math.sqrt(-2.0 * math.log(1.0 - u2))
        out.append(math.cos(x2pi) * g2rad)
        out.append(math.sin(x2pi) * g2rad)
    return out


def round3(value: float) -> float:
    """``round(value, 3)``, bit for bit, without its decimal conversion
    (about a third of a steady sample's time). round() rounds the exact
    binary value of ``value`` to the nearest multiple of 0.001 (ties to
    even) and returns the double nearest that decimal, which is what
    ``n / 1000.0`` returns for the integer n: so n is found from the
    product ``value * 1000.0``, whose rounding error (under 1e-7 below
    1e9) decides nothing unless the fraction is within 1e-6 of a half;
    those, the huge, NaN and a result of zero (its sign) go to round().
    Callers pass a float (never an int: round() would return an int)."""
    y = value * 1000.0
    if -1e9 < y < 1e9:
        n = math.floor(y)
        fraction = y - n
        if fraction < 0.499999 or fraction > 0.500001:
            if fraction > 0.5:
                n += 1
            if n != 0:
                return n / 1000.0
    return round(value, 3)


def _blocks_match_gauss():
    """True when _normal_block gives this interpreter's Random.gauss numbers
    bit for bit (checked once at import; if not, every draw calls gauss)."""
    try:
        for seed in (1, 12345):
            a, b = random.Random(seed), random.Random(seed)
            expected = [a.gauss(0, 1.0) for _ in range(200)]
            drawn = _normal_block(b, 200)
            if [repr(0 + z * 1.0) for z in drawn] != [repr(x) for x in expected] or a.getstate() != b.getstate():
                return False
        return True
    except Exception:  # an interpreter whose Random has no gauss_next
        return False


BLOCK_NORMALS = _blocks_match_gauss()

SENSOR_FAULTS = ("stuck", "drift", "spike", "noise_burst", "dropout", "sensor_fault", "rail", "cooling_loss",
                 "offset", "step")
DEFAULT_PEAK_HOUR = 15.0  # the daily cycle peaks at 15:00 unless peak_hour says otherwise


def drift_amount(args, elapsed_ms):
    """What a drift fault adds ``elapsed_ms`` after it began."""
    per_day = args.get("per_day")
    if per_day is not None:
        return per_day * elapsed_ms / DAY_MS
    start = args.get("from", 0.0)
    over = args["over_ms"]
    if elapsed_ms >= over:
        return args["to"]
    u = elapsed_ms / over
    if args.get("shape", "linear") == "exponential":
        k = over / args.get("tau_ms", over / 4.0)
        u = math.expm1(k * u) / math.expm1(k)
    return start + (args["to"] - start) * u


def phase_of(params):
    """The daily cycle's phase in days: sin(2 pi (day - phase)) peaks at peak_hour."""
    return params.get("peak_hour", DEFAULT_PEAK_HOUR) / 24.0 - 0.25
PROCESSES = ("steady", "coolant_loop", "bearing", "battery")


class Fault:
    __slots__ = ("kind", "start", "end", "args", "frozen", "left")

    def __init__(self, kind, start, end, args):
        self.kind = kind
        self.start = start
        self.end = end
        self.args = args
        self.frozen = None
        self.left = args.get("count", 1)


class PhysicalSensor:
    """``params`` is the scenario's [sensors.ID] table (validated), with
    defaults filled in by the caller; ``start_ms`` is the scenario's T0."""

    # Typed for mypyc (`make accelerate`): what a steady sample touches.
    # float only where the value is a float whatever the params say.
    _normals: "list[float]"
    _next_normal: int
    _weather: float
    _weather_until: int  # the weather holds before this time (ms): its hour's end

    def __init__(self, sensor_id, period_ms, process, params, seed, start_ms=T0, power_output=""):
        if process not in PROCESSES:
            raise ValueError("unknown process %r" % process)
        self.id = sensor_id
        self.period_ms = period_ms
        self.process = process
        self.params = dict(params)
        self.seed = seed
        self.start_ms = start_ms
        self.power_output = power_output
        self.quantum = float(params.get("quantum", 0.0))
        self.faults = []
        self.rng = random.Random(seed)
        self._normals = []  # drawn from rng ahead, taken in order (_gauss)
        self._next_normal = 0
        self._weather = 0.0
        self._weather_hour = None
        self._weather_until = -(2 ** 61)  # none drawn yet: the first sample draws it
        # Parameters read on every sample, looked up once.
        self._level = self.params.get("level", 0.0)
        self._cycle_amp = self.params.get("cycle", 0.0)
        self._noise = self.params.get("noise", 0.0)
        self._weather_sd = self.params.get("weather", 0.0)
        self._phase = phase_of(self.params)  # 0.375 for the default 15:00 peak, bit for bit
        self._battery = Battery(self.params, start_ms) if process == "battery" else None
        # coolant_loop state
        self._temp = None
        self._last_t = None
        self._open = False

    def fresh(self):
        copy = PhysicalSensor(self.id, self.period_ms, self.process, self.params, self.seed, self.start_ms,
                              self.power_output)
        for f in self.faults:
            copy.add_fault(f.kind, f.start, f.end, **f.args)
        return copy

    def add_fault(self, kind, start_ms, end_ms=None, **args):
        if kind not in SENSOR_FAULTS:
            raise ValueError("unknown sensor fault %r" % kind)
        self.faults.append(Fault(kind, start_ms, end_ms if end_ms is not None else 2 ** 62, args))
        return self

    # -- the process --------------------------------------------------------

    def _day(self, t_ms):
        return (t_ms - self.start_ms) / DAY_MS

    def _cycle(self, day, amplitude):
        # Peak at peak_hour (15:00 by default): sin is 1 a quarter period
        # after peak_hour - 6 h.
        return amplitude * math.sin(TWO_PI * (day - self._phase))

    def _gauss(self, mu, sigma):
        """``self.rng.gauss(mu, sigma)``: the same numbers in the same order
        (every draw of this sensor comes through here), the standard normals
        made a block at a time."""
        i = self._next_normal
        normals = self._normals
        if i >= len(normals):
            if not BLOCK_NORMALS:
                return self.rng.gauss(mu, sigma)
            normals = self._normals = _normal_block(self.rng, NORMALS_BLOCK)
            i = 0
        self._next_normal = i + 1
        return mu + normals[i] * sigma

    def _weather_at(self, t_ms):
        hour = (t_ms - self.start_ms) // HOUR_MS
        if self._weather_hour is not None and self._weather_hour >= hour:
            return self._weather  # the same hour: no new step
        sd = self._weather_sd
        while self._weather_hour is None or self._weather_hour < hour:
            self._weather_hour = hour if self._weather_hour is None else self._weather_hour + 1
            self._weather = 0.98 * self._weather + self._gauss(0, sd)
        self._weather_until = self.start_ms + (hour + 1) * HOUR_MS
        return self._weather

    def true_value(self, t_ms, faults_now=()):
        """The quantity itself at t_ms (before the sensor's own faults)."""
        p = self.params
        day = self._day(t_ms)
        if self.process == "coolant_loop":
            return self._coolant(t_ms, day, any(f.kind == "cooling_loss" for f in faults_now))
        if self._battery is not None:
            return self._battery.voltage(t_ms)
        weather = self._weather_at(t_ms)
        level = self._level
        if self.process == "bearing":
            start = p.get("wear_start_day", 0.0)
            if day > start:
                worn = day - start
                if p.get("wear", "linear") == "exponential":
                    # wear_per_day is the daily growth of the excess, e.g. 0.05
                    level += p.get("wear_scale", 1.0) * (math.exp(p.get("wear_per_day", 0.0) * worn) - 1.0)
                else:
                    level += p.get("wear_per_day", 0.0) * worn
        return level + self._cycle_amp * math.sin(TWO_PI * (day - self._phase)) + weather

    def _coolant(self, t_ms, day, cooling_lost):
        """dT/dt = load + (ambient - T) / tau_loss - radiator, in degC per
        minute, Euler steps of at most 10 s: the loop's time constant is
        minutes, so 10 s steps are accurate to well under the noise."""
        p = self.params
        ambient_mean = p.get("ambient", 20.0)
        swing = p.get("ambient_swing", 0.0)
        setpoint = p.get("setpoint", 80.0)
        band = p.get("band", 4.0)
        if self._temp is None:
            self._temp = p.get("initial", setpoint)
            self._last_t = t_ms
        step = 10000
        t = self._last_t
        while t < t_ms:
            dt = min(step, t_ms - t)
            ambient = ambient_mean + self._cycle(self._day(t), swing)
            # Thermostat with hysteresis: open above setpoint + band/2,
            # closed below setpoint - band/2.
            if self._temp > setpoint + band / 2:
                self._open = True
            elif self._temp < setpoint - band / 2:
                self._open = False
            radiator = p.get("cooling", 3.0) if (self._open and not cooling_lost) else 0.0
            rate = p.get("load", 1.5) + (ambient - self._temp) / p.get("tau_loss_min", 60.0) - radiator
            self._temp += rate * dt / 60000.0
            t += dt
        self._last_t = t_ms
        return self._temp

    # -- the sensor ----------------------------------------------------------

    def sample(self, t_ms):
        """The Reading the sensor sends at t_ms, or None when it sends nothing."""
        if not self.faults and self.process == "steady":
            return self._steady(t_ms)
        active = [f for f in self.faults if f.start <= t_ms < f.end] if self.faults else ()
        value = self.true_value(t_ms, active)
        noise_sd = self._noise
        value += self._gauss(0, noise_sd) if noise_sd else 0.0
        if not active:
            return rd.Reading(t_ms, self.id, self._quantise(value))
        for f in active:
            kind = f.kind
            if kind == "dropout":
                return None
            if kind == "sensor_fault":
                return rd.Reading(t_ms, self.id, None, rd.FAULT, f.args.get("code", "open"))
            if kind == "rail":
                return rd.Reading(t_ms, self.id, float(f.args["value"]))
            if kind == "drift":
                value += drift_amount(f.args, t_ms - f.start)
            elif kind == "offset" or kind == "step":
                value += f.args["by"]
            elif kind == "noise_burst":
                value += self._gauss(0, f.args["sd"])
            elif kind == "spike" and f.left > 0:
                f.left -= 1
                value += f.args["size"]
        for f in active:
            if f.kind == "stuck":
                if f.frozen is None:
                    f.frozen = self._quantise(value)
                return rd.Reading(t_ms, self.id, f.frozen)
        return rd.Reading(t_ms, self.id, self._quantise(value))

    def sampler(self):
        """The function that does sample() for this sensor as it is now
        (faults added): for a faultless steady one, the bulk of a big board,
        _steady's arithmetic in a closure over its parameters."""
        if not self.faults and self.process == "steady":
            return self._steady_sampler()
        return self.sample

    def _steady(self, t_ms):
        """sample() for a faultless steady sensor: true_value, noise and
        _quantise inlined, the same arithmetic in the same order (so the
        same bits)."""
        elapsed = t_ms - self.start_ms
        day = elapsed / DAY_MS
        weather = self._weather if t_ms < self._weather_until else self._weather_at(t_ms)
        value = self._level + self._cycle_amp * math.sin(TWO_PI * (day - self._phase)) + weather
        noise_sd = self._noise
        value += self._gauss(0, noise_sd) if noise_sd else 0.0
        return rd.Reading(t_ms, self.id, self._quantise(value))

    def _steady_sampler(self) -> "Callable[[int], rd.Reading]":
        """_steady as a closure: its parameters are locals, the noise's
        normals are taken from the block in place, and a flat sensor (no
        daily cycle, a level that is not zero) skips the sine: level + 0.0 *
        sin(x) is level, bit for bit, whatever the sine's sign. The
        parameters are floats here (an int level or noise is converted
        exactly, as the arithmetic with a float would), typed for mypyc."""
        start: int = self.start_ms
        level = float(self._level)
        amp = float(self._cycle_amp)
        phase: float = self._phase
        noise_sd = float(self._noise)
        noisy = bool(self._noise)
        quantum: float = self.quantum
        sid: str = self.id
        flat = amp == 0 and level != 0
        me = self

        def sample(t_ms: int) -> "rd.Reading":
            if t_ms < me._weather_until:
                weather = me._weather
            else:
                weather = float(me._weather_at(t_ms))
            if flat:
                value = level + weather
            else:
                value = level + amp * math.sin(TWO_PI * ((t_ms - start) / DAY_MS - phase)) + weather
            if noisy:
                i = me._next_normal
                normals = me._normals
                if i < len(normals):
                    me._next_normal = i + 1
                    value += 0.0 + normals[i] * noise_sd
                else:
                    value += float(me._gauss(0, noise_sd))
            else:
                value += 0.0
            if quantum > 0:
                return rd.Reading(t_ms, sid, round(round(value / quantum) * quantum, 9))
            return rd.Reading(t_ms, sid, round3(value))

        return sample

    def _quantise(self, value):
        if self.quantum > 0:
            return round(round(value / self.quantum) * self.quantum, 9)
        return round3(value)

    def first_crossing(self, above=None, below=None, end_ms=None):
        """When a fresh copy first sends a value above ``above`` (or below
        ``below``), scanning at the sample period; None if never by end_ms."""
        model = self.fresh()
        t = self.start_ms
        while t < end_ms:
            r = model.sample(t)
            if r is not None and r.value is not None:
                if (above is not None and r.value > above) or (below is not None and r.value < below):
                    return t
            t += self.period_ms
        return None
