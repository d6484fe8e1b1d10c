"""Per-access-key request quotas over a sliding one-minute window, like Bedrock's RPM limits."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from esproxy.bedrock_emulator.errors import BedrockError

WINDOW_S = 60.0


class QuotaBook:
    """Counts admitted model calls per access key; refused calls do not use up quota."""

    def __init__(self, per_minute: int | None, clock: Callable[[], float] = time.monotonic) -> None:
        self._per_minute = per_minute or None
        self._clock = clock
        self._calls: dict[str, deque[float]] = {}

    def admit(self, access_key: str | None) -> None:
        """Record one call for `access_key`, or raise ThrottlingException when over quota."""
        if self._per_minute is None:
            return
        now = self._clock()
        calls = self._calls.setdefault(access_key or "", deque())
        while calls and calls[0] <= now - WINDOW_S:
            calls.popleft()
        if len(calls) >= self._per_minute:
            raise BedrockError("ThrottlingException")
        calls.append(now)
