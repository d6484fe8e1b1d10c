"""AdaptiveRate: multiplicative cuts after throttling, additive steps back, never above the rate."""

import pytest

from esproxy.limits.adaptive import BACKOFF, AdaptiveRate


def test_a_throttle_cuts_multiplicatively_once_per_cooldown():
    rate = AdaptiveRate(120.0)
    assert rate.throttled(now=10.0, delivered_per_minute=0.0)
    assert rate.value == pytest.approx(120.0 * BACKOFF)
    # Calls already on their way when the cut came say nothing new.
    assert not rate.throttled(now=10.5, delivered_per_minute=0.0)
    assert rate.value == pytest.approx(120.0 * BACKOFF)
    assert rate.throttled(now=10.01 + rate.cooldown(), delivered_per_minute=0.0)
    assert rate.value == pytest.approx(120.0 * BACKOFF**2)


def test_a_cut_keeps_most_of_what_got_through():
    rate = AdaptiveRate(120.0)
    for second in range(0, 100, 5):
        rate.throttled(now=float(second), delivered_per_minute=60.0)
    assert rate.value == pytest.approx(57.0)  # 95% of the 60 that the quota let through


def test_successes_climb_back_to_the_configured_rate_and_never_above():
    rate = AdaptiveRate(120.0)
    rate.throttled(now=0.0, delivered_per_minute=0.0)
    for _ in range(5000):
        rate.succeeded(now=1000.0)  # long after the ceiling was learned
        assert rate.value <= 120.0
    assert rate.value == 120.0


def test_steps_slow_down_near_the_rate_where_throttling_began():
    fast, slow = AdaptiveRate(120.0), AdaptiveRate(120.0)
    fast.value = slow.value = 61.0
    slow.ceiling, slow.ceiling_at = 60.0, 0.0
    fast.succeeded(now=1.0)
    slow.succeeded(now=1.0)
    assert slow.value - 61.0 == pytest.approx((fast.value - 61.0) / 20)


def test_following_another_process_cut_lowers_and_starts_a_cooldown():
    rate = AdaptiveRate(120.0)
    rate.follow(now=5.0, value=70.0, ceiling=60.0)
    assert rate.value == 70.0
    assert not rate.throttled(now=5.1, delivered_per_minute=0.0)
    rate.follow(now=6.0, value=100.0, ceiling=None)  # a cut never raises the rate
    assert rate.value == 70.0


def test_a_cut_comes_again_exactly_when_the_cooldown_ends():
    rate = AdaptiveRate(600.0)
    assert rate.throttled(now=10.0, delivered_per_minute=0.0)
    assert rate.cooldown() == 1.0  # 3 calls at 420 a minute take less than the least cooldown
    assert rate.throttled(now=11.0, delivered_per_minute=0.0)
    assert rate.value == pytest.approx(600.0 * BACKOFF**2)


def test_the_rate_never_falls_below_a_hundredth_nor_is_cut_below_what_got_through():
    rate = AdaptiveRate(120.0)
    for second in range(0, 2000, 5):
        rate.throttled(now=float(second), delivered_per_minute=0.0)
    assert rate.value == pytest.approx(1.2)
    full = AdaptiveRate(600.0)
    assert full.throttled(now=0.0, delivered_per_minute=1000.0)  # all of it got through
    assert full.value == 600.0


def test_the_ceiling_slows_steps_for_ten_minutes_and_from_exactly_its_rate():
    def step(value, ceiling_at, now):
        rate = AdaptiveRate(120.0)
        rate.value, rate.ceiling, rate.ceiling_at = value, 60.0, ceiling_at
        rate.succeeded(now=now)
        return rate.value - value

    fast = 120.0 / 600
    assert step(60.0, 100.0, 699.0) == pytest.approx(fast / 20)
    assert step(60.0, 100.0, 700.0) == pytest.approx(fast)
    assert step(59.9, 100.0, 101.0) == pytest.approx(fast)


def test_a_changed_rate_keeps_a_cut_unless_it_is_lowered_below_it():
    rate = AdaptiveRate(600.0)
    rate.throttled(now=0.0, delivered_per_minute=0.0)
    rate.reconfigure(600.0)
    assert rate.value == pytest.approx(420.0)
    rate.reconfigure(1200.0)
    assert (rate.value, rate.configured) == (pytest.approx(420.0), 1200.0)
    rate.reconfigure(500.0)  # lowered, but above the cut: the cut stays
    assert (rate.value, rate.configured) == (pytest.approx(420.0), 500.0)
    rate.reconfigure(300.0)
    assert (rate.value, rate.configured) == (300.0, 300.0)


def test_each_cut_is_counted_and_a_single_call_through_is_a_ceiling():
    """Other processes follow a cut when the count grows; the ceiling slows the steps back."""
    rate = AdaptiveRate(120.0)
    rate.throttled(now=0.0, delivered_per_minute=1.0)
    rate.throttled(now=100.0, delivered_per_minute=1.0)
    assert rate.cuts == 2
    assert rate.ceiling == 1.0
    before = rate.value
    rate.succeeded(now=101.0)
    assert rate.value - before == pytest.approx(120.0 / 600 / 20)
