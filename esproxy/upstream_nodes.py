"""The upstream's nodes: which one a forwarded request goes to next, and what sniffing clients see.

Round-robin with passive health marking only; no active pings, no sniffing of our own.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from yarl import URL

# A node that failed to connect is skipped for BACKOFF_BASE * 2**(failures - 1) seconds, at most
# BACKOFF_MAX: the same shape the Elasticsearch clients use for their dead nodes.
BACKOFF_BASE = 1.0
BACKOFF_MAX = 30.0

# `/_nodes`, `/_nodes/{ids or metrics}`, `/_nodes/{ids}/{metrics}`: the node-info API that sniffing
# clients call. Its siblings (`stats`, `usage`, `hot_threads`) share the prefix but not the shape.
_NODES_INFO = re.compile(r"/_nodes(?:/([^/?]+))?(?:/([^/?]+))?/?(?:\?.*)?", re.DOTALL)
_NOT_INFO = frozenset({"stats", "usage", "hot_threads", "_hot_threads", "hotthreads"})


@dataclass
class UpstreamNode:
    url: str  # scheme://host:port[/prefix], without credentials or a trailing slash
    host: str  # the Host header this node is sent
    failures: int = 0
    dead_until: float = 0.0

    @classmethod
    def parse(cls, url: str) -> UpstreamNode:
        # Credentials in a configured URL are esproxy's own: aiohttp would send them as Basic auth
        # on forwarded requests, in place of the caller's Authorization.
        parsed = URL(url).with_user(None)
        return cls(url=str(parsed).rstrip("/"), host=parsed.raw_authority)

    def is_dead(self, now: float) -> bool:
        return self.dead_until > now


class NodePool:
    """Hands out nodes in turn, skipping the ones marked dead until their back-off runs out."""

    def __init__(self, urls: Sequence[str], clock: Callable[[], float] = time.monotonic) -> None:
        if not urls:
            raise ValueError("an upstream needs at least one node URL")
        self.nodes = tuple(UpstreamNode.parse(url) for url in urls)
        self.clock = clock
        self._next = 0

    def __len__(self) -> int:
        return len(self.nodes)

    def select(self) -> UpstreamNode:
        nodes = self.nodes
        count = len(nodes)
        if count == 1:
            return nodes[0]
        now = self.clock()
        for _ in range(count):
            node = nodes[self._next]
            self._next = (self._next + 1) % count
            if not node.is_dead(now):
                return node
        # Every node is marked: try the one whose back-off ends first rather than failing outright.
        return min(nodes, key=lambda node: node.dead_until)

    def mark_dead(self, node: UpstreamNode) -> None:
        node.failures += 1
        backoff = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (node.failures - 1))
        node.dead_until = self.clock() + backoff

    def mark_alive(self, node: UpstreamNode) -> None:
        node.failures = 0
        node.dead_until = 0.0


def is_nodes_info(method: str, raw_path: str) -> bool:
    """Whether a request is a node-info call whose answer may carry nodes' HTTP addresses."""
    if method != "GET" or not raw_path.startswith("/_nodes"):
        return False
    found = _NODES_INFO.fullmatch(raw_path)
    if found is None:
        return False
    return not any(part in _NOT_INFO for part in found.groups() if part)


def publish_address(url: URL) -> str:
    """`host:port` of the address a client reached esproxy on, as ES writes a publish address."""
    host, port = url.raw_host or "127.0.0.1", url.port
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"


def rewrite_http_addresses(body: bytes, address: str, *, pretty: bool) -> bytes | None:
    """Point every node's `http` addresses at `address`; None when there is nothing to rewrite."""
    try:
        info = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    nodes = info.get("nodes") if isinstance(info, dict) else None
    if not isinstance(nodes, dict):
        return None
    changed = False
    for node in nodes.values():
        http = node.get("http") if isinstance(node, dict) else None
        if isinstance(http, dict):
            changed |= rewrite_section(http, address)
    if not changed:
        return None
    return orjson.dumps(info, option=orjson.OPT_INDENT_2 if pretty else 0)


def rewrite_section(http: dict[str, Any], address: str) -> bool:
    changed = False
    if "publish_address" in http:
        http["publish_address"] = address
        changed = True
    if "bound_address" in http:
        http["bound_address"] = [address]
        changed = True
    return changed
