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
from edge_agent.gateway.uplink import status_payload
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
    from edge_agent.keys.identity import HMAC256, create_identity

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
            # pycddl lets any array through `sealed-payload` (see BUNDLE below): the bundle's own rule.
            (SIGNAL if payload is telemetry[0] else BUNDLE).validate_cbor(parsed[2])
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


# --- health engine signals (issue 6) -------------------------------------------


_HEALTH_SIGNALS = []


def _health_signals():
    from simulator.scenarios import health as hs

    if _HEALTH_SIGNALS:
        return _HEALTH_SIGNALS
    signals = _emitted([(fr.encode_frame(fr.READING, "coolant_temp", 500), 1000 * i) for i in range(4)])
    for scenario in (
        hs.run_stuck_fan(seed=1, repair_after_ms=120000)[0],
        hs.run_stuck_fan(seed=2)[0],
        hs.run_rail_storm(seed=1)[0],
        hs.run_drift(0, days=70)[0],
    ):
        signals += scenario.signals
    _HEALTH_SIGNALS.extend(signals)
    return signals


def test_every_health_signal_validates():
    signals = _health_signals()
    seen = set()
    for signal in signals:
        SIGNAL.validate_cbor(signal.encode())
        if signal.kind == sg.KIND_ALERT:
            seen.add(signal.body[sg.A_CONDITION])
        elif signal.kind == sg.KIND_STATE:
            seen.add("state:" + signal.body[sg.S_TO])
    for expected in ("stuck", "quarantined", "needs_service", "root_cause", "predicted_failure", "degraded",
                     "state:quarantined", "state:probing", "state:service", "state:ok"):
        assert expected in seen, expected


def test_switch_substituted_telemetry_and_dedupe_counts_validate():
    from edge_agent.core import reading as rd
    from edge_agent.core.triage import Triage

    device = _device()
    batch_signal = device.ingest(rd.Reading(5, "fan_rpm", 3.0), 5)
    batch = device.flush(6)[0]
    batch.body[sg.T_READINGS].append([6, "fan_rpm", 3.0, rd.SUBSTITUTED])
    SIGNAL.validate_cbor(batch.encode())
    triage = Triage(device.board)
    alert = sg.Signal(sg.KIND_ALERT, 1, 1, {
        sg.A_CONDITION: "jump", sg.A_COMPONENT: "fan", sg.A_SENSOR: "fan_rpm", sg.A_VALUE: 1.5, sg.A_LIMITS: [0, 5000],
        sg.A_SEVERITY: "warning", sg.A_TEXT: "t", sg.A_ACTION: "a", sg.A_PART: "F-22", sg.A_SINCE: 1, sg.A_ACTIVE: True,
        sg.A_UNIT: "rpm", sg.A_EVIDENCE: [[1, "fan_rpm", 1.5], [0, "fan_rpm", None]],
    }, "unit-17", 9)
    triage.submit(alert, 1)
    triage.submit(sg.Signal(alert.kind, 1, 2, dict(alert.body), "unit-17", 10), 2)
    summary = triage.poll(3600001)[0][0]
    summary.device, summary.seq = "unit-17", 11
    assert summary.body[sg.A_COUNT] == 1
    SIGNAL.validate_cbor(summary.encode())
    assert batch_signal == []


def test_schema_rejects_bad_state_signals():
    state = [s for s in _health_signals() if s.kind == sg.KIND_STATE][0]
    good = state.to_map()
    SIGNAL.validate_cbor(sg.cbor.dumps(good))
    for key, value in ((sg.S_TO, "melted"), (sg.S_PROBES, -1), (sg.S_EVIDENCE, [[1, 2, 3]])):
        bad = dict(good)
        bad[6] = dict(good[6])
        bad[6][key] = value
        with pytest.raises(pycddl.ValidationError):
            SIGNAL.validate_cbor(sg.cbor.dumps(bad))


def test_evictions_signal_validates():
    evictions = sg.Signal(sg.KIND_EVICTIONS, sg.PRIORITY_HIGH, 5,
                          {sg.V_LANES: [[3, 1200, 80000], [2, 4, 300]], sg.V_SINCE: 1, sg.V_OVERFLOW: False}, "d", 9)
    SIGNAL.validate_cbor(evictions.encode())


def test_audit_signal_validates_and_rejects_unknown_results():
    from edge_agent.core import cbor

    audit = sg.Signal(sg.KIND_AUDIT, sg.PRIORITY_HIGH, 5, {
        sg.U_WHO: "tech:ana", sg.U_ACTION: "quarantine.release", sg.U_TARGET: "cabinet_fan",
        sg.U_BEFORE: "quarantined", sg.U_AFTER: "probing", sg.U_RESULT: "applied", sg.U_REASON: "fan replaced",
        sg.U_CHANNEL: "console"}, "d", 3)
    SIGNAL.validate_cbor(audit.encode())
    bad = audit.to_map()
    bad[6] = dict(bad[6])
    bad[6][sg.U_RESULT] = "maybe"
    with pytest.raises(pycddl.ValidationError):
        SIGNAL.validate_cbor(cbor.dumps(bad))


# pycddl 0.6 accepts any non-empty array against a choice of map rules
# (`signal`, and so `sealed-payload = signal / bundle`: even [1, 2] passes),
# so a bundle is checked against the `bundle` rule itself.
BUNDLE = _schema("bundle")


def test_what_the_uplink_publishes_validates_and_an_alert_bundle_does_not():
    from edge_agent.core import bundle

    signals = _health_signals()
    by_priority = {}
    for signal in signals:
        by_priority.setdefault(signal.priority, []).append(signal.encode())
    published = {}
    for priority, records in by_priority.items():
        for kind, group in bundle.group_for_publish(records, priority <= sg.PRIORITY_HIGH, 65536):
            if len(group) == 1:
                SIGNAL.validate_cbor(group[0])
            else:
                BUNDLE.validate_cbor(bundle.encode(group))
            published.setdefault(kind, []).append(len(group))
    # Every alert went alone (the health runs raise and clear many at priority 2).
    assert set(published[sg.KIND_ALERT]) == {1}
    assert len(published[sg.KIND_ALERT]) == sum(1 for s in signals if s.kind == sg.KIND_ALERT)
    assert max(published[sg.KIND_STATE]) > 1 and max(published[sg.KIND_TELEMETRY]) > 1
    cleared = [s.encode() for s in signals if s.kind == sg.KIND_ALERT and s.priority == sg.PRIORITY_NORMAL][:2]
    assert len(cleared) == 2
    telemetry = [s.encode() for s in signals if s.kind == sg.KIND_TELEMETRY][:1]
    states = [s.encode() for s in signals if s.kind == sg.KIND_STATE][:1]
    BUNDLE.validate_cbor(bundle.encode(states + states))
    for not_sent in (bundle.encode(cleared), bundle.encode(cleared[:1]), bundle.encode(telemetry + states),
                     sg.cbor.dumps([1, 2])):
        with pytest.raises(pycddl.ValidationError):
            BUNDLE.validate_cbor(not_sent)
