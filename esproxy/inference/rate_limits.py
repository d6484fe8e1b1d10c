"""Pacing and overload bounds for provider calls: a rate limit and a bounded queue per key, one cap
on concurrent calls across all keys, and the caller's deadline published for retries to read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import TracebackType

from aiolimiter import AsyncLimiter

from esproxy.errors import QueueFull
from esproxy.observability import events

# ES's `xpack.inference.http.request_executor.queue_capacity` default.
DEFAULT_QUEUE_CAPACITY = 2000
DEFAULT_MAX_CONCURRENT_CALLS = 256

_deadline: ContextVar[float | None] = ContextVar("esproxy_call_deadline", default=None)


@dataclass(frozen=True)
class RateLimit:
    """`key` names who shares the limit (for Bedrock, one endpoint); the rate is per minute."""

    key: str
    requests_per_minute: int
    # Only names the caller in the queue-full text: the limit itself is its key and rate.
    inference_id: str | None = field(default=None, compare=False)


def limiter_for_rate(requests_per_minute: int, minute: float = 60.0) -> AsyncLimiter:
    """A limiter that never lets a sliding minute see more than `requests_per_minute` calls.

    A leaky bucket holding b calls and draining r a minute admits up to b + r calls in a minute,
    and Bedrock counts its quota over such sliding windows, so it drains at rpm - b (scripts/bench/
    rate-limit measured the difference: 11 throttles per key in the first minute, then none).
    b is at least 2 from 120 a minute, so a late timer wake-up is absorbed instead of lost, and
    never more than one second's share.
    """
    burst = 1 if requests_per_minute < 120 else max(2, requests_per_minute // 600)
    drained = max(requests_per_minute - burst, requests_per_minute / 2)
    return AsyncLimiter(burst, burst * minute / drained)


class KeyQueue:
    """One key's limiter, and how many callers wait for a slot under that key."""

    __slots__ = ("inference_id", "limiter", "requests_per_minute", "waiting")

    def __init__(
        self, requests_per_minute: int, limiter: AsyncLimiter, inference_id: str | None = None
    ) -> None:
        self.requests_per_minute = requests_per_minute
        self.limiter = limiter
        self.waiting = 0
        self.inference_id = inference_id


class RateLimiters:
    """One limiter and queue per key; a changed rate for a key replaces its limiter.

    A caller arriving when `queue_capacity` callers already wait under its key is refused with
    QueueFull (0 means unbounded, as in ES). Past its key's rate, a call also needs one of
    `max_concurrent_calls` permits shared by all keys. Limiters are created lazily, inside the
    running event loop, because an AsyncLimiter binds to the loop that first uses it. `minute`
    is the length of a rate's minute in seconds; tests shorten it.
    """

    def __init__(
        self,
        queue_capacity: int = DEFAULT_QUEUE_CAPACITY,
        max_concurrent_calls: int = DEFAULT_MAX_CONCURRENT_CALLS,
        *,
        minute: float = 60.0,
    ) -> None:
        self._queue_capacity = queue_capacity
        self._minute = minute
        self._queues: dict[str, KeyQueue] = {}
        self._calls = asyncio.Semaphore(max_concurrent_calls)

    def limiter_for(self, limit: RateLimit) -> AsyncLimiter:
        return self._queue_for(limit).limiter

    def forget(self, key: str) -> None:
        # Callers still waiting hold their KeyQueue and keep its count right on their own.
        self._queues.pop(key, None)

    def waiting(self, key: str) -> int:
        """How many callers wait for a slot under `key`."""
        queue = self._queues.get(key)
        return 0 if queue is None else queue.waiting

    def depths(self) -> dict[str, int]:
        """Callers waiting, by inference id, for the keys that have any (read by metrics)."""
        depths: dict[str, int] = {}
        for queue in self._queues.values():
            if queue.waiting and queue.inference_id is not None:
                depths[queue.inference_id] = depths.get(queue.inference_id, 0) + queue.waiting
        return depths

    def rate(self, key: str) -> int | None:
        """The rate a key's calls are paced at now, in requests per minute; None before its first
        call."""
        queue = self._queues.get(key)
        return None if queue is None else queue.requests_per_minute

    def slot(self, limit: RateLimit) -> AbstractAsyncContextManager[None]:
        """One provider call's slot, held for the call; the caller's deadline bounds the wait."""
        return Slot(self, limit)

    async def acquire(self, limit: RateLimit) -> None:
        """Wait for the key's rate, then for a global permit; `release()` returns the permit."""
        queue = self._queue_for(limit)
        if 0 < self._queue_capacity <= queue.waiting:
            raise QueueFull(
                f"Failed to execute task for inference id [{limit.inference_id or limit.key}] "
                f"because the request service [{limit.key}] queue is full"
            )
        queue.waiting += 1
        started = time.perf_counter()
        try:
            # Rate first: a caller holding a global permit while it waits for a slow key's rate
            # would keep calls for other keys waiting.
            await queue.limiter.acquire()
            await self._calls.acquire()
        finally:
            queue.waiting -= 1
        events.rate_limit_waited(time.perf_counter() - started)

    def release(self) -> None:
        self._calls.release()

    def _queue_for(self, limit: RateLimit) -> KeyQueue:
        queue = self._queues.get(limit.key)
        if queue is None:
            queue = self._queues[limit.key] = KeyQueue(
                limit.requests_per_minute,
                limiter_for_rate(limit.requests_per_minute, self._minute),
                limit.inference_id,
            )
        elif queue.requests_per_minute != limit.requests_per_minute:
            # Waiters keep the old limiter; the count stays with the key.
            queue.requests_per_minute = limit.requests_per_minute
            queue.limiter = limiter_for_rate(limit.requests_per_minute, self._minute)
        return queue


class Slot(AbstractAsyncContextManager[None]):
    """A class rather than an @asynccontextmanager: it is entered on every provider call."""

    __slots__ = ("_limit", "_limiters")

    def __init__(self, limiters: RateLimiters, limit: RateLimit) -> None:
        self._limiters = limiters
        self._limit = limit

    async def __aenter__(self) -> None:
        await self._limiters.acquire(self._limit)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._limiters.release()


@contextmanager
def deadline_at(when: float | None) -> Iterator[None]:
    """Publish the caller's deadline (event loop time) to the provider calls made within.

    `asyncio.timeout` keeps its deadline to itself; retries read it here, so that they never
    sleep past it.
    """
    token = _deadline.set(when)
    try:
        yield
    finally:
        _deadline.reset(token)


def current_deadline() -> float | None:
    """The deadline published by the nearest `deadline_at`, or None when there is none."""
    return _deadline.get()
