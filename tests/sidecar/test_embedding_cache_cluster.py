"""The embedding cache's shared tier on the OpenSearch node: two esproxy processes, TTL expiry,
bulk removal, the index's own strict mapping, and the guard in front of it."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import aiohttp
import pytest

from tests.ports import free_port
from tests.test_cli import running
from tests.user_examples import JSON_HEADERS

KEYS = {"access_key": "<aws_access_key>", "secret_key": "<aws_secret_key>", "region": "us-east-1"}
COHERE = {
    "service": "amazonbedrock",
    "service_settings": {**KEYS, "provider": "cohere", "model": "cohere.embed-english-v3"},
}
TEXTS = ["shared chunk one", "shared chunk two", "shared chunk three"]


@pytest.fixture
def cache_index() -> str:
    return f".esproxy-cache-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def cached_settings(sidecar_settings, cache_index):
    def build(**environ: str):
        return sidecar_settings(
            ESPROXY_CACHE_CLUSTER="true", ESPROXY_CACHE_INDEX=cache_index, **environ
        )

    return build


async def direct(opensearch_url, method, path, body=None):
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, opensearch_url + path, json=body) as response,
    ):
        return response.status, await response.json()


async def session_call(client, method, path, body=None):
    """Works for an aiohttp TestClient and for a URL of a real esproxy process alike."""
    if isinstance(client, str):
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, client + path, data=body, headers=JSON_HEADERS) as response,
        ):
            return response.status, await response.read()
    response = await client.request(method, path, data=body, headers=JSON_HEADERS)
    return response.status, await response.read()


async def embed(client, texts):
    status, body = await session_call(
        client, "POST", "/_inference/text_embedding/shared", json.dumps({"input": texts})
    )
    assert status == 200, body
    return body


async def cache_stats(client, fresh=False):
    if fresh:
        await asyncio.sleep(1.05)  # /_esproxy/ready reuses a report for a second
    _, body = await session_call(client, "GET", "/_esproxy/ready")
    return json.loads(body)["checks"]["embedding_cache"]


async def wait_ready(client):
    for _ in range(200):
        if (await cache_stats(client))["cluster"]["ready"]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the cluster tier never became ready")


def invocations(calls):
    return [call for call in calls if call["operation"] == "InvokeModel"]


async def put_endpoint(client):
    status, body = await session_call(
        client, "PUT", "/_inference/text_embedding/shared", json.dumps(COHERE)
    )
    assert status == 200, body


async def test_two_processes_share_vectors_through_the_cluster(
    start_proxy,
    cached_settings,
    emulator,
    emulator_calls,
    tmp_path: Path,
    opensearch_url,
    index_name,
    cache_index,
):
    here = await start_proxy(cached_settings())
    await put_endpoint(here)
    await wait_ready(here)
    first = await embed(here, TEXTS)
    calls = len(invocations(await emulator_calls()))
    port = free_port()
    environ = {
        "ESPROXY_LISTEN": f"127.0.0.1:{port}",
        "ESPROXY_UPSTREAM": opensearch_url,
        "ESPROXY_SECRETS_KEY": cached_settings().secrets.key,
        "ESPROXY_STORAGE_INDEX": index_name,
        "ESPROXY_DATA_DIR": str(tmp_path / "other"),
        "ESPROXY_BEDROCK_ENDPOINT_URL": str(emulator.make_url("")).rstrip("/"),
        "ESPROXY_CACHE_CLUSTER": "true",
        "ESPROXY_CACHE_INDEX": cache_index,
        "ESPROXY_AUTH_ALLOW_UNSECURED_CLUSTER": "true",  # the test node has no security
    }
    async with running("serve", port=port, env=environ) as other:
        await wait_ready(other)
        assert await embed(other, TEXTS) == first  # byte for byte, from the other process
        assert len(invocations(await emulator_calls())) == calls
        stats = await cache_stats(other, fresh=True)
        assert (stats["hits"], stats["misses"], stats["cluster"]["hits"]) == (3, 0, 3)
        assert stats["saved_bedrock_calls"] == 1
        # The other way round: what the second process embeds, this one finds.
        await embed(other, ["new in the other process"])
        await embed(here, ["new in the other process"])
        assert len(invocations(await emulator_calls())) == calls + 1


async def test_entries_expire_and_are_removed_in_bulk(
    start_proxy, cached_settings, emulator_calls, opensearch_url, cache_index
):
    # A long sweep first: an expired entry still in the index is a miss all the same.
    slow = await start_proxy(cached_settings(ESPROXY_CACHE_TTL_SECONDS="1"))
    await put_endpoint(slow)
    await wait_ready(slow)
    await embed(slow, TEXTS)
    fresh = await start_proxy(cached_settings(ESPROXY_CACHE_TTL_SECONDS="1"))
    await wait_ready(fresh)
    calls = len(invocations(await emulator_calls()))
    await embed(fresh, TEXTS)
    assert len(invocations(await emulator_calls())) == calls  # still fresh: a cluster hit
    await asyncio.sleep(1.2)
    other = await start_proxy(cached_settings(ESPROXY_CACHE_TTL_SECONDS="1"))
    await wait_ready(other)
    await direct(opensearch_url, "POST", f"/{cache_index}/_refresh")
    _, counted = await direct(opensearch_url, "POST", f"/{cache_index}/_count")
    assert counted["count"] == 3  # expired, not yet swept
    await embed(other, TEXTS)
    assert len(invocations(await emulator_calls())) == calls + 1
    # A sweeping instance removes every expired entry in one delete_by_query.
    await start_proxy(cached_settings(ESPROXY_CACHE_SWEEP_SECONDS="0.3"))
    await asyncio.sleep(1.5)
    await direct(opensearch_url, "POST", f"/{cache_index}/_refresh")
    _, counted = await direct(opensearch_url, "POST", f"/{cache_index}/_count")
    assert counted["count"] == 0


async def test_the_index_is_esproxys_own_hidden_and_strict(
    start_proxy, cached_settings, opensearch_url, cache_index
):
    proxy = await start_proxy(cached_settings())
    await wait_ready(proxy)
    status, aliases = await direct(opensearch_url, "GET", f"/_alias/{cache_index}")
    assert status == 200
    [(concrete, body)] = aliases.items()
    assert body["aliases"][cache_index]["is_hidden"] is True
    _, settings = await direct(opensearch_url, "GET", f"/{concrete}/_settings")
    assert settings[concrete]["settings"]["index"]["hidden"] == "true"
    _, mapping = await direct(opensearch_url, "GET", f"/{concrete}/_mapping")
    assert mapping[concrete]["mappings"]["dynamic"] == "strict"
    # Callers cannot reach it through esproxy, by its alias or its concrete name.
    for path in (
        f"/{cache_index}/_search",
        f"/{concrete}/_doc/x",
        "/.esproxy-cache-test-*/_search",
    ):
        response = await proxy.get(path)
        assert response.status == 403, path


async def test_a_deleted_index_is_not_recreated_by_a_write(
    start_proxy, cached_settings, emulator_calls, opensearch_url, cache_index
):
    proxy = await start_proxy(cached_settings())
    await put_endpoint(proxy)
    await wait_ready(proxy)
    _, aliases = await direct(opensearch_url, "GET", f"/_alias/{cache_index}")
    [concrete] = aliases
    assert (await direct(opensearch_url, "DELETE", f"/{concrete}"))[0] == 200
    calls = len(invocations(await emulator_calls()))
    await embed(proxy, ["after the index went"])  # still answered, from Bedrock
    assert len(invocations(await emulator_calls())) == calls + 1
    status, _ = await direct(opensearch_url, "GET", f"/{cache_index}")
    assert status == 404
    assert (await cache_stats(proxy, fresh=True))["cluster"]["errors"] >= 1


async def test_clear_reaches_the_cluster_tier(
    start_proxy, cached_settings, emulator_calls, opensearch_url
):
    first = await start_proxy(cached_settings())
    second = await start_proxy(cached_settings())
    await put_endpoint(first)
    await wait_ready(first)
    await wait_ready(second)
    await embed(first, TEXTS)
    response = await first.post("/_esproxy/cache/shared/_clear")
    assert await response.json() == {
        "acknowledged": True,
        "inference_id": "shared",
        "cleared": {"memory": 3, "cluster": 3},
    }
    calls = len(invocations(await emulator_calls()))
    await embed(second, TEXTS)
    assert len(invocations(await emulator_calls())) == calls + 1
