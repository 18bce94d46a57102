"""The engine's cached deadline is exactly the one computed from scratch,
after every reading and poll of a stream that drops out, recovers, sticks,
is quarantined, probed, released and forced (the cache is what lets a
32-sensor device ask after every reading for free)."""

from health_support import fault, good, many_sensor_board

from edge_agent.core.health import HealthEngine
from edge_agent.core.triage import Triage


class _Lcg:
    """Repeatable pseudo-random numbers on both interpreters (MicroPython's
    random has no Random class)."""

    def __init__(self, seed):
        self.state = seed

    def random(self):
        self.state = (self.state * 1103515245 + 12345) % 2147483648
        return self.state / 2147483648.0

    def choice(self, items):
        return items[int(self.random() * len(items))]


def _check(engine, triage):
    assert engine.deadline() == engine._compute_deadline()
    cached = triage.deadline()
    triage._due_valid = False
    assert triage.deadline() == cached


def test_cached_deadline_matches_a_fresh_computation():
    rng = _Lcg(5)
    board = many_sensor_board(6, predict=False, supply_groups=2)
    engine = HealthEngine(board)
    triage = Triage(board)
    sensors = sorted(board.sensors)
    silent = {}  # sensor -> until when it sends nothing (a dropout)
    stuck = {}  # sensor -> the value it repeats
    t = 0
    for step in range(3000):
        t += 250
        sid = sensors[step % len(sensors)]
        due = engine.deadline()
        if due is not None and due <= t:
            for item in engine.poll(t)[0]:
                if getattr(item, "kind", None) == 1:
                    triage.submit(item, t)
            _check(engine, triage)
        triage.poll(t)
        _check(engine, triage)
        roll = rng.random()
        if roll < 0.002:
            silent[sid] = t + rng.choice((2000, 400000))
        elif roll < 0.004:
            stuck[sid] = 50.0
        elif roll < 0.006:
            stuck.pop(sid, None)
        elif roll < 0.007:
            component = board.sensors[sid].component
            if engine.state_of(component) == "ok":
                engine.force(component, t)
            else:
                engine.release(component, t)
            _check(engine, triage)
        if silent.get(sid, 0) > t:
            continue
        if roll > 0.995:
            reading = fault(t, sid)
        else:
            reading = good(t, sid, stuck.get(sid, 40.0 + rng.random() * 5))
        for item in engine.on_reading(reading):
            if getattr(item, "kind", None) == 1:
                triage.submit(item, t)
        _check(engine, triage)
    # The stream did exercise the state machine: quarantines, probes, forces.
    assert engine.transitions > 20, engine.transitions
