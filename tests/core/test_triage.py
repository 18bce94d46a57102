"""Triage: dedupe with counts, rate limits, storms with one root cause."""

from support import copy_board

from edge_agent.core import board as bd
from edge_agent.core import signals as sg
from edge_agent.core.triage import Triage


def _board(components=10, health=None):
    data = copy_board()
    for i in range(components):
        cid = "zone_%02d" % i
        data["components"][cid] = {"part": "ZP-7", "supply": "rail_24v"}
        data["sensors"]["t_%02d" % i] = {"bus": "uart0", "component": cid, "unit": "degC", "valid_range": [0, 100], "period_ms": 1000}
    if health:
        data["health"] = health
    return bd.board_from_dict(data, "triage.toml")


def _alert(component, sensor, condition="stuck", active=True, priority=sg.PRIORITY_HIGH):
    body = {sg.A_CONDITION: condition, sg.A_COMPONENT: component, sg.A_SENSOR: sensor, sg.A_ACTIVE: active, sg.A_TEXT: "x"}
    return sg.Signal(sg.KIND_ALERT, priority if active else sg.PRIORITY_NORMAL, 0, body)


def test_flapping_condition_is_one_alert_with_a_count():
    triage = Triage(_board(0))
    sent = []
    for i in range(20):
        sent += triage.submit(_alert("fan", "fan_rpm"), i * 60000)
        sent += triage.submit(_alert("fan", "fan_rpm", active=False), i * 60000 + 1000)
    assert len(sent) == 2  # the first raise and its clear; 19 repeats folded
    assert triage.stats["deduped"] == 19
    out, deadline = triage.poll(3599999)
    assert out == [] and deadline == 3600000
    out, deadline = triage.poll(3600000)
    assert len(out) == 1 and out[0].body[sg.A_COUNT] == 19
    assert "repeated 19 times in the last 60 min" in out[0].body[sg.A_TEXT]
    assert out[0].body[sg.A_ACTIVE] is False and deadline is None
    # The summary counts as sent: a raise within its window is folded too,
    # and one after it goes out again.
    assert triage.submit(_alert("fan", "fan_rpm"), 3700000) == []
    assert len(triage.submit(_alert("fan", "fan_rpm"), 7300000)) == 1


def test_clear_of_an_unsent_raise_is_not_sent():
    triage = Triage(_board(0))
    triage.submit(_alert("fan", "fan_rpm"), 0)
    triage.submit(_alert("fan", "fan_rpm", active=False), 1)
    assert triage.submit(_alert("fan", "fan_rpm"), 2) == []
    assert triage.submit(_alert("fan", "fan_rpm", active=False), 3) == []


def test_rate_limit_per_component_but_never_for_critical():
    triage = Triage(_board(0, health={"rate_burst": 3, "rate_per_hour": 6}))
    sent = []
    for i in range(10):
        sent += triage.submit(_alert("fan", "fan_rpm", condition="c%d" % i), i)
    assert len(sent) == 3 and triage.stats["rate_limited"] == 7
    # Ten minutes refill one token; the alert that uses it reports what was held back.
    later = triage.submit(_alert("fan", "fan_rpm", condition="late"), 600010)
    assert len(later) == 1 and later[0].body[sg.A_SUPPRESSED] == 7
    critical = [triage.submit(_alert("fan", "fan_rpm", condition="k%d" % i, priority=sg.PRIORITY_CRITICAL), 600020) for i in range(5)]
    assert all(len(c) == 1 for c in critical)


def test_ten_components_on_one_rail_give_one_root_cause_with_hold():
    triage = Triage(_board(10, health={"storm_hold_s": 5}))
    sent = []
    for i in range(10):
        sent += triage.submit(_alert("zone_%02d" % i, "t_%02d" % i), 1000 + 300 * i)
    out, _ = triage.poll(20000)
    sent += out
    assert len(sent) == 1, sent
    root = sent[0].body
    assert root[sg.A_CONDITION] == "root_cause" and root[sg.A_ELEMENT] == "supply:rail_24v"
    assert root[sg.A_AFFECTED] == ["zone_%02d" % i for i in range(3)]
    assert "3 components failed within 60 s, all on supply rail rail_24v" in root[sg.A_TEXT]
    assert "zone_00 (part ZP-7)" in root[sg.A_TEXT]
    assert sent[0].priority == sg.PRIORITY_HIGH
    assert triage.stats["storm_suppressed"] == 10  # 3 folded at onset + 7 members later
    # The storm ends after an hour of quiet with a clear that carries the
    # count and every component that joined it.
    out, _ = triage.poll(1000 + 2700 + 3600000)
    assert len(out) == 1 and out[0].body[sg.A_ACTIVE] is False and out[0].body[sg.A_COUNT] == 10
    assert out[0].body[sg.A_AFFECTED] == ["zone_%02d" % i for i in range(10)]


def test_without_hold_the_first_alerts_go_out_before_the_storm_is_known():
    triage = Triage(_board(10))
    sent = []
    for i in range(10):
        sent += triage.submit(_alert("zone_%02d" % i, "t_%02d" % i), 1000 + 300 * i)
    assert [s.body[sg.A_CONDITION] for s in sent] == ["stuck", "stuck", "root_cause"]


def test_failures_far_apart_are_not_a_storm():
    triage = Triage(_board(10))
    sent = []
    for i in range(10):
        sent += triage.submit(_alert("zone_%02d" % i, "t_%02d" % i), i * 120000)
    assert len(sent) == 10 and triage.stats["storms"] == 0
