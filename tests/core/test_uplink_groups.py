"""What the gateway's and the firmware's uplinks share: grouping a batch
into publishes (bundle.group_for_publish) and the status message."""

from edge_agent.core import bundle, cbor
from edge_agent.core import signals as sg


def _telemetry(seq):
    return sg.Signal(sg.KIND_TELEMETRY, sg.PRIORITY_LOW, seq, {sg.T_READINGS: [[seq, "t", 1.0, 0]]}, "g", seq).encode()


def _alert(seq, priority=sg.PRIORITY_CRITICAL, active=True):
    body = {sg.A_CONDITION: "out_of_range", sg.A_ACTIVE: active}
    return sg.Signal(sg.KIND_ALERT, priority, seq, body, "g", seq).encode()


def _shape(groups):
    return [(kind, len(records)) for kind, records in groups]


def test_alerts_alone_the_rest_bundled_by_kind():
    records = [_telemetry(1), _telemetry(2), _alert(3), _telemetry(4)]
    assert _shape(bundle.group_for_publish(records, False, 65536)) == [
        (sg.KIND_TELEMETRY, 2), (sg.KIND_ALERT, 1), (sg.KIND_TELEMETRY, 1)]
    assert _shape(bundle.group_for_publish(records[:2], True, 65536)) == [(sg.KIND_TELEMETRY, 1)] * 2


def test_every_alert_goes_alone_whatever_its_priority():
    # Clears (and any alert) at priority 2 or 3 come from a non-urgent
    # lane: they must still go one per message on .../alert, never bundled
    # (docs/wire-format.md: one shape per topic for the consumer).
    cleared = [_alert(1, sg.PRIORITY_NORMAL, False), _alert(2, sg.PRIORITY_NORMAL, False)]
    assert _shape(bundle.group_for_publish(cleared, False, 65536)) == [(sg.KIND_ALERT, 1)] * 2
    low = [_alert(3, sg.PRIORITY_LOW), _alert(4, sg.PRIORITY_LOW), _telemetry(5), _telemetry(6)]
    assert _shape(bundle.group_for_publish(low, False, 65536)) == [
        (sg.KIND_ALERT, 1), (sg.KIND_ALERT, 1), (sg.KIND_TELEMETRY, 2)]


def test_byte_limit_splits_bundles_and_keeps_every_record_in_order():
    records = [_telemetry(seq) for seq in range(100, 140)]  # all the same length
    limit = 3 * len(records[0])  # a board-sized limit: three records a bundle
    groups = bundle.group_for_publish(records, False, limit)
    assert [len(r) for _, r in groups] == [3] * 13 + [1]
    for _, group in groups:
        assert sum(len(r) for r in group) <= limit
    assert [r for _, group in groups for r in group] == records


def test_a_record_over_the_limit_still_goes_alone():
    records = [_telemetry(1), _telemetry(2)]
    assert _shape(bundle.group_for_publish(records, False, 1)) == [(sg.KIND_TELEMETRY, 1)] * 2


def test_count_limit():
    records = [_telemetry(1)] * (bundle.MAX_BUNDLE_SIGNALS + 1)
    groups = bundle.group_for_publish(records, False, 1 << 30)
    assert [len(r) for _, r in groups] == [bundle.MAX_BUNDLE_SIGNALS, 1]


def test_status_topic_and_payload():
    assert sg.status_topic("unit-17") == "ea/v1/unit-17/status"
    assert cbor.loads(sg.status_payload("unit-17", False)) == {
        sg.K_VERSION: sg.VERSION, sg.K_DEVICE: "unit-17", sg.K_ONLINE: False}
