"""Fixtures: a sidecar in front of the real node holding one endpoint, raw sockets to it, and a
snapshot of everything about esproxy's index that a request could change.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from tests.sidecar.conftest import index_name, sidecar_settings  # noqa: F401
from tests.user_examples import TITAN_COMPLETION

ENDPOINT = "/_inference/completion/titan"


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def send_raw(host: str, port: int, head: bytes, body: bytes = b"") -> Answer:
    """One request written byte for byte on a fresh connection (`Connection: close`)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(head + body)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    status_line, _, rest = raw.partition(b"\r\n")
    headers, _, payload = rest.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in headers.lower():
        payload = unchunk(payload)
    return Answer(int(status_line.split(b" ")[1]), payload)


def unchunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return bytes(out)


def request_bytes(
    method: str,
    target: str,
    body: bytes = b"",
    content_type: str = "application/json",
    *,
    chunked: bool = False,
    gzipped: bool = False,
) -> tuple[bytes, bytes]:
    lines = [f"{method} {target} HTTP/1.1", "Host: es", "Connection: close"]
    if gzipped:
        body = gzip.compress(body)
        lines.append("Content-Encoding: gzip")
    if body:
        lines.append(f"Content-Type: {content_type}")
        if chunked:
            lines.append("Transfer-Encoding: chunked")
            body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        else:
            lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), body


async def direct(url: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url + path, json=body) as response,
    ):
        return response.status, await response.json(content_type=None)


async def index_state(url: str, index: str) -> dict[str, Any]:
    """Documents (with versions), settings, mappings, aliases and blocks, read on the node."""
    state: dict[str, Any] = {}
    for part, path in (
        ("docs", f"/{index}/_search?size=100&version=true&seq_no_primary_term=true&sort=_id"),
        ("index", f"/{index}?flat_settings=true"),
        ("templates", "/_template"),
        ("index_templates", "/_index_template"),
        ("resolved", f"/_resolve/index/{index}*?expand_wildcards=all"),
    ):
        status, body = await direct(url, "GET", path)
        if part == "docs" and status == 200:
            body = [
                (hit["_id"], hit["_version"], hit["_seq_no"], hit["_source"])
                for hit in body["hits"]["hits"]
            ]
        if part == "index" and status == 200:
            for entry in body.values():
                entry["settings"].pop("index.routing.allocation.initial_recovery._id", None)
        state[part] = (status, body)
    return state


@pytest.fixture
async def guarded(
    start_proxy: Callable[..., Any],
    sidecar_settings: Callable[..., Any],  # noqa: F811
    opensearch_url: str,
) -> Any:
    """A sidecar whose index holds one endpoint; `send(head, body)` goes to it on a raw socket."""
    client = await start_proxy(sidecar_settings())
    created = await client.put(ENDPOINT, json=TITAN_COMPLETION)
    assert created.status == 200, await created.text()
    await direct(opensearch_url, "POST", "/_refresh?expand_wildcards=all")

    async def send(head: bytes, body: bytes = b"") -> Answer:
        return await send_raw(client.host, client.port, head, body)

    client.send = send
    return client
