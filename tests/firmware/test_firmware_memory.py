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

pytestmark = pytest.mark.integration

SPEED = 8640  # a day in 10 s
DAY_S = 24 * 3600
# The firmware's own heap (the ROM image's bytes come on top, see rom_boot.py).
HEAP_BUDGET = int(os.environ.get("EA_FIRMWARE_HEAP", str(240 * 1024)))


@pytest.fixture(scope="session")
def rom_image(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("firmware-build"))
    fb.build(out, host=True)
    return os.path.join(out, "bundle.romfs")


def test_firmware_runs_a_day_in_a_bounded_heap(pki, broker, pty, tmp_path, rom_image):
    heap = "%d" % (HEAP_BUDGET + os.path.getsize(rom_image))
    rig = Rig(tmp_path, pki, "fw-mem-1")
    writer = None
    try:
        rig.start_receiver(broker.port)
        firmware = rig.start_firmware(pty.path, broker.port, "--clock-speed", str(SPEED), "--telemetry-interval-ms",
                                      "60000", "--heap-log-ms", "500", heap=heap, rom=rom_image)
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
            raise AssertionError("%s, in a %d-byte heap:\n%s" % (exc, HEAP_BUDGET, firmware.text()[-3000:]))
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
          % (HEAP_BUDGET, start_free, min_free, HEAP_BUDGET - min_free, min(steady), max(steady), len(samples),
             readings, last))
    got = rig.summary()
    assert got["lost"] == [] and got["count"] == last
    # No growth through the day: the second half's lowest free heap is
    # within 8 KiB of the first half's.
    first_half = samples[: len(samples) // 2]
    assert min(steady) >= min(first_half) - 8192, samples
