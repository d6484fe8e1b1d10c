"""shares.divide: demand-following shares of one rate that never sum to more than it."""

import random

import pytest

from esproxy.limits.shares import divide


@pytest.mark.parametrize(
    "demands",
    [
        {"a": 160.0, "b": 40.0, "c": 0.0},
        {"a": 10.0, "b": 10.0},
        {"a": 0.0, "b": 0.0, "c": 0.0},
        {"a": 1000.0},
        {f"p{i}": float(i * 7 % 50) for i in range(40)},
        # one below the floor while the others leave headroom: it once got a portion on top
        {"a": 1.0, "b": 30.0, "c": 0.0},
        {"a": 0.41, "b": 0.76, "c": 0.0},
    ],
)
def test_shares_never_sum_to_more_than_the_rate(demands):
    shares = divide(120.0, demands)
    assert set(shares) == set(demands)
    assert sum(shares.values()) <= 120.0 + 1e-9
    assert all(share > 0 for share in shares.values())


def test_skewed_load_leaves_the_idle_process_a_sliver():
    shares = divide(120.0, {"a": 120.0, "b": 30.0, "c": 0.0})
    assert shares["c"] == pytest.approx(1.2)
    assert shares["b"] == pytest.approx(30.0)
    assert shares["a"] == pytest.approx(120.0 - 1.2 - 30.0)


def test_overload_everywhere_is_split_evenly():
    shares = divide(120.0, {"a": 500.0, "b": 500.0})
    assert shares == {"a": pytest.approx(60.0), "b": pytest.approx(60.0)}


def test_rate_nobody_wants_becomes_headroom_where_calls_come_from():
    shares = divide(120.0, {"a": 20.0, "b": 10.0, "c": 0.0})
    assert sum(shares.values()) == pytest.approx(120.0)
    assert shares["c"] == pytest.approx(1.2)
    assert shares["a"] == pytest.approx(2 * shares["b"])


def test_a_lone_process_gets_the_whole_rate():
    assert divide(120.0, {"a": 0.0}) == {"a": pytest.approx(120.0)}


def test_a_share_never_grows_with_another_demand_nor_shrinks_with_its_own():
    """Processes that read each other's demands at different moments stay within the rate
    because of this (see LimitsCoordinator._apply)."""
    draw = random.Random(15)
    for _ in range(20000):
        demands = {
            f"p{i}": draw.choice([0.0, draw.uniform(0, 3), draw.uniform(0, 200)])
            for i in range(draw.randint(1, 4))
        }
        rate = draw.choice([60.0, 120.0, 1000.0])
        share = divide(rate, demands)["p0"]
        more = {
            name: d + (0 if name == "p0" else draw.uniform(0, 50)) for name, d in demands.items()
        }
        less = {**demands, "p0": demands["p0"] * draw.random()}
        assert divide(rate, more)["p0"] <= share + 1e-6, (rate, demands, more)
        assert divide(rate, less)["p0"] <= share + 1e-6, (rate, demands, less)


def test_nobody_gets_nothing_from_an_empty_division():
    assert divide(120.0, {}) == {}


def test_many_idle_processes_leave_half_the_rate_to_those_that_want_it():
    demands = {f"idle{i}": 0.0 for i in range(59)}
    shares = divide(120.0, {**demands, "busy": 1000.0})
    assert shares["idle0"] == pytest.approx(1.0)  # not 1% each: 59 of them would take 59%
    assert shares["busy"] == pytest.approx(61.0)


def test_a_sliver_of_headroom_is_not_lost():
    assert divide(120.0, {"a": 119.5}) == {"a": pytest.approx(120.0)}
    shares = divide(120.0, {"a": 59.5, "b": 60.0})
    assert sum(shares.values()) == pytest.approx(120.0)
