"""The gateway's command handler under hostile input (hypothesis): the
real Downlink (edge_agent/gateway/downlink.py) on a real core Device, its
counters and config in a real state directory, a real Ed25519 operator
key; each example a fresh handler fed up to 90 messages from
tests/core/command_cases.py (arbitrary bytes and CBOR, COSE-shaped arrays
with hostile headers, hostile payloads signed by the trusted operator,
well-formed commands, messages past the size bound).

It never raises; every message ends applied or refused, audited with a
reason, and none by an internal error; audits
name an operator only once verified; refusals anyone can cause respect
the limiter (in one window exactly its limit, and none is lost: each is
audited, counted or reported); log lines stay short."""

import os
import tempfile

from hypothesis import HealthCheck, given, settings

from command_cases import Record, batches, check, messages
from edge_agent.core import board as bd
from edge_agent.core import cose
from edge_agent.core import device as dv
from edge_agent.core import signals as sg
from edge_agent.gateway.config_update import ConfigState
from edge_agent.gateway.downlink import Downlink
from edge_agent.keys.operators import create_operator, load_trusted
from support import copy_board

NOW = 1_800_000_000_000
DEVICE = "unit-1"
MODEL = "EA-TEST-1"
COMPONENTS = ("fan", "coolant_loop")

_KEYS = tempfile.mkdtemp(prefix="ea-downlink-props-")
OPERATOR = create_operator(os.path.join(_KEYS, "op"), "ops-team")
with open(os.path.join(_KEYS, "operators.toml"), "w") as _f:
    _f.write(OPERATOR.public_entry())
TRUSTED = load_trusted(os.path.join(_KEYS, "operators.toml"))


def seal(payload):
    return cose.sign1(payload, OPERATOR.kid, OPERATOR._private_key.sign)  # noqa: SLF001 (any payload, signed)


class Harness:
    """A fresh Downlink in its own state directory, recording each message."""

    def __init__(self, directory):
        self.now = NOW
        self.signals = []
        self.lines = []
        self.device = dv.Device(bd.board_from_dict(copy_board(), "b"), DEVICE)
        state = os.path.join(directory, "state")
        config = ConfigState(state, copy_board(), "b")
        config.boot(NOW)
        self.downlink = Downlink(self.device, MODEL, TRUSTED, state, config, lambda: self.now, self.dispatch,
                                 request_restart=lambda: None)
        self.downlink.log = lambda level, text: self.lines.append((level, text))

    def dispatch(self, outputs):
        for item in outputs:
            if isinstance(item, sg.Signal):
                item.encode()  # what the agent stores: it must encode
                self.signals.append(item)

    def send(self, offset, message):
        downlink = self.downlink
        self.now = NOW + offset
        before = (downlink.applied, downlink.refused, downlink.counters.to_map(), len(self.signals), len(self.lines))
        downlink.on_message("ea/v1/%s/cmd" % DEVICE, message)  # never raises: an exception fails the test
        audits = [(s.body[sg.U_WHO], s.body[sg.U_ACTION], s.body[sg.U_TARGET], s.body[sg.U_RESULT],
                   s.body[sg.U_REASON]) for s in self.signals[before[3]:] if s.kind == sg.KIND_AUDIT]
        lines = self.lines[before[4]:]
        return Record(self.now, downlink.applied - before[0], downlink.refused - before[1],
                      downlink.counters.to_map() != before[2], audits, [len(text) for _, text in lines],
                      [text for level, text in lines if level == "error"], downlink.limiter.suppressed)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batches(messages(seal, OPERATOR.kid, DEVICE, MODEL, NOW, COMPONENTS)))
def test_the_downlink_takes_anything(batch):
    with tempfile.TemporaryDirectory(prefix="ea-downlink-") as directory:
        harness = Harness(directory)
        records = [harness.send(offset, message) for offset, message in batch]
    check(records, "ops-team")  # no internal error at all (cose.parse refuses a non-small alg as malformed)
