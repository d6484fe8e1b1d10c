"""Shared fixtures: the real OpenSearch upstream, the Bedrock emulator and the proxy under test."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from esproxy.app import create_app, create_runner
from esproxy.bedrock_emulator import EmulatorSettings, create_emulator_app
from esproxy.settings import Settings, load_settings
from tests.opensearch_node import opensearch_url  # noqa: F401


class ProxyServer(TestServer):
    """A TestServer that serves the app as `esproxy serve` does, through the splicing runner."""

    async def _make_runner(self, **kwargs: Any) -> web.AppRunner:
        return create_runner(self.app, **kwargs)


@pytest.fixture
async def emulator(aiohttp_server: Callable[..., Any]) -> TestServer:
    """The bundled emulator, verifying SigV4 against the user document's placeholder keys."""
    app = create_emulator_app(EmulatorSettings(keys={"<aws_access_key>": "<aws_secret_key>"}))
    server: TestServer = await aiohttp_server(app)
    return server


@pytest.fixture
def settings_for(tmp_path: Path, emulator: TestServer) -> Callable[..., Settings]:
    def build(data_dir: Path = tmp_path / "data", **environ: str) -> Settings:
        return load_settings(
            environ={
                "ESPROXY_DATA_DIR": str(data_dir),
                "ESPROXY_BEDROCK_ENDPOINT_URL": str(emulator.make_url("")).rstrip("/"),
                **environ,
            }
        )

    return build


@pytest.fixture
def start_proxy(
    aiohttp_client: Callable[..., Any], settings_for: Callable[..., Settings]
) -> Callable[..., Any]:
    async def start(settings: Settings | None = None) -> TestClient:
        server = ProxyServer(create_app(settings or settings_for()))
        await server.start_server()
        client: TestClient = await aiohttp_client(server)
        return client

    return start


@pytest.fixture
async def proxy(start_proxy: Callable[..., Any]) -> TestClient:
    client: TestClient = await start_proxy()
    return client


@pytest.fixture
def emulator_calls(emulator: TestServer) -> Callable[..., Any]:
    """The calls the emulator received, through its control API."""

    async def fetch() -> list[dict[str, Any]]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(emulator.make_url("/_emulator/requests")) as response,
        ):
            body: dict[str, Any] = await response.json()
            return list(body["requests"])

    return fetch
