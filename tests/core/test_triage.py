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


def _flapping_board(reraise_s):
    data = copy_board()
    data["sensors"]["fan_rpm"]["rules"] = [{"kind": "stuck", "for_s": 5, "reraise_s": reraise_s}]
    return bd.board_from_dict(data, "triage.toml")


def test_flapping_condition_is_folded_by_its_minimum_re_raise_interval():
    # Issue 18 changes this test: a condition that cleared and came back
    # used to be folded for dedupe_s (an hour) after its last raise, so a
    # second incident within the hour raised nothing. Now an incident that
    # cleared and came back is raised again, no sooner than its rule's
    # reraise_s after the last raise; repeats inside that interval are
    # counted into the next alert or a summary.
    triage = Triage(_flapping_board(300))
    raises = []
    for i in range(20):
        raises += [(i * 60000, s.body.get(sg.A_COUNT)) for s in triage.submit(_alert("fan", "fan_rpm"), i * 60000)]
        triage.submit(_alert("fan", "fan_rpm", active=False), i * 60000 + 1000)
        assert triage.poll(i * 60000 + 2000)[0] == []
    # one raise every 5 minutes, each standing for the 4 folded since
    assert [t for t, _ in raises] == [0, 300000, 600000, 900000]
    assert [c for _, c in raises] == [None, 5, 5, 5]
    assert triage.stats["deduped"] == 16
    # the last four flaps wait for their summary, at the end of the window
    out, deadline = triage.poll(1199999)
    assert out == [] and deadline == 1200000
    out, deadline = triage.poll(1200000)
    assert len(out) == 1 and out[0].body[sg.A_COUNT] == 4
    assert "repeated 4 times in the last 5 min; cleared now" in out[0].body[sg.A_TEXT]
    assert out[0].body[sg.A_ACTIVE] is False and deadline is None
    # A summary of flaps that ended stands for no raise: the next incident
    # is timed from the last raise sent (900000), not from the summary.
    assert len(triage.submit(_alert("fan", "fan_rpm"), 1200001)) == 1


def test_repeat_summary_says_active_while_the_condition_is_active():
    triage = Triage(_flapping_board(300))
    triage.submit(_alert("fan", "fan_rpm"), 0)
    triage.submit(_alert("fan", "fan_rpm", active=False), 1000)
    assert triage.submit(_alert("fan", "fan_rpm"), 2000) == []  # inside reraise_s: folded
    out, _ = triage.poll(300000)
    assert len(out) == 1 and out[0].body[sg.A_ACTIVE] is True
    assert "still active now" in out[0].body[sg.A_TEXT]
    # the summary stood for the raise: its clear goes out
    assert len(triage.submit(_alert("fan", "fan_rpm", active=False), 400000)) == 1


def test_a_new_incident_after_a_clear_is_raised_again():
    triage = Triage(_board(0))  # no reraise_s: a new incident goes out at once
    assert len(triage.submit(_alert("fan", "fan_rpm"), 0)) == 1
    assert len(triage.submit(_alert("fan", "fan_rpm", active=False), 1000)) == 1
    assert len(triage.submit(_alert("fan", "fan_rpm"), 121000)) == 1


def test_repeats_of_an_incident_that_never_cleared_are_deduped():
    triage = Triage(_board(0))
    assert len(triage.submit(_alert("fan", "fan_rpm"), 0)) == 1
    assert triage.submit(_alert("fan", "fan_rpm"), 60000) == []  # no clear in between
    out, _ = triage.poll(3600000)
    assert len(out) == 1 and out[0].body[sg.A_COUNT] == 1 and out[0].body[sg.A_ACTIVE] is True


def test_clear_of_an_unsent_raise_is_not_sent():
    triage = Triage(_flapping_board(300))
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
