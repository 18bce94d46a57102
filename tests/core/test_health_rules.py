"""Every rule kind: when it becomes active, when it clears, what it says."""

from health_support import fault, good, health_board
from support import copy_board

from edge_agent.core import board as bd
from edge_agent.core import health, rule_kinds, rules


def _watch(rules_list, sensor="fan_rpm", other_rules=None):
    board = health_board(fan_rules=rules_list if sensor == "fan_rpm" else None,
                         temp_rules=rules_list if sensor == "coolant_temp" else other_rules)
    return _watches(board, sensor)


def _watches(board, sensor):
    latest = {}
    watches = {}
    for s in board.sensors.values():
        watches[s.id] = rules.SensorWatch(s, board.components[s.component], board, latest, 0, rule_kinds.RULE_CLASSES)
    return watches[sensor], latest, watches


def _feed(watch, latest, stream):
    """Feed (t, value) pairs; return [(t, kind, active), ...] of changes."""
    seen = []
    for t, value in stream:
        r = good(t, watch.sensor.id, value) if value is not None else fault(t, watch.sensor.id)
        latest[r.sensor] = r
        for change in watch.observe(r):
            seen.append((t, change.rule.kind, change.active))
    return seen


def test_valid_range_and_fault_are_always_there():
    watch, latest, _ = _watch([])
    seen = _feed(watch, latest, [(0, 100), (1000, 9000), (2000, 9100), (3000, 100), (4000, None), (5000, 100)])
    assert seen == [
        (1000, "out_of_range", True), (3000, "out_of_range", False),
        (4000, "sensor_fault", True), (5000, "sensor_fault", False),
    ]


def test_threshold_has_hysteresis():
    # clear_for_s 0: the level hysteresis alone (the time hysteresis below)
    watch, latest, _ = _watch([{"kind": "threshold", "above": 3000, "clear": 2500, "clear_for_s": 0}])
    seen = _feed(watch, latest, [(0, 2900), (1, 3100), (2, 2900), (3, 2600), (4, 3001), (5, 2400)])
    assert seen == [(1, "threshold", True), (5, "threshold", False)]  # 2900 and 2600 stay above clear
    rule = watch.rules[-1]
    assert rule.health is False  # a process limit, not a broken part
    watch, latest, _ = _watch([{"kind": "threshold", "below": 500, "clear_for_s": 0}])
    assert _feed(watch, latest, [(0, 600), (1, 400), (2, 500), (3, 501)]) == [(1, "threshold", True), (2, "threshold", False)]


def test_threshold_clears_only_after_clear_for_s_past_its_clear_level():
    # Issue 18: a threshold flapped with noise around its limit. By default
    # it clears only after 60 s of readings past its clear level.
    watch, latest, _ = _watch([{"kind": "threshold", "above": 3000, "clear": 2900}])
    stream = [(0, 2800), (1000, 3100)]
    stream += [(1000 + 10000 * i, 2850 if i % 2 else 2950) for i in range(1, 20)]  # noise across the clear level
    stream += [(200000 + 10000 * i, 2850) for i in range(8)]
    seen = _feed(watch, latest, stream)
    assert seen == [(1000, "threshold", True), (260000, "threshold", False)]
    assert watch.rules[-1].active is False and watch.rules[-1].clear_since is None


def test_stuck_needs_the_full_duration_without_change_beyond_epsilon():
    watch, latest, _ = _watch([{"kind": "stuck", "epsilon": 1.0, "for_s": 10}])
    stream = [(t * 1000, 1200 + (0.5 if t % 2 else 0)) for t in range(0, 12)]  # wobbles inside epsilon
    seen = _feed(watch, latest, stream)
    assert seen == [(10000, "stuck", True)]
    assert watch.rules[-1].detail.startswith("stuck at 1200 rpm: no change beyond 1 for 1")
    assert _feed(watch, latest, [(12000, 1300)]) == [(12000, "stuck", False)]


def test_flatline_at_either_rail():
    watch, latest, _ = _watch([{"kind": "flatline", "tolerance": 10, "for_s": 5}])
    seen = _feed(watch, latest, [(t * 1000, 4995) for t in range(7)] + [(7000, 2000)])
    assert seen == [(5000, "flatline", True), (7000, "flatline", False)]
    seen = _feed(watch, latest, [(10000 + t * 1000, 3) for t in range(6)])
    assert seen == [(15000, "flatline", True)]
    watch, latest, _ = _watch([{"kind": "flatline", "rails": [100, 4000], "for_s": 1}])
    assert _feed(watch, latest, [(0, 4000), (1000, 4001)]) == [(1000, "flatline", True)]


def test_rate_is_per_second_between_readings():
    watch, latest, _ = _watch([{"kind": "rate", "max_per_s": 100}])
    seen = _feed(watch, latest, [(0, 1000), (10000, 1900), (11000, 2100), (12000, 2150)])
    assert seen == [(11000, "rate", True), (12000, "rate", False)]  # 90/s fine, 200/s not


def test_jump_is_against_the_recent_level_not_the_last_reading():
    watch, latest, _ = _watch([{"kind": "jump", "max_step": 500}])
    seen = _feed(watch, latest, [(0, 1000), (1, 1000), (2, 2000), (3, 1000)])
    assert seen == [(2, "jump", True), (3, "jump", False)]  # one spike: active for one reading
    # A slow ramp of 300 per reading never jumps.
    watch, latest, _ = _watch([{"kind": "jump", "max_step": 500}])
    assert _feed(watch, latest, [(t, 100 + 300 * t) for t in range(12)]) == []


def test_dropout_is_judged_by_the_timer():
    watch, latest, _ = _watch([{"kind": "dropout", "for_s": 5}])
    _feed(watch, latest, [(1000, 100)])
    assert watch.dropout_deadline() == 6000
    assert watch.check_dropout(5999) == []
    changes = watch.check_dropout(6000)
    assert [(c.rule.kind, c.active) for c in changes] == [("dropout", True)]
    assert watch.rules[-1].since_ms == 6000 and "no reading for 5 s" in watch.rules[-1].detail
    assert watch.dropout_deadline() is None
    assert _feed(watch, latest, [(9000, 100)]) == [(9000, "dropout", False)]


def test_disagree_needs_a_fresh_partner_and_the_duration():
    data = copy_board()
    data["sensors"]["coolant_temp"]["unit"] = "rpm"
    data["sensors"]["fan_rpm"]["rules"] = [{"kind": "disagree", "with": "coolant_temp", "max_diff": 5, "for_s": 2}]
    watch, latest, watches = _watches(bd.board_from_dict(data, "x"), "fan_rpm")
    partner = watches["coolant_temp"]
    _feed(partner, latest, [(0, 50)])
    seen = _feed(watch, latest, [(0, 60), (1000, 61), (2000, 62)])
    assert seen == [(2000, "disagree", True)]
    assert "but coolant_temp reads 50" in watch.rules[-1].detail
    # The partner goes quiet: no fresh reading, no disagreement.
    assert _feed(watch, latest, [(10000, 62)]) == [(10000, "disagree", False)]


def test_fault_reading_leaves_value_rules_alone():
    watch, latest, _ = _watch([{"kind": "stuck", "epsilon": 0, "for_s": 2}])
    seen = _feed(watch, latest, [(0, 7), (1000, None), (2000, 7), (3000, 7)])
    assert seen == [(1000, "sensor_fault", True), (2000, "sensor_fault", False), (2000, "stuck", True)]


def test_evidence_is_bounded():
    watch, latest, _ = _watch([])
    _feed(watch, latest, [(t, t) for t in range(50)])
    assert len(watch.evidence) == rules.EVIDENCE
    assert watch.evidence[-1] == [49, "fan_rpm", 49.0]


def test_number_formatting_for_people():
    assert rules.num(3.0) == "3" and rules.num(2.5) == "2.5" and rules.num(1.0 / 3) == "0.3333"
    assert rules.num(float("inf")) == "inf"


def test_the_less_common_kinds_are_looked_up_only_for_a_board_that_declares_one():
    # health.py imports rule_kinds only then: a board with thresholds and
    # stuck rules alone never loads its classes (heap on a 32-bit board).
    plain = health_board(fan_rules=[{"kind": "stuck", "epsilon": 1.0, "for_s": 60}])
    assert health._rule_classes(plain) is rules.RULE_CLASSES
    assert "jump" not in rules.RULE_CLASSES and "threshold" in rules.RULE_CLASSES
    jumpy = health_board(fan_rules=[{"kind": "jump", "max_step": 100.0}])
    assert health._rule_classes(jumpy) is rule_kinds.RULE_CLASSES
    assert set(rule_kinds.RULE_CLASSES) == {"threshold", "stuck", "flatline", "rate", "jump", "dropout", "disagree",
                                            "shift"}
