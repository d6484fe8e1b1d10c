"""The last five minutes of one endpoint, for `GET /_esproxy/endpoints`: counts and latencies.

Counts live in ten-second buckets; latencies are the newest SAMPLES calls inside the window, so
percentiles stay cheap to keep and to compute however busy the endpoint is.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

WINDOW_SECONDS = 300.0
BUCKET_SECONDS = 10.0
BUCKETS = int(WINDOW_SECONDS // BUCKET_SECONDS)
SAMPLES = 2048


class RecentCalls:
    __slots__ = ("_clock", "_durations", "_requests", "_stamps", "_throttles")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._stamps = [-1] * BUCKETS  # which ten-second slice each bucket currently counts
        self._requests = [0] * BUCKETS
        self._throttles = [0] * BUCKETS
        self._durations: deque[tuple[float, float]] = deque(maxlen=SAMPLES)

    def _bucket(self, now: float) -> int:
        stamp = int(now // BUCKET_SECONDS)
        index = stamp % BUCKETS
        if self._stamps[index] != stamp:
            self._stamps[index] = stamp
            self._requests[index] = 0
            self._throttles[index] = 0
        return index

    def request(self, seconds: float) -> None:
        now = self._clock()
        self._requests[self._bucket(now)] += 1
        self._durations.append((now, seconds))

    def throttle(self) -> None:
        self._throttles[self._bucket(self._clock())] += 1

    def summary(self) -> tuple[int, int, float | None, float | None]:
        """Requests, throttles, p50 and p99 seconds over the window (None without calls)."""
        now = self._clock()
        oldest = int(now // BUCKET_SECONDS) - BUCKETS + 1
        live = [i for i, stamp in enumerate(self._stamps) if stamp >= oldest]
        requests = sum(self._requests[i] for i in live)
        throttles = sum(self._throttles[i] for i in live)
        recent = sorted(s for t, s in self._durations if t > now - WINDOW_SECONDS)
        if not recent:
            return requests, throttles, None, None
        return requests, throttles, percentile(recent, 0.50), percentile(recent, 0.99)


def percentile(ordered: list[float], share: float) -> float:
    """Nearest-rank percentile of a sorted, non-empty list."""
    rank = max(1, -(-len(ordered) * share // 1))
    return ordered[int(rank) - 1]
