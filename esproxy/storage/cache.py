"""CachedEndpointStore: a bounded, short-lived cache of `get` in front of another EndpointStore.

Inference reads its endpoint on every call; this keeps those reads off the cluster. `list` and every
write go straight through.
"""

from __future__ import annotations

import asyncio
import builtins
import copy
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from esproxy.errors import (
    EndpointChanged,
    EndpointNotFound,
    StoreMisconfigured,
    StoreUnavailable,
)
from esproxy.storage.base import EndpointRecord, EndpointStore

log = logging.getLogger(__name__)

MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class Entry:
    record: EndpointRecord | None  # None: the id was not found
    fetched_at: float


class CachedEndpointStore:
    """Serves `get` from memory for `ttl_seconds`, so other instances' changes show up within it.

    - Misses are cached for the same time, so an unknown id cannot hammer the inner store.
    - Writes through this store update or drop the entry at once: local changes are seen at once.
    - Concurrent `get`s of one id that is not fresh share one inner read.
    - Stale-if-error: when the inner store is unavailable, an expired entry keeps being served (and
      is trusted for another `ttl_seconds` before the next attempt), however old it is. This is what
      keeps known endpoints serving inference while the cluster is down; ids never seen still fail.
      A store that answers but is not esproxy's (`StoreMisconfigured`) is not ridden out.
    - At most `max_entries` entries; the least recently used go first.
    """

    def __init__(
        self,
        inner: EndpointStore,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self.inner = inner
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._reads: dict[str, asyncio.Future[Entry]] = {}
        # Bumped around every local write, so a read overlapping one does not cache its answer.
        self._generation = 0

    def __repr__(self) -> str:
        return f"CachedEndpointStore({self.inner!r}, ttl_seconds={self.ttl_seconds})"

    async def get(self, inference_id: str) -> EndpointRecord:
        return copy.deepcopy(await self.get_shared(inference_id))

    async def get_shared(self, inference_id: str) -> EndpointRecord:
        """`get` without the copy, for readers that never change the record: the inference path,
        where copying it took ~40 us of every call."""
        entry = self._entries.get(inference_id)
        if entry is None or self._is_expired(entry):
            entry = await self._read_once(inference_id)
        else:
            self._entries.move_to_end(inference_id)
        if entry.record is None:
            raise EndpointNotFound(inference_id)
        return entry.record

    async def list(self) -> builtins.list[EndpointRecord]:
        return await self.inner.list()

    async def create(self, record: EndpointRecord) -> None:
        self._forget(record.inference_id)
        await self.inner.create(record)
        self._remember(record.inference_id, copy.deepcopy(record))

    async def replace(self, record: EndpointRecord, expected: EndpointRecord | None = None) -> None:
        previous = self._forget(record.inference_id)
        try:
            await self.inner.replace(record, expected)
        except EndpointChanged:
            raise  # another writer won: the old entry is known to be out of date
        except StoreUnavailable:
            self._restore(record.inference_id, previous)
            raise
        self._remember(record.inference_id, copy.deepcopy(record))

    async def delete(self, inference_id: str) -> None:
        previous = self._forget(inference_id)
        try:
            await self.inner.delete(inference_id)
        except StoreUnavailable:
            self._restore(inference_id, previous)
            raise
        self._remember(inference_id, None)

    def cached_ids(self) -> builtins.list[str]:
        """The ids this instance holds a record for, however old: what it would still serve."""
        return sorted(key for key, entry in self._entries.items() if entry.record is not None)

    def forget_all(self) -> None:
        """Drop every entry (the backing index was lost): the next reads go to the store."""
        self._generation += 1
        self._entries.clear()
        self._reads.clear()

    def _restore(self, inference_id: str, previous: Entry | None) -> None:
        """After a write the store could not take: the old entry may again serve while stale,
        so that an unreachable cluster does not cost a known endpoint its inference."""
        if previous is not None and inference_id not in self._entries:
            self._store(inference_id, previous)

    def _is_expired(self, entry: Entry) -> bool:
        return self._clock() - entry.fetched_at >= self.ttl_seconds

    async def _read_once(self, inference_id: str) -> Entry:
        read = self._reads.get(inference_id)
        if read is None:
            read = asyncio.ensure_future(self._read(inference_id))
            self._reads[inference_id] = read
            read.add_done_callback(lambda done: self._end_read(inference_id, done))
        # Shielded: one caller giving up must not cancel the read the others wait for.
        return await asyncio.shield(read)

    async def _read(self, inference_id: str) -> Entry:
        generation = self._generation
        try:
            record: EndpointRecord | None = await self.inner.get(inference_id)
        except EndpointNotFound:
            record = None
        except StoreUnavailable as error:
            return self._stale_or_raise(inference_id, error)
        entry = Entry(record, self._clock())
        if generation == self._generation:
            self._store(inference_id, entry)
        return entry

    def _stale_or_raise(self, inference_id: str, error: StoreUnavailable) -> Entry:
        stale = self._entries.get(inference_id)
        # A store that answers but is not esproxy's is no outage to ride out: say so at once.
        if stale is None or isinstance(error, StoreMisconfigured):
            raise error
        log.warning(
            "endpoint store unavailable, serving [%s] as cached %.0f s ago: %s",
            inference_id,
            self._clock() - stale.fetched_at,
            error.reason,
        )
        # Trusted for another ttl, so callers are not all held up by an unreachable cluster.
        self._store(inference_id, Entry(stale.record, self._clock()))
        return stale

    def _end_read(self, inference_id: str, done: asyncio.Future[Entry]) -> None:
        if self._reads.get(inference_id) is done:
            del self._reads[inference_id]
        if not done.cancelled():
            done.exception()  # retrieved, so a read every caller gave up on is not reported

    def _remember(self, inference_id: str, record: EndpointRecord | None) -> None:
        # Reads that overlapped the write may have seen either side of it: keep theirs out.
        self._generation += 1
        self._store(inference_id, Entry(record, self._clock()))

    def _forget(self, inference_id: str) -> Entry | None:
        """Drop what is known of an id before writing it: a failed write's outcome is unknown."""
        self._generation += 1
        self._reads.pop(inference_id, None)
        return self._entries.pop(inference_id, None)

    def _store(self, inference_id: str, entry: Entry) -> None:
        self._entries[inference_id] = entry
        self._entries.move_to_end(inference_id)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
