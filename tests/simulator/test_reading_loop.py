"""The virtual run's reading queue (simulator/scenarios/reading_loop.py)
takes the sensors as the (time, index) tuple heap it replaced did: times
first, ties by index, each sensor queued again a period later, whether the
sensors share a period (appended) or not (inserted by bisection). The
order within a run is checked end to end by the scenarios' signal log
digests (test_accelerate.py, test_scenarios.py)."""

import heapq
import random

import pytest

from simulator.scenarios import reading_loop

T0 = 1767225600000


def _read_until(queue, limit, n):
    """reading_loop.read with the device off: the queue only advances."""
    return reading_loop.read(queue, limit, PERIODS[n], [""] * len(PERIODS[n]), [None] * len(PERIODS[n]),
                             [None] * len(PERIODS[n]), False, None, None, None)


PERIODS = [[1000] * 32, [500, 500, 1000, 1000, 250, 60000], [7, 3, 5, 3, 11]]


@pytest.mark.parametrize("n", range(len(PERIODS)))
def test_the_queue_advances_as_the_tuple_heap_did(n):
    periods = PERIODS[n]
    rng = random.Random(n)
    first_times = [T0 + rng.randrange(0, 3) for _ in periods]  # ties at the start too
    heap = [(t, i) for i, t in enumerate(first_times)]
    heapq.heapify(heap)
    queue = reading_loop.ReadingQueue(first_times)
    for limit in sorted(T0 + rng.randrange(1, 200000) for _ in range(30)):
        taken = []
        while heap and heap[0][0] < limit:
            t, i = heap[0]
            heapq.heapreplace(heap, (t + periods[i], i))
            taken.append((t, i))
        batch = _read_until(queue, limit, n)
        assert batch.steps == len(taken)
        assert batch.now == (taken[-1][0] if taken else None)
        # The same next time for every sensor, in (time, index) order.
        assert [(k >> queue.shift, k & queue.mask) for k in queue.keys[queue.head:]] == sorted(heap)
        assert queue.first() == heap[0][0]


def test_readings_stop_at_the_limit_and_an_empty_queue_has_no_time():
    queue = reading_loop.ReadingQueue([T0, T0 + 1])
    assert _read_until(queue, T0, 0).steps == 0  # nothing before the limit
    assert queue.first() == T0
    empty = reading_loop.ReadingQueue([])
    assert empty.first() is None
    assert reading_loop.read(empty, T0, [], [], [], [], False, None, None, None).now is None
