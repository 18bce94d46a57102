"""Memory: the whole firmware (code in a ROMFS image, as on a board; TLS
to a real mosquitto; sensors on a pty) through a simulated 24 hours under
a hard heap limit, without MemoryError, with gc.mem_free() logged.

The unix port is 64-bit: pointers, and so function objects, dicts and
lists, are twice an ESP32's. HEAP_BUDGET is what fits here today with a
margin (docs/firmware.md: peak use ~184 KiB; with 512-byte hot-path
buffers 216 KiB passed and 208 KiB passed two runs in three, failing on
fragmentation, a 513-byte block refused with ~29 KiB free; the issue's
96 KiB is not reached on this port). The measured figures are printed on
every run:
    firmware memory: budget ..., free after start ..., min free ..., peak use ..., steady ...

The same day runs on the 32-bit stand-in of `make micropython32` (an
ESP32-sized heap, the firmware frozen into the binary or in ROMFS) when it
has been built (build/micropython32, or EA_MICROPYTHON32_DIR), and is
skipped, saying how to build it, when it has not.
"""

import os
import re
import time

import pytest
from fw_support import FrameWriter, Rig, demo_values, heap_lines, stop_firmware

from edge_agent.tools import firmware_build as fb
from edge_agent.tools import micropython32 as mp32
from simulator.fixtures.broker import Mosquitto

pytestmark = pytest.mark.integration

SPEED = 8640  # a day in 10 s
DAY_S = 24 * 3600
# The firmware's own heap (the ROM image's bytes come on top, see rom_boot.py).
HEAP_BUDGET = int(os.environ.get("EA_FIRMWARE_HEAP", str(240 * 1024)))
# The 32-bit stand-in's heap (edge_agent/tools/micropython32.py), unless
# EA_FIRMWARE32_HEAP says otherwise: the smallest that passed 3 in 3, steady
# and through 20 broker restarts (docs/firmware.md, "A 32-bit stand-in"):
# frozen 68 KiB steady and 72 KiB with restarts (68 passed 2 in 3), under
# issue 19's floor of 96 KiB (the 64 KiB goal is not met: the start leaves
# 8.4 KiB free there, and the day's alerts then find no 458-byte block);
# ROMFS, 112 KiB both days (its code's names and objects take ~40 KiB more
# heap than frozen). What fails first is an alert's ~460-byte record, or
# plain exhaustion at a reconnect.
HEAP32 = {"frozen": 68 * 1024, "romfs": 112 * 1024}
HEAP32_RESTARTS = {"frozen": 72 * 1024, "romfs": 112 * 1024}
if os.environ.get("EA_FIRMWARE32_HEAP"):
    HEAP32 = HEAP32_RESTARTS = dict.fromkeys(HEAP32, int(os.environ["EA_FIRMWARE32_HEAP"]))


@pytest.fixture(scope="session")
def rom_image(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("firmware-build"))
    fb.build(out, host=True)
    return os.path.join(out, "bundle.romfs")


def run_day(rig, pty, broker_port, budget, heap, insecure=False, restart=None, **boot):
    """The simulated day: start the firmware (``boot``: rom=IMAGE, or
    micropython=BINARY and frozen=True), stream at 200 frames/s for a day
    at SPEED, drain, stop; assert nothing lost and no growth; return and
    print the figures (bytes). ``restart`` (broker, N): stop and start that
    broker N times, evenly through the day."""
    writer = None
    try:
        rig.start_receiver(broker_port, insecure=insecure)
        # With restarts the reconnect backoff is capped at 150 ms of real
        # time (the backoff runs in real time, the day at SPEED): otherwise
        # the device would sleep through several restarts in one backoff.
        extra = ("--backoff-max-ms", "150") if restart else ()
        firmware = rig.start_firmware(pty.path, broker_port, "--clock-speed", str(SPEED), "--telemetry-interval-ms",
                                      "60000", "--heap-log-ms", "500", *extra, heap=heap, **boot)
        try:
            firmware.wait_for("connected to broker", 20)
            writer = FrameWriter(pty.master, demo_values(), rate_hz=200)
            if restart:
                chaos_broker, times = restart
                for _ in range(times):
                    time.sleep(DAY_S / SPEED / (times + 1))
                    chaos_broker.stop()
                    chaos_broker.start()
                time.sleep(DAY_S / SPEED / (times + 1))
            else:
                time.sleep(DAY_S / SPEED)
            writer.close()
            writer = None
            mark = firmware.mark()
            firmware.wait_for(" pending=0", 30, since=mark)
            last = stop_firmware(firmware, timeout_s=30)
        except RuntimeError as exc:
            raise AssertionError("%s, in a %d-byte heap:\n%s" % (exc, budget, firmware.text()[-3000:]))
        rig.wait_seq(last, 30)
    finally:
        if writer:
            writer.close()
        rig.stop_all()
    text = firmware.text()
    assert "MemoryError" not in text and "Traceback" not in text, text[-3000:]
    samples = [int(re.search(r"heap free=(\d+)", line).group(1)) for line in heap_lines(firmware)]
    # The fragmentation margin: the largest block the heap could give, at its smallest.
    largest = min(int(re.search(r"largest=(\d+)", line).group(1)) for line in heap_lines(firmware))
    start_free = samples[0]
    min_free = min(samples)
    steady = samples[len(samples) // 2:]
    readings = int(re.findall(r"readings=(\d+)", text)[-1])
    connects = text.count("connected to broker")
    print("firmware memory: budget %d, free after start %d, min free %d (peak use %d), steady %d-%d free, "
          "largest free block at least %d, %d samples, %d readings, last seq %d, %d connects"
          % (budget, start_free, min_free, budget - min_free, min(steady), max(steady), largest, len(samples),
             readings, last, connects))
    got = rig.summary()
    assert got["lost"] == [] and got["count"] == last
    # No growth through the day: the second half's lowest free heap is
    # within 8 KiB of the first half's.
    first_half = samples[: len(samples) // 2]
    assert min(steady) >= min(first_half) - 8192, samples
    return {"start_free": start_free, "min_free": min_free, "steady": (min(steady), max(steady)), "last": last,
            "connects": connects,
            "link": [line for line in text.splitlines() if "broker" in line]}


def test_firmware_runs_a_day_in_a_bounded_heap(pki, broker, pty, tmp_path, rom_image):
    heap = "%d" % (HEAP_BUDGET + os.path.getsize(rom_image))
    run_day(Rig(tmp_path, pki, "fw-mem-1"), pty, broker.port, HEAP_BUDGET, heap, rom=rom_image)


@pytest.fixture(scope="module")
def plain_broker(tmp_path_factory):
    """An anonymous plain-TCP mosquitto, for the 32-bit days in plaintext."""
    with Mosquitto(str(tmp_path_factory.mktemp("plain-broker"))) as running:
        yield running


BROKER_RESTARTS = 20


@pytest.mark.parametrize("restarts", [0, BROKER_RESTARTS], ids=["steady-broker", "broker-restarts"])
@pytest.mark.parametrize("flavour", mp32.FLAVOURS)
def test_firmware_day_on_32bit_micropython(flavour, restarts, request, pki, pty, tmp_path):
    """The same day on the 32-bit stand-in (`make micropython32`), in an
    ESP32-sized heap (HEAP32, HEAP32_RESTARTS), the firmware frozen into the binary or in
    ROMFS (the image's bytes on top of the heap, as in the 64-bit test).
    Mutual TLS to mosquitto when the binary has TLS (mbedTLS allocating
    from the C heap, as from the IDF heap on an ESP32), plaintext MQTT
    otherwise or with EA_FIRMWARE32_TLS=0. With broker restarts: a broker
    of its own, persistent (the receiver's session and queue survive), is
    stopped and started BROKER_RESTARTS times through the day, and still
    nothing is lost. Skipped when the binary is absent."""
    binary = mp32.binary(flavour)
    if binary is None:
        pytest.skip("no 32-bit MicroPython in %s: build it with `make micropython32 MICROPYTHON_SRC=DIR` "
                    "(docs/firmware.md, \"A 32-bit stand-in\")" % mp32.out_dir())
    tls = os.environ.get("EA_FIRMWARE32_TLS") != "0" and mp32.has_tls(binary)
    own = None
    if restarts:
        own = Mosquitto(str(tmp_path / "chaos-broker"), pki=pki if tls else None, acl=pki.acl if tls else None,
                        persistent=True).start()
        if tls:
            pki.brokers.append(own)
        broker = own
    else:
        broker = request.getfixturevalue("broker" if tls else "plain_broker")
    try:
        rig = Rig(tmp_path, pki, "fw-mem32-%s-%d" % (flavour, restarts))
        rig.provision(broker.port, insecure=not tls)
        budget = (HEAP32_RESTARTS if restarts else HEAP32)[flavour]
        if flavour == "romfs":
            image = request.getfixturevalue("rom_image")
            heap = "%d" % (budget + os.path.getsize(image))
            boot = {"rom": image}
        else:
            heap = "%d" % budget
            boot = {"frozen": True}
        print("32-bit %s, %s, %d broker restarts:" % (flavour, "TLS" if tls else "plaintext", restarts))
        got = run_day(rig, pty, broker.port, budget, heap, insecure=not tls, micropython=binary,
                      restart=(own, restarts) if restarts else None, **boot)
        if restarts:
            # The device saw the restarts: it lost the broker and came back.
            assert got["connects"] > restarts // 2, "\n".join(got["link"])
    finally:
        if own is not None:
            if own in pki.brokers:
                pki.brokers.remove(own)
            own.stop()
