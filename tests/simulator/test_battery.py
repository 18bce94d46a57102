"""The battery model (simulator/hardware/battery.py) behind the ``battery`` process:
it sags under load, recovers when the load stops, and ages."""

from simulator.hardware import physics
from simulator.hardware.battery import Battery

HOUR = 3600000
DAY = 86400000
PUMP = {"load_a": 2.0, "peak_a": 40.0, "peak_start": 18.0, "peak_hours": 0.5, "charge_a": 12.0,
        "charge_start": 9.0, "charge_hours": 8.0}


def test_sags_at_once_under_load_a_little_more_over_minutes_and_recovers():
    b = Battery(PUMP, physics.T0)
    before = b.voltage(physics.T0 + 18 * HOUR - 60000)  # 17:59, the pump off
    at_start = b.voltage(physics.T0 + 18 * HOUR)  # the pump starts: I * R at once
    late = b.voltage(physics.T0 + 18 * HOUR + 25 * 60000)  # polarisation has built up
    after = b.voltage(physics.T0 + 18 * HOUR + 30 * 60000)  # the pump stops
    recovered = b.voltage(physics.T0 + 19 * HOUR)
    assert abs((before - at_start) - 40.0 * 0.015) < 0.05, (before, at_start)
    assert late < at_start - 0.3  # ~40 A * 10 mOhm of polarisation after 2.5 time constants
    assert after > late + 0.5  # the resistive drop goes at once
    assert after < recovered < before  # the rest comes back over minutes, less the charge the pump took
    assert 12.4 < before < 12.8 and 11.3 < late < 11.8


def test_ageing_fades_capacity_raises_resistance_and_deepens_the_evening_sag():
    params = dict(PUMP, fade_per_cycle=0.005)
    b = Battery(params, physics.T0)
    evening = []
    for day in range(0, 150, 30):
        evening.append(b.voltage(physics.T0 + day * DAY + 18 * HOUR + 29 * 60000))
    assert evening == sorted(evening, reverse=True), evening  # lower every month
    assert evening[0] > 11.4 and evening[-1] < 11.0, evening
    assert 0.3 < b.lost() < 0.6 and b.capacity_ah() < 70.0 and b.r_internal() > 0.025


def test_charger_tapers_near_full_and_never_overfills():
    b = Battery({"load_a": 0.0, "charge_a": 20.0, "charge_start": 0.0, "charge_hours": 24.0, "initial_soc": 0.5},
                physics.T0)
    b.voltage(physics.T0 + 2 * DAY)
    assert b.soc() <= 1.0 and b.charge_ah <= b.capacity_ah()
    assert b.current_at(b.t_ms) > -2.0  # tapered to (almost) nothing at full


def test_the_battery_process_is_a_physical_sensor_and_repeatable():
    params = dict(PUMP, fade_per_cycle=0.005, noise=0.01, quantum=0.01)
    a = physics.PhysicalSensor("battery_v", 120000, "battery", params, seed=4)
    b = a.fresh()
    ta = [a.sample(physics.T0 + i * 120000).value for i in range(2000)]
    tb = [b.sample(physics.T0 + i * 120000).value for i in range(2000)]
    assert ta == tb and min(ta) < 11.6 < 12.4 < max(ta)
    assert all(abs(v * 100 - round(v * 100)) < 1e-6 for v in ta)  # quantised to 10 mV


def test_bad_parameters_are_refused_with_what_to_fix():
    try:
        Battery({"capacity_ah": 0.0}, physics.T0)
    except ValueError as exc:
        assert "capacity_ah" in str(exc)
    else:
        raise AssertionError("a battery with no capacity was accepted")
