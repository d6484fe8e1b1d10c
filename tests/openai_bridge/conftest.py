"""A standalone esproxy with API-key auth, its endpoints, and OpenAI clients pointed at it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from esproxy.app_keys import BRIDGE_KEYS
from esproxy.authorization.api_keys import generate_api_key, hash_api_key
from esproxy.secret_cipher import generate_key_text
from esproxy.settings import Settings
from tests.user_examples import JSON_HEADERS, TITAN_COMPLETION, TITAN_EMBEDDINGS

EMBEDDINGS_ID = "titan-embed"
COMPLETION_ID = "titan-complete"
OTHER_EMBEDDINGS_ID = "other-embed"


@pytest.fixture
def api_key() -> str:
    return generate_api_key()


@pytest.fixture
async def bridged(
    start_proxy: Callable[..., Any], settings_for: Callable[..., Any], tmp_path: Path, api_key: str
) -> TestClient:
    """esproxy in api_keys mode holding two embedding endpoints and one completion endpoint."""
    settings = settings_for(
        ESPROXY_AUTH_MODE="api_keys", ESPROXY_AUTH_API_KEYS=hash_api_key(api_key)
    )
    client: TestClient = await start_proxy(settings)
    headers = {**JSON_HEADERS, "Authorization": f"ApiKey {api_key}"}
    for path, body in (
        (f"/_inference/text_embedding/{EMBEDDINGS_ID}", TITAN_EMBEDDINGS),
        (f"/_inference/text_embedding/{OTHER_EMBEDDINGS_ID}", TITAN_EMBEDDINGS),
        (f"/_inference/completion/{COMPLETION_ID}", TITAN_COMPLETION),
    ):
        response = await client.put(path, data=json.dumps(body), headers=headers)
        assert response.status == 200, await response.text()
    return client


@pytest.fixture
def bridge_key(bridged: TestClient) -> str:
    """A bridge key for the first embeddings endpoint, as `esproxy bridge create` mints it."""
    return bridged.server.app[BRIDGE_KEYS].mint(EMBEDDINGS_ID)


@pytest.fixture
def base_url(bridged: TestClient) -> str:
    return str(bridged.make_url("/_esproxy/openai/v1"))


async def es_embeddings(client: TestClient, api_key: str, texts: list[str]) -> list[list[float]]:
    """The same texts through esproxy's own `_inference` API."""
    response = await client.post(
        f"/_inference/text_embedding/{EMBEDDINGS_ID}",
        data=json.dumps({"input": texts}),
        headers={**JSON_HEADERS, "Authorization": f"ApiKey {api_key}"},
    )
    assert response.status == 200, await response.text()
    return [item["embedding"] for item in (await response.json())["text_embedding"]]


@pytest.fixture
def sidecar_settings(settings_for: Callable[..., Settings], opensearch_url: str) -> Settings:
    """A sidecar on the test node, with an index of its own."""
    return settings_for(
        ESPROXY_UPSTREAM=opensearch_url,
        ESPROXY_SECRETS_KEY=generate_key_text(),
        ESPROXY_STORAGE_INDEX=f".esproxy-bridge-{uuid.uuid4().hex[:12]}",
        # The test node has no security; esproxy stays closed on such a cluster unless told.
        ESPROXY_AUTH_ALLOW_UNSECURED_CLUSTER="true",
    )


@pytest.fixture
def emulator_usage(emulator) -> Callable[..., Any]:
    """The tokens the emulator reported, per model (`GET /_emulator/usage`)."""

    async def fetch() -> dict[str, dict[str, int]]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(emulator.make_url("/_emulator/usage")) as response,
        ):
            body: dict[str, dict[str, dict[str, int]]] = await response.json()
            return body["models"]

    return fetch
