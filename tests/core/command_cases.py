"""Hostile input for the signed-command handler, and what must hold of its
answers, shared by the gateway's property test (Downlink, in process) and
the firmware's (firmware/commands.py on the MicroPython unix port).

CPython only (hypothesis): tests/mp_run.py runs tests/core/test_*.py and
never imports this module.

What is generated, each message on its own:

- arbitrary bytes, and arbitrary CBOR (big integers, tags, floats, nesting
  past the decoder's depth limit);
- COSE-shaped arrays with hostile headers: huge or mistyped alg, a kid
  that is the trusted operator's or anything else, junk unprotected
  headers, payload and authenticator of any type and length, any tag;
- messages sealed *correctly* by the trusted operator (the platform's
  ``seal``) around hostile payloads: every key of the operator map absent,
  mistyped, a bignum, or right; and well-formed commands (names, args and
  counters drawn small, so applies, replays and stale counters happen);
- the wrong envelope (a Mac0 where Ed25519 is trusted, or the reverse),
  copies of good messages with one byte changed or cut short, and
  messages one byte past the size bound (op.MAX_COMMAND_BYTES).

``check(records, operator, ...)`` states the properties over the
harness's record of each message (``Record``).
"""

from hypothesis import strategies as st

from edge_agent.core import cbor, cose
from edge_agent.core import operator as op
from edge_agent.core.audit import MAX_TEXT
from edge_agent.core.command_flow import REFUSAL_WINDOW_MS, REFUSALS_PER_WINDOW

HUGE = (10 ** 5000, -(10 ** 5000), 2 ** 64, 2 ** 64 - 1, -(2 ** 64) - 1, 2 ** 200)
# (drawn by index: hypothesis prints what it samples, and CPython cannot
# print an integer of more than 4300 digits)


def huge():
    return st.integers(min_value=0, max_value=len(HUGE) - 1).map(HUGE.__getitem__)


# Every reason code an audit of the downlink may carry (the part before ":").
REASONS = frozenset((
    "too-large", "malformed", "unsupported-version", "unknown-operator", "wrong-algorithm", "bad-signature",
    "wrong-type", "bad-command", "bad-scope", "wrong-device", "wrong-model", "expired", "not-yet-valid",
    "too-long-lived", "replay", "stale-counter",  # op.Rejection
    "unknown-component", "not-allowed", "no-config", "unknown-alert", "busy", "bad-config",  # op.Refused
    "internal-error", "rate-limited",
))
# A log line of the flow stays about one line, whatever was sent.
MAX_LOG_LINE = 1000


def scalars():
    return st.one_of(
        st.none(), st.booleans(), st.integers(min_value=-(2 ** 70), max_value=2 ** 70), huge(),
        st.floats(), st.binary(max_size=24), st.text(max_size=24),
    )


def values():
    """Any CBOR value the core's codec can write."""
    keys = st.one_of(st.integers(min_value=-3, max_value=12), st.text(max_size=8), st.binary(max_size=4))
    return st.recursive(scalars(), lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(keys, inner, max_size=5),
        st.builds(cbor.Tag, st.one_of(st.sampled_from((2, 3, 17, 18, 24)), st.integers(0, 2 ** 32)), inner),
    ), max_leaves=12)


def _nested(depth):
    return b"\x81" * depth + b"\x00"


def arbitrary():
    return st.one_of(
        st.binary(max_size=200),
        values().map(cbor.dumps),
        st.integers(min_value=28, max_value=200).map(_nested),
    )


def cose_shaped(kid):
    """Tagged 4-arrays that look like COSE, with hostile parts."""
    alg = st.one_of(st.sampled_from((cose.ALG_HMAC_256, cose.ALG_EDDSA)), huge(), values())
    header_kid = st.one_of(st.just(kid), st.binary(max_size=12), values())
    headers = st.one_of(
        st.fixed_dictionaries({}, optional={cose.HEADER_ALG: alg, cose.HEADER_KID: header_kid}),
        st.dictionaries(st.integers(min_value=-5, max_value=10), values(), max_size=4),
        values(),
    )
    protected = st.one_of(headers.map(cbor.dumps), st.binary(max_size=24))
    unprotected = st.one_of(st.just({}), st.fixed_dictionaries({cose.HEADER_KID: header_kid}), values())
    payload = st.one_of(st.binary(max_size=60), values().map(cbor.dumps), values())
    authenticator = st.one_of(st.binary(min_size=32, max_size=32), st.binary(min_size=64, max_size=64),
                              st.binary(max_size=70), values())
    tag = st.one_of(st.sampled_from((cose.TAG_MAC0, cose.TAG_SIGN1)), st.integers(min_value=0, max_value=2 ** 64 - 1))
    parts = st.one_of(st.tuples(protected, unprotected, payload, authenticator).map(list),
                      st.lists(values(), max_size=6))
    return st.builds(lambda t, p: cbor.dumps(cbor.Tag(t, p)), tag, parts)


def _args(components):
    component = st.sampled_from(tuple(components) + ("nothing",))
    text = st.text(min_size=1, max_size=12)
    return {
        "quarantine.force": st.fixed_dictionaries({"component": component}, optional={"note": text}),
        "quarantine.release": st.fixed_dictionaries({"component": component}, optional={"note": text}),
        "alert.ack": st.fixed_dictionaries({"alert": st.sampled_from(("1", "7", "x"))}, optional={"note": text}),
        "advisory": st.fixed_dictionaries({"text": text}, optional={
            "id": text, "severity": st.sampled_from(("info", "warning", "critical", "bogus")),
            "patch": st.dictionaries(st.sampled_from(op.PATCHABLE), values(), min_size=1, max_size=2)}),
        "config.update": st.fixed_dictionaries({"patch": st.one_of(
            st.dictionaries(st.sampled_from(op.PATCHABLE), values(), min_size=1, max_size=2),
            st.just({"sensors": {"coolant_temp": {"valid_range": [-20, 95]}}}),
            values())}),
    }


def command_bodies(device_id, model, now_ms, components, valid=False):
    """Operator-message maps: well-formed commands, and the same with any
    key missing, mistyped or a bignum."""
    args = _args(components)
    target = st.sampled_from((device_id, "model:" + model, "other-device", "model:OTHER"))
    times = st.one_of(
        st.tuples(st.integers(min_value=-600000, max_value=0), st.integers(min_value=1, max_value=600000)),
        st.tuples(st.integers(min_value=-10 ** 7, max_value=10 ** 7), st.integers(min_value=-10 ** 7, max_value=10 ** 7)),
    ).map(lambda pair: (now_ms + pair[0], now_ms + pair[0] + pair[1]))

    def command(name, arguments, counter, when, where, kind):
        return {op.O_VERSION: op.OPERATOR_VERSION, op.O_TYPE: kind, op.O_TARGET: where, op.O_ISSUED: when[0],
                op.O_EXPIRES: when[1], op.O_NAME: name, op.O_ARGS: arguments, op.O_COUNTER: counter}

    good = st.sampled_from(sorted(args)).flatmap(lambda name: st.builds(
        command, st.just(name), args[name], st.integers(min_value=1, max_value=6), times,
        st.one_of(st.just(device_id), target), st.sampled_from(("command", "command", "command", "token"))))
    if valid:  # for this device, in time: applied, or refused after its counter is spent
        return st.sampled_from(sorted(args)).flatmap(lambda name: st.builds(
            command, st.just(name), args[name], st.integers(min_value=1, max_value=6),
            st.just((now_ms - 1000, now_ms + 600000)), st.sampled_from((device_id, "model:" + model)),
            st.just("command")))

    def spoil(body, changes):
        body = dict(body)
        for key, value in changes:
            if value is _DROP:
                body.pop(key, None)
            else:
                body[key] = value
        return body

    # Half the changes hit what only a command has (name, args, counter):
    # past the checks every message has, into the command's own.
    keys = st.one_of(st.sampled_from((op.O_NAME, op.O_ARGS, op.O_COUNTER)), st.integers(min_value=-1, max_value=10))
    change = st.tuples(keys, st.one_of(st.just(_DROP), values()))
    spoiled = st.builds(spoil, good, st.lists(change, min_size=1, max_size=3))
    return st.one_of(good, spoiled, values())


_DROP = object()


def _flip(message, at, bit):
    if not message:
        return message
    at %= len(message)
    return message[:at] + bytes([message[at] ^ (1 << bit)]) + message[at + 1:]


def _padded(seal, body, size):
    """A sealed good command of exactly ``size`` bytes (its note fills it)."""
    def make(n):
        padded = dict(body)
        padded[op.O_ARGS] = {"component": "x", "note": "n" * n}
        padded[op.O_NAME] = "quarantine.force"
        return seal(cbor.dumps(padded))

    base = len(make(60000)) - 60000
    return make(size - base)


def messages(seal, kid, device_id, model, now_ms, components, big=True):
    """One hostile message: ``seal(payload)`` makes the COSE bytes the
    device trusts (its operator ``kid``)."""
    bodies = command_bodies(device_id, model, now_ms, components)
    sealed = bodies.map(lambda body: seal(cbor.dumps(body)))
    other_envelope = bodies.flatmap(lambda body: st.sampled_from((
        cose.mac0(cbor.dumps(body), kid, b"m" * 32),
        cose.sign1(cbor.dumps(body), kid, lambda message: b"s" * 64),
    )))
    damaged = st.builds(_flip, sealed, st.integers(min_value=0), st.integers(min_value=0, max_value=7))
    cut = st.builds(lambda message, n: message[:n % max(1, len(message))], sealed, st.integers(min_value=0))
    valid = command_bodies(device_id, model, now_ms, components, valid=True)
    choices = [arbitrary(), cose_shaped(kid), sealed, sealed, valid.map(lambda body: seal(cbor.dumps(body))),
               other_envelope, damaged, cut]
    small = st.one_of(*choices)
    if not big:
        return small.map(Message)
    # One message in 20 one byte past the size bound: garbage, or a good command.
    large = st.one_of(st.just(b"\xd2" * (op.MAX_COMMAND_BYTES + 1)),
                      valid.map(lambda body: _padded(seal, body, op.MAX_COMMAND_BYTES + 1)))
    return st.integers(min_value=0, max_value=19).flatmap(lambda n: large if n == 0 else small).map(Message)


def batches(message):
    """[(time offset ms, message)]: up to 30 messages, sometimes sent three
    times over (past the limiter's 20), a second or a minute apart."""
    gaps = st.one_of(st.integers(min_value=0, max_value=1500), st.integers(min_value=0, max_value=REFUSAL_WINDOW_MS))
    return st.builds(_batch, st.lists(st.tuples(gaps, message), min_size=1, max_size=30),
                     st.integers(min_value=1, max_value=3))


def _batch(items, repeat):
    offset = 0
    result = []
    for _ in range(repeat):
        for gap, message in items:
            offset += gap
            result.append((offset, message))
    return result


class Message(bytes):
    """A message that a failing example shows short (some are 64 KiB)."""

    def _repr_pretty_(self, printer, cycle):
        printer.text(repr(self))

    def __repr__(self):
        if len(self) <= 64:
            return repr(bytes(self))
        return "Message(bytes.fromhex(%r) + ... %d bytes)" % (self[:32].hex(), len(self))


class Record:
    """What the harness saw for one message: ``applied``/``refused`` (how
    much each count grew), ``spent`` (the counters changed), ``audits``
    [(who, action, target, result, reason)], ``logs`` [line lengths],
    ``errors`` [the lines logged at level error: internal errors],
    ``suppressed`` (the limiter's count after it)."""

    def __init__(self, now_ms, applied, refused, spent, audits, logs, errors, suppressed):
        self.now_ms = now_ms
        self.applied = applied
        self.refused = refused
        self.spent = spent
        self.audits = audits
        self.logs = logs
        self.errors = errors
        self.suppressed = suppressed


def check(records, operator, tolerated=()):
    """The properties, over one fresh handler's records in order. Raises
    AssertionError naming the message. An internal error (an exception out
    of the flow: a bug) fails it unless its log line holds one of
    ``tolerated``."""
    limited = audited = reported = 0
    for index, record in enumerate(records):
        where = "message %d" % index
        for line in record.errors:
            assert any(known in line for known in tolerated), (where, "an internal error", line)
        # One outcome each.
        assert (record.applied, record.refused) in ((1, 0), (0, 1)), (where, record.applied, record.refused)
        assert not record.applied or record.spent, where
        for who, action, target, result, reason in record.audits:
            assert result in ("applied", "refused"), where
            assert result == "applied" or reason.split(":")[0] in REASONS, (where, reason)
            assert who in ("unverified", operator), (where, who)  # a kid is named only once it is verified
            for text in (who, action, target, reason):
                assert isinstance(text, str) and len(text) <= MAX_TEXT, (where, text)
        assert all(length <= MAX_LOG_LINE for length in record.logs), (where, record.logs)
        if record.spent:
            # Its counter is spent: it cannot come again, so it is always
            # audited, once, naming its operator.
            assert len(record.audits) == 1 and record.audits[0][0] == operator, (where, record.audits)
            assert record.audits[0][3] == ("applied" if record.applied else "refused"), where
            continue
        # Anything else anyone can send: through the limiter.
        limited += 1
        summaries = [a for a in record.audits if a[4].startswith("rate-limited: ")]
        refusals = [a for a in record.audits if not a[4].startswith("rate-limited: ")]
        assert len(summaries) <= 1 and len(refusals) <= 1 and all(a[3] == "refused" for a in record.audits), where
        for summary in summaries:
            reported += int(summary[4].split()[1])
        audited += len(refusals)
        # Nothing refused silently: each is audited, counted, or reported.
        assert limited == audited + reported + record.suppressed, (where, limited, audited, reported,
                                                                    record.suppressed)
    if records and records[-1].now_ms - records[0].now_ms < REFUSAL_WINDOW_MS:
        # One window: exactly the limiter's worth of refusals audited.
        assert audited == min(limited, REFUSALS_PER_WINDOW) and reported == 0, (audited, limited)
