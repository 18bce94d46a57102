"""console.View: the part of a console view the gateway and the firmware
share, over a real core Device and Store."""

from store_support import FilesDir, open_store
from support import copy_board

from edge_agent.core import board as bd
from edge_agent.core import console as con
from edge_agent.core import device as dv


class Host:
    """What View reads of the agent or the firmware."""

    def __init__(self, fs):
        self.now = 5000
        self.device = dv.Device(bd.board_from_dict(copy_board(), "demo.toml"), "unit-17")
        self.store = open_store(fs, self.now)

    def clock(self):
        return self.now


class Ring:
    def __init__(self):
        self.lines = ["info a", "error b", "info c"]
        self.errors = ["error b"]


def test_view_reads_clock_store_log_and_settings():
    fs = FilesDir()
    try:
        host = Host(fs)
        host.store.append(3, b"telemetry", 4000)
        view = con.View(host, Ring(), "edge-agent test")
        assert (view.agent, view.started_ms, view.device.device_id) == ("edge-agent test", 5000, "unit-17")
        host.now = 6000
        assert view.now_ms() == 6000
        lanes = view.store_lanes()
        assert len(lanes) == host.store.lanes
        lane, records, nbytes, oldest = lanes[3]
        assert (lane, records, oldest) == (3, 1, 4000) and nbytes > len(b"telemetry")  # with its framing
        assert lanes[0][1] == 0
        assert view.log_lines(2) == ["error b", "info c"]
        assert view.errors(5) == ["error b"]
        settings = dict(view.settings())
        assert settings["identity"] == "unit-17"
        assert settings["telemetry"].startswith("every %d ms" % host.device.telemetry_interval_ms)
    finally:
        fs.destroy()
