"""OpeningStore: a store that opens in the background, so esproxy starts before its cluster.

Until the inner store has opened, every call raises the reason it has not (`StoreUnavailable`, a
503, or `StoreMisconfigured`, a 500 that says what to fix), and readiness reports it. Retries back
off from `first_delay` to `max_delay` seconds and go on until the store opens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from esproxy.errors import StoreUnavailable
from esproxy.storage.base import EndpointRecord, EndpointStore

log = logging.getLogger(__name__)

FIRST_DELAY = 0.5
MAX_DELAY = 10.0


class Openable(EndpointStore, Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...


class OpeningStore:
    def __init__(
        self,
        inner: Openable,
        *,
        background: bool,
        first_delay: float = FIRST_DELAY,
        max_delay: float = MAX_DELAY,
    ) -> None:
        self.inner = inner
        self.background = background
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.attempts = 0
        # Run once the store has opened in the background (the startup audit).
        self.on_open: Callable[[], Awaitable[object]] | None = None
        self._error: StoreUnavailable | None = StoreUnavailable("the endpoint store is not open")
        self._retrying: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"OpeningStore({self.inner!r})"

    @property
    def is_open(self) -> bool:
        return self._error is None

    async def open(self) -> None:
        """Open now; in the background, a failure only starts the retries."""
        if not self.background:
            await self.inner.open()
            self._error = None
            return
        if not await self._try_open():
            self._retrying = asyncio.create_task(self._retry())

    async def close(self) -> None:
        if self._retrying is not None:
            self._retrying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retrying
        await self.inner.close()

    def require_open(self) -> None:
        if self._error is not None:
            raise self._error

    async def _try_open(self) -> bool:
        self.attempts += 1
        try:
            await self.inner.open()
        except StoreUnavailable as error:
            first = self.attempts == 1
            log.log(
                logging.WARNING if first else logging.INFO,
                "endpoint store not available%s: %s; retrying in the background",
                "" if first else f" (attempt {self.attempts})",
                error.reason,
            )
            self._error = type(error)(
                f"{error.reason} (esproxy keeps retrying to open the endpoint store)",
                caused_by=error.caused_by,
            )
            return False
        if self.attempts > 1:
            log.warning("endpoint store opened after %d attempts", self.attempts)
        self._error = None
        return True

    async def _retry(self) -> None:
        delay = self.first_delay
        while True:
            await asyncio.sleep(delay)
            if await self._try_open():
                if self.on_open is not None:
                    await self.on_open()
                return
            delay = min(delay * 2, self.max_delay)

    async def create(self, record: EndpointRecord) -> None:
        self.require_open()
        await self.inner.create(record)

    async def get(self, inference_id: str) -> EndpointRecord:
        self.require_open()
        return await self.inner.get(inference_id)

    async def list(self) -> list[EndpointRecord]:
        self.require_open()
        return await self.inner.list()

    async def replace(self, record: EndpointRecord, expected: EndpointRecord | None = None) -> None:
        self.require_open()
        await self.inner.replace(record, expected)

    async def delete(self, inference_id: str) -> None:
        self.require_open()
        await self.inner.delete(inference_id)
