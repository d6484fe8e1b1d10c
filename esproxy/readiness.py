"""Readiness: named checks that any room adds, run together and cached for a second.

`/_esproxy/ready` (web/health.py) renders the report. A room adds its own item with
`app[READINESS].add(name, check, required=...)` in its cleanup context: a check returns details
(a dict, a string, or None) and raises `ProxyError` or `OSError` when it fails; a dict with
`"ok": False` reports a problem without raising. Only required checks decide readiness.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from esproxy.errors import ProxyError

PROBE_SECONDS = 2.0
CACHE_SECONDS = 1.0

Check = Callable[[], Awaitable[Any]]


@dataclass(frozen=True)
class Report:
    ready: bool
    checks: dict[str, dict[str, Any]]


class Readiness:
    def __init__(
        self, cache_seconds: float = CACHE_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._checks: dict[str, tuple[Check, bool]] = {}
        self._last: tuple[float, Report] | None = None
        self._lock = asyncio.Lock()
        self.runs = 0  # how many times the checks ran: the cache's effect, for tests and metrics

    def add(self, name: str, check: Check, *, required: bool = True) -> None:
        self._checks[name] = (check, required)
        self._last = None

    def remove(self, name: str) -> None:
        self._checks.pop(name, None)
        self._last = None

    async def report(self) -> Report:
        """The latest report, at most `cache_seconds` old; concurrent callers share one run."""
        async with self._lock:
            now = self.clock()
            if self._last is not None and now - self._last[0] < self.cache_seconds:
                return self._last[1]
            report = await self._run()
            self._last = (self.clock(), report)
            return report

    async def _run(self) -> Report:
        self.runs += 1
        names = list(self._checks)
        results = await asyncio.gather(*(probe(self._checks[name][0]) for name in names))
        checks = dict(zip(names, results, strict=True))
        ready = all(checks[name]["ok"] for name in names if self._checks[name][1])
        return Report(ready, checks)


async def probe(check: Check) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(PROBE_SECONDS):
            detail = await check()
    except TimeoutError:
        return {"ok": False, "error": f"no answer within {PROBE_SECONDS:.0f} s"}
    except (ProxyError, OSError) as error:
        return {"ok": False, "error": str(error)}
    result: dict[str, Any] = {"ok": True, "took_ms": round((time.perf_counter() - started) * 1000)}
    if isinstance(detail, dict):
        result.update(detail)
    elif detail:
        result["target"] = detail
    return result
