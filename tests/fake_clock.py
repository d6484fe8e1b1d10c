"""A clock tests move by hand, for code that takes its time source as a callable, and an event
loop that runs on it: when nothing is ready, the clock jumps to the next timer instead of waiting.

Code paced by timers (aiolimiter, `asyncio.sleep`, `asyncio.timeout`) then takes exactly the time
it asks for, however slow or loaded the machine: a test bounds what the code decides, not the load.
"""

from __future__ import annotations

import asyncio
import math
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _JumpingSelector(selectors.DefaultSelector):
    def __init__(self, clock: Clock, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._clock = clock
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = super().select(0)
        if ready:
            return ready
        if timeout == 0:
            if not self._loop._ready:  # type: ignore[attr-defined]
                # Only a timer that is due: its callback may set the next one for this same
                # instant (aiolimiter does, by a rounding error), where a real clock would have
                # moved on. Move on by the least step there is.
                self._clock.now = math.nextafter(self._clock.now, math.inf)
            return ready
        if timeout is None:
            # Nothing scheduled and no I/O ready: the real loop would wait forever.
            raise RuntimeError("the virtual-time loop has nothing left to wait for: a deadlock")
        self._clock.now += timeout
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose `time()` is `clock`, moved only by waiting for timers."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        super().__init__(_JumpingSelector(clock, self))

    def time(self) -> float:
        return self.clock.now


def run_virtual(main: Coroutine[Any, Any, T], clock: Clock | None = None) -> T:
    """Run `main` to completion on a fresh virtual-time loop (on `clock`, or a new one)."""
    loop = VirtualTimeLoop(clock or Clock())
    try:
        return loop.run_until_complete(main)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
