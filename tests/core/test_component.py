"""The component state table: what it allows, what it refuses."""

from support import raises

from edge_agent.core import component as cs


def test_documented_path_is_allowed():
    path = [
        (cs.OK, cs.BAD, cs.SUSPECT),
        (cs.SUSPECT, cs.CONFIRM, cs.FAILED),
        (cs.FAILED, cs.QUARANTINE, cs.QUARANTINED),
        (cs.QUARANTINED, cs.PROBE, cs.PROBING),
        (cs.PROBING, cs.PROBE_FAILED, cs.QUARANTINED),
        (cs.PROBING, cs.RECOVER, cs.OK),
        (cs.PROBING, cs.ESCALATE, cs.SERVICE),
        (cs.FAILED, cs.DEGRADE, cs.DEGRADED),
        (cs.DEGRADED, cs.RECOVER, cs.OK),
        (cs.SUSPECT, cs.CLEAR, cs.OK),
    ]
    for state, event, target in path:
        assert cs.next_state(state, event) == target


def test_operator_can_force_from_anywhere_and_release_from_anything_but_ok():
    for state in cs.STATES:
        if state != cs.FORCED:
            assert cs.next_state(state, cs.FORCE) == cs.FORCED
        if state != cs.OK:
            assert cs.next_state(state, cs.RELEASE) == cs.OK
    raises(cs.IllegalTransition, cs.next_state, cs.OK, cs.RELEASE)
    raises(cs.IllegalTransition, cs.next_state, cs.FORCED, cs.FORCE)


def test_forbidden_transitions_raise_with_what_is_allowed():
    err = raises(cs.IllegalTransition, cs.next_state, cs.OK, cs.QUARANTINE)
    assert "quarantine is not allowed in state ok (allowed: bad, force)" in str(err)
    # No path skips the debounce or quarantines without a failure first.
    raises(cs.IllegalTransition, cs.next_state, cs.SUSPECT, cs.QUARANTINE)
    raises(cs.IllegalTransition, cs.next_state, cs.OK, cs.CONFIRM)
    raises(cs.IllegalTransition, cs.next_state, cs.QUARANTINED, cs.RECOVER)
    raises(cs.IllegalTransition, cs.next_state, cs.SERVICE, cs.PROBE)
    raises(cs.IllegalTransition, cs.next_state, "melted", cs.BAD)


def test_every_state_has_a_row_and_every_target_is_a_state():
    assert sorted(cs.TRANSITIONS) == sorted(cs.STATES)
    for row in cs.TRANSITIONS.values():
        for target in row.values():
            assert target in cs.STATES


def test_debounce_counts_n_of_m():
    d = cs.Debounce(3, 5)
    for bad in (True, False, True, False):
        d.add(bad)
    assert d.bad_count() == 2 and not d.confirmed()
    d.add(True)
    assert d.confirmed()
    for _ in range(3):
        d.add(False)
    assert d.bad_count() == 1 and d.good_run == 3  # the window slid past two bads
    d.reset()
    assert d.bad_count() == 0 and d.good_run == 0


def test_debounce_window_of_sixteen():
    d = cs.Debounce(16, 16)
    for _ in range(40):
        d.add(True)
    assert d.bad_count() == 16 and d.confirmed()
