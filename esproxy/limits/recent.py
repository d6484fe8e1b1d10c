"""Counting events over a sliding window of the recent past."""

from __future__ import annotations

from collections import deque


class RecentEvents:
    """When events happened (event loop time), forgotten once older than `window` seconds."""

    __slots__ = ("_times", "window")

    def __init__(self, window: float) -> None:
        self.window = window
        self._times: deque[float] = deque()

    def add(self, now: float) -> None:
        self._times.append(now)
        self._trim(now)

    def count(self, now: float) -> int:
        self._trim(now)
        return len(self._times)

    def per_minute(self, now: float) -> float:
        return self.count(now) * 60.0 / self.window

    def _trim(self, now: float) -> None:
        times, oldest = self._times, now - self.window
        while times and times[0] <= oldest:
            times.popleft()
