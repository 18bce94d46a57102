"""Power cut on the unix port: SIGKILL the micropython process at random
points while sensors stream and signals flow, restart it on the same
store, several times. At the end the receiver holds every seq the firmware
issued except the numbers its sequencer skipped at a restart (they end
right below a birth), nothing acknowledged is lost, and no seq was
reused (each boot numbers past everything before it).

Twice: on the host's file system (VfsPosix), and on littlefs as on the
board (a flash partition in a file: a SIGKILL leaves it as a power cut
leaves flash, every completed block write there and nothing after). On
littlefs every restart must mount what the cut left (never format it)."""

import os
import random
import re
import subprocess
import time

import pytest
from fw_support import FIRMWARE_PATH, FrameWriter, Rig, demo_values, no_seq_reused, seq_times, stop_firmware

from simulator.fixtures.processes import ROOT

pytestmark = pytest.mark.integration

CUTS = {"vfsposix": 3, "littlefs": 6}
LIVE_SIGNALS = 10


@pytest.mark.parametrize("fs", ["vfsposix", "littlefs"])
def test_firmware_survives_power_cuts(pki, broker, pty, tmp_path, fs):
    cuts = CUTS[fs]
    rng = random.Random("%s-%s" % (os.environ.get("EA_SEED", "firmware-power-cut"), fs))
    rig = Rig(tmp_path, pki, "fw-cut-" + fs, flash=fs == "littlefs")
    args = ("--telemetry-interval-ms", "200", "--heap-log-ms", "0")
    writer = None
    boots = []
    try:
        rig.start_receiver(broker.port)
        firmware = rig.start_firmware(pty.path, broker.port, *args)
        boots.append(firmware)
        if rig.flash:
            firmware.wait_for("formatted littlefs", 10)
        firmware.wait_for("connected to broker", 20)
        writer = FrameWriter(pty.master, demo_values(), rate_hz=200)
        for cut in range(cuts):
            rig.wait_seq(rig.max_seq() + 1, 20)
            time.sleep(rng.uniform(0.1, 1.2))  # a random point: mid-append, mid-publish, mid-sync
            firmware.kill()
            firmware = rig.start_firmware(pty.path, broker.port, *args, name="firmware-%d" % (cut + 2))
            boots.append(firmware)
            if rig.flash:
                firmware.wait_for("mounted littlefs", 10)
            firmware.wait_for("connected to broker", 20)
        # After the last restart signals keep flowing (more than the birth):
        # the store reads on in the segment it appends to.
        rig.wait_seq(rig.max_seq() + LIVE_SIGNALS, 20)
        writer.close()
        writer = None
        last = stop_firmware(firmware)
        rig.wait_seq(last, 30)
    finally:
        if writer:
            writer.close()
        rig.stop_all()
    got = rig.summary()
    print("firmware power cuts on %s: %d cuts, last seq %d, stored %d, skipped at restarts %s, alerts %d, births %s"
          % (fs, cuts, last, got["count"], got["skipped"], got["alerts"], got["births"]))
    assert got["lost"] == [], "lost seq ranges: %s" % got["lost"]
    assert got["count"] == last - sum(b - a + 1 for a, b in got["skipped"])
    assert len(got["births"]) == cuts + 1
    assert got["alerts"] > 0 and got["rejections"] == {}
    rows = seq_times(rig.db, rig.device_id)
    no_seq_reused(rows)
    # Every alert a boot logged as stored (the line comes after the append,
    # which syncs an urgent alert) reached the receiver, cuts or not.
    stored = [int(m.group(1)) for boot in boots for line in boot.lines
              for m in [re.search(r"alert #(\d+) stored: ", line)] if m]
    received = set(seq for seq, kind, _ in rows if kind == 1)
    assert stored and [seq for seq in stored if seq not in received] == [], "alerts logged stored, not received"


def test_a_partition_that_does_not_mount_is_refused_not_formatted(pki, pty, tmp_path):
    """As the ESP32's boot (inisetup.py): only a blank partition is
    formatted; one holding data that littlefs cannot mount stops the
    firmware with a clear error and is left as it was."""
    rig = Rig(tmp_path, pki, "fw-cut-refuse", flash=True)
    rig.provision(1883)  # never connects: it stops before
    junk = random.Random(7).randbytes(64 * 4096)
    with open(rig.flash, "wb") as f:
        f.write(junk)
    argv = rig.firmware_argv(pty.path, "--duration", "1")  # should it run after all, it stops
    done = subprocess.run(argv, cwd=ROOT, env=dict(os.environ, MICROPYPATH=FIRMWARE_PATH), capture_output=True,
                          text=True, timeout=30, stdin=subprocess.DEVNULL)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "--flash %s: holds data but no littlefs that mounts" % rig.flash in output, output
    assert "delete it to start empty" in output and "Traceback" not in output, output
    with open(rig.flash, "rb") as f:
        assert f.read() == junk
