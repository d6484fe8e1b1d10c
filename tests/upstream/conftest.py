"""Fixtures: a minimal app whose catch-all route forwards, raw clients, a faulty upstream."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict
from yarl import URL

from esproxy.app import SERVER_KWARGS
from esproxy.settings import UpstreamSettings
from esproxy.upstream import UpstreamForwarder
from esproxy.upstream_session import create_upstream_session
from esproxy.web.middlewares import error_middleware
from tests.faulty_upstream import create_faulty_app

FORWARDER = web.AppKey("forwarder", UpstreamForwarder)
JSON = {"Content-Type": "application/json"}

StartForwarder = Callable[..., Awaitable[TestClient[Any, Any]]]


def create_forwarding_app(settings: UpstreamSettings) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=0)

    async def open_forwarder(app: web.Application) -> AsyncIterator[None]:
        session = await create_upstream_session(settings)
        app[FORWARDER] = UpstreamForwarder(settings, session)
        yield
        await session.close()

    async def forward(request: web.Request) -> web.StreamResponse:
        return await request.app[FORWARDER].forward(request)

    app.cleanup_ctx.append(open_forwarder)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


@pytest.fixture
def start_forwarder(aiohttp_server: Any, aiohttp_client: Any) -> StartForwarder:
    """`await start_forwarder(url, ...)`: a raw-bytes client of a forwarder to those nodes.

    It asks for no compression unless a test sends `Accept-Encoding` itself.
    """

    async def start(*urls: str, **options: Any) -> TestClient[Any, Any]:
        settings = UpstreamSettings(urls=urls, **options)
        # Server options must reach start_server: TestServer drops its constructor's kwargs, so
        # `aiohttp_client(app, server_kwargs=...)` would silently decompress request bodies.
        server = await aiohttp_server(create_forwarding_app(settings), **SERVER_KWARGS)
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
    forwarder: UpstreamForwarder = app[FORWARDER]
    return forwarder


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
