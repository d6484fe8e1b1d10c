"""RateLimiters' pacing on a virtual-time loop (tests/fake_clock.py): when each caller gets its
slot, to the exact instant the limiter allows it, however loaded the machine is.

A test "minute" is often one second here, so that the numbers stay small.
"""

from __future__ import annotations

import asyncio

import pytest

from esproxy.errors import ProviderError
from esproxy.inference.rate_limits import (
    RateLimit,
    RateLimiters,
    estimate_tokens,
    limiter_for_rate,
    report_usage,
    token_parameters,
)
from esproxy.limits import LimitsCoordinator
from tests.fake_clock import Clock, run_virtual

# 1000 tokens a 1 s "minute": a bucket of 5 (0.5%), draining 995 a second.
TOKENS = RateLimit("k", 60_000, inference_id="t", tokens_per_minute=1000)
PIECE = 5 / 995  # the wait for one piece of 5 tokens when the bucket is full


def virtual(test):
    def run():
        clock = Clock()
        run_virtual(test(clock), clock)

    run.__name__, run.__doc__ = test.__name__, test.__doc__
    return run


async def settle():
    for _ in range(5):
        await asyncio.sleep(0)


async def timed_call(limiters, limit, tokens=0, used=None):
    """Seconds (virtual) until the call got its slot."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    async with limiters.slot(limit, tokens):
        took = loop.time() - began
        if used is not None:
            report_usage(used)
    return took


@virtual
async def test_tokens_are_paced_and_reported_usage_replaces_the_estimate(clock):
    limiters = RateLimiters(minute=1.0)
    began = clock.now
    for _ in range(6):
        async with limiters.slot(TOKENS, tokens=100):
            pass
    # 600 tokens: the first 5 at once, the other 595 at 995 a second.
    assert clock.now - began == pytest.approx(595 / 995)
    # Estimated at 10 but 500 used: the next call waits for the 490 more as well.
    await timed_call(limiters, TOKENS, 10, used=500)
    assert await timed_call(limiters, TOKENS, 10) == pytest.approx(500 * PIECE / 5)


@virtual
async def test_a_call_that_used_less_than_estimated_gives_the_rest_back(clock):
    limiters = RateLimiters(minute=1.0)
    await timed_call(limiters, TOKENS, 500, used=10)
    # The bucket is empty again: the first piece of 5 at once, the second after a piece's wait.
    assert await timed_call(limiters, TOKENS, 10) == pytest.approx(PIECE)


@virtual
async def test_a_usage_of_zero_gives_everything_back(clock):
    limiters = RateLimiters(minute=1.0)
    await timed_call(limiters, TOKENS, 500, used=0)
    assert await timed_call(limiters, TOKENS, 10) == pytest.approx(PIECE)


@pytest.mark.parametrize("used", [None, -1])
def test_no_usage_or_a_negative_one_keeps_the_estimate(used):
    async def scenario(clock):
        limiters = RateLimiters(minute=1.0)
        await timed_call(limiters, TOKENS, 500, used=used)
        assert await timed_call(limiters, TOKENS, 10) == pytest.approx(2 * PIECE)

    clock = Clock()
    run_virtual(scenario(clock), clock)


@virtual
async def test_usage_reported_outside_a_slot_changes_nothing(clock):
    limiters = RateLimiters(minute=1.0)
    report_usage(500)
    await timed_call(limiters, TOKENS, 10)
    report_usage(500)
    assert await timed_call(limiters, TOKENS, 10) == pytest.approx(2 * PIECE)


@virtual
async def test_usage_only_counts_against_a_token_budget(clock):
    limiters = RateLimiters(minute=1.0)
    calls = RateLimit("c", 60)  # one a "minute" of 1 s, draining 59, and no token budget
    await timed_call(limiters, calls, 10, used=1_000_000)
    assert await timed_call(limiters, calls, 10) == pytest.approx(1 / 59)


@virtual
async def test_a_caller_giving_up_halfway_gives_back_the_tokens_it_took(clock):
    limiters = RateLimiters(minute=1.0)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05), limiters.slot(TOKENS, tokens=100):
            pass
    # It had taken 50 and the bucket drained meanwhile: empty again.
    assert await timed_call(limiters, TOKENS, 10) == pytest.approx(PIECE)


@virtual
async def test_a_raised_token_share_lets_a_waiting_caller_through_sooner(clock):
    limiters = RateLimiters(minute=1.0)
    [done] = [asyncio.create_task(timed_call(limiters, TOKENS, 200))]
    await asyncio.sleep(0.05)
    [queue] = limiters.queues()
    bucket = queue.tokens
    queue.set_pace(60_000, 2000)  # twice the share: the same bucket, draining 1995 a second
    assert queue.tokens is bucket
    # 50 taken by 0.05 s with a quarter of a piece left in the bucket; 150 to go at 1995/s.
    assert await done == pytest.approx(0.05 + (0.25 + 145) / 1995)


@virtual
async def test_a_new_token_budget_starts_a_new_bucket(clock):
    limiters = RateLimiters(minute=1.0)
    await timed_call(limiters, TOKENS, 100)
    [queue] = limiters.queues()
    bucket = queue.tokens
    limiters.limiter_for(RateLimit("k", 60_000, inference_id="t", tokens_per_minute=4000))
    assert queue.tokens is not bucket
    # A bucket of 20 that nobody used yet, draining 3980 a second.
    assert await timed_call(limiters, queue.limit, 20) == 0.0
    assert await timed_call(limiters, queue.limit, 20) == pytest.approx(20 / 3980)
    limiters.limiter_for(RateLimit("k", 60_000, inference_id="t"))
    assert queue.tokens is None
    assert await timed_call(limiters, queue.limit, 10_000) == 0.0


@virtual
async def test_a_lower_pace_holds_a_waiting_caller_from_where_its_bucket_stood(clock):
    limiters = RateLimiters()  # real minutes
    limit = RateLimit("k", 600)  # bursts of 2, draining 598 a minute
    tasks = [asyncio.create_task(timed_call(limiters, limit)) for _ in range(3)]
    await asyncio.sleep(0.05)
    [queue] = limiters.queues()
    queue.set_pace(6)  # one at a time, draining 5 a minute
    level = 2 - 0.05 * 598 / 60  # what had drained by then drained at the old rate
    assert await asyncio.gather(*tasks) == [0.0, 0.0, pytest.approx(0.05 + level * 12)]


@virtual
async def test_a_higher_pace_lets_a_waiting_caller_in_at_once(clock):
    limiters = RateLimiters()
    limit = RateLimit("k", 60)
    tasks = [asyncio.create_task(timed_call(limiters, limit)) for _ in range(2)]
    await asyncio.sleep(0.5)
    limiters.limiter_for(RateLimit("k", 6000))
    assert await asyncio.gather(*tasks) == [0.0, 0.5]


@virtual
async def test_the_slowest_pace_still_lets_calls_through(clock):
    limiters = RateLimiters()
    limit = RateLimit("k", 60, inference_id="e")
    await timed_call(limiters, limit)
    [queue] = limiters.queues()
    queue.set_pace(0)
    assert (queue.pace, limiters.rate("k"), limiters.paces()) == (0.05, 1, {"e": 0.05})
    # 0.05 a minute: a bucket of one, draining half of that. One call in 40 minutes, no slower.
    assert await timed_call(limiters, limit) == pytest.approx(2400.0)


# -- what a caller sees of throttling ---------------------------------------------------------


def throttled(code):
    return ProviderError("Too many requests", status=429, code=code, message="slow down")


@pytest.mark.parametrize(
    ("error", "cut"),
    [
        (throttled("ThrottlingException"), True),
        (throttled("ServiceQuotaExceededException"), True),
        (throttled("429"), True),
        (ProviderError("busy", status=503, code="ServiceUnavailableException", message="x"), False),
        (ProviderError("bad", status=400, code="ValidationException", message="bad"), False),
        (RuntimeError("not a provider error"), False),
    ],
)
def test_only_bedrock_throttling_cuts_the_effective_rate(error, cut):
    async def scenario(clock):
        limiters = RateLimiters()
        coordinator = LimitsCoordinator(limiters, "local")
        limit = RateLimit("k", 600, inference_id="e")
        with pytest.raises(type(error)):
            async with limiters.slot(limit):
                raise error
        stats = coordinator.stats()["endpoints"]["k"]
        assert stats["effective_per_minute"] == (420.0 if cut else 600.0)
        assert stats["throttled_last_minute"] == int(cut)
        assert stats["succeeded_last_minute"] == 0
        assert limiters.rate("k") == (420 if cut else 600)
        assert limiters.paces() == {"e": 420.0 if cut else 600.0}

    clock = Clock()
    run_virtual(scenario(clock), clock)


@virtual
async def test_after_a_throttle_calls_are_paced_at_the_cut_rate(clock):
    limiters = RateLimiters(minute=1.0)
    LimitsCoordinator(limiters, "local")
    limit = RateLimit("k", 600)  # 10 a second, bursts of 2
    with pytest.raises(ProviderError):
        async with limiters.slot(limit):
            raise throttled("ThrottlingException")
    clock.now += 10.0  # the bucket is empty
    began = clock.now
    for _ in range(44):
        async with limiters.slot(limit):
            pass
    # 420 a "minute" in bursts of 2: 2 at once, then 42 at 418 a second, but each success
    # raises the pace by 1 (to 462 after the last): between the two paces (598 uncut).
    assert 42 / 460 < clock.now - began < 42 / 418


# -- metrics views -------------------------------------------------------------------------------


@virtual
async def test_metrics_see_depths_and_paces_by_inference_id(clock):
    limiters = RateLimiters()
    slow_a = RateLimit("a", 60, inference_id="e")
    slow_b = RateLimit("b", 60, inference_id="e")
    anonymous = RateLimit("c", 60)
    idle = RateLimit("d", 120, inference_id="f")
    assert (limiters.rate("a"), limiters.depths(), limiters.paces()) == (None, {}, {})
    tasks = [
        asyncio.create_task(timed_call(limiters, limit))
        for limit in (slow_a, slow_a, slow_a, slow_b, slow_b, anonymous, anonymous)
    ]
    limiters.limiter_for(idle)
    await settle()
    assert limiters.depths() == {"e": 3}
    assert limiters.paces() == {"e": 120.0, "f": 120.0}
    assert (limiters.rate("a"), limiters.rate("d")) == (60, 120)
    await asyncio.gather(*tasks)
    assert limiters.depths() == {}


def test_tokens_are_estimated_at_four_characters_each():
    assert [estimate_tokens(text) for text in ("", "a", "abcd", "abcde", "x" * 400)] == [
        0,
        1,
        1,
        2,
        100,
    ]


def test_a_limiter_never_paces_slower_than_the_slowest_pace():
    limiter = limiter_for_rate(0)
    # 0.05 a minute: a bucket of one that drains in 40 minutes.
    assert (limiter.max_rate, limiter.time_period) == (1, 2400.0)


@pytest.mark.parametrize(
    ("share", "budget", "expected"),
    [
        (1000, 1000, (5.0, 60 * 5 / 995)),  # a bucket of 0.5% of the budget drains the rest
        (8, 1000, (5.0, 60 * 5 / 4)),  # a share under twice the bucket drains at half of it
        (0.5, 100, (1.0, 60 / 0.5)),  # a bucket of one token at least, a share of one at least
        (300, 100, (1.0, 60 / 299)),
    ],
)
def test_a_token_bucket_keeps_a_minute_within_the_share(share, budget, expected):
    assert token_parameters(share, budget) == pytest.approx(expected)


@virtual
async def test_a_slot_left_in_another_task_returns_its_permit_and_counts(clock):
    """A stream's slot can be closed by another task than the one that opened it."""
    limiters = RateLimiters(max_concurrent_calls=1)
    coordinator = LimitsCoordinator(limiters, "local")
    limit = RateLimit("k", 600)
    slot = limiters.slot(limit)
    await slot.__aenter__()
    await asyncio.create_task(slot.__aexit__(None, None, None))
    assert coordinator.stats()["endpoints"]["k"]["succeeded_last_minute"] == 1
    async with asyncio.timeout(1.0), limiters.slot(limit):
        pass


@virtual
async def test_tokens_are_taken_in_pieces_no_bigger_than_needed(clock):
    limiters = RateLimiters(minute=1.0)
    began = clock.now
    for _ in range(3):
        async with limiters.slot(TOKENS, tokens=12):  # pieces of 5, 5 and 2
            pass
    assert clock.now - began == pytest.approx((36 - 5) / 995)


@virtual
async def test_calls_without_an_estimate_take_no_tokens_and_single_tokens_count(clock):
    limiters = RateLimiters(minute=1.0)
    for _ in range(6):
        async with limiters.slot(TOKENS):
            pass
        await limiters.acquire(TOKENS)
        limiters.release()
    assert clock.now == 1000.0
    for _ in range(5):
        assert await timed_call(limiters, TOKENS, 1) == 0.0
    assert await timed_call(limiters, TOKENS, 1) == pytest.approx(1 / 995)


@virtual
async def test_a_call_without_an_estimate_never_waits_for_the_token_budget(clock):
    limiters = RateLimiters(minute=1.0)
    big = asyncio.create_task(timed_call(limiters, TOKENS, 500))
    await settle()
    assert await timed_call(limiters, TOKENS) == 0.0
    assert await big == pytest.approx(495 / 995)


@virtual
async def test_a_call_that_used_less_gives_back_exactly_the_difference(clock):
    limiters = RateLimiters(minute=1.0)
    done = asyncio.Event()

    async def estimated_20_used_10():
        async with limiters.slot(TOKENS, tokens=20):
            await done.wait()
            report_usage(10)

    first = asyncio.create_task(estimated_20_used_10())
    await asyncio.sleep(0.1)
    await timed_call(limiters, TOKENS, 5, used=500)  # meanwhile: 495 more than estimated
    done.set()
    await first
    # The bucket held 500 when the first call gave back its 10: 490 to drain first.
    assert await timed_call(limiters, TOKENS, 5) == pytest.approx(490 / 995)
