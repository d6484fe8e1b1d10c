"""Per-endpoint request pacing for provider calls, built on aiolimiter.

Limiters are created lazily, inside the running event loop, because an AsyncLimiter binds to the
loop that first uses it.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiolimiter import AsyncLimiter


@dataclass(frozen=True)
class RateLimit:
    """`key` names who shares the limit (for Bedrock, one endpoint); the rate is per minute."""

    key: str
    requests_per_minute: int


def limiter_for_rate(requests_per_minute: int) -> AsyncLimiter:
    """A limiter whose bursts never exceed one second's share of the rate (at least one call)."""
    burst = max(1, math.floor(requests_per_minute / 60))
    return AsyncLimiter(burst, burst * 60 / requests_per_minute)


class RateLimiters:
    """One limiter per key; a changed rate for a key replaces its limiter."""

    def __init__(self) -> None:
        self._limiters: dict[str, tuple[int, AsyncLimiter]] = {}

    def limiter_for(self, limit: RateLimit) -> AsyncLimiter:
        known = self._limiters.get(limit.key)
        if known is None or known[0] != limit.requests_per_minute:
            known = (limit.requests_per_minute, limiter_for_rate(limit.requests_per_minute))
            self._limiters[limit.key] = known
        return known[1]

    def forget(self, key: str) -> None:
        self._limiters.pop(key, None)

    @asynccontextmanager
    async def slot(self, limit: RateLimit) -> AsyncIterator[None]:
        """Wait for one call's slot; the caller's deadline bounds the wait."""
        await self.limiter_for(limit).acquire()
        yield
