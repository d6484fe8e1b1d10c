"""The lease index's interface over a dict, for unit tests of LimitsCoordinator's decisions.

Documents are kept as the cluster keeps them, JSON through `Lease.to_document` and
`Lease.from_document`, so a lease another process wrote is plain data a test can set. The real
index in the cluster is covered by tests/limits/test_deployment.py.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from esproxy.errors import LeasesUnavailable
from esproxy.limits.leases import Lease


class MemoryLeases:
    """`alias`, `create`, `write`, `read` and `delete`, as `LeaseIndex` has them."""

    alias = "esproxy-leases"

    def __init__(self) -> None:
        self.documents: dict[str, Any] = {}
        self.created = 0
        # While set, every call fails as an unreachable cluster's does, with this reason.
        self.error: str | None = None
        # While set, every call waits for it (a cluster that does not answer).
        self.hang: asyncio.Event | None = None
        # The next call raises this (a bug in a round, not a cluster fault).
        self.crash: BaseException | None = None

    async def _answer(self) -> None:
        if self.hang is not None:
            await self.hang.wait()
        if self.crash is not None:
            crash, self.crash = self.crash, None
            raise crash
        if self.error is not None:
            raise LeasesUnavailable(self.error)

    async def create(self) -> None:
        await self._answer()
        self.created += 1

    async def write(self, lease: Lease) -> None:
        await self._answer()
        self.documents[lease.process] = json.loads(json.dumps(lease.to_document()))

    async def read(self) -> list[Lease]:
        await self._answer()
        leases = [Lease.from_document(document) for document in self.documents.values()]
        return [lease for lease in leases if lease is not None]

    async def delete(self, process: str) -> None:
        await self._answer()
        self.documents.pop(process, None)
