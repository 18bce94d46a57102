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
# The 32-bit stand-in's heap (edge_agent/tools/micropython32.py): issue 19's
# floor, 96 KiB, unless EA_FIRMWARE32_HEAP says otherwise.
HEAP32 = int(os.environ.get("EA_FIRMWARE32_HEAP", str(96 * 1024)))


@pytest.fixture(scope="session")
def rom_image(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("firmware-build"))
    fb.build(out, host=True)
    return os.path.join(out, "bundle.romfs")


def run_day(rig, pty, broker_port, budget, heap, insecure=False, **boot):
    """The simulated day: start the firmware (``boot``: rom=IMAGE, or
    micropython=BINARY and frozen=True), stream at 200 frames/s for a day
    at SPEED, drain, stop; assert nothing lost and no growth; return and
    print the figures (bytes)."""
    writer = None
    try:
        rig.start_receiver(broker_port, insecure=insecure)
        firmware = rig.start_firmware(pty.path, broker_port, "--clock-speed", str(SPEED), "--telemetry-interval-ms",
                                      "60000", "--heap-log-ms", "500", heap=heap, **boot)
        try:
            firmware.wait_for("connected to broker", 20)
            writer = FrameWriter(pty.master, demo_values(), rate_hz=200)
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
    start_free = samples[0]
    min_free = min(samples)
    steady = samples[len(samples) // 2:]
    readings = int(re.findall(r"readings=(\d+)", text)[-1])
    print("firmware memory: budget %d, free after start %d, min free %d (peak use %d), steady %d-%d free, "
          "%d samples, %d readings, last seq %d"
          % (budget, start_free, min_free, budget - min_free, min(steady), max(steady), len(samples),
             readings, last))
    got = rig.summary()
    assert got["lost"] == [] and got["count"] == last
    # No growth through the day: the second half's lowest free heap is
    # within 8 KiB of the first half's.
    first_half = samples[: len(samples) // 2]
    assert min(steady) >= min(first_half) - 8192, samples
    return {"start_free": start_free, "min_free": min_free, "steady": (min(steady), max(steady)), "last": last}


def test_firmware_runs_a_day_in_a_bounded_heap(pki, broker, pty, tmp_path, rom_image):
    heap = "%d" % (HEAP_BUDGET + os.path.getsize(rom_image))
    run_day(Rig(tmp_path, pki, "fw-mem-1"), pty, broker.port, HEAP_BUDGET, heap, rom=rom_image)


@pytest.fixture(scope="module")
def plain_broker(tmp_path_factory):
    """An anonymous plain-TCP mosquitto, for the 32-bit days in plaintext."""
    with Mosquitto(str(tmp_path_factory.mktemp("plain-broker"))) as running:
        yield running


@pytest.mark.parametrize("flavour", mp32.FLAVOURS)
def test_firmware_day_on_32bit_micropython(flavour, request, pki, pty, tmp_path):
    """The same day on the 32-bit stand-in (`make micropython32`), in an
    ESP32-sized heap: EA_FIRMWARE32_HEAP bytes (default 96 KiB, the floor
    issue 19 sets), the firmware frozen into the binary or in ROMFS (the
    image's bytes on top of the heap, as in the 64-bit test). Plaintext
    MQTT unless EA_FIRMWARE32_TLS=1 and the binary has TLS. Skipped when
    the binary is absent."""
    binary = mp32.binary(flavour)
    if binary is None:
        pytest.skip("no 32-bit MicroPython in %s: build it with `make micropython32 MICROPYTHON_SRC=DIR` "
                    "(docs/firmware.md, \"A 32-bit stand-in\")" % mp32.out_dir())
    tls = os.environ.get("EA_FIRMWARE32_TLS") == "1"
    if tls and not mp32.has_tls(binary):
        pytest.skip("%s was built without TLS (no Mbed TLS in the source tree)" % binary)
    broker = request.getfixturevalue("broker" if tls else "plain_broker")
    rig = Rig(tmp_path, pki, "fw-mem32-" + flavour)
    rig.provision(broker.port, insecure=not tls)
    if flavour == "romfs":
        image = request.getfixturevalue("rom_image")
        heap = "%d" % (HEAP32 + os.path.getsize(image))
        boot = {"rom": image}
    else:
        heap = "%d" % HEAP32
        boot = {"frozen": True}
    print("32-bit %s, %s:" % (flavour, "TLS" if tls else "plaintext"))
    run_day(rig, pty, broker.port, HEAP32, heap, insecure=not tls, micropython=binary, **boot)
