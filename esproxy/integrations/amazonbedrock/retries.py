"""Bounded retries of Bedrock calls: full-jitter backoff, never sleeping past the caller's deadline.

Each attempt takes a fresh rate-limit slot. Only throttling, transient 5xx and unanswered calls are
retried, and a stream only until its first delta.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from contextlib import aclosing
from typing import Any, TypeVar

from esproxy.errors import ProviderError, ProviderUnavailable, ProxyError
from esproxy.inference.rate_limits import current_deadline
from esproxy.integrations.base import SlotSource
from esproxy.observability import events

log = logging.getLogger(__name__)

T = TypeVar("T")

# By code, not status: codes client.py does not know also answer 500, and nothing says they pass.
# Not retried: 424 ModelError/ModelStreamError and 408 ModelTimeout are the model failing on this
# very input (botocore does not retry them either), and 4xx client errors repeat as they are.
TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "ModelNotReadyException",
        "ServiceQuotaExceededException",
        "InternalServerException",
        "InternalFailure",
        "ServiceUnavailableException",
        "ServiceUnavailable",
        # botocore's code for a 429 or 5xx answered without a readable body: the status itself.
        "429",
        "500",
        "502",
        "503",
        "504",
    }
)
RETRIED = (ProviderError, ProviderUnavailable)


class RetryPolicy:
    """Calls Bedrock again after transient failures, at most `max_retries` times per call.

    Backoff is full jitter: a uniform draw from [0, min(max_delay, base_delay * 2**retry)). A
    Retry-After from Bedrock, capped at `max_delay`, is waited at least. A retry whose wait would
    end past the caller's deadline is not made; the last error is raised instead. `jitter`,
    `sleep` and `deadline` are seams for tests.
    """

    def __init__(
        self,
        *,
        max_retries: int = 3,
        base_delay: float = 0.15,
        max_delay: float = 3.0,
        jitter: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        deadline: Callable[[], float | None] = current_deadline,
    ) -> None:
        self.max_retries = max_retries
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._jitter = jitter
        self._sleep = sleep
        self._deadline = deadline

    async def call(
        self, operation: str, model: str, slot: SlotSource, attempt: Callable[[], Awaitable[T]]
    ) -> T:
        """`attempt()` under a slot, again after each transient failure."""
        retries = 0
        while True:
            try:
                async with slot():
                    return await attempt()
            except RETRIED as error:
                delay = self._delay_before_retry(operation, model, error, retries)
                if delay is None:
                    raise
            await self._sleep(delay)
            retries += 1

    async def stream(
        self,
        operation: str,
        model: str,
        slot: SlotSource,
        open_stream: Callable[[], AsyncGenerator[T, None]],
    ) -> AsyncGenerator[T, None]:
        """The deltas of `open_stream()`, reopened after transient failures before its first delta.

        The slot is held for the whole stream. Once a delta went out, the caller has part of an
        answer that a second stream would not continue, so later failures are raised as they are.
        """
        retries = 0
        while True:
            async with slot(), aclosing(open_stream()) as deltas:
                try:
                    first = await anext(deltas, None)
                except RETRIED as error:
                    delay = self._delay_before_retry(operation, model, error, retries)
                    if delay is None:
                        raise
                else:
                    if first is not None:
                        yield first
                        async for delta in deltas:
                            yield delta
                    return
            await self._sleep(delay)
            retries += 1

    def _delay_before_retry(
        self, operation: str, model: str, error: ProxyError, retries: int
    ) -> float | None:
        """Seconds to wait before the next attempt, or None when there is none to make."""
        if retries >= self.max_retries or not is_transient(error):
            return None
        delay = self._jitter() * min(self._max_delay, self._base_delay * 2.0**retries)
        hint = retry_after(error)
        if hint is not None:
            delay = max(delay, min(hint, self._max_delay))
        deadline = self._deadline()
        if deadline is not None and asyncio.get_running_loop().time() + delay >= deadline:
            return None
        log.warning(
            "bedrock %s model=%s code=%s retry=%d/%d delay_ms=%.0f",
            operation,
            model,
            error_code(error),
            retries + 1,
            self.max_retries,
            delay * 1000,
        )
        events.bedrock_retry(operation)
        return delay


def is_transient(error: ProxyError) -> bool:
    if isinstance(error, ProviderUnavailable):
        return True
    return isinstance(error, ProviderError) and error.code in TRANSIENT_CODES


def retry_after(error: ProxyError) -> float | None:
    """The seconds Bedrock asked to wait in a Retry-After header, when it sent one.

    Read from botocore's answer, which client.py chains as the cause: the error's own Retry-After
    is meant for our caller and is 1 s when Bedrock sent none. HTTP dates are not honoured.
    """
    response: Any = getattr(error.__cause__, "response", None)
    if not isinstance(response, Mapping):
        return None
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    try:
        seconds = float(str(headers.get("retry-after", "")).strip())
    except ValueError:
        return None
    return seconds if 0 <= seconds < float("inf") else None


def error_code(error: ProxyError) -> str:
    """Bedrock's code, or for a call that got no answer, the kind of failure (never its text)."""
    if isinstance(error, ProviderError):
        return error.code
    cause = error.caused_by
    if isinstance(cause, ProxyError):
        return cause.error_type
    if isinstance(cause, Mapping):
        return str(cause.get("type", "no_answer"))
    return "no_answer"
