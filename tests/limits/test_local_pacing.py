"""LimitsCoordinator in local mode: throttled calls cut an adaptive key's pace, successes raise it
back, and a key that is not adaptive keeps its configured rate whatever happens."""

import pytest

from esproxy.errors import ProviderError
from esproxy.inference.rate_limits import RateLimit, RateLimiters
from esproxy.limits import LimitsCoordinator


def throttle() -> ProviderError:
    return ProviderError(
        "Too many requests", status=429, code="ThrottlingException", message="slow down"
    )


async def call(limiters, limit, error=None):
    try:
        async with limiters.slot(limit):
            if error is not None:
                raise error
    except ProviderError:
        pass


async def test_throttling_cuts_the_pace_and_successes_restore_it():
    limiters = RateLimiters()
    coordinator = LimitsCoordinator(limiters, "local")
    limit = RateLimit("k", 60_000)
    await call(limiters, limit, throttle())
    [queue] = limiters.queues()
    assert queue.pace == pytest.approx(42_000)
    stats = coordinator.stats()["endpoints"]["k"]
    assert (stats["effective_per_minute"], stats["throttled_last_minute"]) == (42_000, 1)
    for _ in range(200):
        await call(limiters, limit)
    assert queue.pace == pytest.approx(60_000)  # back to the configured rate, never above


async def test_a_key_that_is_not_adaptive_keeps_its_rate():
    limiters = RateLimiters()
    LimitsCoordinator(limiters, "local")
    limit = RateLimit("k", 60_000, adaptive=False)
    await call(limiters, limit, throttle())
    assert limiters.queues()[0].pace == 60_000


async def test_other_failures_do_not_cut_the_pace():
    limiters = RateLimiters()
    LimitsCoordinator(limiters, "local")
    limit = RateLimit("k", 60_000)
    error = ProviderError("bad", status=400, code="ValidationException", message="bad")
    await call(limiters, limit, error)
    assert limiters.queues()[0].pace == 60_000
