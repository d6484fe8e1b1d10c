"""What the upstream receives: bodies streamed, never held (a 200 MB bulk leaves memory flat), and
only the end-to-end headers, with its own Host.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
from aiohttp import __version__
from aiohttp.test_utils import TestClient

from tests.upstream.conftest import JSON, StartForwarder

STATUS = Path("/proc/self/status")
BULK_SIZE = 200 * 1024 * 1024
MEMORY_BOUND = 100 * 1024 * 1024


def bulk_block(index: str, first: int, count: int, pad: int = 100) -> bytes:
    lines = []
    for n in range(first, first + count):
        lines.append(orjson.dumps({"index": {"_index": index}}))
        lines.append(orjson.dumps({"n": n, "title": "streamed through esproxy", "pad": "x" * pad}))
    return b"\n".join(lines) + b"\n"


async def bulk_body(size: int, block: bytes, digest: Any) -> AsyncIterator[bytes]:
    """`size` bytes (rounded up to whole blocks) of NDJSON, made as it is sent."""
    for _ in range(-(-size // len(block))):
        digest.update(block)
        yield block


def kib(field: str) -> int:
    found = re.search(rf"^{field}:\s+(\d+) kB$", STATUS.read_text(), re.MULTILINE)
    assert found is not None
    return int(found.group(1)) * 1024


class PeakMemory:
    """Growth of this process's peak RSS (the proxy, client and sink all live here)."""

    def __enter__(self) -> PeakMemory:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        self.start = kib("VmRSS")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.growth = kib("VmHWM") - self.start


async def test_200_mb_bulk_streams_through_with_flat_memory(
    start_forwarder: StartForwarder, faulty_url: str
) -> None:
    client = await start_forwarder(faulty_url)
    block = bulk_block("fwd-big", 0, 400)
    sent = hashlib.sha256()
    with PeakMemory() as memory:
        response = await client.post(
            "/slow-sink",
            data=bulk_body(BULK_SIZE, block, sent),
            headers={"Content-Type": "application/x-ndjson"},
        )
        received = await response.json()
    assert response.status == 200
    assert received["bytes"] >= BULK_SIZE
    assert received["sha256"] == sent.hexdigest()
    assert received["chunked"] is True  # the client sent no length, so none was invented
    assert memory.growth < MEMORY_BOUND, f"peak RSS grew by {memory.growth >> 20} MiB"


async def test_content_length_is_kept_for_a_streamed_body(
    start_forwarder: StartForwarder, faulty_url: str
) -> None:
    client = await start_forwarder(faulty_url)
    block = bulk_block("fwd-sized", 0, 50)
    size = len(block) * 20
    response = await client.post(
        "/slow-sink",
        data=bulk_body(size, block, hashlib.sha256()),
        headers={"Content-Type": "application/x-ndjson", "Content-Length": str(size)},
    )
    received = await response.json()
    assert (received["bytes"], received["content_length"], received["chunked"]) == (
        size,
        size,
        False,
    )


async def test_a_streamed_bulk_is_indexed_by_opensearch(forwarder: TestClient[Any, Any]) -> None:
    index = "fwd-streamed"
    settings = orjson.dumps({"settings": {"number_of_replicas": 0}})
    assert (await forwarder.put(f"/{index}", data=settings, headers=JSON)).status == 200
    blocks, per_block = 16, 1000  # about 33 MB, under OpenSearch's 100 MB http.max_content_length

    async def body() -> AsyncIterator[bytes]:
        for first in range(0, blocks * per_block, per_block):
            yield bulk_block(index, first, per_block, pad=2000)

    response = await forwarder.post(
        "/_bulk?refresh=true&filter_path=errors",
        data=body(),
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert (response.status, await response.json()) == (200, {"errors": False})
    count = await forwarder.get(f"/{index}/_count")
    assert (await count.json())["count"] == blocks * per_block


async def test_the_upstream_gets_end_to_end_headers_and_its_own_host(
    start_forwarder: StartForwarder, faulty_url: str
) -> None:
    client = await start_forwarder(faulty_url)
    sent = {
        "Authorization": "ApiKey c2VjcmV0",
        "X-Opaque-Id": "job-42",
        "Content-Type": "application/x-ndjson",
        "Content-Encoding": "gzip",
        "Connection": "keep-alive, X-Hop",
        "X-Hop": "dropped",
        "Keep-Alive": "timeout=5",
        "Proxy-Authorization": "Basic eDp5",
        "TE": "trailers",
        "Warning": '299 client "kept"',
    }
    response = await client.post("/slow-sink", data=b"\x1f\x8b not really gzip", headers=sent)
    received = await response.json()
    host = faulty_url.removeprefix("http://")
    assert received["headers"] == [
        ["Host", host],
        ["Authorization", "ApiKey c2VjcmV0"],
        ["X-Opaque-Id", "job-42"],
        ["Content-Type", "application/x-ndjson"],
        ["Content-Encoding", "gzip"],
        ["Warning", '299 client "kept"'],
        ["Accept", "*/*"],  # the test client's own defaults, passed on as sent
        ["User-Agent", f"Python/{sys.version_info[0]}.{sys.version_info[1]} aiohttp/{__version__}"],
        ["Content-Length", "18"],
    ]
