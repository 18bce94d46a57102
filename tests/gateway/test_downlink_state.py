"""The downlink's state on disk, in process (the end-to-end runs are in
test_downlink.py): a real core Device, real files in a temp directory,
real Ed25519 operator keys; the clock is passed in."""

import json
import os

import pytest

from edge_agent.gateway.config_update import OVERLAY, PREVIOUS, TRIAL, ConfigRefused, ConfigState
from edge_agent.core import board as bd
from edge_agent.core import config_patch as cp
from edge_agent.core import device as dv
from edge_agent.core import signals as sg
from edge_agent.gateway.downlink import COUNTERS_FILE, Downlink, DownlinkError, RefusalLimiter
from edge_agent.keys.operators import create_operator, load_trusted
from support import copy_board

NOW = 1_800_000_000_000
TIGHTER = {"sensors": {"coolant_temp": {"valid_range": [-20, 95]}}}


class Harness:
    def __init__(self, tmp_path, operator):
        self.signals = []
        self.restarts = 0
        self.now = NOW
        self.device = dv.Device(bd.board_from_dict(copy_board(), "b"), "unit-1")
        path = tmp_path / "operators.toml"
        path.write_text(operator.public_entry())
        self.state = str(tmp_path / "state")
        self.config = ConfigState(self.state, copy_board(), "b")
        self.config.boot(NOW)
        self.downlink = self.make()

    def make(self):
        return Downlink(self.device, "EA-TEST-1", load_trusted(str(self.trusted_path())), self.state, self.config,
                        lambda: self.now, self.dispatch, request_restart=self.restart)

    def trusted_path(self):
        return os.path.join(os.path.dirname(self.state), "operators.toml")

    def dispatch(self, outputs):
        self.signals.extend(o for o in outputs if isinstance(o, sg.Signal))

    def restart(self):
        self.restarts += 1

    def audits(self):
        return [(s.body[sg.U_ACTION], s.body[sg.U_RESULT],
                 s.body[sg.U_REASON].split(":")[0] if s.body[sg.U_RESULT] == "refused" else "")
                for s in self.signals if s.kind == sg.KIND_AUDIT]


@pytest.fixture
def operator(tmp_path):
    return create_operator(str(tmp_path / "op"), "ops-team")


@pytest.fixture
def harness(tmp_path, operator):
    return Harness(tmp_path, operator)


def test_counters_survive_a_new_downlink_and_corruption_stops_it(harness, operator):
    command = operator.command("unit-1", "quarantine.force", {"component": "fan"}, 4, 60, now_ms=NOW)
    harness.downlink.on_message("t", command)
    harness.downlink = harness.make()  # a restart: counters read back from disk
    harness.downlink.on_message("t", command)
    assert harness.audits() == [("quarantine.force", "applied", ""), ("quarantine.force", "refused", "replay")]
    with open(os.path.join(harness.state, COUNTERS_FILE), "wb") as f:
        f.write(b"\x81")  # torn CBOR
    with pytest.raises(DownlinkError, match="unreadable"):
        harness.make()


def test_already_forced_is_refused_without_side_effects(harness, operator):
    for counter in (1, 2):
        harness.downlink.on_message("t", operator.command("unit-1", "quarantine.force", {"component": "fan"},
                                                          counter, 60, now_ms=NOW))
    assert harness.audits()[-1] == ("quarantine.force", "refused", "not-allowed")
    assert harness.device.component_states()["fan"] == "forced"
    assert [s.body[sg.S_TO] for s in harness.signals if s.kind == sg.KIND_STATE] == ["forced"]


def test_refusals_are_rate_limited_and_counted(harness, operator):
    replayed = operator.command("unit-1", "alert.ack", {"alert": "1"}, 1, 60, now_ms=NOW)
    harness.downlink.on_message("t", replayed)
    for i in range(30):  # garbage and replays: what anyone on the broker can send
        harness.downlink.on_message("t", b"junk %d" % i if i % 2 else replayed)
    assert len(harness.audits()) == 1 + 20
    assert harness.audits()[1:3] == [("alert.ack", "refused", "replay"), ("command", "refused", "malformed")]
    harness.now += 61_000
    harness.downlink.on_message("t", b"junk again")
    last = [s.body for s in harness.signals][-2:]
    assert last[0][sg.U_REASON] == "rate-limited: 10 more messages refused unaudited"
    assert last[1][sg.U_REASON].startswith("malformed")
    assert harness.downlink.refused == 31


def test_refusal_limiter_windows():
    limiter = RefusalLimiter(limit=2, window_ms=100)
    assert [limiter.allow(t) for t in (0, 1, 2, 3)] == [(True, 0), (True, 0), (False, 0), (False, 0)]
    assert limiter.allow(100) == (True, 2)


def test_config_update_stages_and_restarts_once(harness, operator):
    update = operator.command("unit-1", "config.update", {"patch": TIGHTER}, 1, 60, now_ms=NOW)
    harness.downlink.on_message("t", update)
    assert harness.restarts == 1 and harness.audits() == [("config.update", "applied", "")]
    second = operator.command("unit-1", "config.update", {"patch": TIGHTER}, 2, 60, now_ms=NOW)
    harness.downlink.on_message("t", second)  # before the restart: one update at a time
    assert harness.audits()[-1] == ("config.update", "refused", "busy") and harness.restarts == 1
    with open(os.path.join(harness.state, OVERLAY)) as f:
        assert json.load(f) == TIGHTER


def _boot(state, base=None):
    config = ConfigState(state, base or copy_board(), "b")
    board, signals = config.boot(NOW)
    return config, board, [(s.body[sg.U_ACTION], s.body[sg.U_REASON].split(":")[0]) for s in signals]


def test_trial_confirm_then_rollback_of_a_crashing_config(tmp_path):
    state = str(tmp_path / "state")
    config, _, _ = _boot(state)
    assert config.stage(TIGHTER, "ops-team") == ("base", cp.digest(TIGHTER))
    config, board, audits = _boot(state)  # the trial start
    assert board.sensors["coolant_temp"].high == 95 and audits == [] and config.trial["attempts"] == 1
    confirm = config.confirm(NOW)
    assert confirm.body[sg.U_ACTION] == "config.confirm" and not os.path.exists(os.path.join(state, TRIAL))
    assert config.confirm(NOW) is None

    # A second update whose trial start never confirms (the agent crashed):
    # the next start puts the confirmed overlay back.
    slower = {"sensors": {"fan_rpm": {"period_ms": 2000}}}
    config.stage(slower, "ops-team")
    config, board, audits = _boot(state)
    assert board.sensors["fan_rpm"].period_ms == 2000
    config, board, audits = _boot(state)  # restarted before confirm
    assert audits == [("config.rollback", "unconfirmed")]
    assert board.sensors["fan_rpm"].period_ms == 500 and board.sensors["coolant_temp"].high == 95
    assert not os.path.exists(os.path.join(state, PREVIOUS))


def test_rollback_when_the_overlay_is_damaged_or_no_longer_fits(tmp_path):
    state = str(tmp_path / "state")
    config, _, _ = _boot(state)
    config.stage(TIGHTER, "ops-team")
    with open(os.path.join(state, OVERLAY), "w") as f:
        f.write("{not json")
    config, board, audits = _boot(state)
    assert audits == [("config.rollback", "self-check-failed")] and board.sensors["coolant_temp"].high == 110
    assert not os.path.exists(os.path.join(state, OVERLAY))

    # A confirmed overlay that the board file no longer accepts (the sensor
    # it patched was removed from the shipped board): back to the base.
    config.stage(TIGHTER, "ops-team")
    _boot(state)[0].confirm(NOW)
    base = copy_board()
    del base["sensors"]["coolant_temp"]
    config, board, audits = _boot(state, base)
    assert audits == [("config.rollback", "self-check-failed")] and "coolant_temp" not in board.sensors


def test_invalid_patches_write_nothing(tmp_path):
    state = str(tmp_path / "state")
    config, _, _ = _boot(state)
    for patch, words in (({"sensors": {"coolant_temp": {"valid_range": [95, -20]}}}, "low 95.0 is not below"),
                         ({"board": {"model": "X"}}, "not 'board'")):
        with pytest.raises(ConfigRefused) as info:
            config.stage(patch, "ops-team")
        assert info.value.reason == "bad-config" and words in info.value.detail
    assert os.listdir(state) == []
