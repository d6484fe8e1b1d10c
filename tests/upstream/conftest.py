"""Fixtures: a minimal app whose catch-all route forwards, raw clients, a faulty upstream."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict
from yarl import URL

from esproxy.app import create_app
from esproxy.app_keys import FORWARDER
from esproxy.settings import Settings, UpstreamSettings, load_settings
from esproxy.upstream import UpstreamForwarder
from tests.conftest import ProxyServer
from tests.faulty_upstream import create_faulty_app

JSON = {"Content-Type": "application/json"}
StartForwarder = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def start_forwarder(aiohttp_client: Any, tmp_path: Path) -> StartForwarder:
    """`await start_forwarder(url, ...)`: a raw-bytes client of esproxy forwarding to those nodes.

    esproxy runs as `esproxy serve` runs it (endpoints in memory, no access checks), so forwarded
    requests take the spliced path. It asks for no compression unless a test sends
    `Accept-Encoding` itself.
    """

    async def start(
        *urls: str, base: Settings | None = None, **options: Any
    ) -> TestClient[Any, Any]:
        if base is None:  # `base`: other settings to start from, e.g. a Bedrock emulator's
            base = load_settings(environ={"ESPROXY_DATA_DIR": str(tmp_path / "data")})
        settings = dataclasses.replace(
            base,
            upstream=UpstreamSettings(urls=urls, **options),
            storage=dataclasses.replace(base.storage, backend="memory"),
            auth=dataclasses.replace(base.auth, mode="none"),
        )
        server = ProxyServer(create_app(settings))
        client: TestClient[Any, Any] = await aiohttp_client(
            server, auto_decompress=False, skip_auto_headers=("Accept-Encoding",)
        )
        return client

    return start


@pytest.fixture
async def direct() -> AsyncIterator[aiohttp.ClientSession]:
    """A raw-bytes client for talking to an upstream without esproxy in between."""
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session


@pytest.fixture
async def faulty_url(aiohttp_server: Any) -> str:
    # TestServer cancels a handler whose client left, so a hanging fault ends with the proxy's call.
    # Raw bodies, as they came off the wire.
    server = await aiohttp_server(create_faulty_app(), auto_decompress=False)
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
def dead_url() -> str:
    """A local port nothing listens on, so connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def blackhole_url() -> Iterator[str]:
    """A local port whose accept queue is full, so a new connection hangs until it times out."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        fillers = [socket.socket() for _ in range(3)]  # Linux queues backlog + 1, then drops SYNs
        for filler in fillers:
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(address)
        yield f"http://127.0.0.1:{address[1]}"
        for filler in fillers:
            filler.close()


def forwarder_of(client: TestClient[Any, Any]) -> UpstreamForwarder:
    app = client.app
    assert app is not None
    return app[FORWARDER]


@pytest.fixture
async def forwarder(start_forwarder: StartForwarder, opensearch_url: str) -> TestClient[Any, Any]:
    """esproxy's forwarder in front of the real OpenSearch node."""
    return await start_forwarder(opensearch_url)


@dataclass(frozen=True)
class Exchange:
    status: int
    headers: list[tuple[str, str]]  # end-to-end ones, in order (names as aiohttp spells them)
    body: bytes

    def header(self, name: str) -> str | None:
        return CIMultiDict(self.headers).get(name)


# Per-hop headers, and the two aiohttp's server adds to every answer it writes.
NOT_COMPARED = frozenset({"connection", "keep-alive", "transfer-encoding", "date", "server"})


async def exchange(
    session: aiohttp.ClientSession,
    base: str,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    data: Any = None,
) -> Exchange:
    """One request with `path` sent exactly as written, and what came back, bytes untouched."""
    async with session.request(
        method,
        URL(base + path, encoded=True),
        headers=headers,
        data=data,
        skip_auto_headers=("Accept-Encoding", "User-Agent"),
    ) as response:
        body = await response.read()
    kept = [(k, v) for k, v in response.headers.items() if k.lower() not in NOT_COMPARED]
    return Exchange(response.status, kept, body)


def base_of(client: TestClient[Any, Any]) -> str:
    return str(client.make_url("")).rstrip("/")
