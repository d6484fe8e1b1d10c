"""Pacing and overload bounds for provider calls: a rate limit, an optional token budget and a
bounded queue per key, one cap on concurrent calls across all keys, and the caller's deadline
published for retries to read.

A key's pace can change while callers wait: the limiters are retuned in place. What the pace should
be (a share of the deployment's rate, cut after throttling) is decided by a `Pacer`; the default
one paces every key at its configured rate. `esproxy.limits` holds the cluster-aware one.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager, contextmanager, suppress
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol

from aiolimiter import AsyncLimiter

from esproxy.errors import BadRequest, ProviderError, QueueFull
from esproxy.observability import events

# ES's `xpack.inference.http.request_executor.queue_capacity` default.
DEFAULT_QUEUE_CAPACITY = 2000
DEFAULT_MAX_CONCURRENT_CALLS = 256
# The slowest pace a key is ever given: a rate of 0 would strand its callers.
MIN_PACE_PER_MINUTE = 0.05
# A token bucket holds this share of a minute's budget; bigger calls take it in several pieces.
# Every process sharing the budget loses its bucket's size from its share (see token_parameters).
TOKEN_BURST_FRACTION = 0.005
# Bedrock's codes for "too many calls": they cut an adaptive key's pace.
THROTTLING_CODES = frozenset({"ThrottlingException", "ServiceQuotaExceededException", "429"})

_deadline: ContextVar[float | None] = ContextVar("esproxy_call_deadline", default=None)
_current_slot: ContextVar[Slot | None] = ContextVar("esproxy_current_slot", default=None)


@dataclass(frozen=True)
class RateLimit:
    """`key` names who shares the limit (for Bedrock, one endpoint); the rates are per minute.

    `adaptive` lets Bedrock's throttling lower the pace below `requests_per_minute`;
    `tokens_per_minute` (None: no budget) bounds the tokens the key's calls use.
    """

    key: str
    requests_per_minute: int
    # Only names the caller in the queue-full text: the limit itself is its key and rates.
    inference_id: str | None = field(default=None, compare=False)
    adaptive: bool = True
    tokens_per_minute: int | None = None


def pace_parameters(per_minute: float, minute: float = 60.0) -> tuple[float, float]:
    """(bucket size, seconds to drain it) that never let a sliding minute see `per_minute` calls.

    A leaky bucket holding b calls and draining r a minute admits up to b + r calls in a minute,
    and Bedrock counts its quota over such sliding windows, so it drains at rpm - b (scripts/bench/
    rate-limit measured the difference: 11 throttles per key in the first minute, then none).
    b is at least 2 from 120 a minute, so a late timer wake-up is absorbed instead of lost, and
    never more than one second's share.
    """
    per_minute = max(per_minute, MIN_PACE_PER_MINUTE)
    burst = 1 if per_minute < 120 else max(2, int(per_minute) // 600)
    drained = max(per_minute - burst, per_minute / 2)
    return burst, burst * minute / drained


def token_parameters(per_minute: float, budget: float, minute: float = 60.0) -> tuple[float, float]:
    """The same bound for a token budget paced at `per_minute` (a share of `budget`): a bucket
    of 0.5% of the whole budget, draining the rest of the share.

    The bucket's size stays the same when the share changes: a caller waits for a piece no
    bigger than the bucket, and a bucket shrunk below it would never let that caller through.
    """
    burst = max(1.0, budget * TOKEN_BURST_FRACTION)
    per_minute = max(per_minute, 1.0)
    return burst, burst * minute / max(per_minute - burst, per_minute / 2)


class AdjustableLimiter(AsyncLimiter):
    """aiolimiter's leaky bucket, with a rate that can change while callers wait, and amounts that
    can be charged or refunded after the fact (a call's real token use).

    It reaches into AsyncLimiter's bucket state (`_leak`, `_level`, `_rate_per_sec`,
    `_wake_next`); tests/inference/test_rate_limits.py pins what it relies on.
    """

    __slots__ = ()

    def retune(self, max_rate: float, time_period: float) -> None:
        if (max_rate, time_period) == (self.max_rate, self.time_period):
            return
        self._leak()  # what drained so far drained at the old rate
        self.max_rate = max_rate
        self.time_period = time_period
        self._rate_per_sec = max_rate / time_period
        self._wake_next()  # a waiter's turn moves with the rate

    def charge(self, amount: float) -> None:
        """Count `amount` more as used, without waiting: later callers wait for it."""
        self._leak()
        self._level += amount
        self._wake_next()

    def refund(self, amount: float) -> None:
        self._leak()
        self._level = max(0.0, self._level - amount)
        self._wake_next()

    async def take(self, amount: float) -> None:
        """`amount` in pieces no bigger than the bucket, so any amount can be waited for; a
        caller that gives up halfway gets back what it took."""
        taken = 0.0
        try:
            while taken < amount:
                piece = min(amount - taken, self.max_rate)
                await self.acquire(piece)
                taken += piece
        except BaseException:
            self.refund(taken)
            raise


def limiter_for_rate(requests_per_minute: float, minute: float = 60.0) -> AdjustableLimiter:
    """A limiter that never lets a sliding minute see more than `requests_per_minute` calls."""
    return AdjustableLimiter(*pace_parameters(requests_per_minute, minute))


class KeyQueue:
    """One key's limiters, its pace, and how many callers wait for a slot under that key.

    `pace` is the calls per minute this process sends now; `token_pace` the tokens. A Pacer sets
    them through `set_pace`; `state` is the Pacer's own per-key bookkeeping.
    """

    __slots__ = (
        "_counted_at",
        "busy",
        "limit",
        "limiter",
        "minute",
        "pace",
        "state",
        "token_pace",
        "token_turn",
        "tokens",
        "waited",
        "waiting",
    )

    def __init__(self, limit: RateLimit, minute: float = 60.0) -> None:
        self.limit = limit
        self.minute = minute
        self.pace = float(limit.requests_per_minute)
        self.limiter = limiter_for_rate(self.pace, minute)
        self.token_pace: float | None = None
        self.tokens: AdjustableLimiter | None = None
        # One caller at a time takes its tokens, in arrival order: callers taking pieces in
        # turns would all finish late, and those that time out would waste what they took.
        self.token_turn = asyncio.Lock()
        self.waiting = 0
        # Up to `_counted_at` (the loop's clock): callers' time spent waiting, summed, and the
        # time during which any caller waited.
        self.waited = 0.0
        self.busy = 0.0
        self._counted_at = 0.0
        self.state: object = None
        self._set_token_pace(limit.tokens_per_minute)

    @property
    def requests_per_minute(self) -> int:
        return self.limit.requests_per_minute

    def count_waiting(self, change: int, now: float) -> None:
        """Add `change` to the callers waiting, at `now` (the loop's clock)."""
        if self.waiting:
            span = now - self._counted_at
            self.waited += self.waiting * span
            self.busy += span
        self._counted_at = now
        self.waiting += change

    def waited_until(self, now: float) -> tuple[float, float]:
        """Up to `now`: callers' seconds spent waiting, summed, and the seconds during which any
        caller waited. Their rises over a span, divided by the span, are the mean number of
        callers waiting in it and the part of it with a caller waiting."""
        span = now - self._counted_at if self.waiting else 0.0
        return self.waited + self.waiting * span, self.busy + span

    def set_pace(self, per_minute: float, tokens_per_minute: float | None = None) -> None:
        """Pace calls at `per_minute` (and tokens at `tokens_per_minute`) from now on."""
        self.pace = max(per_minute, MIN_PACE_PER_MINUTE)
        self.limiter.retune(*pace_parameters(self.pace, self.minute))
        self._set_token_pace(tokens_per_minute)

    def _set_token_pace(self, per_minute: float | None) -> None:
        budget = self.limit.tokens_per_minute
        if per_minute is None or budget is None:
            self.token_pace, self.tokens = None, None
            return
        self.token_pace = per_minute
        size, period = token_parameters(per_minute, budget, self.minute)
        if self.tokens is None or self.tokens.max_rate != size:
            # A new budget: callers waiting on the old bucket finish there.
            self.tokens = AdjustableLimiter(size, period)
        else:
            self.tokens.retune(size, period)


class Pacer(Protocol):
    """Decides each key's pace from what its calls meet; called on the loop, never blocking."""

    def opened(self, queue: KeyQueue) -> None:
        """A key was first used, or its configured limit changed."""

    def forgotten(self, key: str) -> None:
        """The key's endpoint is gone."""

    def arrived(self, queue: KeyQueue) -> None:
        """A call asks for a slot (counted before it waits, so demand is what callers want)."""

    def finished(self, queue: KeyQueue, throttled: bool, succeeded: bool) -> None:
        """A call ended: throttled by the provider, succeeded, or neither (another failure)."""


class FixedPacer:
    """Every key at its configured rate and token budget, whatever happens."""

    def opened(self, queue: KeyQueue) -> None:
        limit = queue.limit
        queue.set_pace(limit.requests_per_minute, limit.tokens_per_minute)

    def forgotten(self, key: str) -> None:
        pass

    def arrived(self, queue: KeyQueue) -> None:
        pass

    def finished(self, queue: KeyQueue, throttled: bool, succeeded: bool) -> None:
        pass


class RateLimiters:
    """One limiter and queue per key; a changed limit for a key retunes its limiters in place.

    A caller arriving when `queue_capacity` callers already wait under its key is refused with
    QueueFull (0 means unbounded, as in ES). Past its key's rate (and token budget), a call also
    needs one of `max_concurrent_calls` permits shared by all keys. Limiters are created lazily,
    inside the running event loop, because an AsyncLimiter binds to the loop that first uses it.
    `minute` is the length of a rate's minute in seconds; tests shorten it.
    """

    def __init__(
        self,
        queue_capacity: int = DEFAULT_QUEUE_CAPACITY,
        max_concurrent_calls: int = DEFAULT_MAX_CONCURRENT_CALLS,
        *,
        minute: float = 60.0,
        pacer: Pacer | None = None,
    ) -> None:
        self._queue_capacity = queue_capacity
        self._minute = minute
        self._queues: dict[str, KeyQueue] = {}
        self._calls = asyncio.Semaphore(max_concurrent_calls)
        self.pacer: Pacer = FixedPacer() if pacer is None else pacer

    def limiter_for(self, limit: RateLimit) -> AsyncLimiter:
        return self._queue_for(limit).limiter

    def queues(self) -> list[KeyQueue]:
        return list(self._queues.values())

    def forget(self, key: str) -> None:
        # Callers still waiting hold their KeyQueue and keep its count right on their own.
        if self._queues.pop(key, None) is not None:
            self.pacer.forgotten(key)

    def waiting(self, key: str) -> int:
        """How many callers wait for a slot under `key`."""
        queue = self._queues.get(key)
        return 0 if queue is None else queue.waiting

    def depths(self) -> dict[str, int]:
        """Callers waiting, by inference id, for the keys that have any (read by metrics)."""
        depths: dict[str, int] = {}
        for queue in self._queues.values():
            inference_id = queue.limit.inference_id
            if queue.waiting and inference_id is not None:
                depths[inference_id] = depths.get(inference_id, 0) + queue.waiting
        return depths

    def paces(self) -> dict[str, float]:
        """The rate each endpoint is paced at now in this process, requests per minute: its share
        of the configured rate, after any cut for throttling (read by metrics)."""
        paces: dict[str, float] = {}
        for queue in self._queues.values():
            inference_id = queue.limit.inference_id
            if inference_id is not None:
                paces[inference_id] = paces.get(inference_id, 0.0) + queue.pace
        return paces

    def rate(self, key: str) -> int | None:
        """The rate a key's calls are paced at now in this process, in requests per minute (a
        share of the endpoint's, cut after throttling); None before its first call."""
        queue = self._queues.get(key)
        return None if queue is None else max(1, round(queue.pace))

    def slot(self, limit: RateLimit, tokens: int = 0) -> Slot:
        """One provider call's slot, held for the call; the caller's deadline bounds the wait.

        `tokens` is the call's estimated token use, reserved against the key's token budget.
        """
        return Slot(self, limit, tokens)

    async def acquire(self, limit: RateLimit, tokens: int = 0) -> KeyQueue:
        """Wait for the key's rate and tokens, then for a global permit (`release()` returns it)."""
        queue = self._queue_for(limit)
        if limit.tokens_per_minute is not None and tokens > limit.tokens_per_minute:
            raise BadRequest(
                f"This request needs an estimated [{tokens}] tokens, more than the "
                f"[{limit.tokens_per_minute}] tokens_per_minute of inference endpoint "
                f"[{limit.inference_id or limit.key}]: it could never be sent. Send less input, "
                "lower max_new_tokens, or raise rate_limit.tokens_per_minute"
            )
        if 0 < self._queue_capacity <= queue.waiting:
            raise QueueFull(
                f"Failed to execute task for inference id [{limit.inference_id or limit.key}] "
                f"because the request service [{limit.key}] queue is full"
            )
        self.pacer.arrived(queue)
        loop = asyncio.get_running_loop()
        queue.count_waiting(1, loop.time())
        started = time.perf_counter()
        try:
            # Rate first: a caller holding a global permit while it waits for a slow key's rate
            # would keep calls for other keys waiting.
            await queue.limiter.acquire()
            if queue.tokens is not None and tokens > 0:
                async with queue.token_turn:
                    await queue.tokens.take(tokens)
            await self._calls.acquire()
        finally:
            queue.count_waiting(-1, loop.time())
        events.rate_limit_waited(time.perf_counter() - started)
        return queue

    def release(self) -> None:
        self._calls.release()

    def _queue_for(self, limit: RateLimit) -> KeyQueue:
        queue = self._queues.get(limit.key)
        if queue is None:
            queue = self._queues[limit.key] = KeyQueue(limit, self._minute)
            self.pacer.opened(queue)
        elif queue.limit != limit:
            # Waiters keep their turn; the limiters take the new rates in place.
            queue.limit = limit
            self.pacer.opened(queue)
        return queue


class Slot(AbstractAsyncContextManager[None]):
    """A class rather than an @asynccontextmanager: it is entered on every provider call.

    Inside it, `report_usage()` tells the slot the call's real token use, which replaces the
    estimate in the key's budget when the slot is left.
    """

    __slots__ = ("_context", "_limit", "_limiters", "_queue", "_tokens", "_used")

    def __init__(self, limiters: RateLimiters, limit: RateLimit, tokens: int = 0) -> None:
        self._limiters = limiters
        self._limit = limit
        self._tokens = tokens
        self._used: int | None = None
        self._queue: KeyQueue | None = None
        self._context: Token[Slot | None] | None = None

    async def __aenter__(self) -> None:
        self._queue = await self._limiters.acquire(self._limit, self._tokens)
        self._context = _current_slot.set(self)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._limiters.release()
        if self._context is not None:
            # Left in another context when a stream is closed elsewhere.
            with suppress(ValueError):
                _current_slot.reset(self._context)
        queue = self._queue
        if queue is None:
            return
        if queue.tokens is not None and self._used is not None and self._used != self._tokens:
            if self._used > self._tokens:
                queue.tokens.charge(self._used - self._tokens)
            else:
                queue.tokens.refund(self._tokens - self._used)
        throttled = isinstance(exc, ProviderError) and exc.code in THROTTLING_CODES
        self._limiters.pacer.finished(queue, throttled, exc is None)

    def report_usage(self, tokens: int) -> None:
        self._used = tokens


def report_usage(tokens: int | None) -> None:
    """The provider's count of tokens the current call used, for the slot it runs in."""
    slot = _current_slot.get()
    if slot is not None and tokens is not None and tokens >= 0:
        slot.report_usage(tokens)


def estimate_tokens(text: str) -> int:
    """A cheap upper-leaning estimate of a text's tokens: about four characters each."""
    return math.ceil(len(text) / 4) if text else 0


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
