"""The virtual run's innermost loop (virtual.py): readings back to back,
from the sensor models into the core Device, while nothing else is due.

Nearly every step of a dense run is one of these, so the loop is its own
module, typed for mypyc (`make accelerate`, simulator/accelerate.py): there
the Device's methods are direct C calls and the queue's integers unboxed.
"""

import bisect
from typing import Any, Callable, Optional

from edge_agent.core.device import Device


class ReadingQueue:
    """The sensors by the time of their next reading, ties in sensor index
    order (the index is the sensor's rank by id): a sorted list of ints
    ``time << shift | index`` (unique, ordered as (time, index) tuples
    would be), from ``head`` on. A sensor read is queued again a period
    later: appended when that is the latest time queued, as it always is
    when the sensors share one period (no search, no tuple), else inserted
    by bisection; the part taken is dropped once it is as long as the rest,
    so taking one moves nothing."""

    def __init__(self, first_times: "list[int]") -> None:
        self.shift = max(1, len(first_times).bit_length())
        self.mask = (1 << self.shift) - 1
        self.keys = sorted([t << self.shift | i for i, t in enumerate(first_times)])
        self.head = 0

    def first(self) -> Optional[int]:
        """When the next reading is due (None when no sensor is queued)."""
        return self.keys[self.head] >> self.shift if self.head < len(self.keys) else None


class Batch:
    """What ``read`` did: the last reading time taken off the queue (None
    if none was), the readings ingested and the queue steps taken."""

    def __init__(self, now: Optional[int], readings: int, steps: int) -> None:
        self.now = now
        self.readings = readings
        self.steps = steps


def read(queue: ReadingQueue, limit: int, periods: "list[int]", powers: "list[Any]",
         samplers: "list[Callable[[int], Any]]", series_of: "list[Any]", record: bool,
         device: Optional[Device], gpio_state: "Optional[dict]",
         dispatch: "Callable[[list, int], None]") -> Batch:
    """Take the readings queued before ``limit``, each sensor queued again
    a period later. A device that is off (None) reads nothing; an unpowered
    sensor (its ``powers`` output off in ``gpio_state``) is silent. Only the
    device's deadline can move while readings arrive (a reading starts a
    telemetry batch or moves a dropout timer): the limit follows it, and a
    reading with outputs is dispatched and ends the batch, so the caller
    looks at everything again."""
    keys = queue.keys
    head = queue.head
    shift = queue.shift
    mask = queue.mask
    last = 0  # the last time taken (an int, not boxed per reading), when steps > 0
    count = 0
    steps = 0
    while head < len(keys):
        key = keys[head]
        t = key >> shift
        if t >= limit:
            break
        i = key & mask
        head += 1
        again = key + (periods[i] << shift)
        if head == len(keys) or again > keys[-1]:
            keys.append(again)
        else:
            bisect.insort(keys, again, head)
        if head >= len(keys) - head:
            del keys[:head]
            head = 0
        queue.head = head
        steps += 1
        last = t
        if device is None or gpio_state is None:
            continue
        power = powers[i]
        if power and not gpio_state[power]:
            continue  # unpowered: silent
        reading = samplers[i](t)
        if reading is None:
            continue
        count += 1
        if record:
            series = series_of[i]
            series[0].append(t)
            series[1].append(reading.value)
        outputs = device.ingest(reading, t)
        if outputs:
            dispatch(outputs, t)
            break
        t_dev = device.next_deadline()
        if t_dev is not None and t_dev < limit:
            limit = t_dev
    return Batch(last if steps else None, count, steps)
