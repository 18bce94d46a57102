"""Bundles: many signals under one signature, for telemetry backlogs.

A sealed message's payload is either one signal (a CBOR map) or a bundle: a
CBOR array of signals of the same device and kind, in seq order. One
Ed25519 signature per bundle instead of per signal is what lets a backlog
drain at tens of thousands of signals per second. Alerts are never
bundled: every alert, raised or cleared, whatever its priority, goes one
per message on ``ea/v1/<device>/alert``, so that topic carries one shape
and the most urgent signal never waits for a bundle to fill.

The uplink builds a bundle from stored records without decoding them: the
array head followed by the records' bytes is exactly the canonical CBOR of
the array.
"""

from edge_agent.core import cbor
from edge_agent.core import signals as sg

MAX_BUNDLE_SIGNALS = 1000


def encode(records):
    """The bundle of ``records`` (each a signal's CBOR bytes)."""
    # One join: the head and the records in one allocation of the final size.
    return b"".join(encode_pieces(records))


def encode_pieces(records):
    """The bundle of ``records`` as a tuple of pieces (its head, then the
    records themselves), never joined: a board seals and sends them one
    after another (cose.mac0_pieces)."""
    if not records:
        raise ValueError("a bundle holds at least one signal")
    return (cbor._head(4, len(records)),) + tuple(records)


def group_for_publish(records, urgent, max_bytes):
    """Split an uplink batch's records into payloads to publish:
    [(kind, [records])]. Alerts (any priority: a clear comes from a
    non-urgent lane) and every record of an ``urgent`` batch go one per
    message; the others in bundles of one kind, at most ``max_bytes`` of
    records (the gateway's and a board's limits differ) and
    MAX_BUNDLE_SIGNALS each."""
    groups = []
    size = 0
    for record in records:
        kind = peek_kind(record)
        if (urgent or kind == sg.KIND_ALERT or not groups or groups[-1][0] != kind or size + len(record) > max_bytes
                or len(groups[-1][1]) >= MAX_BUNDLE_SIGNALS):
            groups.append((kind, [record]))
            size = len(record)
        else:
            groups[-1][1].append(record)
            size += len(record)
    return groups


def decode(payload, records=None):
    """The signals in a sealed payload (a signal or a bundle), checked:
    raises SignalError for anything that is not valid, or a bundle that
    mixes devices or kinds. ``records``, a list, receives each signal's
    own bytes in the payload (for the receiver, which stores them as
    signed instead of encoding the decoded body again)."""
    if payload[:1] and payload[0] >> 5 != 4:
        signal = sg.decode(payload)
        if records is not None:
            records.append(payload)
        return [signal]
    try:
        items, spans = cbor.loads_spans(payload)
    except cbor.CBORError as exc:
        raise sg.SignalError("not CBOR: %s" % exc)
    if not isinstance(items, list) or not items:
        raise sg.SignalError("a bundle must be a non-empty array of signals")
    if len(items) > MAX_BUNDLE_SIGNALS:
        raise sg.SignalError("a bundle holds at most %d signals, got %d" % (MAX_BUNDLE_SIGNALS, len(items)))
    signals = [sg.from_map(item) for item in items]
    first = signals[0]
    for signal in signals[1:]:
        if signal.device != first.device or signal.kind != first.kind:
            raise sg.SignalError("a bundle mixes devices or kinds (%s/%s and %s/%s)"
                                 % (first.device, first.kind_name, signal.device, signal.kind_name))
    if records is not None:
        view = memoryview(payload)
        records.extend(view[start:end] for start, end in spans)
    return signals


# Every v1 signal is a canonical 7-entry map, so its bytes begin with
# a7 (map of 7), 00 01 (version: 1), 01 (kind key), then the kind as one
# byte (kinds are < 24). Reading that byte lets the uplink group stored
# records by kind without decoding telemetry batches of hundreds of readings.
_V1_PREFIX = b"\xa7\x00\x01\x01"


def peek_kind(record):
    """The kind of a stored signal record."""
    if record[:4] == _V1_PREFIX and record[4] < 24:
        return record[4]
    return sg.decode(record).kind
