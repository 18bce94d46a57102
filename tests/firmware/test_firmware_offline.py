"""Offline buffering on the device: the broker is unreachable for a
simulated hour (the device's link is cut: connections refused) while the
sensors stream (the firmware's clock runs 600x, so the
hour takes 6 s), then comes back. The firmware keeps every signal in its
flash store (on littlefs, as on the board: a flash partition in a file),
reconnects with backoff, and drains: at the receiver zero lost, zero
gaps, and the telemetry spans the whole hour. Then the sensors stream
again and the new signals arrive too (the store reads on in the segment
it is appending to: on littlefs a stale read handle saw none of them)."""

import sqlite3
import time

import pytest
from fw_support import FrameWriter, Link, Rig, demo_values, stop_firmware

pytestmark = pytest.mark.integration

SPEED = 600
OFFLINE_MS = 3600 * 1000
LIVE_SIGNALS = 10  # signals made after the backlog was drained


def test_firmware_buffers_an_offline_hour(pki, broker, pty, tmp_path):
    link = Link(broker.port)  # down until the hour is over
    rig = Rig(tmp_path, pki, "fw-offline-1", flash=True)
    writer = None
    try:
        rig.start_receiver(broker.port)
        firmware = rig.start_firmware(pty.path, link.port, "--clock-speed", str(SPEED), "--telemetry-interval-ms",
                                      "10000", "--backoff-max-ms", "1000", "--heap-log-ms", "1000")
        writer = FrameWriter(pty.master, demo_values(), rate_hz=200)
        firmware.wait_for("broker unreachable", 10)
        time.sleep(OFFLINE_MS / SPEED / 1000)
        assert "connected to broker" not in firmware.text()
        mark = firmware.mark()
        link.up()
        firmware.wait_for("connected to broker", 15, since=mark)
        writer.close()
        writer = None
        started = time.monotonic()
        firmware.wait_for(" pending=0", 30, since=mark)  # the backlog is drained
        print("backlog drained in %.1f s" % (time.monotonic() - started))
        drained = rig.max_seq()
        writer = FrameWriter(pty.master, demo_values(), rate_hz=200)
        rig.wait_seq(drained + LIVE_SIGNALS, 15)
        writer.close()
        writer = None
        last = stop_firmware(firmware, timeout_s=30)
        rig.wait_seq(last, 15)
    finally:
        if writer:
            writer.close()
        rig.stop_all()
        link.down()
    got = rig.summary()
    with sqlite3.connect(rig.db) as db:
        first, final = db.execute("SELECT MIN(time_ms), MAX(time_ms) FROM signals WHERE device=? AND kind=2",
                                  (rig.device_id,)).fetchone()
    print("firmware offline hour: last seq %d, stored %d, telemetry %d spanning %.0f s, alerts %d"
          % (last, got["count"], got["telemetry"], (final - first) / 1000, got["alerts"]))
    assert got["lost"] == [] and got["skipped"] == []
    assert got["count"] == last and got["births"] == [1]
    assert (final - first) >= 0.9 * OFFLINE_MS, "telemetry must cover the offline hour"
    # A 10 s interval is ~360 batches an hour; at 600x a millisecond of loop
    # latency stretches a batch by 0.6 s, so fewer, fuller batches is fine.
    assert got["telemetry"] >= 100
    assert got["rejections"] == {}
