"""Scenario simulator speed: simulated seconds per wall second.

Each run is the whole pipeline on the virtual clock
(simulator/scenarios/virtual.py): PhysicalSensors -> core Device (health engine, triage) ->
durable Store on disk -> Ed25519 sealing -> verification -> receiver
SQLite. Healthy devices (no faults), so the figure is the steady state.
Issue 8's target (again in issue 18): >= 10,000x for a 32-sensor device
at 1 Hz, i.e. <= 3.1 us of wall time per reading, all in. The cost is per
reading and per signal, so the speed-up depends on the sample rate: a
32-sensor board at 1 Hz makes 32 readings per simulated second.

Both clocks are printed: wall time (what a CI job waits) and this
process's CPU time (what the code costs; steadier when the 2 shared cores
are busy with other work).

The CPU time of a run still moves by 10-30 % between runs on the shared
VM, more than most single changes gain. ``--instructions`` counts the 1 Hz
case's work per reading in instructions under callgrind instead (a run of
SHORT minus a run of LONG simulated minutes, so imports and setup cancel
out): it repeats to a few instructions whatever else the machine does, and
is the figure to compare two trees by (about 2 min; needs valgrind).

Run: .venv/bin/python bench/bench_simulator.py   (part of `make bench`)
     .venv/bin/python bench/bench_simulator.py --instructions
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import gc  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

# The simulator first: it puts the compiled modules of `make accelerate` on
# the path when they match the sources (simulator/accelerate.py).
from simulator import accelerate  # noqa: E402
from edge_agent.core import device as dv  # noqa: E402
from edge_agent.receiver.registry import Registry  # noqa: E402
from simulator.hardware import physics  # noqa: E402
from simulator.scenarios import spec as sc  # noqa: E402
from simulator.scenarios import virtual as scenario_run  # noqa: E402


def board32(period_ms):
    sensors = {}
    components = {}
    for i in range(32):
        comp = "part_%02d" % (i // 2)
        components[comp] = {"part": "P-%02d" % i}
        sensors["s%02d" % i] = {"bus": "uart0", "component": comp, "unit": "degC", "valid_range": [-40, 125],
                                "period_ms": period_ms,
                                "rules": [{"kind": "stuck", "epsilon": 0.0, "for_s": max(60, 3 * period_ms // 1000)},
                                          {"kind": "jump", "max_step": 30.0}]}
    return {"schema": 1, "board": {"name": "bench-32", "model": "EA-B32"}, "buses": {"uart0": {"port": "/dev/null"}},
            "components": components, "sensors": sensors}


def spec_for(name, duration, board=None, hardware=None, telemetry="10s"):
    data = {"scenario": {"name": name, "duration": duration}, "device": {"telemetry_interval": telemetry},
            "expect": [{"kind": "delivered"}]}
    if board:
        data["scenario"]["board"] = board
    else:
        data["hardware"] = hardware
    return sc.from_dict(data, os.path.join(sc.LIBRARY, "bench.toml"))


# Issue 8: simulated seconds per wall second for a 32-sensor device.
TARGET = 10000
TARGET_CASE = "32 sensors at 1 Hz"

CASES = [
    ("demo-gateway (4 sensors, 0.5-1 s)", lambda: spec_for("demo", "2h", board="boards/demo-gateway.toml")),
    ("32 sensors at 1 Hz", lambda: spec_for("b32-1s", "20m", hardware=board32(1000))),
    ("32 sensors every 10 s", lambda: spec_for("b32-10s", "3h", hardware=board32(10000), telemetry="60s")),
    ("32 sensors every 60 s", lambda: spec_for("b32-60s", "1d", hardware=board32(60000), telemetry="10m")),
    ("bearing, every 5 min (30 days)", lambda: _bearing()),
]


def _bearing():
    spec = sc.load(os.path.join(sc.LIBRARY, "healthy_daily_cycle.toml"))
    spec.duration_ms = 30 * 86400000
    return spec


def breakdown(spec, all_in_us):
    """Where a reading's CPU time goes in ``spec``, phase by phase over
    blocks of a minute of readings (the clock is read per block, not per
    reading), each also as a share of ``all_in_us``
    (the whole run's CPU time per reading): the models, the core Device,
    the CBOR of its telemetry, sealing (Ed25519), the receiver opening each
    message (COSE parse, verify, decode, the body's bytes found in it) and
    storing it (SQLite: one transaction per message, as the run drains
    after every append)."""
    models = spec.models(spec.seed)
    order = sorted(models)
    period = models[order[0]].period_ms
    samplers = [models[sid].sampler() for sid in order]
    device = dv.Device(spec.board, "bench-1", telemetry_interval_ms=spec.telemetry_interval_ms,
                       telemetry_max_readings=500)
    identity = scenario_run.identity_for("bench-1", spec.seed)
    registry = Registry()
    registry.add_entries(identity.registry_entry(include_secret=True))
    workdir = tempfile.mkdtemp(prefix="ea-bench-")
    storage = scenario_run.scratch_receiver(os.path.join(workdir, "receiver.sqlite"))  # as the run's
    clock = time.process_time
    spent = [0.0] * 6
    n = 0
    block = 60  # ticks timed together: the clock's own cost stays out, and little is kept between blocks
    # The cyclic collector is off while timing: a block's readings are kept
    # alive here (the run lets each go at once), and its collections would
    # be charged to whichever phase they fell in.
    gc.disable()
    try:
        for first in range(0, spec.duration_ms // period, block):
            ticks = range(first, min(first + block, spec.duration_ms // period))
            t0 = clock()
            readings = [sample(physics.T0 + i + k * period) for k in ticks for i, sample in enumerate(samplers)]
            t1 = clock()
            ingest = device.ingest
            next_deadline = device.next_deadline
            outputs = []
            for reading in readings:
                made = ingest(reading, reading.time_ms)
                if made:
                    outputs.extend(made)
                next_deadline()
            t2 = clock()
            encoded = [signal.encode() for signal in outputs]
            t3 = clock()
            sealed = [identity.seal(data) for data in encoded]
            t4 = clock()
            opened = []
            for message in sealed:
                bodies = []
                opened.append((message, registry.open_signals(message, None, bodies), bodies))
            t5 = clock()
            for message, signals, bodies in opened:
                storage.begin()
                storage.store_message(message, signals, bodies, 0)  # the receiver's own store path
                storage.commit()
            t6 = clock()
            for i, (a, b) in enumerate(((t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5), (t5, t6))):
                spent[i] += b - a
            n += len(readings)
    finally:
        gc.enable()
        storage.close()
        shutil.rmtree(workdir, ignore_errors=True)
    parts = [("models (simulator)", spent[0]), ("core Device.ingest + next_deadline", spent[1]),
             ("core CBOR: device encodes its telemetry", spent[2]), ("sealing (Ed25519)", spent[3]),
             ("receiver opens (parse, verify, decode)", spent[4]), ("receiver stores (SQLite)", spent[5])]
    timed = sum(spent) / n * 1e6
    print("  timed alone (CPU time), per reading (share of the %.2f us all in):" % all_in_us)
    for name, dt in parts:
        print("    %-46s %5.2f us  %3.0f%%" % (name, dt / n * 1e6, 100.0 * dt / n * 1e6 / all_in_us))
    print("    %-46s %5.2f us  %3.0f%%  (event loop, device store, drain)" % (
        "the rest", all_in_us - timed, 100.0 * (all_in_us - timed) / all_in_us))
    target_us = 1e6 / TARGET / 32
    print("  the target needs <= %.2f us per reading all in; the models and the core Device alone take %.2f us, "
          "encoding, sealing, opening and storing the signals %.2f us" % (
              target_us, sum(spent[:2]) / n * 1e6, sum(spent[2:]) / n * 1e6))


# --instructions: the 1 Hz case for SHORT and LONG simulated minutes; their
# difference is LONG - SHORT minutes of readings (60 telemetry messages
# per 10 minutes), every per-reading and per-message cost included.
SHORT_MIN, LONG_MIN = 1, 11


def count_child(minutes):
    """The --count-child process run under callgrind: the 1 Hz case for
    ``minutes`` simulated minutes; prints its readings."""
    spec = spec_for("b32-1s", "%dm" % minutes, hardware=board32(1000))
    result = scenario_run.run(spec, record=False)
    assert result.passed, [o.evidence for o in result.outcomes]
    print(result.readings_count)
    return 0


def instructions_per_reading():
    """User-space instructions per reading of the 1 Hz case, all in,
    counted by callgrind (PYTHONHASHSEED fixed: the same run each time).
    None when valgrind is not installed."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    env = dict(os.environ, PYTHONHASHSEED="0")
    counts = []
    readings = []
    for minutes in (SHORT_MIN, LONG_MIN):
        command = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
                   os.path.abspath(__file__), "--count-child", str(minutes)]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        match = re.search(r"Collected : (\d+)", done.stderr)
        if match is None:
            raise RuntimeError("no instruction count from callgrind:\n" + done.stderr[-2000:])
        counts.append(int(match.group(1)))
        readings.append(int(done.stdout.split()[-1]))
    return (counts[1] - counts[0]) / (readings[1] - readings[0])


def main():
    if sys.argv[1:2] == ["--count-child"]:
        return count_child(int(sys.argv[2]))
    if sys.argv[1:2] == ["--instructions"]:
        per_reading = instructions_per_reading()
        if per_reading is None:
            print("valgrind is not installed: apt-get install valgrind")
            return 1
        print("%s, %d to %d simulated minutes: %.0f instructions per reading, all in (callgrind); %s" % (
            TARGET_CASE, SHORT_MIN, LONG_MIN, per_reading, accelerate.status))
        return 0
    speeds = {}
    print("per-reading path: %s" % accelerate.status)
    print("%-34s %12s %10s %10s %9s %15s %14s" % ("device", "simulated", "wall s", "readings", "signals", "sim s / wall s",
                                                 "sim s / CPU s"))
    for name, make in CASES:
        spec = make()
        best = None
        for _ in range(2):
            result = scenario_run.run(spec, record=False)
            assert result.passed, [o.evidence for o in result.outcomes]
            if best is None or result.wall_s < best.wall_s:
                best = result
        cpu_speed = spec.duration_ms / 1000.0 / max(best.cpu_s, 1e-9)
        print("%-34s %12s %10.2f %10d %9d %15s %14s" % (name, sc.format_duration(spec.duration_ms), best.wall_s,
                                                        best.readings_count, len(best.issued),
                                                        "{:,.0f}x".format(best.speed), "{:,.0f}x".format(cpu_speed)))
        speeds[name] = best
    one_hz = speeds[TARGET_CASE]
    verdict = "met" if one_hz.speed >= TARGET else "NOT met (%.0f%% of it)" % (100.0 * one_hz.speed / TARGET)
    cpu_us = one_hz.cpu_s / max(one_hz.readings_count, 1) * 1e6
    print("\nissue 8 target, %s: {:,.0f}x against >= {:,}x: %s; {:.2f} us of wall time per reading, all in "
          "({:.2f} us of CPU time)".format(one_hz.speed, TARGET, one_hz.wall_s / max(one_hz.readings_count, 1) * 1e6,
                                           cpu_us) % (TARGET_CASE, verdict))
    breakdown(one_hz.spec, cpu_us)


if __name__ == "__main__":
    sys.exit(main())
