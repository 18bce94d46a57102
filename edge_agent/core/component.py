"""Component states: every rule of the state machine, in one table.

Theory of operation
-------------------
Each component of the board has one state. The health engine evaluates a
component every time one of its sensors reads (and on a timer while a sensor
has dropped out): the evaluation is *bad* when any health rule of any of its
sensors is active. Evaluations drive the machine through a debouncer
(``Debounce``: N bad of the last M), so one spike never quarantines:

    OK --bad--> SUSPECT --confirm (N of M bad)--> FAILED
    SUSPECT --clear (M good in a row)--> OK
    FAILED --quarantine--> QUARANTINED        non-essential: actions applied
    FAILED --degrade--> DEGRADED              essential: never quarantined
                                              automatically; the board's
                                              degraded mode and a critical alert
    QUARANTINED --probe (backoff elapsed)--> PROBING    actions undone, readings watched
    PROBING --recover (release_after good in a row)--> OK
    PROBING --probe_failed (N of M bad)--> QUARANTINED  backoff doubles
    PROBING --escalate (max_probes failed)--> SERVICE   stays isolated, a person must act
    DEGRADED --recover (release_after good in a row)--> OK

Operators (console, signed command) may at any time:

    any state --force--> FORCED        quarantine actions applied, even on an
                                       essential component: a person decided
    any state but OK --release--> OK   actions undone, counters reset

Anything not in the table is a bug in the caller and raises
``IllegalTransition``; the engine only asks for transitions the table allows,
and the property tests check that no reading stream makes it ask otherwise.
"""

# Names for annotations only (mypyc, `make accelerate`): never imported at run
# time, so MicroPython, which ignores annotations, needs no typing module.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

# Final: constants to mypyc, not a module lookup per reading.
OK: "Final" = "ok"
SUSPECT = "suspect"
FAILED = "failed"
QUARANTINED = "quarantined"
PROBING = "probing"
DEGRADED = "degraded"
SERVICE = "service"
FORCED = "forced"

# Not a state of the machine: what people are shown for a component that is
# not isolated while one of its sensors has lost its link (link_lost): its
# condition is unknown (HealthEngine.shown_state).
STALE = "stale"

STATES = (OK, SUSPECT, FAILED, QUARANTINED, PROBING, DEGRADED, SERVICE, FORCED)

# Events.
BAD = "bad"
CONFIRM = "confirm"
CLEAR = "clear"
QUARANTINE = "quarantine"
DEGRADE = "degrade"
PROBE = "probe"
RECOVER = "recover"
PROBE_FAILED = "probe_failed"
ESCALATE = "escalate"
FORCE = "force"
RELEASE = "release"

TRANSITIONS = {
    OK: {BAD: SUSPECT, FORCE: FORCED},
    SUSPECT: {CONFIRM: FAILED, CLEAR: OK, FORCE: FORCED, RELEASE: OK},
    FAILED: {QUARANTINE: QUARANTINED, DEGRADE: DEGRADED, FORCE: FORCED, RELEASE: OK},
    QUARANTINED: {PROBE: PROBING, FORCE: FORCED, RELEASE: OK},
    PROBING: {RECOVER: OK, PROBE_FAILED: QUARANTINED, ESCALATE: SERVICE, FORCE: FORCED, RELEASE: OK},
    DEGRADED: {RECOVER: OK, FORCE: FORCED, RELEASE: OK},
    SERVICE: {FORCE: FORCED, RELEASE: OK},
    FORCED: {RELEASE: OK},
}

# States in which the component's quarantine actions are in force and its
# readings are not judged (a powered-off sensor reads nonsense or nothing).
ISOLATED: "Final" = (QUARANTINED, SERVICE, FORCED)
# States in which readings are judged but rule alerts are held back: the
# state machine speaks for the component (probing is a test, not news).
WATCHED_QUIETLY: "Final" = (PROBING,)


class IllegalTransition(Exception):
    """The engine asked for a transition the table forbids (a bug)."""


def next_state(state, event):
    """The state after ``event`` in ``state``; raises IllegalTransition."""
    row = TRANSITIONS.get(state)
    if row is None:
        raise IllegalTransition("unknown state %r" % (state,))
    target = row.get(event)
    if target is None:
        raise IllegalTransition("%s is not allowed in state %s (allowed: %s)" % (event, state, ", ".join(sorted(row))))
    return target


class Debounce:
    """N bad out of the last M evaluations, kept as M bits of an int (no
    list per component: 32 components cost 32 small ints)."""

    __slots__ = ("n", "m", "mask", "bits", "good_run")
    # Typed for mypyc: the health engine counts a good evaluation per reading.
    n: int
    m: int
    mask: int
    bits: int
    good_run: int

    def __init__(self, n: int, m: int) -> None:
        self.n = n
        self.m = m
        self.mask = (1 << m) - 1
        self.bits = 0
        self.good_run = 0  # consecutive good evaluations

    def add(self, bad):
        if bad:
            self.bits = ((self.bits << 1) | 1) & self.mask
            self.good_run = 0
        else:
            self.bits = (self.bits << 1) & self.mask
            self.good_run += 1

    def bad_count(self):
        count = 0
        bits = self.bits
        while bits:
            count += bits & 1
            bits >>= 1
        return count

    def confirmed(self):
        return self.bad_count() >= self.n

    def reset(self):
        self.bits = 0
        self.good_run = 0
