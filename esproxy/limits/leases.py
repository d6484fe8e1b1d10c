"""The lease index: one small document per esproxy process in the upstream cluster.

Each lease holds the process's id, a heartbeat and, per endpoint key, what the process saw in its
recent past (see `coordinator.py`). The index is created by esproxy with a strict mapping, under a
hidden alias that every write requires, so a write after someone deleted the index fails instead
of auto-creating it with a dynamic mapping. aiohttp failures become `LeasesUnavailable` here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from esproxy.errors import LeasesUnavailable
from esproxy.settings import UpstreamSettings
from esproxy.upstream_session import own_authorization

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MAX_LEASES = 1000
# Endpoint entries stay in _source only: no endpoint key ever becomes a mapped field.
MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "_meta": {"esproxy_leases_version": SCHEMA_VERSION},
    "properties": {
        "process": {"type": "keyword"},
        "host": {"type": "keyword"},
        "heartbeat": {"type": "date", "format": "epoch_millis"},
        "seq": {"type": "long"},
        "lease_seconds": {"type": "float"},
        "endpoints": {"type": "object", "enabled": False},
    },
}


def concrete_index(alias: str) -> str:
    """The index behind the lease alias; the guard reserves both names."""
    return f"{alias}-v{SCHEMA_VERSION}"


@dataclass(frozen=True)
class Lease:
    """One process's lease as stored; `endpoints` maps an endpoint key to its figures."""

    process: str
    host: str
    heartbeat_ms: int
    seq: int
    lease_seconds: float
    endpoints: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def to_document(self) -> dict[str, Any]:
        return {
            "process": self.process,
            "host": self.host,
            "heartbeat": self.heartbeat_ms,
            "seq": self.seq,
            "lease_seconds": self.lease_seconds,
            "endpoints": {key: dict(figures) for key, figures in self.endpoints.items()},
        }

    @classmethod
    def from_document(cls, source: Any) -> Lease | None:
        """A stored lease, or None for a document that is not one (it is then ignored)."""
        if not isinstance(source, Mapping):
            return None
        try:
            endpoints = source.get("endpoints") or {}
            return cls(
                process=str(source["process"]),
                host=str(source.get("host", "")),
                heartbeat_ms=int(source["heartbeat"]),
                seq=int(source["seq"]),
                lease_seconds=float(source["lease_seconds"]),
                endpoints={
                    str(key): {str(k): float(v) for k, v in figures.items()}
                    for key, figures in endpoints.items()
                    if isinstance(figures, Mapping)
                },
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None


class LeaseIndex:
    """Reads and writes leases in `alias` on the upstream's nodes, with esproxy's own credentials.

    The session is borrowed (the forwarder's); `timeout` bounds every call, so a hung cluster
    delays only the lease loop, never a request.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        upstream: UpstreamSettings,
        alias: str,
        timeout: float,
    ) -> None:
        self.alias = alias
        self.index = concrete_index(alias)
        self.nodes = tuple(str(URL(url).with_user(None)).rstrip("/") for url in upstream.urls)
        self._session = session
        self._headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "Accept-Encoding": "identity",
        }
        authorization = own_authorization(upstream)
        if authorization:
            self._headers["Authorization"] = authorization
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._preferred = 0

    async def create(self) -> None:
        """Create the index and its alias; an index made earlier (by any process) is kept."""
        body = {
            "settings": {
                "index": {"hidden": True, "number_of_shards": 1, "auto_expand_replicas": "0-1"}
            },
            "mappings": MAPPINGS,
            "aliases": {self.alias: {"is_hidden": True}},
        }
        status, answer = await self._call("PUT", f"/{quote(self.index)}", body)
        if status == 200:
            log.info("created the lease index [%s] (alias [%s])", self.index, self.alias)
            return
        if status == 400 and error_type(answer) == "resource_already_exists_exception":
            return
        raise self._unexpected("create the lease index", status, answer)

    async def write(self, lease: Lease) -> None:
        """One small write: the process's own lease, visible to the next search at once."""
        path = f"/{quote(self.alias)}/_doc/{quote(lease.process, safe='')}"
        query = "?require_alias=true&refresh=true"
        status, answer = await self._call("PUT", path + query, lease.to_document())
        if status in (200, 201):
            return
        if status == 404 and error_type(answer) == "index_not_found_exception":
            # Deleted under us: make it again, explicitly, and write on the next round.
            await self.create()
        raise self._unexpected("write the lease", status, answer)

    async def read(self) -> list[Lease]:
        body = {"size": MAX_LEASES, "track_total_hits": False}
        status, answer = await self._call("POST", f"/{quote(self.alias)}/_search", body)
        if status != 200 or not isinstance(answer, Mapping):
            raise self._unexpected("read the leases", status, answer)
        hits = answer.get("hits", {}).get("hits", [])
        leases = [Lease.from_document(hit.get("_source")) for hit in hits if isinstance(hit, dict)]
        return [lease for lease in leases if lease is not None]

    async def delete(self, process: str) -> None:
        path = f"/{quote(self.alias)}/_doc/{quote(process, safe='')}?refresh=true"
        status, answer = await self._call("DELETE", path, None)
        if status not in (200, 404):
            raise self._unexpected("delete a lease", status, answer)

    async def _call(self, method: str, target: str, body: Any) -> tuple[int, Any]:
        """Send to the first node that answers, starting with the last one that did."""
        data = json.dumps(body).encode() if body is not None else None
        failures: list[str] = []
        for turn in range(len(self.nodes)):
            index = (self._preferred + turn) % len(self.nodes)
            node = self.nodes[index]
            try:
                async with self._session.request(
                    method,
                    URL(node + target, encoded=True),
                    data=data,
                    headers=self._headers,
                    timeout=self._timeout,
                    allow_redirects=False,
                ) as response:
                    status, raw = response.status, await response.read()
            except (aiohttp.ClientError, TimeoutError, OSError) as error:
                failures.append(f"[{node}]: {describe(error)}")
                continue
            self._preferred = index
            return status, parse_body(raw)
        raise LeasesUnavailable(f"the lease index is out of reach: {'; '.join(failures)}")

    def _unexpected(self, doing: str, status: int, answer: Any) -> LeasesUnavailable:
        kind = error_type(answer) or "no error type"
        return LeasesUnavailable(f"cannot {doing} in [{self.alias}]: status [{status}] ({kind})")


def parse_body(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def error_type(answer: Any) -> str | None:
    if isinstance(answer, Mapping) and isinstance(answer.get("error"), Mapping):
        kind = answer["error"].get("type")
        return kind if isinstance(kind, str) else None
    return None


def describe(error: BaseException) -> str:
    return str(error) or type(error).__name__
