"""Fixtures: a minimal app whose catch-all route forwards, raw clients, a faulty upstream."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from esproxy.settings import UpstreamSettings
from esproxy.upstream import UpstreamForwarder, create_upstream_session
from esproxy.web.middlewares import error_middleware
from tests.faulty_upstream import create_faulty_app

FORWARDER = web.AppKey("forwarder", UpstreamForwarder)
# esproxy.app.SERVER_KWARGS less `handler_cancellation`, which TestServer always turns on itself
# (passing it again is a TypeError).
SERVER_KWARGS = {"auto_decompress": False}
JSON = {"Content-Type": "application/json"}

ForwardingClient = Callable[..., Awaitable[TestClient[Any, Any]]]


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
def forwarding_client(aiohttp_client: Any) -> ForwardingClient:
    """`await forwarding_client(url, ...)`: a raw-bytes client of a forwarder to those nodes."""

    async def start(*urls: str, **options: Any) -> TestClient[Any, Any]:
        settings = UpstreamSettings(urls=urls, **options)
        client: TestClient[Any, Any] = await aiohttp_client(
            create_forwarding_app(settings), server_kwargs=SERVER_KWARGS, auto_decompress=False
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
    server = await aiohttp_server(create_faulty_app())
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
def dead_url() -> str:
    """A local port nothing listens on, so connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def forwarder_of(client: TestClient[Any, Any]) -> UpstreamForwarder:
    app = client.app
    assert app is not None
    forwarder: UpstreamForwarder = app[FORWARDER]
    return forwarder
