"""ElasticsearchEndpointStore: one document per endpoint in a hidden index on the upstream cluster.

Layout: the configured name (`[storage] index`, `.esproxy-inference`) is a hidden alias that esproxy
creates together with its one concrete index, `<name>-000001`. Every write names the alias with
`require_alias=true`, so no write can ever create an index (through auto-creation or an index
template): a lost index is found out, recreated explicitly with esproxy's mapping and logged loudly.

It speaks plain JSON to the document APIs with esproxy's own credentials, never a caller's; aiohttp
failures and unexpected answers become `StoreUnavailable` here and nowhere else.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from yarl import URL

from esproxy.errors import (
    EndpointAlreadyExists,
    EndpointChanged,
    EndpointNotFound,
    StoreMisconfigured,
    StoreUnavailable,
)
from esproxy.settings import UpstreamSettings
from esproxy.storage.base import EndpointRecord
from esproxy.upstream_session import own_authorization

log = logging.getLogger(__name__)

# 1: a concrete index named [storage] index. 2: that name is an alias of <name>-000001.
SCHEMA_VERSION = 2
LEGACY_SCHEMA_VERSION = 1
CONCRETE_SUFFIX = "-000001"
PAGE_SIZE = 1000
# Each round of conflicting replaces has a winner, so this many racing replaces all get through.
REPLACE_ATTEMPTS = 10
# Rounds of look-and-act when opening: another instance may be creating or migrating meanwhile.
OPEN_ATTEMPTS = 5
# [upstream] read_timeout is sized for forwarded searches; endpoint documents are tiny, and a store
# call stuck for minutes would hold every inference request that misses the cache.
READ_TIMEOUT_CAP = 30.0
NOT_JSON = object()  # the parsed body of an answer that was not JSON

# Only the ids, task type and service are searchable. The config and internal objects are kept in
# _source but never parsed, so no endpoint can add fields to the mapping; secrets are not indexed.
INDEX_BODY: dict[str, Any] = {
    "settings": {
        "index": {
            "hidden": True,
            "number_of_shards": 1,
            "auto_expand_replicas": "0-1",
            # Explicit, so that no index template can route esproxy's writes through a pipeline.
            "default_pipeline": "_none",
            "final_pipeline": "_none",
        },
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
WRITE = {"refresh": "true", "require_alias": "true"}


@dataclass(frozen=True)
class Answer:
    node: str
    method: str
    path: str
    status: int
    body: Any


@dataclass
class StoreStats:
    """Numbers for /_esproxy/ready now and for metrics later."""

    index_recreations: int = 0
    last_recreated_at: str | None = None
    migrated_from_legacy_layout: bool = False


class ElasticsearchEndpointStore:
    """Endpoints behind the alias `index` on the upstream's nodes; `open()` makes the layout.

    The session is borrowed (the forwarder's, from `create_upstream_session`, fits); whoever made
    it closes it. Writes refresh the index at once: endpoints change rarely, and every instance's
    next `list` must see them. `on_index_lost` is called when the index is found missing, before it
    is recreated, so that whoever holds endpoints in memory can say which ones were lost.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        upstream: UpstreamSettings,
        index: str = ".esproxy-inference",
        on_index_lost: Callable[[], None] | None = None,
    ) -> None:
        if not upstream.urls:
            raise ValueError("the Elasticsearch endpoint store needs at least one upstream URL")
        self.index = index
        self.concrete = index + CONCRETE_SUFFIX
        self.nodes = tuple(str(URL(url).with_user(None)).rstrip("/") for url in upstream.urls)
        self.on_index_lost = on_index_lost
        self.stats = StoreStats()
        self._session = session
        self._headers = request_headers(upstream)
        self._has_credentials = "Authorization" in self._headers
        self._timeout = aiohttp.ClientTimeout(
            sock_connect=upstream.connect_timeout,
            sock_read=min(upstream.read_timeout, READ_TIMEOUT_CAP),
        )
        self._preferred = 0
        self._healing = asyncio.Lock()

    def __repr__(self) -> str:
        return f"ElasticsearchEndpointStore(index={self.index!r}, nodes={self.nodes!r})"

    def describe(self) -> str:
        return f"index [{self.index}] on {', '.join(self.nodes)}"

    @property
    def reserved_names(self) -> tuple[str, str]:
        return reserved_names(self.index)

    async def open(self, *, create: bool = True) -> None:
        """Make sure the alias and its index exist as esproxy made them.

        Creates them when missing (unless `create` is false: then `StoreUnavailable`), migrates
        a legacy concrete index, and raises `StoreMisconfigured` for anything that is not
        esproxy's. Safe to run from many instances at once.
        """
        created = False
        for _ in range(OPEN_ATTEMPTS):
            found = await self._inspect()
            if self.index in found:
                await self._adopt_legacy(found[self.index], create=create)
            elif self.concrete in found:
                if await self._check_concrete(found, strip_foreign=created):
                    return
            elif found:
                raise self._misconfigured(
                    f"alias [{self.index}] points at {sorted(found)}, not at esproxy's index "
                    f"[{self.concrete}]; remove the alias or set [storage] index to another name"
                )
            elif not create:
                raise StoreUnavailable(
                    f"there is no endpoint index [{self.index}] on {', '.join(self.nodes)}"
                )
            else:
                created = await self._create_concrete(with_alias=True)
        raise StoreUnavailable(
            f"index [{self.index}] kept changing while esproxy opened it; giving up for now"
        )

    async def check(self) -> None:
        """For readiness: the layout is still esproxy's, healing a lost index on the way."""
        found = await self._inspect()
        if self.index in found or self.concrete not in found or len(found) != 1:
            await self._heal_or_raise()
        elif not await self._check_concrete(found):
            await self.open()

    async def close(self) -> None:
        """Nothing to release: the session belongs to the caller."""

    async def create(self, record: EndpointRecord) -> None:
        now = timestamp()
        # POST, which aiohttp never resends on its own: a resent create would fail on itself.
        answer = await self._write(
            "POST",
            self._doc_path("_create", record.inference_id),
            WRITE,
            document(record, created_at=now, updated_at=now),
        )
        if answer.status == 409:
            raise EndpointAlreadyExists(record.inference_id)
        if answer.status != 201:
            raise self._unexpected(answer)

    async def get(self, inference_id: str) -> EndpointRecord:
        return to_record(await self._read(inference_id), self.index)

    async def list(self) -> builtins.list[EndpointRecord]:
        return await self._list_from(self.index, self.concrete)

    async def _list_from(self, name: str, concrete: str) -> builtins.list[EndpointRecord]:
        records: builtins.list[EndpointRecord] = []
        search: dict[str, Any] = {
            "size": PAGE_SIZE,
            "sort": [{"inference_id": "asc"}],
            "track_total_hits": False,
        }
        while True:
            answer = await self._call("POST", f"/{quote(name)}/_search", body=search)
            if is_index_missing(answer):
                await self._heal_or_raise()
                return records
            hits = search_hits(answer) if answer.status == 200 else None
            if hits is None or any(hit.get("_index") != concrete for hit in hits):
                raise await self._diagnosed(answer)
            records.extend(to_record(hit, self.index) for hit in hits)
            if len(hits) < PAGE_SIZE:
                return records
            search["search_after"] = hits[-1]["sort"]

    async def replace(self, record: EndpointRecord, expected: EndpointRecord | None = None) -> None:
        # Conditional on the version read, so a replace never brings back a deleted endpoint;
        # with `expected`, also on the version the caller read (rotation racing an update).
        for _ in range(REPLACE_ATTEMPTS):
            current = await self._read(record.inference_id)
            source = current["_source"]
            if expected is not None and source.get("sealed_secrets") != expected.sealed_secrets:
                raise EndpointChanged(record.inference_id)
            created_at = source.get("created_at") or timestamp()
            params = {
                **WRITE,
                "if_seq_no": str(current["_seq_no"]),
                "if_primary_term": str(current["_primary_term"]),
            }
            body = document(record, created_at=created_at, updated_at=timestamp())
            answer = await self._write(
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
        # A document DELETE never creates a missing index (the cluster leaves deletes out of
        # auto-creation), so it can name the alias without require_alias, which it does not take.
        answer = await self._call(
            "DELETE", self._doc_path("_doc", inference_id), {"refresh": "true"}
        )
        if is_index_missing(answer):
            await self._heal_or_raise()
            raise EndpointNotFound(inference_id)
        if is_missing(answer):
            raise EndpointNotFound(inference_id)
        if answer.status != 200:
            raise self._unexpected(answer)

    async def _read(self, inference_id: str) -> dict[str, Any]:
        """The realtime GET answer for one document, with its `_source` and `_seq_no`."""
        answer = await self._call("GET", self._doc_path("_doc", inference_id))
        if is_index_missing(answer):
            await self._heal_or_raise()
            raise EndpointNotFound(inference_id)
        body = answer.body
        if isinstance(body, dict) and body.get("_index") not in (None, self.concrete):
            raise await self._diagnosed(answer)
        if is_missing(answer):
            raise EndpointNotFound(inference_id)
        if (
            answer.status != 200
            or not isinstance(body, dict)
            or not isinstance(body.get("_source"), dict)
            or not isinstance(body.get("_seq_no"), int)
            or not isinstance(body.get("_primary_term"), int)
        ):
            raise await self._diagnosed(answer)
        return body

    async def _write(self, method: str, path: str, params: Mapping[str, str], body: Any) -> Answer:
        """A document write through the alias; a lost index is recreated and the write retried."""
        answer = await self._call(method, path, params, body)
        if not is_index_missing(answer):
            return answer
        await self._heal_or_raise()
        return await self._call(method, path, params, body)

    async def _heal_or_raise(self) -> None:
        """The alias is gone: recreate the index (loudly), or say why that is not possible."""
        async with self._healing:
            found = await self._inspect()
            if self.concrete in found and len(found) == 1 and await self._check_concrete(found):
                return  # healed meanwhile, by this instance or another one
            if not found:
                log.error(
                    "endpoint index [%s] is MISSING from the cluster at %s (deleted, or the "
                    "cluster was rebuilt): recreating it with esproxy's mapping. Endpoints stored "
                    "in it are gone from the cluster; /_esproxy/ready lists the ones this "
                    "instance still knew",
                    self.index,
                    ", ".join(self.nodes),
                )
                if self.on_index_lost is not None:
                    self.on_index_lost()
                self.stats.index_recreations += 1
                self.stats.last_recreated_at = timestamp()
            await self.open()

    async def _inspect(self) -> dict[str, Any]:
        """Every concrete index named `index` or `concrete`, or behind the alias `index`."""
        names = f"{quote(self.index, safe='')},{quote(self.concrete, safe='')}"
        answer = await self._call(
            "GET", f"/{names}", {"ignore_unavailable": "true", "expand_wildcards": "all"}
        )
        if answer.status != 200 or not isinstance(answer.body, dict):
            raise self._unexpected(answer)
        return {name: info for name, info in answer.body.items() if isinstance(info, dict)}

    async def _check_concrete(
        self, found: Mapping[str, Any], *, strip_foreign: bool = False
    ) -> bool:
        """The concrete index is esproxy's. False when the alias was missing and has just been
        added (look again). `strip_foreign` right after creating it: aliases an index template
        added then are removed; later ones are the guard's (and the cluster's privileges')."""
        info = found[self.concrete]
        self._check_schema(self.concrete, info, SCHEMA_VERSION)
        if len(found) > 1:
            others = sorted(set(found) - {self.concrete})
            raise self._misconfigured(
                f"alias [{self.index}] points at {others} as well as esproxy's index "
                f"[{self.concrete}]; remove those from the alias"
            )
        aliases = info.get("aliases") if isinstance(info.get("aliases"), dict) else {}
        foreign = sorted(name for name in aliases if name != self.index) if strip_foreign else []
        actions: list[dict[str, Any]] = [
            {"remove": {"index": self.concrete, "alias": name}} for name in foreign
        ]
        if self.index not in aliases:
            actions.append({"add": self._alias_action()})
        if not actions:
            return True
        if foreign:
            log.warning(
                "removing aliases %s from esproxy's index [%s]: only esproxy may name it "
                "(an index template matching it may have added them)",
                foreign,
                self.concrete,
            )
        answer = await self._call("POST", "/_aliases", body={"actions": actions})
        if answer.status != 200:
            raise self._unexpected(answer)
        return self.index in aliases

    def _check_schema(self, name: str, info: Mapping[str, Any], expected: int) -> None:
        version = dig(info, "mappings", "_meta", "esproxy_schema_version")
        if not isinstance(version, int):
            raise self._misconfigured(
                f"index [{name}] exists but was not created by esproxy (its mapping has no "
                f"_meta.esproxy_schema_version). Move its data elsewhere and delete it, or set "
                f"[storage] index to another name; esproxy then creates its own"
            )
        if version > SCHEMA_VERSION:
            raise self._misconfigured(
                f"index [{name}] has schema version {version}, written by a newer esproxy; "
                f"this one reads version {SCHEMA_VERSION}: upgrade esproxy"
            )
        if version != expected:
            raise self._misconfigured(
                f"index [{name}] has schema version {version}, but esproxy expects version "
                f"{expected} there"
            )
        if without_meta(info.get("mappings")) != without_meta(INDEX_BODY["mappings"]):
            raise self._misconfigured(
                f"index [{name}] does not have esproxy's mapping (an index template matching it "
                f"may have changed it); remove such templates, delete the index and restart"
            )

    async def _create_concrete(self, *, with_alias: bool) -> bool:
        """True if this call created it; False if it already existed."""
        body = dict(INDEX_BODY)
        if with_alias:
            body["aliases"] = {self.index: self._alias_options()}
        answer = await self._call("PUT", f"/{quote(self.concrete)}", body=body)
        if answer.status == 200 and dig(answer.body, "acknowledged") is not None:
            log.info("created endpoint index [%s] behind alias [%s]", self.concrete, self.index)
            return True
        if answer.status == 400 and error_type(answer.body) in (
            "resource_already_exists_exception",
            "invalid_alias_name_exception",
        ):
            return False  # another instance made it first; the caller looks again
        raise self._unexpected(answer)

    async def _adopt_legacy(self, info: Mapping[str, Any], *, create: bool) -> None:
        """A concrete index under the alias's name: a schema 1 store is moved behind the alias;
        anything else is not esproxy's."""
        self._check_schema(self.index, info, LEGACY_SCHEMA_VERSION)
        if not create:
            raise StoreUnavailable(
                f"index [{self.index}] uses esproxy's old layout; start `esproxy serve` once to "
                "migrate it"
            )
        log.warning(
            "migrating endpoint index [%s] to esproxy's new layout (alias of [%s])",
            self.index,
            self.concrete,
        )
        await self._create_concrete(with_alias=False)
        for record in await self._list_from(self.index, self.index):
            now = timestamp()
            answer = await self._call(
                "PUT",
                f"/{quote(self.concrete)}/_create/{quote(record.inference_id, safe='')}",
                {"refresh": "true"},
                document(record, created_at=now, updated_at=now),
            )
            if answer.status not in (201, 409):
                raise self._unexpected(answer)
        # One atomic step: the old index goes and the alias comes, so no write is lost between.
        actions = [{"remove_index": {"index": self.index}}, {"add": self._alias_action()}]
        answer = await self._call("POST", "/_aliases", body={"actions": actions})
        if answer.status == 200:
            self.stats.migrated_from_legacy_layout = True
        elif not is_index_missing(answer):  # another instance migrated it first
            raise self._unexpected(answer)

    def _alias_options(self) -> dict[str, Any]:
        return {"is_hidden": True, "is_write_index": True}

    def _alias_action(self) -> dict[str, Any]:
        return {"index": self.concrete, "alias": self.index, **self._alias_options()}

    async def _diagnosed(self, answer: Answer) -> StoreUnavailable:
        """An answer the store cannot use: if the index is no longer esproxy's, say that."""
        try:
            found = await self._inspect()
            if self.index in found:
                self._check_schema(self.index, found[self.index], SCHEMA_VERSION)
            elif self.concrete in found:
                await self._check_concrete(found)
        except StoreMisconfigured as error:
            return error
        except StoreUnavailable:
            pass
        return self._unexpected(answer)

    def _misconfigured(self, reason: str) -> StoreMisconfigured:
        return StoreMisconfigured(f"the endpoint store cannot use the cluster: {reason}")

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


def reserved_names(index: str) -> tuple[str, str]:
    """The alias and the concrete index behind it: both are esproxy's alone."""
    return index, index + CONCRETE_SUFFIX


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


def without_meta(mappings: Any) -> Any:
    if not isinstance(mappings, dict):
        return mappings
    return {key: value for key, value in mappings.items() if key != "_meta"}


def is_index_missing(answer: Answer) -> bool:
    """No index behind the name: gone, or (with require_alias) not an alias any more."""
    return answer.status == 404 and error_type(answer.body) == "index_not_found_exception"


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
