"""AIMD: an endpoint's effective rate, cut when Bedrock throttles and raised as calls succeed.

The rate is the whole deployment's (a process paces at its share of it). A cut multiplies it by
BACKOFF, but never below FLOOR_OF_DELIVERED of what got through in the last minute: that much the
quota evidently allows, and a sliding-window quota keeps throttling for a while after the burst
that filled it, which must not drive the rate to nothing. Each success adds a small step, back
to the configured rate and never above it. Near the rate where throttling last began (the
ceiling), the steps shrink, so probing for more quota costs a throttle every few minutes rather
than every few seconds.
"""

from __future__ import annotations

BACKOFF = 0.7
FLOOR_OF_DELIVERED = 0.95
# Each success raises the rate by this fraction of the configured rate...
STEP_FRACTION = 1 / 600
# ...and by a twentieth of that above the ceiling, while the ceiling is fresh.
NEAR_CEILING = 1.0
SLOW_STEP = 0.05
CEILING_SECONDS = 600.0
# After a cut, throttles of calls already on their way say nothing new for a few call intervals.
COOLDOWN_CALLS = 3
MIN_COOLDOWN_SECONDS = 1.0
MIN_RATE_FRACTION = 0.01


class AdaptiveRate:
    """The effective rate (per minute) of one endpoint, between 1% of `configured` and all of it."""

    __slots__ = ("ceiling", "ceiling_at", "configured", "cut_at", "cuts", "value")

    def __init__(self, configured: float) -> None:
        self.configured = configured
        self.value = configured
        self.ceiling: float | None = None
        self.ceiling_at = 0.0
        self.cut_at: float | None = None
        self.cuts = 0  # how many cuts this process made; other processes follow new ones

    def reconfigure(self, configured: float) -> None:
        """A changed rate keeps a cut deeper than it: what Bedrock throttled has not changed."""
        self.value = min(self.value, configured)
        self.configured = configured

    def throttled(self, now: float, delivered_per_minute: float) -> bool:
        """A call was throttled; True when this cut the rate (not within a cut's cooldown)."""
        if self.cut_at is not None and now - self.cut_at < self.cooldown():
            return False
        self.value = min(self.value, max(self.value * BACKOFF, self._floor(delivered_per_minute)))
        if delivered_per_minute > 0:
            self.ceiling, self.ceiling_at = delivered_per_minute, now
        self.cut_at = now
        self.cuts += 1
        return True

    def follow(
        self, now: float, value: float, ceiling: float | None, delivered_per_minute: float = 0.0
    ) -> None:
        """Another process cut the rate: take its cut as ours, cooldown included, but never
        below the floor this process sees (another's view of the deployment may be older)."""
        self.value = min(self.value, max(value, self._floor(delivered_per_minute)))
        if ceiling:
            self.ceiling, self.ceiling_at = ceiling, now
        self.cut_at = now

    def succeeded(self, now: float, weight: float = 1.0) -> None:
        """A call got through; `weight` scales the step when other processes share the rate."""
        if self.value >= self.configured:
            return
        step = self.configured * STEP_FRACTION * weight
        ceiling = self.ceiling
        if (
            ceiling is not None
            and now - self.ceiling_at < CEILING_SECONDS
            and self.value >= ceiling * NEAR_CEILING
        ):
            step *= SLOW_STEP
        self.value = min(self.configured, self.value + step)

    def _floor(self, delivered_per_minute: float) -> float:
        floor = max(self.configured * MIN_RATE_FRACTION, delivered_per_minute * FLOOR_OF_DELIVERED)
        return min(floor, self.configured)

    def cooldown(self) -> float:
        return max(MIN_COOLDOWN_SECONDS, COOLDOWN_CALLS * 60.0 / max(self.value, 1e-6))
