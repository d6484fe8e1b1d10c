"""The OpenAI-compatible routes under `[auth] mode = "upstream"`: the cluster judges bearer tokens
as Elasticsearch API keys, with the privileges `_inference` needs; bridge keys open one endpoint."""

from __future__ import annotations

import json

import pytest

from esproxy.app_keys import BRIDGE_KEYS
from tests.authorization.conftest import ADMIN, SERVICE_KEY
from tests.user_examples import JSON_HEADERS, TITAN_EMBEDDINGS

EMBEDDINGS = "/_esproxy/openai/v1/embeddings"
BODY = json.dumps({"model": "titan", "input": "hello"})


@pytest.fixture
async def proxy(start_proxy, cluster_settings):
    client = await start_proxy(cluster_settings())
    created = await client.put(
        "/_inference/text_embedding/titan",
        data=json.dumps(TITAN_EMBEDDINGS),
        headers={**JSON_HEADERS, "Authorization": ADMIN},
    )
    assert created.status == 200, await created.text()
    return client


def bearer(token: str) -> dict[str, str]:
    return {**JSON_HEADERS, "Authorization": f"Bearer {token}"}


async def test_an_elasticsearch_api_key_with_monitor_inference_may_embed(proxy, fake_cluster):
    cluster, _ = fake_cluster
    encoded = SERVICE_KEY.removeprefix("ApiKey ")
    response = await proxy.post(EMBEDDINGS, data=BODY, headers=bearer(encoded))
    assert response.status == 200, await response.text()
    assert SERVICE_KEY in cluster.checks()  # asked as the API key it is


async def test_an_unknown_token_is_refused_by_the_cluster(proxy):
    response = await proxy.post(EMBEDDINGS, data=BODY, headers=bearer("bm8tc3VjaDprZXk="))
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "invalid_api_key"


async def test_a_cluster_that_cannot_answer_closes_the_routes(proxy, fake_cluster):
    cluster, _ = fake_cluster
    cluster.fault = "500"
    encoded = SERVICE_KEY.removeprefix("ApiKey ")
    response = await proxy.post(EMBEDDINGS, data=BODY, headers=bearer(encoded))
    assert response.status == 503
    assert (await response.json())["error"]["type"] == "server_error"


async def test_a_bridge_key_needs_no_cluster_check(proxy, fake_cluster):
    cluster, _ = fake_cluster
    before = len(cluster.checks())
    key = proxy.server.app[BRIDGE_KEYS].mint("titan")
    response = await proxy.post(EMBEDDINGS, data=BODY, headers=bearer(key))
    assert response.status == 200, await response.text()
    assert len(cluster.checks()) == before
