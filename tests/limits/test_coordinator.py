"""LimitsCoordinator's decisions, without servers: each endpoint's share of the deployment's rate
from the leases and demand, the round a newcomer's rise waits, leases that go stale or dead, AIMD
cuts followed across processes, the token share, and what happens while the cluster is away.

Every test runs on a virtual-time loop (tests/fake_clock.py), so waiting takes no real time and
the numbers are exact. Other processes' leases are plain data in a MemoryLeases store. The real
lease index, with real replicas, is tests/limits/test_deployment.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import socket

import pytest

from esproxy.inference.rate_limits import RateLimit, RateLimiters
from esproxy.limits import LimitsCoordinator
from esproxy.limits.leases import Lease
from tests.fake_clock import Clock, run_virtual
from tests.limits.memory_leases import MemoryLeases

KEY = "amazonbedrock/k"
LEASE = 6.0  # demand is counted over 5 periods, 30 s: each arrival in it is 2 calls a minute
# Wall-clock time (heartbeats) is the loop's clock plus this.
WALL = 1_700_000_000.0


def virtual(test):
    """Run an async test that takes the clock on a virtual-time loop driven by that clock."""

    def run():
        clock = Clock()
        run_virtual(test(clock), clock)

    run.__name__, run.__doc__ = test.__name__, test.__doc__
    return run


def limit(per_minute=120, **options):
    return RateLimit(KEY, per_minute, inference_id="k", **options)


def coordinator(clock, store=None, lease_seconds=LEASE, mode="cluster"):
    limiters = RateLimiters()
    if store is None and mode == "cluster":
        store = MemoryLeases()
    coordinator = LimitsCoordinator(
        limiters, mode, store, lease_seconds, wall_clock=lambda: clock.now + WALL
    )
    return coordinator, limiters


def queue_of(limiters, key=KEY):
    [queue] = [queue for queue in limiters.queues() if queue.limit.key == key]
    return queue


def arrive(limiters, rate_limit, count):
    """`count` calls asking for a slot, counted as RateLimiters.acquire counts them (without
    waiting for the pace here)."""
    limiters.limiter_for(rate_limit)
    queue = queue_of(limiters, rate_limit.key)
    for _ in range(count):
        limiters.pacer.arrived(queue)
    return queue


def succeed(limiters, queue, count=1):
    for _ in range(count):
        limiters.pacer.finished(queue, False, True)


def throttle(limiters, queue):
    limiters.pacer.finished(queue, True, False)


def put_lease(store, clock, process, seq, endpoints, *, age=0.0, lease_seconds=LEASE):
    """Another process's lease, written `age` seconds ago by its own clock."""
    heartbeat_ms = int((clock.now + WALL - age) * 1000)
    lease = Lease(process, "elsewhere", heartbeat_ms, seq, lease_seconds, endpoints)
    store.documents[process] = lease.to_document()


def figures(demand, share, ok=0.0, **more):
    return {KEY: {"demand": demand, "share": share, "ok": ok, **more}}


def own_figures(store, coordinator):
    return store.documents[coordinator.process]["endpoints"].get(KEY)


def live_processes(coordinator):
    return coordinator.stats()["leases"]["processes"]


async def established(clock, store, b_demand=200.0, b_share=90.0, lease_seconds=LEASE, **more):
    """A process with a demand of 30 a minute for KEY (rate 120), past its first two rounds,
    beside process "b". Rounds at 1000, 1006 and 1012; the clock is left at 1012."""
    coordinator_, limiters = coordinator(clock, store)
    queue = arrive(limiters, limit(), 15)
    for seq in (1, 2, 3):
        if seq > 1:
            clock.now += LEASE
        put_lease(
            store, clock, "b", seq, figures(b_demand, b_share, **more), lease_seconds=lease_seconds
        )
        await coordinator_.run_round()
    return coordinator_, limiters, queue


# -- shares -------------------------------------------------------------------------------------


@virtual
async def test_alone_a_process_paces_at_the_whole_rate_and_says_so_in_its_lease(clock):
    store = MemoryLeases()
    coordinator_, limiters = coordinator(clock, store)
    queue = arrive(limiters, limit(), 3)
    await coordinator_.run_round()
    assert queue.pace == 120.0
    assert store.documents == {
        coordinator_.process: {
            "process": coordinator_.process,
            "host": socket.gethostname(),
            "heartbeat": int((1000.0 + WALL) * 1000),
            "seq": 1,
            "lease_seconds": LEASE,
            "endpoints": {
                KEY: {"demand": 6.0, "share": 120.0, "ok": 0.0, "effective": 120.0, "cuts": 0.0}
            },
        }
    }
    await coordinator_.run_round()
    assert store.documents[coordinator_.process]["seq"] == 2
    assert coordinator_.stats()["leases"] == {
        "index": "esproxy-leases",
        "process": coordinator_.process,
        "lease_seconds": LEASE,
        "state": "ok",
        "processes": 1,
    }


@virtual
async def test_before_the_first_read_a_process_paces_as_if_alone_and_is_not_ok(clock):
    store = MemoryLeases()
    put_lease(store, clock, "b", 1, figures(200.0, 119.0))
    coordinator_, limiters = coordinator(clock, store)
    queue = arrive(limiters, limit(), 15)
    assert queue.pace == 120.0
    stats = coordinator_.stats()
    assert stats["ok"] is False
    assert stats["leases"]["state"] == "starting"
    assert stats["leases"]["processes"] == 1


@virtual
async def test_an_established_share_follows_demand_and_headroom_goes_where_calls_come_from(clock):
    store = MemoryLeases()
    coordinator_, limiters, queue = await established(clock, store)
    # 120 a minute between b wanting 200 and this process 30: this one's demand is met.
    assert queue.pace == pytest.approx(30.0)
    assert limiters.rate(KEY) == 30
    assert live_processes(coordinator_) == 2
    # b's demand falls: the share rises at once, with the unwanted 70 split 20:30.
    clock.now += LEASE
    put_lease(store, clock, "b", 4, figures(20.0, 90.0))
    await coordinator_.run_round()
    assert queue.pace == pytest.approx(30.0 + 70.0 * 30 / 50)


@virtual
async def test_an_established_share_rises_with_its_own_demand_only_a_round_later(clock):
    store = MemoryLeases()
    coordinator_, limiters, queue = await established(clock, store)
    clock.now += 3.0
    arrive(limiters, limit(), 15)  # now 60 a minute
    clock.now += 3.0
    put_lease(store, clock, "b", 4, figures(200.0, 90.0))
    await coordinator_.run_round()
    # b is reading the lease that said 30: taking 60 now would add up to more than 120.
    assert own_figures(store, coordinator_)["demand"] == 60.0
    assert queue.pace == pytest.approx(30.0)
    clock.now += 3.0
    put_lease(store, clock, "b", 5, figures(200.0, 90.0))
    await coordinator_.run_round()
    assert queue.pace == pytest.approx(60.0)


@virtual
async def test_an_established_share_falls_with_its_own_demand_at_once(clock):
    store = MemoryLeases()
    coordinator_, _limiters, queue = await established(clock, store, b_demand=20.0)
    assert queue.pace == pytest.approx(72.0)
    # The arrivals of 1000 leave the 30 s window at 1030: no demand left but none waiting.
    clock.now = 1030.0
    put_lease(store, clock, "b", 4, figures(20.0, 48.0))
    await coordinator_.run_round()
    # On the idle floor (1% of 120), plus headroom in proportion to demand: none for a zero.
    assert queue.pace == pytest.approx(1.2)


@virtual
async def test_a_newcomer_takes_only_what_the_others_leave(clock):
    store = MemoryLeases()
    put_lease(store, clock, "b", 1, figures(200.0, 110.0))
    coordinator_, limiters = coordinator(clock, store)
    queue = arrive(limiters, limit(), 15)
    await coordinator_.run_round()
    # Its fair share is 30, but b paces at 110 until it reads this process's lease.
    assert queue.pace == pytest.approx(10.0)
    assert queue.token_pace is None


@virtual
async def test_a_newcomer_keeps_a_sliver_when_the_others_take_everything(clock):
    store = MemoryLeases()
    put_lease(store, clock, "b", 1, figures(200.0, 119.9))
    coordinator_, limiters = coordinator(clock, store)
    queue = arrive(limiters, limit(), 15)
    await coordinator_.run_round()
    assert queue.pace == pytest.approx(1.2)


@virtual
async def test_a_newcomer_assumes_every_live_process_wants_as_much_as_it_does(clock):
    store = MemoryLeases()
    # b and d do not use the key yet: they may be starting on it too.
    put_lease(store, clock, "b", 1, {})
    put_lease(store, clock, "d", 1, {"amazonbedrock/other": {"demand": 5.0, "share": 5.0}})
    coordinator_, limiters = coordinator(clock, store)
    queue = arrive(limiters, limit(), 15)
    await coordinator_.run_round()
    assert queue.pace == pytest.approx(40.0)


@virtual
async def test_an_established_process_ignores_processes_that_do_not_use_the_key(clock):
    store = MemoryLeases()
    coordinator_, _limiters, queue = await established(clock, store)
    clock.now += LEASE
    put_lease(store, clock, "b", 4, {})
    put_lease(store, clock, "d", 1, {})
    await coordinator_.run_round()
    assert queue.pace == pytest.approx(120.0)
    assert live_processes(coordinator_) == 3


@virtual
async def test_a_newcomers_rise_waits_one_round(clock):
    store = MemoryLeases()
    coordinator_, limiters = coordinator(clock, store)
    queue = arrive(limiters, limit(), 45)  # 90 a minute: a fair share of 60 beside b
    # b's share as it reads this process's leases, round by round, and this process's pace.
    # A rise waits a round, so that every process has read the lease that shows this one's
    # demand (and lowered its own share) before it paces higher.
    rounds = [(110.0, 10.0), (110.0, 10.0), (80.0, 10.0), (80.0, 40.0), (60.0, 40.0), (60.0, 60.0)]
    for seq, (b_share, pace) in enumerate(rounds, start=1):
        put_lease(store, clock, "b", seq, figures(200.0, b_share))
        await coordinator_.run_round()
        assert queue.pace == pytest.approx(pace), seq
        clock.now += 2.0


@virtual
async def test_a_newcomers_rise_is_at_once_when_a_process_has_gone(clock):
    store = MemoryLeases()
    put_lease(store, clock, "b", 1, figures(200.0, 60.0))
    put_lease(store, clock, "d", 1, figures(200.0, 50.0))
    coordinator_, limiters = coordinator(clock, store)
    queue = arrive(limiters, limit(), 15)
    await coordinator_.run_round()
    assert queue.pace == pytest.approx(10.0)
    clock.now += 5.0
    put_lease(store, clock, "b", 2, figures(200.0, 60.0))
    del store.documents["d"]  # what d leaves is nobody's
    await coordinator_.run_round()
    assert queue.pace == pytest.approx(30.0)


@virtual
async def test_a_newcomer_still_waits_a_round_for_a_rise_after_a_fall(clock):
    store = MemoryLeases()
    put_lease(store, clock, "b", 1, figures(200.0, 60.0))
    coordinator_, limiters = coordinator(clock, store)
    queue = arrive(limiters, limit(), 15)
    await coordinator_.run_round()
    assert queue.pace == pytest.approx(30.0)
    clock.now += 2.0
    put_lease(store, clock, "b", 2, figures(200.0, 110.0))
    await coordinator_.run_round()
    assert queue.pace == pytest.approx(10.0)
    clock.now += 2.0
    put_lease(store, clock, "b", 3, figures(200.0, 60.0))
    await coordinator_.run_round()
    assert queue.pace == pytest.approx(10.0)
    clock.now += 2.0
    put_lease(store, clock, "b", 4, figures(200.0, 60.0))
    await coordinator_.run_round()
    assert queue.pace == pytest.approx(30.0)


@virtual
async def test_tokens_follow_the_same_share_as_calls(clock):
    store = MemoryLeases()
    put_lease(store, clock, "b", 1, figures(200.0, 90.0))
    coordinator_, limiters = coordinator(clock, store)
    queue = arrive(limiters, limit(tokens_per_minute=6001), 15)
    await coordinator_.run_round()
    assert queue.pace == pytest.approx(30.0)
    assert queue.token_pace == pytest.approx(1500.25)
    stats = coordinator_.stats()["endpoints"][KEY]
    assert (stats["tokens_per_minute"], stats["token_pace_per_minute"]) == (6001, 1500.2)


# -- stale and dead leases ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("own_seconds", "other_seconds", "lasts"),
    [(6.0, 6.0, 9.0), (6.0, 10.0, 15.0), (10.0, 6.0, 15.0), (1.0, 1.0, 2.0)],
)
def test_a_lease_that_stops_moving_is_left_out_after_one_and_a_half_periods(
    own_seconds, other_seconds, lasts
):
    async def scenario(clock):
        store = MemoryLeases()
        coordinator_, _ = coordinator(clock, store, lease_seconds=own_seconds)
        put_lease(store, clock, "b", 1, {}, lease_seconds=other_seconds)
        await coordinator_.run_round()
        moved = clock.now
        clock.now += 1.0
        await coordinator_.run_round()  # the same lease again: it has not moved
        clock.now = moved + lasts
        await coordinator_.run_round()
        assert live_processes(coordinator_) == 2
        clock.now = moved + lasts + 0.01
        await coordinator_.run_round()
        assert live_processes(coordinator_) == 1

    clock = Clock()
    run_virtual(scenario(clock), clock)


@virtual
async def test_a_stale_process_loses_its_share_to_the_others(clock):
    store = MemoryLeases()
    coordinator_, _limiters, queue = await established(clock, store)
    assert queue.pace == pytest.approx(30.0)
    clock.now = 1012.0 + 9.0  # b last moved at 1012
    await coordinator_.run_round()
    assert queue.pace == pytest.approx(30.0)
    clock.now += 0.5
    await coordinator_.run_round()
    assert queue.pace == pytest.approx(120.0)


@pytest.mark.parametrize(
    ("age", "lasts"),
    [
        (-5.0, 9.0),  # a clock ahead of ours: trusted only to within a period
        (0.0, 9.0),
        (4.0, 5.0),
        (7.0, 3.0),  # older than a period: as if it moved a period ago
        (12.0, 3.0),
        (12.01, None),  # older than two periods when first seen: a dead process's
    ],
)
def test_a_lease_first_seen_counts_from_its_heartbeat(age, lasts):
    async def scenario(clock):
        store = MemoryLeases()
        coordinator_, _ = coordinator(clock, store)
        put_lease(store, clock, "b", 1, {}, age=age)
        await coordinator_.run_round()
        if lasts is None:
            assert live_processes(coordinator_) == 1
            return
        start = clock.now
        clock.now = start + lasts
        await coordinator_.run_round()  # the same lease again
        assert live_processes(coordinator_) == 2
        clock.now = start + lasts + 0.01
        await coordinator_.run_round()
        assert live_processes(coordinator_) == 1

    clock = Clock()
    run_virtual(scenario(clock), clock)


@virtual
async def test_a_lease_that_moves_with_an_old_heartbeat_is_still_live(clock):
    store = MemoryLeases()
    coordinator_, _ = coordinator(clock, store)
    put_lease(store, clock, "b", 1, {})
    await coordinator_.run_round()
    clock.now += 5.0
    put_lease(store, clock, "b", 2, {}, age=30.0)  # b's clock is 30 s behind ours
    await coordinator_.run_round()
    start = clock.now
    clock.now = start + 3.0
    await coordinator_.run_round()  # the same lease again
    assert live_processes(coordinator_) == 2
    clock.now = start + 3.01
    await coordinator_.run_round()
    assert live_processes(coordinator_) == 1


@virtual
async def test_between_reads_a_live_process_keeps_its_share(clock):
    """b writes its lease 5 s before each of this process's reads, so by 4.5 s after a read its
    last heartbeat is 9.5 s old, past the 9 s a lease may lag. It is live all the same: nothing
    newer can be known before the next read. A throttle or a success in that moment re-divides
    the rate, and must not hand this process b's share (two processes at the whole rate)."""
    store = MemoryLeases()
    coordinator_, limiters = coordinator(clock, store)
    queue = arrive(limiters, limit(), 15)
    for seq in (1, 2, 3):
        if seq > 1:
            clock.now += LEASE
        put_lease(store, clock, "b", seq, figures(200.0, 90.0), age=5.0)
        await coordinator_.run_round()
    assert queue.pace == pytest.approx(30.0)
    clock.now += 4.5
    assert live_processes(coordinator_) == 2
    throttle(limiters, queue)  # the rate is cut to 84: b wants 200, this process 30
    assert queue.pace == pytest.approx(30.0)
    succeed(limiters, queue)
    assert queue.pace == pytest.approx(30.0)
    clock.now += 1.5
    await coordinator_.run_round()  # b's lease has not moved: now it is gone
    assert live_processes(coordinator_) == 1
    assert queue.pace == pytest.approx(84.0, abs=0.5)


@virtual
async def test_dead_leases_are_deleted_one_a_round(clock):
    store = MemoryLeases()
    put_lease(store, clock, "d1", 1, {}, age=600.5)
    put_lease(store, clock, "d2", 1, {}, age=700.0)
    put_lease(store, clock, "e", 1, {}, age=600.0)
    coordinator_, _ = coordinator(clock, store)
    await coordinator_.run_round()
    assert sorted(store.documents) == sorted(["d2", "e", coordinator_.process])
    await coordinator_.run_round()
    assert sorted(store.documents) == sorted(["e", coordinator_.process])
    await coordinator_.run_round()
    assert sorted(store.documents) == sorted(["e", coordinator_.process])
    assert live_processes(coordinator_) == 1


@virtual
async def test_an_idle_key_leaves_the_lease_after_five_minutes(clock):
    store = MemoryLeases()
    coordinator_, limiters = coordinator(clock, store)
    arrive(limiters, limit(), 1)
    clock.now += 300.0
    await coordinator_.run_round()
    assert own_figures(store, coordinator_) == {
        "demand": 0.0,
        "share": 120.0,
        "ok": 0.0,
        "effective": 120.0,
        "cuts": 0.0,
    }
    clock.now += 0.5
    await coordinator_.run_round()
    assert own_figures(store, coordinator_) is None


@pytest.mark.parametrize(
    ("lease_seconds", "per_arrival"), [(1.0, 6.0), (6.0, 2.0), (7.0, 60 / 35), (20.0, 1.0)]
)
def test_demand_is_counted_over_five_periods_between_10_and_60_seconds(lease_seconds, per_arrival):
    async def scenario(clock):
        store = MemoryLeases()
        coordinator_, limiters = coordinator(clock, store, lease_seconds=lease_seconds)
        arrive(limiters, limit(), 3)
        await coordinator_.run_round()
        assert own_figures(store, coordinator_)["demand"] == round(3 * per_arrival, 3)

    clock = Clock()
    run_virtual(scenario(clock), clock)


@virtual
async def test_callers_waiting_count_in_the_demand(clock):
    store = MemoryLeases()
    coordinator_, limiters = coordinator(clock, store)
    slow = limit(60)  # one call, then one a second

    async def call():
        async with limiters.slot(slow):
            pass

    callers = [asyncio.create_task(call()) for _ in range(4)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert limiters.waiting(KEY) == 3
    await coordinator_.run_round()
    # 4 arrivals in 30 s are 8 a minute, and 3 callers waiting want a slot within the minute.
    assert own_figures(store, coordinator_)["demand"] == 11.0
    await asyncio.gather(*callers)
    # A caller that has waited five minutes keeps the key in the lease, though nothing arrived.
    limiters.queues()[0].set_pace(0)  # one call in 40 minutes
    callers = [asyncio.create_task(call()) for _ in range(2)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert limiters.waiting(KEY) == 2
    clock.now += 301.0
    await coordinator_.run_round()
    assert own_figures(store, coordinator_)["demand"] == 2.0
    await asyncio.gather(*callers)


# -- AIMD across processes ----------------------------------------------------------------------


@virtual
async def test_callers_that_waited_scale_the_claim_once_the_process_is_established(clock):
    """The mean number of callers waiting over a period that the queue was never empty in scales
    the arrival rate in the claim: 2 always waiting claim twice it. About one waiting, or a queue
    that emptied, claims the rate alone. So does a newcomer: those already on the key give up
    at once what it claims, but it can take that only rounds later."""
    store = MemoryLeases()
    coordinator_, limiters = coordinator(clock, store)
    queue = arrive(limiters, limit(), 15)  # 30 a minute over the 30 s window
    queue.count_waiting(2, clock.now)
    await coordinator_.run_round()
    assert own_figures(store, coordinator_)["demand"] == 32.0  # a newcomer: 30 + 2 waiting
    clock.now += LEASE
    await coordinator_.run_round()
    assert own_figures(store, coordinator_)["demand"] == 32.0  # still one
    clock.now += LEASE
    await coordinator_.run_round()
    assert own_figures(store, coordinator_)["demand"] == 30.0 * 2 + 2
    assert coordinator_.stats()["endpoints"][KEY]["demand_per_minute"] == 62.0
    # One served a quarter into the next period, the other still waiting at its end: 1.25 on
    # average, and the queue never empty.
    queue.count_waiting(-1, clock.now + 1.5)
    clock.now += LEASE
    await coordinator_.run_round()
    assert own_figures(store, coordinator_)["demand"] == 30.0 * 1.25 + 1
    # Then it is served too, after 5.8 s of the 6: never empty for 95% of it, but under one
    # caller waiting on average.
    queue.count_waiting(-1, clock.now + 5.8)
    clock.now += LEASE
    await coordinator_.run_round()
    assert own_figures(store, coordinator_)["demand"] == 30.0
    # Three callers for 5.6 s of the 6: the queue emptied, so no scaling.
    arrive(limiters, limit(), 15)  # the first 15 leave the 30 s window in this period
    queue.count_waiting(3, clock.now)
    queue.count_waiting(-3, clock.now + 5.6)
    clock.now += LEASE
    await coordinator_.run_round()
    assert own_figures(store, coordinator_)["demand"] == 30.0


@virtual
async def test_a_process_whose_callers_always_wait_grows_to_an_even_split(clock):
    """Callers that wait for each answer before asking again arrive only as fast as they are
    paced, so their arrival rate claims what the process got. This process's four callers
    always wait while process a, already on the key, wants it all: the time they wait raises the
    claim each round until max-min fairness gives each process half."""
    store = MemoryLeases()
    coordinator_, limiters = coordinator(clock, store)
    rate = limit(120)
    queue = arrive(limiters, rate, 1)
    queue.count_waiting(4, clock.now)
    paces = []
    for seq in range(1, 12):
        # a publishes what this process's last pace left it.
        a_share = 118.8 if seq == 1 else 120.0 - queue.pace
        put_lease(store, clock, "a", seq, figures(5000.0, a_share))
        await coordinator_.run_round()
        paces.append(round(queue.pace, 1))
        arrive(limiters, rate, round(queue.pace * LEASE / 60))  # as many as the pace let by
        clock.now += LEASE
    assert paces[-1] == 60.0, paces
    assert paces.index(60.0) <= 8, paces


@virtual
async def test_a_cut_keeps_what_the_whole_deployment_delivered(clock):
    store = MemoryLeases()
    put_lease(store, clock, "b", 1, figures(200.0, 300.0, ok=500.0))
    coordinator_, limiters = coordinator(clock, store)
    queue = arrive(limiters, limit(600), 10)
    await coordinator_.run_round()
    succeed(limiters, queue, 100)
    throttle(limiters, queue)
    # 600 got through in the last minute (100 here, 500 at b): the cut keeps 95% of it.
    stats = coordinator_.stats()["endpoints"][KEY]
    assert stats["effective_per_minute"] == 570.0
    assert (stats["throttled_last_minute"], stats["succeeded_last_minute"]) == (1, 100)
    clock.now += 2.0
    put_lease(store, clock, "b", 2, figures(200.0, 300.0, ok=500.0))
    await coordinator_.run_round()
    assert own_figures(store, coordinator_) == {
        "demand": 20.0,
        # 20 of the 570 by demand and 20/220 of the headroom (less than the 270 that b's
        # share of 300 leaves).
        "share": round(20 + 350 * 20 / 220, 3),
        "ok": 100.0,
        "effective": 570.0,
        "cuts": 1.0,
        "cut_ago": 2.0,
        "ceiling": 600.0,
    }


@virtual
async def test_a_cut_ignores_what_a_stale_process_delivered(clock):
    store = MemoryLeases()
    put_lease(store, clock, "b", 1, figures(200.0, 300.0, ok=500.0))
    coordinator_, limiters = coordinator(clock, store)
    queue = arrive(limiters, limit(600), 10)
    await coordinator_.run_round()
    succeed(limiters, queue, 100)
    clock.now += 9.5
    await coordinator_.run_round()  # b's lease has not moved since 1000: b is gone
    throttle(limiters, queue)
    assert coordinator_.stats()["endpoints"][KEY]["effective_per_minute"] == 420.0


@virtual
async def test_a_cut_in_cluster_mode_lowers_the_share_at_once(clock):
    store = MemoryLeases()
    coordinator_, limiters, queue = await established(clock, store, b_demand=20.0)
    assert queue.pace == pytest.approx(72.0)
    throttle(limiters, queue)
    # 84 a minute left for the deployment: b's 20 and this process's 30, headroom 34 by 2:3.
    assert queue.pace == pytest.approx(30.0 + 34.0 * 30 / 50)
    # Throttles of calls already on their way cut nothing more (cooldown: 3 calls at 84/min,
    # 2.14 s).
    clock.now += 2.1
    throttle(limiters, queue)
    assert coordinator_.stats()["endpoints"][KEY]["effective_per_minute"] == pytest.approx(84.0)
    clock.now += 0.05
    throttle(limiters, queue)
    assert coordinator_.stats()["endpoints"][KEY]["effective_per_minute"] == pytest.approx(58.8)


@virtual
async def test_another_process_cut_is_followed_once(clock):
    store = MemoryLeases()
    cut = {"effective": 84.0, "cuts": 1.0, "cut_ago": 2.0, "ceiling": 100.0}
    # A dead process's cut is not followed.
    put_lease(store, clock, "a", 1, figures(10.0, 10.0, effective=50.0, cuts=5.0), age=20.0)
    put_lease(store, clock, "b", 1, figures(10.0, 10.0, **cut))
    coordinator_, limiters = coordinator(clock, store)
    arrive(limiters, RateLimit("amazonbedrock/fixed", 60, adaptive=False), 1)
    queue = arrive(limiters, limit(), 15)
    await coordinator_.run_round()
    assert coordinator_.stats()["endpoints"][KEY]["effective_per_minute"] == 84.0
    # Successes climb back; near b's ceiling of 100 the steps would be slower.
    succeed(limiters, queue, 5)
    assert coordinator_.stats()["endpoints"][KEY]["effective_per_minute"] == 85.0
    clock.now += 1.0
    put_lease(store, clock, "b", 2, figures(10.0, 10.0, **cut))
    await coordinator_.run_round()
    # The same cut is not followed twice, and it started a cooldown here too.
    assert coordinator_.stats()["endpoints"][KEY]["effective_per_minute"] == 85.0
    assert own_figures(store, coordinator_) == {
        "demand": 30.0,
        # Its pace at 84, 30 of it by demand and 3/4 of the headroom; the rise to 85 waited.
        "share": 63.0,
        "ok": 5.0,
        "effective": 85.0,
        "cuts": 0.0,
        "cut_ago": 1.0,
        "ceiling": 100.0,
    }
    # b cuts again: followed.
    put_lease(store, clock, "b", 3, figures(10.0, 10.0, effective=60.0, cuts=2.0, cut_ago=0.5))
    await coordinator_.run_round()
    assert coordinator_.stats()["endpoints"][KEY]["effective_per_minute"] == 60.0


@pytest.mark.parametrize(
    ("cuts", "cut_ago", "followed"),
    [
        (3.0, 18.0, True),
        (3.0, 18.5, False),
        (0.0, 1.0, False),  # b followed a cut itself: whoever made it tells
    ],
)
def test_a_cut_seen_first_is_followed_only_while_recent(cuts, cut_ago, followed):
    async def scenario(clock):
        store = MemoryLeases()
        cut = {"effective": 84.0, "cuts": cuts, "cut_ago": cut_ago}
        put_lease(store, clock, "b", 1, figures(10.0, 10.0, **cut))
        coordinator_, limiters = coordinator(clock, store)
        arrive(limiters, limit(), 15)
        await coordinator_.run_round()
        effective = coordinator_.stats()["endpoints"][KEY]["effective_per_minute"]
        assert effective == (84.0 if followed else 120.0)

    clock = Clock()
    run_virtual(scenario(clock), clock)


@virtual
async def test_cuts_are_not_followed_from_stale_leases_or_on_fixed_keys(clock):
    store = MemoryLeases()
    put_lease(store, clock, "b", 1, figures(10.0, 10.0, effective=84.0, cuts=1.0), age=7.0)
    put_lease(
        store,
        clock,
        "d",
        1,
        {"amazonbedrock/fixed": {"demand": 1.0, "share": 1.0, "effective": 50.0, "cuts": 1.0}},
    )
    coordinator_, limiters = coordinator(clock, store)
    arrive(limiters, limit(), 15)
    arrive(limiters, RateLimit("amazonbedrock/fixed", 120, adaptive=False), 1)
    clock.now += 3.5  # b moved 7 s ago, as far as we know: 9.5 s now
    await coordinator_.run_round()
    endpoints = coordinator_.stats()["endpoints"]
    assert endpoints[KEY]["effective_per_minute"] == 120.0
    assert endpoints["amazonbedrock/fixed"]["effective_per_minute"] == 120.0
    assert endpoints["amazonbedrock/fixed"]["adaptive"] is False
    # No cut figures in the lease for a fixed key.
    assert store.documents[coordinator_.process]["endpoints"]["amazonbedrock/fixed"] == {
        "demand": 2.0,
        "share": 120.0,
        "ok": 0.0,
    }


@virtual
async def test_a_followed_cut_keeps_what_this_process_saw_delivered(clock):
    store = MemoryLeases()
    coordinator_, limiters = coordinator(clock, store)
    queue = arrive(limiters, limit(600), 15)
    succeed(limiters, queue, 500)
    put_lease(store, clock, "b", 1, figures(10.0, 10.0, effective=100.0, cuts=1.0, cut_ago=1.0))
    await coordinator_.run_round()
    assert coordinator_.stats()["endpoints"][KEY]["effective_per_minute"] == 475.0


@virtual
async def test_steps_back_up_weigh_this_process_part_of_the_deployment(clock):
    store = MemoryLeases()
    coordinator_, limiters = coordinator(clock, store)
    queue = arrive(limiters, limit(600), 15)
    throttle(limiters, queue)  # nothing delivered yet: 420, and no ceiling learned
    put_lease(store, clock, "b", 1, figures(10.0, 10.0, ok=30.0))
    await coordinator_.run_round()
    succeed(limiters, queue, 10)  # one step of 1/600 of the rate each: 1 a minute
    assert coordinator_.stats()["endpoints"][KEY]["effective_per_minute"] == 430.0
    put_lease(store, clock, "b", 2, figures(10.0, 10.0, ok=30.0))
    await coordinator_.run_round()
    # 40 got through in the deployment, 10 of them here: each success here stands for 4.
    succeed(limiters, queue, 1)
    assert coordinator_.stats()["endpoints"][KEY]["effective_per_minute"] == 434.0


# -- local mode and what operators see ----------------------------------------------------------


@virtual
async def test_local_stats_show_the_cut_and_recent_calls(clock):
    coordinator_, limiters = coordinator(clock, mode="local")
    queue = arrive(limiters, limit(600), 1)
    throttle(limiters, queue)
    succeed(limiters, queue, 10)
    assert coordinator_.stats() == {
        "ok": True,
        "mode": "local",
        "endpoints": {
            KEY: {
                "requests_per_minute": 600,
                "effective_per_minute": 430.0,
                "pace_per_minute": 430.0,
                "adaptive": True,
                "waiting": 0,
                "throttled_last_minute": 1,
                "succeeded_last_minute": 10,
            }
        },
    }
    assert queue.pace == 430.0
    clock.now += 60.0
    stats = coordinator_.stats()["endpoints"][KEY]
    assert (stats["throttled_last_minute"], stats["succeeded_last_minute"]) == (0, 0)


@virtual
async def test_a_changed_limit_reconfigures_the_effective_rate(clock):
    coordinator_, limiters = coordinator(clock, mode="local")
    queue = arrive(limiters, limit(600), 1)
    throttle(limiters, queue)
    assert queue.pace == pytest.approx(420.0)
    limiters.limiter_for(limit(1200))  # raised: the cut stays
    assert queue.pace == pytest.approx(420.0)
    limiters.limiter_for(limit(300))  # lowered below the cut: the new rate
    assert queue.pace == pytest.approx(300.0)
    limiters.limiter_for(limit(300, adaptive=False))
    throttle(limiters, queue)
    assert queue.pace == pytest.approx(300.0)
    limiters.limiter_for(limit(240))  # adaptive again: a fresh start
    assert queue.pace == pytest.approx(240.0)
    assert coordinator_.stats()["endpoints"][KEY]["effective_per_minute"] == 240.0


@virtual
async def test_a_local_cut_keeps_the_whole_token_budget(clock):
    _, limiters = coordinator(clock, mode="local")
    queue = arrive(limiters, limit(600, tokens_per_minute=6000), 1)
    throttle(limiters, queue)
    assert (queue.pace, queue.token_pace) == (pytest.approx(420.0), pytest.approx(6000.0))


def test_cluster_mode_needs_a_lease_index():
    with pytest.raises(ValueError) as caught:
        LimitsCoordinator(RateLimiters(), "cluster")
    assert str(caught.value) == "cluster mode needs a lease index"


# -- the lease loop -----------------------------------------------------------------------------


@virtual
async def test_the_loop_runs_a_round_each_period_and_removes_its_lease_at_close(clock):
    store = MemoryLeases()
    coordinator_, limiters = coordinator(clock, store)
    arrive(limiters, limit(), 1)
    await coordinator_.start()
    assert clock.now == 1000.0
    assert store.created == 1
    assert "esproxy-leases" in {task.get_name() for task in asyncio.all_tasks()}
    assert store.documents[coordinator_.process]["seq"] == 1
    await asyncio.sleep(3.0 + 2 * LEASE)
    assert store.documents[coordinator_.process]["seq"] == 3
    await coordinator_.close()
    assert store.documents == {}


@virtual
async def test_an_unreachable_cluster_keeps_each_share_never_more_until_it_answers(clock):
    store = MemoryLeases()
    coordinator_, limiters, queue = await established(clock, store)
    await coordinator_.start()  # its first round at 1012
    assert queue.pace == pytest.approx(30.0)
    store.error = "the lease index is out of reach: [n1]: refused"
    await asyncio.sleep(3.0 + LEASE)  # the round at 1018 fails
    store.error = "the lease index is out of reach: [n1]: reset"
    await asyncio.sleep(LEASE + 0.26)  # so does the one at 1024
    stats = coordinator_.stats()
    assert stats["ok"] is False
    assert stats["leases"] == {
        "index": "esproxy-leases",
        "process": coordinator_.process,
        "lease_seconds": LEASE,
        "state": "unreachable",
        "processes": 2,  # as at the last read: nothing newer is known
        "unreachable_for_s": 9.3,
        "error": "the lease index is out of reach: [n1]: reset",
        "note": "keeping each endpoint's last share, never more",
    }
    # This process keeps its last share, never more; a cut may still lower it.
    succeed(limiters, queue, 1)
    throttle(limiters, queue)
    assert queue.pace == pytest.approx(30.0)
    assert coordinator_.stats()["endpoints"][KEY]["effective_per_minute"] == pytest.approx(84.0)
    store.error = None
    await asyncio.sleep(LEASE)
    assert coordinator_.stats()["ok"] is True
    assert coordinator_.stats()["leases"]["state"] == "ok"
    assert queue.pace == pytest.approx(84.0)  # alone now, at the cut rate
    await coordinator_.close()


@virtual
async def test_outages_are_logged_once_and_the_return_too(clock):
    store = MemoryLeases()
    coordinator_, limiters = coordinator(clock, store)
    arrive(limiters, limit(), 1)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("esproxy.limits.coordinator")
    logger.addHandler(handler)
    try:
        await coordinator_.start()
        store.error = "down"
        await asyncio.sleep(3.0 + 3 * LEASE)
        store.error = None
        await asyncio.sleep(LEASE)
        await coordinator_.close()
    finally:
        logger.removeHandler(handler)
    messages = [record.getMessage() for record in records if record.levelno >= logging.WARNING]
    assert messages == [
        "down; every endpoint keeps its last share of the rate, never more, until the cluster "
        "answers again",
        "the lease index [esproxy-leases] is reachable again after 18 s: shares follow demand "
        "again",
    ]


@virtual
async def test_a_cluster_away_at_startup_leaves_local_pacing_until_it_answers(clock):
    store = MemoryLeases()
    store.error = "the lease index is out of reach"
    put_lease(store, clock, "b", 1, figures(200.0, 90.0))
    coordinator_, limiters = coordinator(clock, store)
    queue = arrive(limiters, limit(), 15)
    await coordinator_.start()
    assert clock.now == 1000.0  # a refusal does not hold startup
    assert store.created == 0
    stats = coordinator_.stats()
    assert (stats["ok"], stats["leases"]["state"]) == (False, "unreachable")
    assert queue.pace == 120.0
    store.error = None
    put_lease(store, clock, "b", 2, figures(200.0, 90.0))
    await asyncio.sleep(LEASE)
    assert coordinator_.stats()["ok"] is True
    assert queue.pace == pytest.approx(30.0)
    await coordinator_.close()


@virtual
async def test_a_cluster_that_does_not_answer_delays_startup_two_seconds_at_most(clock):
    store = MemoryLeases()
    store.hang = asyncio.Event()
    coordinator_, _ = coordinator(clock, store)
    await coordinator_.start()
    assert clock.now == 1002.0
    await coordinator_.close()  # the removal of the lease gives up after two seconds too
    assert clock.now == 1004.0


@virtual
async def test_a_bug_in_a_round_does_not_end_the_loop(clock):
    store = MemoryLeases()
    coordinator_, _ = coordinator(clock, store)
    await coordinator_.start()
    store.crash = RuntimeError("a bug")
    await asyncio.sleep(3.0 + LEASE)  # the round at 1006 crashes before its write
    assert store.documents[coordinator_.process]["seq"] == 1
    await asyncio.sleep(LEASE)
    assert store.documents[coordinator_.process]["seq"] == 3
    assert coordinator_.stats()["ok"] is True
    await coordinator_.close()


@virtual
async def test_closing_survives_an_unreachable_cluster(clock):
    store = MemoryLeases()
    coordinator_, _ = coordinator(clock, store)
    await coordinator_.start()
    store.error = "down"
    await coordinator_.close()
    assert coordinator_.process in store.documents


@virtual
async def test_local_mode_has_no_loop(clock):
    coordinator_, _ = coordinator(clock, mode="local")
    await coordinator_.start()
    await coordinator_.close()
    assert "leases" not in coordinator_.stats()


# -- the whole deployment -----------------------------------------------------------------------


@virtual
async def test_processes_sharing_a_key_never_pace_above_its_rate_together(clock):
    """Three processes with lease loops, one store, demand that shifts among them: at every
    moment the shares they pace at add up to no more than the rate."""
    store = MemoryLeases()
    draw = random.Random(10)
    processes = [coordinator(clock, store, lease_seconds=2.0) for _ in range(3)]
    for coordinator_, _ in processes:
        await coordinator_.start()
        await asyncio.sleep(0.3)
    worst = 0.0
    for tick in range(600):
        for index, (_, limiters) in enumerate(processes):
            # Each process's load changes every 20 s.
            phase = (tick // 100 + index) % 3
            if draw.random() < (0.05, 0.5, 1.0)[phase]:
                arrive(limiters, limit(), 1)
        await asyncio.sleep(0.2)
        total = sum(queue.pace for _, limiters in processes for queue in limiters.queues())
        worst = max(worst, total)
    assert worst <= 120.0 + 1e-6
    assert worst >= 100.0  # and they do use it
    for coordinator_, _ in processes:
        await coordinator_.close()


# -- more of what callers and operators see -----------------------------------------------------


@contextlib.contextmanager
def logged():
    """The coordinator's log records, from INFO up."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("esproxy.limits.coordinator")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def messages(records, level=logging.INFO):
    return [record.getMessage() for record in records if record.levelno == level]


def test_a_process_is_named_by_its_host_its_pid_and_a_random_suffix():
    first = LimitsCoordinator(RateLimiters(), "local").process
    second = LimitsCoordinator(RateLimiters(), "local").process
    pattern = rf"{re.escape(socket.gethostname())}-{os.getpid()}-[0-9a-f]{{6}}"
    assert re.fullmatch(pattern, first)
    assert re.fullmatch(pattern, second)
    assert first != second


@virtual
async def test_a_cut_is_logged(clock):
    _, limiters = coordinator(clock, mode="local")
    queue = arrive(limiters, limit(600), 1)
    with logged() as records:
        throttle(limiters, queue)
        throttle(limiters, queue)  # within the cooldown: no cut, nothing logged
    assert messages(records, logging.WARNING) == [
        "bedrock throttled [amazonbedrock/k]: effective rate cut from 600.0 to 420.0 a minute"
    ]


@virtual
async def test_startup_and_shutdown_troubles_are_logged(clock):
    store = MemoryLeases()
    store.hang = asyncio.Event()
    coordinator_, _ = coordinator(clock, store)
    with logged() as records:
        await coordinator_.start()
        await coordinator_.close()
    assert messages(records, logging.WARNING) == [
        "the lease index did not answer at startup; pacing waits for it"
    ]
    assert messages(records) == [
        "could not remove this process's lease on the way out: no answer within 2 s"
    ]
    store = MemoryLeases()
    coordinator_, _ = coordinator(clock, store)
    with logged() as records:
        await coordinator_.start()
        store.crash = RuntimeError("a bug")
        await asyncio.sleep(LEASE + 1.0)
        store.error = "down"
        await coordinator_.close()
    assert messages(records, logging.ERROR) == ["lease round failed"]
    [crash] = [record.exc_info[1] for record in records if record.exc_info]
    assert (type(crash), str(crash)) == (RuntimeError, "a bug")
    assert messages(records) == ["could not remove this process's lease on the way out: down"]


@virtual
async def test_a_key_is_new_until_two_leases_have_shown_it(clock):
    store = MemoryLeases()
    coordinator_, limiters = coordinator(clock, store)
    limiters.limiter_for(limit())  # opened long before the first round
    clock.now += 60.0
    queue = arrive(limiters, limit(), 15)
    put_lease(store, clock, "b", 1, figures(200.0, 110.0))
    await coordinator_.run_round()
    assert queue.pace == pytest.approx(10.0)


@virtual
async def test_a_lease_without_a_demand_counts_as_wanting_nothing(clock):
    store = MemoryLeases()
    coordinator_, _, queue = await established(clock, store)
    clock.now += LEASE
    put_lease(store, clock, "b", 4, {KEY: {"share": 50.0}})
    await coordinator_.run_round()
    assert queue.pace == pytest.approx(118.8)


@virtual
async def test_figures_are_rounded_for_the_lease_and_the_stats(clock):
    store = MemoryLeases()
    coordinator_, limiters = coordinator(clock, store)
    queue = arrive(limiters, limit(100), 1)
    await coordinator_.run_round()
    throttle(limiters, queue)  # 70
    succeed(limiters, queue)  # 70 + 1/6
    clock.now += 0.1234567
    await coordinator_.run_round()
    assert own_figures(store, coordinator_) == {
        "demand": 2.0,
        "share": 70.0,  # the rise waited for this round
        "ok": 1.0,
        "effective": 70.167,
        "cuts": 1.0,
        "cut_ago": 0.123,
    }
    stats = coordinator_.stats()["endpoints"][KEY]
    assert (stats["effective_per_minute"], stats["pace_per_minute"]) == (70.17, 70.17)


@virtual
async def test_a_key_back_after_five_idle_minutes_is_new_again(clock):
    store = MemoryLeases()
    coordinator_, limiters, queue = await established(clock, store)
    assert queue.pace == pytest.approx(30.0)
    # Idle: the key leaves the lease, and its share falls to the idle floor at once.
    clock.now = 1012.0 + 301.0
    put_lease(store, clock, "b", 4, figures(200.0, 90.0))
    await coordinator_.run_round()
    assert own_figures(store, coordinator_) is None
    assert queue.pace == pytest.approx(1.2)
    # Back: b took the rest meanwhile, and this process takes only what b leaves...
    arrive(limiters, limit(), 15)
    clock.now += LEASE
    put_lease(store, clock, "b", 5, figures(200.0, 118.8))
    await coordinator_.run_round()
    assert queue.pace == pytest.approx(1.2)
    # ...until its second lease showing the key: by then b has read the first and made room.
    clock.now += LEASE
    put_lease(store, clock, "b", 6, figures(200.0, 90.0))
    await coordinator_.run_round()
    assert queue.pace == pytest.approx(30.0)


@virtual
async def test_successes_on_a_fixed_key_are_counted(clock):
    coordinator_, limiters = coordinator(clock, mode="local")
    queue = arrive(limiters, limit(600, adaptive=False), 1)
    succeed(limiters, queue, 3)
    assert coordinator_.stats()["endpoints"][KEY]["succeeded_last_minute"] == 3
    assert queue.pace == 600.0


@virtual
async def test_a_newcomers_rise_waits_a_whole_round_when_its_demand_grows_between_rounds(clock):
    store = MemoryLeases()
    coordinator_, limiters = coordinator(clock, store)
    put_lease(store, clock, "b", 1, figures(200.0, 60.0))
    queue = arrive(limiters, limit(), 15)
    await coordinator_.run_round()
    assert queue.pace == pytest.approx(30.0)
    clock.now += 1.0
    arrive(limiters, limit(), 15)  # 60 a minute now: its fair share
    succeed(limiters, queue)  # at the full rate: nothing to recompute
    clock.now += 1.0
    put_lease(store, clock, "b", 2, figures(200.0, 60.0))
    await coordinator_.run_round()
    assert queue.pace == pytest.approx(30.0)  # b has not read the lease that says 60
    clock.now += 2.0
    put_lease(store, clock, "b", 3, figures(200.0, 60.0))
    await coordinator_.run_round()
    assert queue.pace == pytest.approx(60.0)


@virtual
async def test_a_coordinator_takes_over_keys_already_in_use(clock):
    limiters = RateLimiters()
    limiters.limiter_for(limit(600))
    coordinator_ = LimitsCoordinator(limiters, "local")
    assert coordinator_.stats()["endpoints"][KEY]["effective_per_minute"] == 600.0


@virtual
async def test_a_cut_between_rounds_divides_by_the_demand_of_the_moment(clock):
    store = MemoryLeases()
    coordinator_, limiters, queue = await established(clock, store, b_demand=20.0)
    assert queue.pace == pytest.approx(72.0)
    clock.now = 1024.0
    put_lease(store, clock, "b", 4, figures(20.0, 48.0))
    await coordinator_.run_round()
    assert queue.pace == pytest.approx(72.0)
    clock.now = 1030.5  # this process's arrivals have left the window since the last round
    throttle(limiters, queue)
    # 84 between b's 20 and nothing here: the idle floor, and no headroom for a zero demand.
    assert queue.pace == pytest.approx(0.84)


@virtual
async def test_a_deep_cut_keeps_the_token_share_of_the_pace(clock):
    _, limiters = coordinator(clock, mode="local")
    queue = arrive(limiters, limit(10, tokens_per_minute=1000), 1)
    for _ in range(30):
        throttle(limiters, queue)
        clock.now += 3600.0
    assert queue.pace == pytest.approx(0.1)  # the floor: 1% of the rate
    assert queue.token_pace == pytest.approx(1000.0)  # alone, the whole budget


@virtual
async def test_an_idle_key_leaves_the_lease_and_the_others_stay(clock):
    store = MemoryLeases()
    coordinator_, limiters = coordinator(clock, store)
    arrive(limiters, limit(), 1)
    clock.now += 400.0
    arrive(limiters, RateLimit("amazonbedrock/busy", 120), 1)
    await coordinator_.run_round()
    assert list(store.documents[coordinator_.process]["endpoints"]) == ["amazonbedrock/busy"]


@virtual
async def test_a_cut_is_followed_when_another_process_turns_the_key_adaptive(clock):
    store = MemoryLeases()
    coordinator_, limiters = coordinator(clock, store)
    put_lease(store, clock, "b", 1, figures(10.0, 10.0))  # b's key is fixed: no cut figures
    arrive(limiters, limit(), 15)
    await coordinator_.run_round()
    clock.now += 2.0
    put_lease(store, clock, "b", 2, figures(10.0, 10.0, effective=84.0, cuts=1.0, cut_ago=1.0))
    await coordinator_.run_round()
    assert coordinator_.stats()["endpoints"][KEY]["effective_per_minute"] == 84.0


@virtual
async def test_a_followed_cut_keeps_what_the_whole_deployment_delivered(clock):
    store = MemoryLeases()
    coordinator_, limiters = coordinator(clock, store)
    arrive(limiters, limit(600), 15)
    cut = {"effective": 100.0, "cuts": 1.0, "cut_ago": 1.0}
    put_lease(store, clock, "b", 1, figures(10.0, 10.0, ok=500.0, **cut))
    await coordinator_.run_round()
    assert coordinator_.stats()["endpoints"][KEY]["effective_per_minute"] == 475.0
