"""EmbeddingCache: serve what is cached, send only the misses to the provider, remember the rest.

The answer is assembled in input order from raw float32 (or int8) bytes, so a cached vector renders
exactly as the provider's answer did. Equal texts within one request are sent once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from array import array
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

import numpy as np
import orjson

from esproxy.errors import CacheUnavailable
from esproxy.inference.embedding_cache.cluster import ClusterTier
from esproxy.inference.embedding_cache.keys import EmbeddingIdentity, derive_key, scope_of
from esproxy.inference.embedding_cache.memory import Entry, MemoryTier
from esproxy.inference.models import TextEmbeddingResult
from esproxy.settings import CacheSettings

log = logging.getLogger(__name__)

DTYPES: dict[str, Any] = {"float": np.float32, "byte": np.int8, "bit": np.int8}
CLUSTER_FAILURES = (CacheUnavailable, OSError, TimeoutError)

Fetch = Callable[[Sequence[int]], Awaitable[TextEmbeddingResult]]


@dataclass
class CacheStats:
    """Counters since start, for `/_esproxy/ready` now and for the metrics later.

    `hits` and `misses` count inputs; `saved_calls` counts provider calls not made (a Cohere call
    takes 96 inputs, a Titan call one); `saved_input_tokens` adds up the hits' input tokens.
    """

    hits: int = 0
    misses: int = 0
    saved_calls: int = 0
    saved_input_tokens: int = 0
    cluster_hits: int = 0
    cluster_errors: int = 0


class EmbeddingCache:
    def __init__(self, settings: CacheSettings, cluster: ClusterTier | None = None) -> None:
        self.scope = settings.scope
        self.memory = MemoryTier(settings.memory_bytes)
        self.cluster = cluster
        self.sweep_seconds = settings.sweep_seconds
        self.counters = CacheStats()
        self._inflight: dict[bytes, asyncio.Future[Entry]] = {}

    def stats(self) -> dict[str, Any]:
        counters = self.counters
        body: dict[str, Any] = {
            "scope": self.scope,
            "hits": counters.hits,
            "misses": counters.misses,
            "saved_bedrock_calls": counters.saved_calls,
            "saved_input_tokens": counters.saved_input_tokens,
            "memory": {
                "entries": len(self.memory),
                "bytes": self.memory.used_bytes,
                "limit_bytes": self.memory.limit_bytes,
            },
        }
        if self.cluster is not None:
            body["cluster"] = {
                "index": self.cluster.alias,
                "ready": self.cluster.ready,
                "hits": counters.cluster_hits,
                "errors": counters.cluster_errors,
            }
        return body

    def metric_values(self) -> dict[str, int]:
        """The numbers the metrics export (esproxy/observability/embedding_cache.py)."""
        counters = self.counters
        return {
            "hits": counters.hits,
            "misses": counters.misses,
            "saved_bedrock_calls": counters.saved_calls,
            "saved_input_tokens": counters.saved_input_tokens,
            "cluster_errors": counters.cluster_errors,
            "memory_bytes": self.memory.used_bytes,
            "memory_entries": len(self.memory),
        }

    async def embed(
        self, inference_id: str, identity: EmbeddingIdentity, fetch: Fetch
    ) -> TextEmbeddingResult:
        scope = scope_of(self.scope, inference_id)
        keys = [derive_key(scope, identity.spec, text) for text in identity.texts]
        found: dict[bytes, Entry] = {}
        for key in keys:
            entry = self.memory.get(key)
            if entry is not None:
                found[key] = entry
        # Each missing text once, at its first position.
        first: dict[bytes, int] = {}
        for index, key in enumerate(keys):
            if key not in found and key not in first:
                first[key] = index
        # Texts another request is already fetching are awaited, not fetched again.
        joined = {key: self._inflight[key] for key in first if key in self._inflight}
        led = {key: index for key, index in first.items() if key not in joined}
        sent = await self._lead(inference_id, identity, led, fetch, found)
        retry = await self._join(joined, found)
        if retry:  # that request failed or went away: fetch these here after all
            again = {key: first[key] for key in retry}
            sent |= await self._lead(inference_id, identity, again, fetch, found)
        # Served from the cache: every position but the one each sent text was sent from.
        served = [
            found[key] for index, key in enumerate(keys) if key not in sent or first[key] != index
        ]
        self._count(identity, len(sent), served)
        return assemble(identity.element_type, [found[key] for key in keys])

    async def _lead(
        self,
        inference_id: str,
        identity: EmbeddingIdentity,
        led: dict[bytes, int],
        fetch: Fetch,
        found: dict[bytes, Entry],
    ) -> set[bytes]:
        """Look `led` up in the cluster, fetch the rest; returns the keys sent to the provider.

        Other requests wanting the same keys meanwhile wait on this one's futures; if it fails or
        is cancelled, their futures are cancelled and they fetch for themselves.
        """
        if not led:
            return set()
        loop = asyncio.get_running_loop()
        futures = {key: loop.create_future() for key in led if key not in self._inflight}
        self._inflight.update(futures)
        todo = dict(led)
        try:
            if self.cluster is not None:
                dtype = DTYPES[identity.element_type]
                for key, stored in (await self._cluster_get(list(todo))).items():
                    entry = replace(stored, rendered=render(stored.vector, dtype))
                    self.memory.put(key, entry)
                    found[key] = entry
                    del todo[key]
            new: dict[bytes, Entry] = {}
            if todo:
                new = self._remember(inference_id, list(todo), await fetch(list(todo.values())))
                found.update(new)
            for key, future in futures.items():
                future.set_result(found[key])
        except BaseException:
            for future in futures.values():
                future.cancel()
            raise
        finally:
            for key, future in futures.items():
                if self._inflight.get(key) is future:
                    del self._inflight[key]
        if new and self.cluster is not None:
            await self._cluster_put(new.items())
        return set(todo)

    @staticmethod
    async def _join(
        joined: dict[bytes, asyncio.Future[Entry]], found: dict[bytes, Entry]
    ) -> list[bytes]:
        """Wait for other requests' fetches; the keys whose fetch did not succeed."""
        if not joined:
            return []
        await asyncio.wait(joined.values())
        retry = []
        for key, future in joined.items():
            if future.cancelled():
                retry.append(key)
            else:
                found[key] = future.result()
        return retry

    def _remember(
        self, inference_id: str, keys: Sequence[bytes], fetched: TextEmbeddingResult
    ) -> dict[bytes, Entry]:
        tokens = list(fetched.tokens) or [0] * len(keys)
        dtype = DTYPES[fetched.element_type]
        new: dict[bytes, Entry] = {}
        for key, vector, count in zip(keys, fetched.embeddings, tokens, strict=True):
            raw = raw_bytes(vector, dtype)
            entry = Entry(raw, render(raw, dtype), count, inference_id)
            self.memory.put(key, entry)
            new[key] = entry
        return new

    def _count(self, identity: EmbeddingIdentity, sent: int, served: Sequence[Entry]) -> None:
        counters = self.counters
        total = len(identity.texts)
        counters.misses += sent
        counters.hits += len(served)
        size = max(1, identity.batch_size)
        counters.saved_calls += -(-total // size) - -(-sent // size)
        counters.saved_input_tokens += sum(entry.tokens for entry in served)

    async def _cluster_get(self, keys: Sequence[bytes]) -> dict[bytes, Entry]:
        assert self.cluster is not None
        try:
            found = await self.cluster.get_many(keys)
        except CLUSTER_FAILURES as error:
            self._cluster_failed("read", error)
            return {}
        self.counters.cluster_hits += len(found)
        return found

    async def _cluster_put(self, entries: Iterable[tuple[bytes, Entry]]) -> None:
        assert self.cluster is not None
        try:
            await self.cluster.put_many(entries)
        except CLUSTER_FAILURES as error:
            self._cluster_failed("write", error)

    def _cluster_failed(self, what: str, error: BaseException) -> None:
        self.counters.cluster_errors += 1
        log.warning("embedding cache: cluster %s failed, carrying on without it: %s", what, error)

    async def clear(self, inference_id: str | None = None) -> dict[str, int]:
        """Drop every entry, or those one endpoint wrote, from both tiers."""
        cleared = {"memory": self.memory.clear(inference_id)}
        if self.cluster is not None:
            cleared["cluster"] = await self.cluster.clear(inference_id)
        return cleared

    async def forget_endpoint(self, inference_id: str) -> None:
        """After a delete: a new endpoint of the same id (perhaps another tenant's) starts empty."""
        self.memory.clear(inference_id)
        if self.cluster is not None:
            try:
                await self.cluster.clear(inference_id)
            except CLUSTER_FAILURES as error:
                self._cluster_failed("clear", error)

    async def maintain(self, stop: asyncio.Event) -> None:
        """The cluster tier's life: open it once the cluster is up, then sweep expired entries."""
        if self.cluster is None:
            return
        await self.cluster.open_until_ready(stop)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.sweep_seconds)
            if stop.is_set():
                return
            try:
                deleted = await self.cluster.delete_expired()
                if deleted:
                    log.info("embedding cache: removed %d expired entries", deleted)
            except CLUSTER_FAILURES as error:
                self._cluster_failed("sweep", error)
                # The index may be gone: set it up again before the next sweep.
                self.cluster.ready = False
                await self.cluster.open_until_ready(stop)


def raw_bytes(vector: Sequence[float], dtype: Any) -> bytes:
    if isinstance(vector, array) and vector.typecode == ("f" if dtype is np.float32 else "b"):
        return vector.tobytes()
    return np.asarray(vector, dtype=dtype).tobytes()


def render(raw: bytes, dtype: Any) -> bytes:
    """A vector's JSON text, exactly as the web layer renders an uncached answer's vector."""
    return orjson.dumps(np.frombuffer(raw, dtype=dtype), option=orjson.OPT_SERIALIZE_NUMPY)


def assemble(element_type: str, entries: Sequence[Entry]) -> TextEmbeddingResult:
    """One 2-D array from the entries' raw bytes, in input order, with their JSON texts."""
    rows = np.frombuffer(b"".join(entry.vector for entry in entries), dtype=DTYPES[element_type])
    matrix = rows.reshape(len(entries), -1) if entries else rows
    vectors = cast(Sequence[Sequence[float]], matrix)  # a 2-D array is a sequence of rows
    return TextEmbeddingResult(
        vectors,
        element_type,
        [entry.tokens for entry in entries],
        rendered=[entry.rendered for entry in entries],
    )
