"""The shared tier: a hidden index in the upstream cluster, written and read by every replica.

esproxy creates the index itself, with a strict mapping, behind a hidden alias; every write names
the alias with `require_alias`, so a deleted index is never re-created by a write with a dynamic
mapping. Entries carry an expiry time: reads ignore expired ones, and a periodic sweep removes
them in bulk (a search for expired ids, then `_bulk` deletes). A cluster that cannot be reached
makes every lookup a miss, never an error.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from esproxy.errors import CacheUnavailable
from esproxy.inference.embedding_cache.memory import Entry
from esproxy.settings import CacheSettings, UpstreamSettings
from esproxy.upstream_session import own_authorization

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
TIMEOUT = aiohttp.ClientTimeout(total=10.0)
RETRY_OPEN_SECONDS = 5.0
PAGE_SIZE = 1000
MAX_PAGES = 1000  # one sweep removes at most a million entries; the next takes the rest


def concrete_index(alias: str) -> str:
    """The index behind the alias; the guard reserves both names from the start."""
    return f"{alias}-{SCHEMA_VERSION}"


def index_body(alias: str) -> dict[str, Any]:
    return {
        "settings": {
            "index": {"hidden": True, "number_of_shards": 1, "auto_expand_replicas": "0-1"},
        },
        "aliases": {alias: {"is_hidden": True}},
        "mappings": {
            "dynamic": "strict",
            "_meta": {"esproxy_embedding_cache_version": SCHEMA_VERSION},
            "properties": {
                "vector": {"type": "binary"},
                "tokens": {"type": "integer", "index": False},
                "endpoint": {"type": "keyword"},
                "expires_at": {"type": "date", "format": "epoch_millis"},
            },
        },
    }


class ClusterTier:
    def __init__(
        self, session: aiohttp.ClientSession, upstream: UpstreamSettings, settings: CacheSettings
    ) -> None:
        self.alias = settings.index
        self.concrete = concrete_index(settings.index)
        self.ttl_seconds = settings.ttl_seconds
        self.nodes = tuple(str(URL(url).with_user(None)).rstrip("/") for url in upstream.urls)
        self._session = session
        self._headers = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
        authorization = own_authorization(upstream)
        if authorization:
            self._headers["Authorization"] = authorization
        self.ready = False

    def __repr__(self) -> str:
        return f"ClusterTier(alias={self.alias!r}, nodes={self.nodes!r})"

    async def open(self) -> None:
        """Create the index and its alias, unless an esproxy made them already."""
        status, body = await self._call("PUT", f"/{quote(self.concrete)}", index_body(self.alias))
        if status == 200 or error_type(body) == "resource_already_exists_exception":
            status, body = await self._call("GET", f"/_alias/{quote(self.alias)}")
            if status == 200 and isinstance(body, dict) and self.concrete in body:
                self.ready = True
                return
        raise CacheUnavailable(f"cannot set up the cache index [{self.alias}]: [{status}] {body}")

    async def open_until_ready(self, stop: asyncio.Event) -> None:
        """Keep trying to open: esproxy starts before its cluster does."""
        while not stop.is_set():
            try:
                await self.open()
                return
            except (CacheUnavailable, aiohttp.ClientError, TimeoutError) as error:
                log.warning("embedding cache: cluster tier not ready yet: %s", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RETRY_OPEN_SECONDS)

    async def get_many(self, keys: Sequence[bytes]) -> dict[bytes, Entry]:
        if not self.ready or not keys:
            return {}
        ids = [key.hex() for key in keys]
        status, body = await self._call("POST", f"/{quote(self.alias)}/_mget", {"ids": ids})
        docs = body.get("docs") if isinstance(body, dict) else None
        if status != 200 or not isinstance(docs, list):
            raise CacheUnavailable(f"_mget answered [{status}]")
        now = time.time() * 1000
        found: dict[bytes, Entry] = {}
        for doc in docs:
            entry = read_entry(doc, now)
            if entry is not None:
                found[bytes.fromhex(doc["_id"])] = entry
        return found

    async def put_many(self, entries: Iterable[tuple[bytes, Entry]]) -> None:
        if not self.ready:
            return
        expires = int((time.time() + self.ttl_seconds) * 1000)
        lines: list[bytes] = []
        for key, entry in entries:
            lines.append(json.dumps({"index": {"_index": self.alias, "_id": key.hex()}}).encode())
            document = {
                "vector": base64.b64encode(entry.vector).decode(),
                "tokens": entry.tokens,
                "endpoint": entry.endpoint,
                "expires_at": expires,
            }
            lines.append(json.dumps(document).encode())
        if not lines:
            return
        status, body = await self._call(
            "POST", "/_bulk?require_alias=true", raw=b"\n".join(lines) + b"\n", ndjson=True
        )
        if status != 200 or not isinstance(body, dict) or body.get("errors") is not False:
            raise CacheUnavailable(f"_bulk answered [{status}]: {summarize(body)}")

    async def delete_expired(self) -> int:
        now = int(time.time() * 1000)
        return await self._delete_matching({"range": {"expires_at": {"lt": now}}})

    async def clear(self, endpoint: str | None = None) -> int:
        query = {"match_all": {}} if endpoint is None else {"term": {"endpoint": endpoint}}
        return await self._delete_matching(query)

    async def _delete_matching(self, query: Mapping[str, Any]) -> int:
        """Delete in bulk, a page of ids at a time: a search, then one `_bulk` of deletes.

        Not `_delete_by_query`, which lives in a module some clusters lack (OpenSearch without
        its reindex module, serverless collections); this works wherever search and bulk do.
        """
        if not self.ready:
            return 0
        alias = quote(self.alias)
        await self._expect(200, "POST", f"/{alias}/_refresh")
        search = {"query": query, "size": PAGE_SIZE, "_source": False, "sort": ["_doc"]}
        deleted = 0
        for _ in range(MAX_PAGES):
            body = await self._expect(200, "POST", f"/{alias}/_search", search)
            hits = body.get("hits", {}).get("hits") if isinstance(body, dict) else None
            if not isinstance(hits, list):
                raise CacheUnavailable(f"_search answered without hits: {summarize(body)}")
            if not hits:
                break
            lines = [
                json.dumps({"delete": {"_index": hit["_index"], "_id": hit["_id"]}}).encode()
                for hit in hits
            ]
            answer = await self._expect(
                200, "POST", "/_bulk?refresh=true", raw=b"\n".join(lines) + b"\n", ndjson=True
            )
            if answer.get("errors") is not False:
                raise CacheUnavailable(f"_bulk delete failed: {summarize(answer)}")
            deleted += len(hits)
        return deleted

    async def _expect(
        self,
        status: int,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        ndjson: bool = False,
    ) -> dict[str, Any]:
        got, answer = await self._call(method, path, body, raw=raw, ndjson=ndjson)
        if got != status or not isinstance(answer, dict):
            raise CacheUnavailable(f"{method} {path} answered [{got}]: {summarize(answer)}")
        return answer

    async def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        ndjson: bool = False,
    ) -> tuple[int, Any]:
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        headers = dict(self._headers)
        if ndjson:
            headers["Content-Type"] = "application/x-ndjson"
        failure: BaseException | None = None
        for node in self.nodes:
            try:
                async with self._session.request(
                    method, node + path, data=data, headers=headers, timeout=TIMEOUT
                ) as response:
                    answer = await response.read()
                    return response.status, parse(answer)
            except (aiohttp.ClientError, TimeoutError) as error:
                failure = error
        raise CacheUnavailable(f"no node answered: {failure}")


def read_entry(doc: Any, now_ms: float) -> Entry | None:
    source = doc.get("_source") if isinstance(doc, dict) and doc.get("found") else None
    if not isinstance(source, dict):
        return None
    expires, vector = source.get("expires_at"), source.get("vector")
    if not isinstance(expires, int) or expires <= now_ms or not isinstance(vector, str):
        return None
    tokens = source.get("tokens")
    # Rendered again by the cache when it takes the entry in.
    return Entry(
        base64.b64decode(vector),
        b"",
        tokens if isinstance(tokens, int) else 0,
        str(source.get("endpoint", "")),
    )


def parse(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def error_type(body: Any) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    return str(error.get("type")) if isinstance(error, dict) else None


def summarize(body: Any) -> str:
    """The first item error of a bulk answer, or the top error."""
    if isinstance(body, dict):
        for item in body.get("items") or ():
            for result in item.values() if isinstance(item, dict) else ():
                if isinstance(result, dict) and "error" in result:
                    return str(result["error"])[:300]
    return str(body)[:300]
