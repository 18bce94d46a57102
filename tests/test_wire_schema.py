"""Every signal the agent emits validates against docs/schema.cddl (pycddl,
an independent CDDL implementation)."""

import os

import pycddl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.core import board as bd
from edge_agent.core import device as dv
from edge_agent.core import frames as fr
from edge_agent.core import signals as sg
from edge_agent.uplink import status_payload
from support import copy_board

from conftest import ROOT

SCHEMA_TEXT = open(os.path.join(ROOT, "docs", "schema.cddl")).read()


def _schema(rule):
    # pycddl validates against the first rule: put the wanted one first.
    return pycddl.Schema("root = %s\n%s" % (rule, SCHEMA_TEXT))


SIGNAL = _schema("signal")
STATUS = _schema("status")


def _device():
    return dv.Device(bd.board_from_dict(copy_board(), "b"), "unit-17", telemetry_max_readings=3)


def _emitted(frames_and_times):
    device = _device()
    out = []
    for data, t in frames_and_times:
        out += [o for o in device.feed("uart0", data, t) if isinstance(o, sg.Signal)]
    out += device.flush(10**13)
    return out


def test_alert_raise_clear_fault_and_telemetry_validate():
    signals = _emitted(
        [
            (fr.encode_frame(fr.READING, "coolant_temp", 500), 1700000000000),
            (fr.encode_frame(fr.READING, "coolant_temp", 50), 1700000001000),
            (fr.encode_frame(fr.SENSOR_ERROR, "fan_rpm", "short"), 1700000002000),
            (fr.encode_frame(fr.READING, "fan_rpm", 1000), 1700000003000),
        ]
    )
    kinds = sorted(s.kind for s in signals)
    assert kinds.count(sg.KIND_ALERT) == 4 and sg.KIND_TELEMETRY in kinds
    for signal in signals:
        SIGNAL.validate_cbor(signal.encode())


def test_status_validates():
    STATUS.validate_cbor(status_payload("unit-17", True))
    STATUS.validate_cbor(status_payload("unit-17", False))


def test_schema_rejects_what_it_should():
    signal = _emitted([(fr.encode_frame(fr.READING, "coolant_temp", 500), 1)])[0]
    good = signal.to_map()
    for key, value in ((0, 2), (5, 7), (2, "a/b"), (3, -1)):
        bad = dict(good)
        bad[key] = value
        with pytest.raises(pycddl.ValidationError):
            SIGNAL.validate_cbor(sg.cbor.dumps(bad))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["coolant_temp", "fan_rpm"]), st.floats(-1e6, 1e6)), max_size=12))
def test_any_reading_stream_emits_valid_signals(stream):
    signals = _emitted([(fr.encode_frame(fr.READING, s, v), 1000 * i) for i, (s, v) in enumerate(stream)])
    for signal in signals:
        SIGNAL.validate_cbor(signal.encode())


SEALED = _schema("sealed")
PROTECTED = _schema("protected-header")
SEALED_PAYLOAD = _schema("sealed-payload")
BIRTH = _schema("birth-signal")


def test_sealed_envelopes_and_bundles_validate(tmp_path):
    from edge_agent.core import bundle, cbor, cose
    from edge_agent.identity import HMAC256, create_identity

    telemetry = [s.encode() for s in _emitted([(fr.encode_frame(fr.READING, "fan_rpm", v), v) for v in range(9)])
                 if s.kind == sg.KIND_TELEMETRY]
    assert len(telemetry) == 3
    payloads = [telemetry[0], bundle.encode(telemetry)]
    for algorithm in ("EdDSA", HMAC256):
        identity = create_identity(str(tmp_path / algorithm), "unit-17", algorithm)
        for payload in payloads:
            message = identity.seal(payload)
            SEALED.validate_cbor(message)
            parsed = cbor.loads(message).value
            PROTECTED.validate_cbor(parsed[0])
            SEALED_PAYLOAD.validate_cbor(parsed[2])
            assert cose.parse(message).payload == payload


def test_birth_validates():
    from edge_agent.core import cbor

    birth = sg.Signal(sg.KIND_BIRTH, sg.PRIORITY_NORMAL, 1, {sg.B_AGENT: "edge-agent 0.1.0", sg.B_MODEL: "EA-DEMO-1",
                                                              sg.B_BOARD: "demo-gateway", sg.B_FORMAT: 1}, "d", 1)
    BIRTH.validate_cbor(birth.encode())
    SIGNAL.validate_cbor(birth.encode())
    with pytest.raises(pycddl.ValidationError):
        bad = birth.to_map()
        bad[6] = {0: 1}
        BIRTH.validate_cbor(cbor.dumps(bad))
