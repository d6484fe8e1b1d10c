"""RateLimiters: each key's rate and bounded queue, the global cap on calls, and waiters giving up.

Limiters are created inside each test's running loop. Assertions count slots rather than time
durations, except for bounds the limiter guarantees against the loop's own clock.
"""

import asyncio

import pytest

from esproxy.errors import BadRequest, QueueFull
from esproxy.inference.rate_limits import (
    RateLimit,
    RateLimiters,
    current_deadline,
    deadline_at,
    limiter_for_rate,
)
from esproxy.observability import events

SLOW = RateLimit("amazonbedrock/slow", 60, inference_id="slow")  # one slot, then one a second
FAST = RateLimit("amazonbedrock/fast", 60_000, inference_id="fast")  # bursts of 1000


async def settle():
    """Let every runnable task take its next steps, without the clock moving much."""
    for _ in range(5):
        await asyncio.sleep(0)


async def take_slot(limiters, limit, entered, hold=None):
    async with limiters.slot(limit):
        entered.append(asyncio.get_running_loop().time())
        if hold is not None:
            await hold.wait()


def start(limiters, limit, entered, count, hold=None):
    return [asyncio.create_task(take_slot(limiters, limit, entered, hold)) for _ in range(count)]


async def cancel_all(tasks):
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.parametrize(
    ("per_minute", "burst"),
    [(1, 1), (30, 1), (60, 1), (119, 1), (120, 2), (600, 2), (6000, 10), (6599, 10)],
)
async def test_burst_is_small_and_a_minute_never_exceeds_the_rate(per_minute, burst):
    limiter = limiter_for_rate(per_minute)
    assert limiter.max_rate == burst
    assert burst <= max(1, per_minute / 60)  # never more than a second's share
    drained_per_minute = limiter.max_rate / limiter.time_period * 60
    # A full bucket plus a minute's drain stays within the rate...
    assert burst + drained_per_minute <= per_minute or per_minute <= 2
    # ...and the sustained rate stays within 2% of it from 120 a minute up.
    if per_minute >= 120:
        assert drained_per_minute >= per_minute * 0.98


async def test_a_burst_never_exceeds_a_seconds_share():
    limiters = RateLimiters()
    entered = []
    # 120 a minute: two at once, the third only half a second later.
    tasks = start(limiters, RateLimit("k", 120), entered, 10)
    await asyncio.sleep(0.1)
    assert len(entered) == 2
    assert limiters.waiting("k") == 8
    await cancel_all(tasks)


async def test_rate_is_honoured_in_every_window():
    # A 1 s minute: 120 a minute is 120 a second, in bursts of two.
    limiters = RateLimiters(minute=1.0)
    loop = asyncio.get_running_loop()
    entered = []
    began = loop.time()
    await asyncio.gather(*start(limiters, RateLimit("k", 120), entered, 30))
    assert len(entered) == 30
    # By the time the n-th caller entered, at most the burst plus the rate times the time since
    # the start had entered; the limiter measures with this same clock.
    for n, when in enumerate(entered, start=1):
        assert n <= 2 + (when - began) * 120 + 1e-6
    assert limiters.waiting("k") == 0


async def test_a_changed_rate_retunes_the_limiter_in_place_for_those_waiting():
    limiters = RateLimiters()
    first = limiters.limiter_for(RateLimit("k", 60))
    assert limiters.limiter_for(RateLimit("k", 60)) is first
    entered = []
    waiters = start(limiters, RateLimit("k", 60), entered, 3)
    await settle()
    assert (len(entered), limiters.waiting("k")) == (1, 2)
    # 60 a minute would keep the last one waiting two seconds; 6000 lets both in at once.
    assert limiters.limiter_for(RateLimit("k", 6000)) is first
    await asyncio.wait_for(asyncio.gather(*waiters), 0.5)
    assert (len(entered), limiters.waiting("k")) == (3, 0)


async def test_a_lower_pace_holds_callers_already_waiting():
    limiters = RateLimiters(minute=1.0)  # 600 a "minute" is 10 a second, in bursts of 2
    limit = RateLimit("k", 600)
    entered = []
    tasks = start(limiters, limit, entered, 3)
    await settle()
    assert len(entered) == 2
    limiters.queues()[0].set_pace(0.6)  # under one call a second from now on
    await asyncio.sleep(0.4)
    assert len(entered) == 2
    await cancel_all(tasks)


async def test_a_call_larger_than_a_minutes_token_budget_is_refused_at_once():
    limiters = RateLimiters(minute=0.1)
    limit = RateLimit("amazonbedrock/t", 60, inference_id="t", tokens_per_minute=1000)
    with pytest.raises(BadRequest) as caught:
        async with limiters.slot(limit, tokens=1001):
            pass
    assert caught.value.status == 400
    assert caught.value.reason == (
        "This request needs an estimated [1001] tokens, more than the [1000] tokens_per_minute "
        "of inference endpoint [t]: it could never be sent. Send less input, lower "
        "max_new_tokens, or raise rate_limit.tokens_per_minute"
    )
    assert limiters.waiting(limit.key) == 0
    # A whole minute's budget is allowed: it waits about that minute (0.1 s here), in pieces.
    async with asyncio.timeout(1.0), limiters.slot(limit, tokens=1000):
        pass


async def test_a_full_queue_refuses_with_elasticsearchs_text():
    limiters = RateLimiters(queue_capacity=3)
    entered = []
    tasks = start(limiters, SLOW, entered, 4)
    await settle()
    assert (len(entered), limiters.waiting(SLOW.key)) == (1, 3)
    with pytest.raises(QueueFull) as caught:
        async with limiters.slot(SLOW):
            pass
    error = caught.value
    assert (error.status, error.error_type) == (429, "es_rejected_execution_exception")
    assert error.reason == (
        "Failed to execute task for inference id [slow] because the request service "
        "[amazonbedrock/slow] queue is full"
    )
    # Queues are per key: another key still gets its slot.
    async with limiters.slot(FAST):
        pass
    await cancel_all(tasks)
    assert limiters.waiting(SLOW.key) == 0


async def test_queue_full_names_the_key_when_no_inference_id_is_known():
    limiters = RateLimiters(queue_capacity=1)
    tasks = start(limiters, RateLimit("k", 60), [], 2)
    await settle()
    with pytest.raises(QueueFull, match=r"inference id \[k\] because the request service \[k\]"):
        await limiters.acquire(RateLimit("k", 60))
    await cancel_all(tasks)


async def test_zero_capacity_means_unbounded():
    limiters = RateLimiters(queue_capacity=0)
    tasks = start(limiters, SLOW, [], 50)
    await settle()
    assert limiters.waiting(SLOW.key) == 49
    await cancel_all(tasks)


async def test_cancelled_waiters_leave_the_queue():
    limiters = RateLimiters(queue_capacity=2)
    entered = []
    first, *waiters = start(limiters, SLOW, entered, 3)
    await settle()
    assert limiters.waiting(SLOW.key) == 2
    waiters[0].cancel()
    await settle()
    assert limiters.waiting(SLOW.key) == 1
    # The freed place can be taken again, and only one more.
    late = start(limiters, SLOW, entered, 1)
    await settle()
    assert limiters.waiting(SLOW.key) == 2
    with pytest.raises(QueueFull):
        await limiters.acquire(SLOW)
    await cancel_all([first, *waiters, *late])
    assert limiters.waiting(SLOW.key) == 0
    assert len(entered) == 1


async def test_timed_out_waiters_leave_the_queue():
    # A 30 s minute: one a minute is one every half second.
    limiters = RateLimiters(queue_capacity=5, minute=30.0)
    await limiters.acquire(SLOW)
    limiters.release()

    async def wait_briefly():
        async with asyncio.timeout(0.05), limiters.slot(SLOW):
            pass

    results = await asyncio.gather(*(wait_briefly() for _ in range(5)), return_exceptions=True)
    assert all(isinstance(result, TimeoutError) for result in results)
    assert limiters.waiting(SLOW.key) == 0
    # Nobody who gave up took the next slot: it is there half a second after the first.
    await asyncio.sleep(0.5)
    async with asyncio.timeout(0.3), limiters.slot(SLOW):
        pass


async def test_global_cap_bounds_calls_across_keys():
    limiters = RateLimiters(max_concurrent_calls=3)
    hold = asyncio.Event()
    inside = []
    tasks = [
        *start(limiters, FAST, inside, 5, hold),
        *start(limiters, RateLimit("other", 60_000), inside, 5, hold),
    ]
    await settle()
    assert len(inside) == 3
    # Callers waiting for the cap still count as waiting under their key.
    assert limiters.waiting(FAST.key) + limiters.waiting("other") == 7
    hold.set()
    await asyncio.gather(*tasks)
    assert len(inside) == 10
    assert limiters.waiting(FAST.key) == limiters.waiting("other") == 0


async def test_callers_giving_up_on_the_cap_keep_no_permit():
    limiters = RateLimiters(max_concurrent_calls=2)
    hold = asyncio.Event()
    holders = start(limiters, FAST, [], 2, hold)
    await settle()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05), limiters.slot(FAST):
            pass
    waiting = start(limiters, FAST, [], 3)
    await settle()
    await cancel_all(waiting)
    assert limiters.waiting(FAST.key) == 0
    hold.set()
    await asyncio.gather(*holders)
    entered = []
    hold = asyncio.Event()
    again = start(limiters, FAST, entered, 3, hold)
    await settle()
    assert len(entered) == 2  # both permits came back, and no more
    hold.set()
    await asyncio.gather(*again)


async def test_a_failing_call_returns_its_permit():
    limiters = RateLimiters(max_concurrent_calls=1)
    for _ in range(3):
        with pytest.raises(RuntimeError):
            async with limiters.slot(FAST):
                raise RuntimeError("call failed")
    async with asyncio.timeout(1), limiters.slot(FAST):
        pass


async def test_forgotten_key_waiters_finish_and_a_new_queue_starts():
    limiters = RateLimiters(queue_capacity=2, minute=1.0)
    entered = []
    tasks = start(limiters, SLOW, entered, 3)
    await settle()
    limiters.forget(SLOW.key)
    assert limiters.waiting(SLOW.key) == 0
    await asyncio.gather(*tasks)
    assert len(entered) == 3


def test_which_endpoint_asks_does_not_change_the_limit():
    assert RateLimit("k", 60, inference_id="a") == RateLimit("k", 60)


async def test_deadline_is_seen_by_calls_and_tasks_within():
    assert current_deadline() is None
    with deadline_at(123.0):
        assert current_deadline() == 123.0
        async with asyncio.TaskGroup() as group:
            child = group.create_task(read_deadline())
        assert child.result() == 123.0
        with deadline_at(None):
            assert current_deadline() is None
        assert current_deadline() == 123.0
    assert current_deadline() is None


async def read_deadline():
    return current_deadline()


async def test_the_wait_for_a_slot_is_recorded_for_the_request():
    limiters = RateLimiters(minute=1.0)  # 60 a "minute" of 1 s: one, then one every 1/59 s
    record = events.start_request()
    limit = RateLimit("k", 60)
    async with limiters.slot(limit):
        pass
    async with limiters.slot(limit):
        pass
    # At least the wait the limiter imposed (a loaded machine only makes it longer).
    assert 0.9 / 59 <= record.rate_limit_wait < 30
