"""ElasticsearchEndpointStore: one document per endpoint in a hidden index on the upstream cluster.

It speaks plain JSON to the document APIs with esproxy's own credentials, never a caller's; aiohttp
failures and unexpected answers become `StoreUnavailable` here and nowhere else.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from yarl import URL

from esproxy.errors import EndpointAlreadyExists, EndpointNotFound, StoreUnavailable
from esproxy.settings import UpstreamSettings
from esproxy.storage.base import EndpointRecord
from esproxy.upstream_session import own_authorization

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
PAGE_SIZE = 1000
# Each round of conflicting replaces has a winner, so this many racing replaces all get through.
REPLACE_ATTEMPTS = 10
# [upstream] read_timeout is sized for forwarded searches; endpoint documents are tiny, and a store
# call stuck for minutes would hold every inference request that misses the cache.
READ_TIMEOUT_CAP = 30.0
NOT_JSON = object()  # the parsed body of an answer that was not JSON

# Only the ids, task type and service are searchable. The config and internal objects are kept in
# _source but never parsed, so no endpoint can add fields to the mapping; secrets are not indexed.
INDEX_BODY: dict[str, Any] = {
    "settings": {
        "index": {"hidden": True, "number_of_shards": 1, "auto_expand_replicas": "0-1"},
    },
    "mappings": {
        "dynamic": "strict",
        "_meta": {"esproxy_schema_version": SCHEMA_VERSION},
        "properties": {
            "inference_id": {"type": "keyword"},
            "task_type": {"type": "keyword"},
            "service": {"type": "keyword"},
            "config": {"type": "object", "enabled": False},
            "internal": {"type": "object", "enabled": False},
            "sealed_secrets": {"type": "keyword", "index": False, "doc_values": False},
            "created_at": {"type": "date"},
            "updated_at": {"type": "date"},
        },
    },
}


@dataclass(frozen=True)
class Answer:
    node: str
    method: str
    path: str
    status: int
    body: Any


class ElasticsearchEndpointStore:
    """Endpoints in `index` on the upstream's nodes; `open()` creates the index when it is missing.

    The session is borrowed (the forwarder's, from `create_upstream_session`, fits); whoever made
    it closes it. Writes refresh the index at once: endpoints change rarely, and every instance's
    next `list` must see them.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        upstream: UpstreamSettings,
        index: str = ".esproxy-inference",
    ) -> None:
        if not upstream.urls:
            raise ValueError("the Elasticsearch endpoint store needs at least one upstream URL")
        self.index = index
        self.nodes = tuple(str(URL(url).with_user(None)).rstrip("/") for url in upstream.urls)
        self._session = session
        self._headers = request_headers(upstream)
        self._has_credentials = "Authorization" in self._headers
        self._timeout = aiohttp.ClientTimeout(
            sock_connect=upstream.connect_timeout,
            sock_read=min(upstream.read_timeout, READ_TIMEOUT_CAP),
        )
        self._preferred = 0

    def __repr__(self) -> str:
        return f"ElasticsearchEndpointStore(index={self.index!r}, nodes={self.nodes!r})"

    async def open(self) -> None:
        """Create the index, or check that an existing one was made by a compatible esproxy."""
        answer = await self._call("PUT", f"/{quote(self.index)}", body=INDEX_BODY)
        if answer.status == 200 and dig(answer.body, "acknowledged") is not None:
            return
        if answer.status != 400 or error_type(answer.body) != "resource_already_exists_exception":
            raise self._unexpected(answer)
        # Another instance created it first, or it is left from an earlier run.
        await self._check_mapping()

    async def close(self) -> None:
        """Nothing to release: the session belongs to the caller."""

    async def create(self, record: EndpointRecord) -> None:
        now = timestamp()
        # POST, which aiohttp never resends on its own: a resent create would fail on itself.
        answer = await self._call(
            "POST",
            self._doc_path("_create", record.inference_id),
            {"refresh": "true"},
            document(record, created_at=now, updated_at=now),
        )
        if answer.status == 409:
            raise EndpointAlreadyExists(record.inference_id)
        if answer.status != 201:
            raise self._unexpected(answer)

    async def get(self, inference_id: str) -> EndpointRecord:
        return to_record(await self._read(inference_id), self.index)

    async def list(self) -> list[EndpointRecord]:
        records: list[EndpointRecord] = []
        search: dict[str, Any] = {
            "size": PAGE_SIZE,
            "sort": [{"inference_id": "asc"}],
            "track_total_hits": False,
        }
        while True:
            answer = await self._call("POST", f"/{quote(self.index)}/_search", body=search)
            if is_missing(answer):
                return records
            hits = search_hits(answer) if answer.status == 200 else None
            if hits is None:
                raise self._unexpected(answer)
            records.extend(to_record(hit, self.index) for hit in hits)
            if len(hits) < PAGE_SIZE:
                return records
            search["search_after"] = hits[-1]["sort"]

    async def replace(self, record: EndpointRecord) -> None:
        # Conditional on the version read, so a replace never brings back a deleted endpoint.
        for _ in range(REPLACE_ATTEMPTS):
            current = await self._read(record.inference_id)
            created_at = current["_source"].get("created_at") or timestamp()
            params = {
                "if_seq_no": str(current["_seq_no"]),
                "if_primary_term": str(current["_primary_term"]),
                "refresh": "true",
            }
            body = document(record, created_at=created_at, updated_at=timestamp())
            answer = await self._call(
                "PUT", self._doc_path("_doc", record.inference_id), params, body
            )
            if answer.status == 200:
                return
            if answer.status != 409:
                raise self._unexpected(answer)
        raise StoreUnavailable(
            f"endpoint [{record.inference_id}] in index [{self.index}] kept changing while it "
            f"was being replaced; gave up after {REPLACE_ATTEMPTS} attempts"
        )

    async def delete(self, inference_id: str) -> None:
        path = self._doc_path("_doc", inference_id)
        answer = await self._call("DELETE", path, {"refresh": "true"})
        if is_missing(answer):
            raise EndpointNotFound(inference_id)
        if answer.status != 200:
            raise self._unexpected(answer)

    async def _read(self, inference_id: str) -> dict[str, Any]:
        """The realtime GET answer for one document, with its `_source` and `_seq_no`."""
        answer = await self._call("GET", self._doc_path("_doc", inference_id))
        if is_missing(answer):
            raise EndpointNotFound(inference_id)
        body = answer.body
        if (
            answer.status != 200
            or not isinstance(body, dict)
            or not isinstance(body.get("_source"), dict)
            or not isinstance(body.get("_seq_no"), int)
            or not isinstance(body.get("_primary_term"), int)
        ):
            raise self._unexpected(answer)
        return body

    async def _check_mapping(self) -> None:
        answer = await self._call("GET", f"/{quote(self.index)}/_mapping")
        if answer.status != 200 or not isinstance(answer.body, dict) or not answer.body:
            raise self._unexpected(answer)
        # Keyed by the concrete index name, which differs from ours when ours is an alias.
        found = next(iter(answer.body.values()))
        version = dig(found, "mappings", "_meta", "esproxy_schema_version")
        if not isinstance(version, int):
            raise StoreUnavailable(
                f"index [{self.index}] exists but was not created by esproxy (its mapping has no "
                "_meta.esproxy_schema_version); delete it or set [storage] index to another name"
            )
        if version > SCHEMA_VERSION:
            raise StoreUnavailable(
                f"index [{self.index}] has schema version {version}, written by a newer esproxy; "
                f"this one reads version {SCHEMA_VERSION}"
            )

    def _doc_path(self, endpoint: str, inference_id: str) -> str:
        return f"/{quote(self.index)}/{endpoint}/{quote(inference_id, safe='')}"

    async def _call(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> Answer:
        """Send to the first node that accepts a connection, starting with the last one that did.

        Only connection failures move on to the next node: after a request was sent, retrying it
        elsewhere could apply a write twice.
        """
        target = f"{path}?{urlencode(params)}" if params else path
        data = json.dumps(body).encode() if body is not None else None
        failures: list[str] = []
        for turn in range(len(self.nodes)):
            index = (self._preferred + turn) % len(self.nodes)
            node = self.nodes[index]
            try:
                answer = await self._send(node, method, target, data)
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as error:
                log.warning("endpoint store: cannot connect to [%s]: %s", node, error)
                failures.append(f"[{node}]: {error}")
                continue
            self._preferred = index
            return answer
        raise StoreUnavailable(
            f"the endpoint store cannot reach any upstream node: {'; '.join(failures)}"
        )

    async def _send(self, node: str, method: str, target: str, data: bytes | None) -> Answer:
        started = time.monotonic()
        try:
            async with self._session.request(
                method,
                URL(node + target, encoded=True),
                data=data,
                headers=self._headers,
                timeout=self._timeout,
                allow_redirects=False,
                raise_for_status=False,
            ) as response:
                status, raw = response.status, await response.read()
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError):
            raise
        except (aiohttp.ClientError, TimeoutError) as error:
            raise StoreUnavailable(
                f"upstream node [{node}] failed during [{method} {target}]: "
                f"{describe_failure(error)}"
            ) from error
        elapsed_ms = (time.monotonic() - started) * 1000
        # DEBUG: statuses the store expects and handles (a 400 for an index that already exists)
        # must not read like errors in an operator's log.
        log.debug(
            "endpoint store: %s %s%s -> %d in %.1f ms", method, node, target, status, elapsed_ms
        )
        return Answer(node, method, target, status, parse_body(raw))

    def _unexpected(self, answer: Answer) -> StoreUnavailable:
        """An answer the store cannot use, told with its node, status and the cluster's reason."""
        request = f"[{answer.method} {answer.path}]"
        if answer.body is NOT_JSON:
            reason = f"upstream node [{answer.node}] answered {request} with status "
            reason += f"[{answer.status}] and a body that is not JSON"
            return StoreUnavailable(reason)
        cause = error_cause(answer.body)
        said = f": {cause['type']}: {cause['reason']}" if cause else ""
        reason = f"upstream node [{answer.node}] answered {request} with status [{answer.status}]"
        if answer.status in (401, 403):
            reason += f"{said}; " + self._credentials_hint()
        else:
            reason += said
        return StoreUnavailable(reason, caused_by=cause)

    def _credentials_hint(self) -> str:
        if self._has_credentials:
            return (
                "the cluster refused esproxy's own credentials: check [upstream] api_key or "
                "username and password, and that they may manage the index"
            )
        return (
            "esproxy has no upstream credentials: set [upstream] api_key or username and password"
        )


def request_headers(upstream: UpstreamSettings) -> dict[str, str]:
    # identity: a borrowed session may be the forwarder's, which does not decompress answers.
    headers = {
        "Accept": "application/json",
        "Content-Type": "application/json",
        "Accept-Encoding": "identity",
    }
    authorization = own_authorization(upstream)
    if authorization:
        headers["Authorization"] = authorization
    return headers


def document(record: EndpointRecord, *, created_at: str, updated_at: str) -> dict[str, Any]:
    return {
        "inference_id": record.inference_id,
        "task_type": record.task_type,
        "service": record.config.get("service"),
        "config": record.config,
        "internal": record.internal,
        "sealed_secrets": record.sealed_secrets,
        "created_at": created_at,
        "updated_at": updated_at,
    }


def to_record(hit: Mapping[str, Any], index: str) -> EndpointRecord:
    source = hit.get("_source")
    if (
        isinstance(source, dict)
        and isinstance(source.get("inference_id"), str)
        and isinstance(source.get("config"), dict)
        and isinstance(source.get("internal", {}), dict)
        and isinstance(source.get("sealed_secrets", ""), str)
    ):
        return EndpointRecord(
            source["inference_id"],
            source["config"],
            source.get("internal", {}),
            source.get("sealed_secrets", ""),
        )
    raise StoreUnavailable(
        f"document [{hit.get('_id')}] in index [{index}] is not an esproxy endpoint"
    )


def is_missing(answer: Answer) -> bool:
    """A 404 that is the cluster's own "no such document" or "no such index"."""
    if answer.status != 404 or not isinstance(answer.body, dict):
        return False
    body = answer.body
    return (
        body.get("found") is False
        or body.get("result") == "not_found"
        or error_type(body) == "index_not_found_exception"
    )


def search_hits(answer: Answer) -> list[dict[str, Any]] | None:
    hits = dig(answer.body, "hits", "hits")
    if not isinstance(hits, list) or not all(
        isinstance(hit, dict) and isinstance(hit.get("sort"), list) for hit in hits
    ):
        return None
    return hits


def dig(value: Any, *keys: str) -> Any:
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def parse_body(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return NOT_JSON


def error_cause(body: Any) -> dict[str, Any] | None:
    """The cluster's `{type, reason}`, from its object form or its bare-string form."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return {"type": str(error.get("type")), "reason": str(error.get("reason"))}
    if isinstance(error, str):
        return {"type": "exception", "reason": error}
    return None


def error_type(body: Any) -> str | None:
    cause = error_cause(body)
    return cause["type"] if cause else None


def describe_failure(error: BaseException) -> str:
    if isinstance(error, TimeoutError | aiohttp.ServerTimeoutError):
        return "no answer in time (read timeout)"
    return str(error) or type(error).__name__


def timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
