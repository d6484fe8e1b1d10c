"""LimitsCoordinator: each endpoint's pace in this process, alone or as a share of the deployment.

It is the `Pacer` of `RateLimiters`. Requests only touch in-memory state here; the lease loop is
the only code that talks to the cluster, one write and one search per lease period:

- write this process's lease: a heartbeat and, per endpoint key, its recent demand (calls per
  minute wanted), its successes over the last minute and its AIMD state;
- read every lease, note which processes still heartbeat, follow their AIMD cuts, and give each
  endpoint the share of its effective rate that `shares.divide` assigns this process.

A process whose lease stops changing for about one and a half lease periods is left out of the
division: the others take its share at their next round.
When the cluster cannot be reached, every endpoint keeps its last share at most (AIMD may still
lower it), the log and `/_esproxy/ready` say so, and the next round that gets through resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from esproxy.errors import LeasesUnavailable
from esproxy.inference.rate_limits import KeyQueue, RateLimiters
from esproxy.limits.adaptive import AdaptiveRate
from esproxy.limits.leases import Lease, LeaseIndex
from esproxy.limits.recent import RecentEvents
from esproxy.limits.shares import IDLE_FRACTION, divide

log = logging.getLogger(__name__)

Mode = Literal["local", "cluster"]

MINUTE = 60.0
# A lease whose heartbeat is older than its period plus this much (half a period, at least a
# second) belongs to a process that is gone: a live one's may lag by a slow write or a busy loop.
LATE_FRACTION = 0.5
LATE_SECONDS = 1.0
# How long a process on its way out waits to remove its lease.
CLOSE_SECONDS = 2.0
# A lease whose heartbeat is this old is deleted by whoever reads it.
DEAD_LEASE_SECONDS = 600.0
# A process takes part in an endpoint's division while it used the endpoint this recently.
ACTIVE_SECONDS = 300.0
# How far back demand is measured, in lease periods (and within these bounds, in seconds).
DEMAND_PERIODS = 5
DEMAND_WINDOW_BOUNDS = (10.0, 60.0)
# A key whose callers waited for at least this part of a lease period wants more than its pace.
SATURATED_FRACTION = 0.95


@dataclass
class KeyState:
    """What this process knows about one endpoint key."""

    arrivals: RecentEvents
    successes: RecentEvents = field(default_factory=lambda: RecentEvents(MINUTE))
    throttles: RecentEvents = field(default_factory=lambda: RecentEvents(MINUTE))
    adaptive: AdaptiveRate | None = None
    last_arrival: float = float("-inf")
    opened_at: float = float("-inf")
    # While the lease index is out of reach: the pace the key may not exceed.
    cap: float | None = None
    # How much one of this process's successes counts for the deployment's AIMD step.
    weight: float = 1.0
    # Per other process: the count of its cuts already followed.
    seen_cuts: dict[str, float] = field(default_factory=dict)
    # The demand this process's last two written leases showed (None: the key was left out);
    # every other process is reading one of them now (see LimitsCoordinator._apply).
    published: deque[float | None] = field(default_factory=lambda: deque(maxlen=2))
    # While new to the key, a raised share waits one round (see LimitsCoordinator._hold_raise):
    # the round it was first wanted in, and the live processes sharing the key then.
    raise_round: int | None = None
    sharing: frozenset[str] = frozenset()
    # The mean number of callers that waited for the key's pace over the last lease period, or
    # 0 unless one waited nearly all of it; and the queue's sums (KeyQueue.waited_until) then.
    queued: float = 0.0
    waited_mark: tuple[float, float] = (0.0, 0.0)
    marked_at: float = float("-inf")

    def effective(self, configured: float) -> float:
        return configured if self.adaptive is None else self.adaptive.value

    def demand(self, now: float, waiting: int, *, scaled: bool = True) -> float:
        """Calls per minute wanted: the recent arrival rate, raised by the callers that waited
        for the pace, plus the backlog to clear within a minute.

        Callers that wait for each answer before they ask again (an ingest's workers, a node's
        bounded client) arrive only as fast as they are paced, so their arrival rate says what
        the process got, not what it wants: a replica that joined a busy endpoint later kept
        what its callers' rate claimed, a few calls a minute, while its callers waited seconds
        each. So the mean number of callers waiting over the last period scales the claim when
        the queue never emptied in it: N callers always waiting claim N times the rate, and a
        starved process's share grows each round until max-min fairness caps it at an even
        split. Requests that arrive at their own rate, as fast as the share lets them through,
        keep about one caller waiting, and claim their rate: one caller waiting at a time is
        all the difference between them and a single starved caller, which therefore stays as
        it is. A queue that empties within the period (a burst, a slot waited for now and then)
        scales nothing: a larger claim would leave its share unused. (Clearing the backlog
        within the short window instead, as a count, made one caller waiting a moment claim 6
        a minute more at 1 s leases, and left a starved one starved.)

        `scaled=False` leaves the waiting callers out of the rate: a newcomer's claim. Those
        already on the key give up what it claims at once, but it cannot take that until they
        have published their lower shares and it has read them, a period or two later."""
        scale = max(1.0, self.queued) if scaled else 1.0
        return self.arrivals.per_minute(now) * scale + waiting

    def measure_queue(self, queue: KeyQueue, now: float) -> None:
        """Take the mean number of callers that waited since the last measure."""
        waited = queue.waited_until(now)
        span = now - self.marked_at
        if span > 0 and math.isfinite(span):
            (summed, busy), (summed_before, busy_before) = waited, self.waited_mark
            saturated = busy - busy_before >= SATURATED_FRACTION * span
            self.queued = (summed - summed_before) / span if saturated else 0.0
        self.waited_mark, self.marked_at = waited, now


@dataclass
class Seen:
    """Another process's lease as last read, and when (our clock) its heartbeat last moved."""

    lease: Lease
    moved_at: float


class LimitsCoordinator:
    """Paces every key of `limiters`; `start()` runs the lease loop when `leases` is given."""

    def __init__(
        self,
        limiters: RateLimiters,
        mode: Mode,
        leases: LeaseIndex | None = None,
        lease_seconds: float = 5.0,
        clock: Any = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if mode == "cluster" and leases is None:
            raise ValueError("cluster mode needs a lease index")
        self.mode: Mode = mode
        self.lease_seconds = lease_seconds
        self.process = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self._limiters = limiters
        self._leases = leases
        self._clock = clock or (lambda: asyncio.get_running_loop().time())
        # Heartbeats are wall-clock time: the only clock processes on other hosts share.
        self._wall = wall_clock
        low, high = DEMAND_WINDOW_BOUNDS
        self._demand_window = min(high, max(low, DEMAND_PERIODS * lease_seconds))
        self._seq = 0
        self._rounds = 0  # lease rounds that got through
        self._others: dict[str, Seen] | None = None  # None until the first read
        self._read_at = -math.inf  # when the leases were last read
        self._stale_since: float | None = None
        self._last_error: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._first_round = asyncio.Event()
        limiters.pacer = self

    # -- the Pacer side: called on the event loop by RateLimiters, never waits -----------------

    def opened(self, queue: KeyQueue) -> None:
        state = queue.state
        configured = float(queue.limit.requests_per_minute)
        if not isinstance(state, KeyState):
            state = queue.state = KeyState(arrivals=RecentEvents(self._demand_window))
            state.opened_at = self._clock()
            state.measure_queue(queue, state.opened_at)
        if queue.limit.adaptive:
            if state.adaptive is None:
                state.adaptive = AdaptiveRate(configured)
            else:
                state.adaptive.reconfigure(configured)
        else:
            state.adaptive = None
        self._apply(queue, self._clock())

    def forgotten(self, key: str) -> None:
        pass

    def arrived(self, queue: KeyQueue) -> None:
        state = self._state(queue)
        now = self._clock()
        state.arrivals.add(now)
        state.last_arrival = now

    def finished(self, queue: KeyQueue, throttled: bool, succeeded: bool) -> None:
        state = self._state(queue)
        now = self._clock()
        adaptive = state.adaptive
        if throttled:
            state.throttles.add(now)
            if adaptive is not None:
                before = adaptive.value
                if adaptive.throttled(now, self._delivered(queue.limit.key, state, now)):
                    log.warning(
                        "bedrock throttled [%s]: effective rate cut from %.1f to %.1f a minute",
                        queue.limit.key,
                        before,
                        adaptive.value,
                    )
                    self._apply(queue, now)
        elif succeeded:
            state.successes.add(now)
            if adaptive is not None and adaptive.value < adaptive.configured:
                adaptive.succeeded(now, state.weight)
                self._apply(queue, now)

    # -- pacing ---------------------------------------------------------------------------------

    def _state(self, queue: KeyQueue) -> KeyState:
        if not isinstance(queue.state, KeyState):
            self.opened(queue)
        assert isinstance(queue.state, KeyState)
        return queue.state

    def _apply(self, queue: KeyQueue, now: float) -> None:
        state = self._state(queue)
        limit = queue.limit
        effective = state.effective(float(limit.requests_per_minute))
        if self.mode == "local":
            pace = effective
        elif self._others is None:
            # No lease read yet (the cluster is away at startup, or refuses the lease index): no
            # share to keep, so the process paces as in local mode; the log and
            # /_esproxy/ready say the leases are not working.
            pace = effective
        else:
            live = {name: seen for name, seen in self._others.items() if self._is_live(seen)}
            # Until this process's lease has told the others that it uses the key, they may all
            # be starting on it too (assume every live process wants as much as this one), and
            # those already on it pace at shares that leave only the rest.
            shown = [demand for demand in state.published if demand is not None]
            newcomer = self._is_newcomer(state, now)
            own = state.demand(now, queue.waiting, scaled=not newcomer)
            if not newcomer:
                # Views read at different moments must not add up to more than the rate. Each
                # process divides with its own demand as the least of now and its last two
                # leases, one of which every other process is reading, and with the others'
                # demands as read. So each sees the others wanting no less, and itself no
                # more, than one common view does, and `divide` is monotone (a share never
                # grows with another's demand or shrinks with its own): its share is at most
                # its share of that common view, and those sum to the rate. A share may thus
                # rise at once when another's demand falls or a process leaves; it rises with
                # this process's own demand a round later, once the others have read it.
                own = min(own, *shown)
            demands = {
                name: seen.lease.endpoints[limit.key].get("demand", 0.0)
                if limit.key in seen.lease.endpoints
                else own
                for name, seen in live.items()
                if newcomer or limit.key in seen.lease.endpoints
            }
            demands[self.process] = own
            pace = divide(effective, demands)[self.process]
            if newcomer:
                taken = sum(
                    seen.lease.endpoints[limit.key].get("share", 0.0)
                    for seen in live.values()
                    if limit.key in seen.lease.endpoints
                )
                pace = min(pace, max(effective - taken, effective * IDLE_FRACTION))
                pace = self._hold_raise(queue, state, pace, frozenset(demands))
            else:
                state.raise_round, state.sharing = None, frozenset(demands)
        if state.cap is not None:
            pace = min(pace, state.cap)
        tokens = None
        if limit.tokens_per_minute is not None:
            # Tokens follow the same share of the deployment as calls do.
            tokens = limit.tokens_per_minute * min(1.0, pace / max(effective, 1e-9))
        queue.set_pace(pace, tokens)

    def _is_newcomer(self, state: KeyState, now: float) -> bool:
        published = sum(demand is not None for demand in state.published)
        return now - state.opened_at < 2 * self.lease_seconds or published < 2

    def _hold_raise(
        self, queue: KeyQueue, state: KeyState, pace: float, sharing: frozenset[str]
    ) -> float:
        """While new to a key: a share may fall at once, but rises only a round after it was first
        wanted, once every other process has read the lease that shows this one's demand and
        lowered its own share: views taken at different moments would otherwise add up to more
        than the rate. When a process has gone, the rise is at once: what it leaves is nobody's."""
        left = bool(state.sharing - sharing)
        state.sharing = sharing
        if pace <= queue.pace + 1e-9 or left:
            state.raise_round = None
            return pace
        if state.raise_round is None:
            state.raise_round = self._rounds
        if self._rounds > state.raise_round:
            state.raise_round = None
            return pace
        return queue.pace

    def _delivered(self, key: str, state: KeyState, now: float) -> float:
        """Calls of `key` that got through in the last minute, in the whole deployment."""
        total = float(state.successes.count(now))
        for seen in (self._others or {}).values():
            if key in seen.lease.endpoints and self._is_live(seen):
                total += seen.lease.endpoints[key].get("ok", 0.0)
        return total

    def _is_live(self, seen: Seen) -> bool:
        """Whether the process was live at the last read. Judged then, not now: between two
        reads a live process's heartbeat cannot be seen to move, and one judged at a later moment
        (a throttle, a success, a changed limit) would look gone, and its share free, for the
        last part of every period."""
        period = max(self.lease_seconds, seen.lease.lease_seconds)
        return self._read_at - seen.moved_at <= period + max(LATE_FRACTION * period, LATE_SECONDS)

    # -- the lease loop -------------------------------------------------------------------------

    async def start(self, first_round_timeout: float = 2.0) -> None:
        """Start the lease loop and give its first round a moment, so shares exist from the
        first request; a cluster that does not answer delays startup by that moment only."""
        if self._leases is None:
            return
        self._task = asyncio.create_task(self._run(), name="esproxy-leases")
        try:
            async with asyncio.timeout(first_round_timeout):
                await self._first_round.wait()
        except TimeoutError:
            log.warning("the lease index did not answer at startup; pacing waits for it")

    async def close(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        assert self._leases is not None
        try:
            async with asyncio.timeout(CLOSE_SECONDS):
                await self._leases.delete(self.process)
        except LeasesUnavailable as error:
            log.info("could not remove this process's lease on the way out: %s", error.reason)
        except TimeoutError:
            log.info(
                "could not remove this process's lease on the way out: no answer within %.0f s",
                CLOSE_SECONDS,
            )

    async def _run(self) -> None:
        assert self._leases is not None
        loop = asyncio.get_running_loop()
        try:
            await self._leases.create()
        except LeasesUnavailable as error:
            self._failed(error)  # the first write tells again; creating is retried then
        next_at = loop.time()
        while True:
            try:
                await self.run_round()
            except LeasesUnavailable as error:
                self._failed(error)
            except Exception:  # a bug must not end the loop: pacing would freeze for good
                log.exception("lease round failed")
            finally:
                self._first_round.set()
            next_at = max(next_at + self.lease_seconds, loop.time())
            await asyncio.sleep(next_at - loop.time())

    async def run_round(self) -> None:
        """One write of this process's lease, one read of all leases, then new shares."""
        assert self._leases is not None
        now = self._clock()
        self._seq += 1
        lease = self._own_lease(now)
        await self._leases.write(lease)
        for queue in self._limiters.queues():
            figures = lease.endpoints.get(queue.limit.key)
            self._state(queue).published.append(None if figures is None else figures["demand"])
        leases = await self._leases.read()
        now = self._clock()
        self._take(leases, now)
        if self._stale_since is not None:
            log.warning(
                "the lease index [%s] is reachable again after %.0f s: shares follow demand again",
                self._leases.alias,
                now - self._stale_since,
            )
        self._stale_since, self._last_error = None, None
        self._rounds += 1
        for queue in self._limiters.queues():
            state = self._state(queue)
            state.cap = None
            self._apply(queue, now)
        await self._delete_dead(leases)

    def _failed(self, error: LeasesUnavailable) -> None:
        now = self._clock()
        if self._stale_since is None:
            self._stale_since = now
            log.warning(
                "%s; every endpoint keeps its last share of the rate, never more, until the "
                "cluster answers again",
                error.reason,
            )
            for queue in self._limiters.queues():
                self._state(queue).cap = queue.pace
        self._last_error = error.reason

    def _own_lease(self, now: float) -> Lease:
        endpoints: dict[str, dict[str, float]] = {}
        for queue in self._limiters.queues():
            state = self._state(queue)
            state.measure_queue(queue, now)
            if now - state.last_arrival > ACTIVE_SECONDS and not queue.waiting:
                continue
            figures = {
                "demand": round(
                    state.demand(now, queue.waiting, scaled=not self._is_newcomer(state, now)), 3
                ),
                "share": round(queue.pace, 3),
                "ok": float(state.successes.count(now)),
            }
            adaptive = state.adaptive
            if adaptive is not None:
                figures["effective"] = round(adaptive.value, 3)
                figures["cuts"] = float(adaptive.cuts)
                if adaptive.cut_at is not None:
                    figures["cut_ago"] = round(now - adaptive.cut_at, 3)
                if adaptive.ceiling is not None:
                    figures["ceiling"] = adaptive.ceiling
            endpoints[queue.limit.key] = figures
        return Lease(
            process=self.process,
            host=socket.gethostname(),
            heartbeat_ms=int(self._wall() * 1000),
            seq=self._seq,
            lease_seconds=self.lease_seconds,
            endpoints=endpoints,
        )

    def _take(self, leases: list[Lease], now: float) -> None:
        """Note which leases moved, and follow the AIMD cuts other processes made."""
        previous = self._others or {}
        self._read_at = now
        others: dict[str, Seen] = {}
        wall_ms = self._wall() * 1000
        for lease in leases:
            if lease.process == self.process:
                continue
            before = previous.get(lease.process)
            if before is not None and lease.seq == before.lease.seq:
                moved_at = before.moved_at
            else:
                # Moved since the last read: when, by the wall clock, but trusting the clocks of
                # two hosts only to within a period either way.
                # A lease seen for the first time with an old heartbeat is a dead process's.
                age = (wall_ms - lease.heartbeat_ms) / 1000
                period = lease.lease_seconds
                moved_at = now - min(max(age, 0.0), period)
                if before is None and age > 2 * period:
                    moved_at = -math.inf
            others[lease.process] = Seen(lease, moved_at)
        self._others = others
        queues = {queue.limit.key: queue for queue in self._limiters.queues()}
        for queue in queues.values():
            state = self._state(queue)
            own = state.successes.count(now)
            delivered = self._delivered(queue.limit.key, state, now)
            state.weight = delivered / own if own else 1.0
            if state.adaptive is None:
                continue
            for name, seen in others.items():
                figures = seen.lease.endpoints.get(queue.limit.key)
                if figures is None or not self._is_live(seen):
                    continue
                cuts = figures.get("cuts", 0.0)
                known = state.seen_cuts.get(name)
                recent = figures.get("cut_ago", float("inf")) <= 3 * self.lease_seconds
                new = cuts > known if known is not None else recent
                if cuts > 0 and new:
                    delivered = self._delivered(queue.limit.key, state, now)
                    state.adaptive.follow(
                        now,
                        figures.get("effective", state.adaptive.value),
                        figures.get("ceiling"),
                        delivered,
                    )
                state.seen_cuts[name] = cuts

    async def _delete_dead(self, leases: list[Lease]) -> None:
        assert self._leases is not None
        wall_ms = self._wall() * 1000
        for lease in leases:
            if lease.process != self.process and wall_ms - lease.heartbeat_ms > (
                DEAD_LEASE_SECONDS * 1000
            ):
                await self._leases.delete(lease.process)
                return  # one per round is plenty

    # -- what operators see ------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """For `/_esproxy/ready` and metrics: the mode, the leases and every endpoint's pace."""
        now = self._clock()
        body: dict[str, Any] = {"ok": self._stale_since is None, "mode": self.mode}
        if self.mode == "cluster":
            live = [s for s in (self._others or {}).values() if self._is_live(s)]
            leases: dict[str, Any] = {
                "index": self._leases.alias if self._leases else None,
                "process": self.process,
                "lease_seconds": self.lease_seconds,
                "state": "starting" if self._others is None else "ok",
                "processes": 1 + len(live),
            }
            if self._stale_since is not None:
                leases["state"] = "unreachable"
                leases["unreachable_for_s"] = round(now - self._stale_since, 1)
                leases["error"] = self._last_error
                leases["note"] = "keeping each endpoint's last share, never more"
            if self._others is None:
                body["ok"] = False
            body["leases"] = leases
        endpoints: dict[str, Any] = {}
        for queue in self._limiters.queues():
            state = self._state(queue)
            limit = queue.limit
            entry: dict[str, Any] = {
                "requests_per_minute": limit.requests_per_minute,
                "effective_per_minute": round(state.effective(limit.requests_per_minute), 2),
                "pace_per_minute": round(queue.pace, 2),
                "adaptive": limit.adaptive,
                "waiting": queue.waiting,
                "throttled_last_minute": state.throttles.count(now),
                "succeeded_last_minute": state.successes.count(now),
            }
            if self.mode == "cluster":
                # What the shares are divided by: this process's claim as its last lease showed
                # it (None: the key was left out), the arrival rate scaled by waiting callers.
                entry["demand_per_minute"] = state.published[-1] if state.published else None
            if limit.tokens_per_minute is not None:
                entry["tokens_per_minute"] = limit.tokens_per_minute
                entry["token_pace_per_minute"] = round(queue.token_pace or 0.0, 1)
            endpoints[limit.key] = entry
        body["endpoints"] = endpoints
        return body
