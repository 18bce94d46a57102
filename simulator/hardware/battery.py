"""A battery that sags under load, recovers, and ages: the ``battery``
process of simulator/hardware/physics.py (its terminal voltage is the reading).

    V = OCV(state of charge) - I * R_internal - V_polarisation

- **Open-circuit voltage** is linear in the state of charge between
  ``v_empty`` and ``v_full`` (a 12 V lead-acid block: 11.9 to 12.7 V).
- **Sag**: the current ``I`` (discharge positive) drops ``I * R_internal``
  at once, and a polarisation voltage follows ``I * r_polar`` with time
  constant ``tau_min``: a load step sags the voltage at once and a little
  more over minutes; when the load stops it **recovers** the same way.
- **Load and charge**, by time of day: a base load ``load_a`` all day, a
  peak ``peak_a`` for ``peak_hours`` from ``peak_start`` (a pump, a
  heater, a modem's transmit burst), and a charger ``charge_a`` (solar)
  for ``charge_hours`` from ``charge_start``, tapering above 90% charge.
- **Ageing**: the capacity fades by ``fade_per_cycle`` per equivalent full
  cycle (ampere-hours discharged / the new capacity) and ``fade_per_day``
  with calendar time, down to 5% at most; the internal resistance grows
  with the lost fraction: ``R = r_internal * (1 + r_age * lost)``. An old
  battery therefore sags further under the same load, from a state of
  charge that a peak draws down faster.

Integrated with Euler steps of at most a minute (the fastest time constant
is ``tau_min``, minutes), deterministic: the noise is the sensor's.
"""

import math

DAY_MS = 86400000
HOUR_MS = 3600000
STEP_MS = 60000
# Above this state of charge a charger moves from constant current to
# constant voltage: the current tapers linearly to zero at full.
TAPER_FROM = 0.9

DEFAULTS = {
    "capacity_ah": 100.0,
    "v_full": 12.7,
    "v_empty": 11.9,
    "r_internal": 0.015,
    "r_polar": 0.01,
    "tau_min": 10.0,
    "r_age": 3.0,
    "load_a": 2.0,
    "peak_a": 0.0,
    "peak_start": 18.0,
    "peak_hours": 0.5,
    "charge_a": 0.0,
    "charge_start": 9.0,
    "charge_hours": 8.0,
    "fade_per_cycle": 0.0,
    "fade_per_day": 0.0,
    "initial_soc": 1.0,
}
KEYS = frozenset(DEFAULTS)


def _in_window(hour, start, hours):
    """Whether ``hour`` of the day lies in [start, start + hours), across midnight."""
    return (hour - start) % 24.0 < hours


class Battery:
    def __init__(self, params, start_ms):
        p = dict(DEFAULTS)
        p.update((k, v) for k, v in params.items() if k in KEYS)
        if p["capacity_ah"] <= 0 or p["tau_min"] <= 0 or p["v_full"] <= p["v_empty"]:
            raise ValueError("battery: capacity_ah and tau_min must be above 0 and v_full above v_empty")
        self.p = p
        self.start_ms = start_ms
        self.t_ms = start_ms
        self.charge_ah = p["initial_soc"] * p["capacity_ah"]
        self.discharged_ah = 0.0  # throughput, for equivalent full cycles
        self.v_polar = 0.0
        self.current = 0.0

    # -- ageing ---------------------------------------------------------------

    def lost(self):
        """The fraction of the new capacity lost to cycles and calendar time."""
        p = self.p
        cycles = self.discharged_ah / p["capacity_ah"]
        days = (self.t_ms - self.start_ms) / float(DAY_MS)
        return min(0.95, p["fade_per_cycle"] * cycles + p["fade_per_day"] * days)

    def capacity_ah(self):
        return self.p["capacity_ah"] * (1.0 - self.lost())

    def r_internal(self):
        return self.p["r_internal"] * (1.0 + self.p["r_age"] * self.lost())

    def soc(self):
        return max(0.0, min(1.0, self.charge_ah / self.capacity_ah()))

    # -- the circuit ------------------------------------------------------------

    def current_at(self, t_ms):
        """The battery current at t_ms, amperes, discharge positive."""
        p = self.p
        hour = ((t_ms - self.start_ms) % DAY_MS) / float(HOUR_MS)
        draw = p["load_a"]
        if p["peak_a"] and _in_window(hour, p["peak_start"], p["peak_hours"]):
            draw += p["peak_a"]
        charge = 0.0
        if p["charge_a"] and _in_window(hour, p["charge_start"], p["charge_hours"]):
            soc = self.soc()
            charge = p["charge_a"] if soc < TAPER_FROM else p["charge_a"] * max(0.0, (1.0 - soc) / (1.0 - TAPER_FROM))
        return draw - charge

    def voltage(self, t_ms):
        """Advance to t_ms; the terminal voltage there."""
        p = self.p
        tau_ms = p["tau_min"] * 60000.0
        while self.t_ms < t_ms:
            dt = min(STEP_MS, t_ms - self.t_ms)
            current = self.current_at(self.t_ms)
            amp_hours = current * dt / float(HOUR_MS)
            if amp_hours > 0:
                self.discharged_ah += min(amp_hours, self.charge_ah)
            self.charge_ah = max(0.0, min(self.capacity_ah(), self.charge_ah - amp_hours))
            # First-order relaxation toward I * r_polar, exact for a step.
            target = current * p["r_polar"]
            self.v_polar = target + (self.v_polar - target) * math.exp(-dt / tau_ms)
            self.t_ms += dt
        self.current = self.current_at(t_ms)
        ocv = p["v_empty"] + (p["v_full"] - p["v_empty"]) * self.soc()
        return ocv - self.current * self.r_internal() - self.v_polar
