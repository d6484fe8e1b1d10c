"""esproxy's index on the real node: changed, deleted, replaced or templated behind esproxy's back.

Every fault is staged directly on the OpenSearch node, as an attacker or a rebuilt cluster would,
and esproxy is then asked through its own API.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from typing import Any

import aiohttp

from esproxy.storage.elasticsearch import CONCRETE_SUFFIX, INDEX_BODY
from tests.opensearch_node import OpenSearchNode
from tests.ports import free_port
from tests.user_examples import JSON_HEADERS, TITAN_COMPLETION

COMPLETION = "/_inference/completion/amazon_bedrock_completion"


async def direct(url: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """A request straight to the node, bypassing esproxy."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url + path, json=body) as response,
    ):
        return response.status, await response.json(content_type=None)


async def put(proxy, path: str = COMPLETION, body: Any = TITAN_COMPLETION):
    return await proxy.put(path, data=json.dumps(body), headers=JSON_HEADERS)


async def infer(proxy, path: str = COMPLETION):
    return await proxy.post(path, data='{"input": "hello"}', headers=JSON_HEADERS)


async def ready_until(proxy, accept, seconds: float = 15.0) -> tuple[int, dict[str, Any]]:
    """Poll /_esproxy/ready until `accept(status, body)`; the last answer either way."""
    status, body = 0, {}
    for _ in range(int(seconds / 0.2)):
        response = await proxy.get("/_esproxy/ready")
        status, body = response.status, await response.json()
        if accept(status, body):
            break
        await asyncio.sleep(0.2)
    return status, body


async def test_a_model_rewritten_on_the_node_is_never_used(
    sidecar, opensearch_url, index_name, emulator_calls
):
    assert (await put(sidecar)).status == 200
    assert (await infer(sidecar)).status == 200
    calls_before = len(await emulator_calls())
    doc_path = f"/{index_name}/_doc/amazon_bedrock_completion"
    status, stored = await direct(opensearch_url, "GET", doc_path)
    assert status == 200
    source = stored["_source"]
    source["config"]["service_settings"]["model"] = "anthropic.claude-3-opus-20240229-v1:0"
    concrete_doc = f"/{index_name}{CONCRETE_SUFFIX}/_doc/amazon_bedrock_completion?refresh=true"
    assert (await direct(opensearch_url, "PUT", concrete_doc, source))[0] == 200
    await asyncio.sleep(0.6)  # the instance's cache of the record (0.5 s here)

    refused = await infer(sidecar)

    assert refused.status == 500
    error = (await refused.json())["error"]
    assert error["type"] == "illegal_state_exception"
    assert "[amazon_bedrock_completion] was modified outside esproxy" in error["reason"]
    assert len(await emulator_calls()) == calls_before  # Bedrock was never called
    shown = await sidecar.get("/_inference/amazon_bedrock_completion")
    assert shown.status == 500
    assert "claude" not in await shown.text()
    listed = await (await sidecar.get("/_inference")).json()
    assert listed == {"endpoints": []}
    status, body = await ready_until(
        sidecar, lambda _, b: "modified" in b["checks"].get("endpoints", {})
    )
    assert list(body["checks"]["endpoints"]["modified"]) == ["amazon_bedrock_completion"]


async def test_a_deleted_index_is_recreated_as_esproxy_s_never_auto_created(
    sidecar, opensearch_url, index_name, caplog
):
    assert (await put(sidecar)).status == 200
    other = "/_inference/completion/other"
    assert (await put(sidecar, other)).status == 200
    concrete = index_name + CONCRETE_SUFFIX
    assert (await direct(opensearch_url, "DELETE", f"/{concrete}"))[0] == 200

    with caplog.at_level(logging.ERROR, logger="esproxy"):
        created = await put(sidecar, "/_inference/completion/after-loss")
    assert created.status == 200, await created.text()

    assert f"endpoint index [{index_name}] is MISSING from the cluster" in caplog.text
    status, found = await direct(opensearch_url, "GET", f"/{index_name}")
    assert status == 200 and list(found) == [concrete]  # the alias, never a concrete index
    assert found[concrete]["mappings"] == INDEX_BODY["mappings"]
    assert found[concrete]["settings"]["index"]["hidden"] == "true"
    assert found[concrete]["aliases"] == {index_name: {"is_hidden": True, "is_write_index": True}}
    assert (await infer(sidecar, "/_inference/completion/after-loss")).status == 200
    status, body = await ready_until(
        sidecar, lambda _, b: "missing_from_cluster" in b["checks"].get("endpoints", {})
    )
    assert status == 200
    missing = body["checks"]["endpoints"]["missing_from_cluster"]
    assert missing == ["amazon_bedrock_completion", "other"]
    # Created again, an endpoint is no longer missing.
    assert (await put(sidecar, other)).status == 200
    status, body = await ready_until(
        sidecar,
        lambda _, b: (
            b["checks"]["endpoints"].get("missing_from_cluster") == ["amazon_bedrock_completion"]
        ),
    )
    assert body["checks"]["endpoints"]["missing_from_cluster"] == ["amazon_bedrock_completion"]


async def test_an_index_template_cannot_alias_or_unhide_the_recreated_index(
    sidecar, opensearch_url, index_name
):
    template = {
        "index_patterns": [f"{index_name}*"],
        "priority": 500,
        "template": {
            "settings": {"index": {"hidden": False, "number_of_replicas": 0}},
            "aliases": {f"{index_name}-leak": {}},
        },
    }
    name = f"/_index_template/{index_name.lstrip('.')}"
    assert (await direct(opensearch_url, "PUT", name, template))[0] == 200
    try:
        assert (await put(sidecar)).status == 200
        assert (await direct(opensearch_url, "DELETE", f"/{index_name}{CONCRETE_SUFFIX}"))[0] == 200

        assert (await put(sidecar, "/_inference/completion/after-loss")).status == 200

        _, found = await direct(opensearch_url, "GET", f"/{index_name}")
        concrete = index_name + CONCRETE_SUFFIX
        assert list(found) == [concrete]
        assert found[concrete]["aliases"] == {
            index_name: {"is_hidden": True, "is_write_index": True}
        }
        assert found[concrete]["settings"]["index"]["hidden"] == "true"
        assert (await direct(opensearch_url, "GET", f"/{index_name}-leak"))[0] == 404
    finally:
        await direct(opensearch_url, "DELETE", name)


async def foreign_index(opensearch_url: str, index_name: str) -> None:
    """What a write that auto-created the index used to leave: dynamic mappings, no _meta."""
    path = f"/{index_name}/_doc/planted?refresh=true"
    document = {"inference_id": "planted", "config": {"model": "x"}}
    assert (await direct(opensearch_url, "PUT", path, document))[0] == 201


def assert_clear_store_error(body: dict[str, Any], index_name: str) -> None:
    error = body["error"]
    assert error["type"] == "illegal_state_exception"
    assert f"index [{index_name}] exists but was not created by esproxy" in error["reason"]
    assert "[storage] index" in error["reason"]


async def test_a_foreign_index_at_start_starts_not_ready_then_heals_once_removed(
    start_proxy, sidecar_settings, opensearch_url, index_name
):
    await foreign_index(opensearch_url, index_name)

    proxy = await start_proxy(sidecar_settings())

    assert (await proxy.get("/_esproxy/health")).status == 200
    not_ready = await proxy.get("/_esproxy/ready")
    assert not_ready.status == 503
    store_check = (await not_ready.json())["checks"]["store"]
    assert f"index [{index_name}] exists but was not created by esproxy" in store_check["error"]
    for answer in (await put(proxy), await infer(proxy), await proxy.get("/_inference")):
        assert answer.status == 500
        assert_clear_store_error(await answer.json(), index_name)

    assert (await direct(opensearch_url, "DELETE", f"/{index_name}"))[0] == 200
    status, _ = await ready_until(proxy, lambda s, _: s == 200, seconds=20)
    assert status == 200
    assert (await put(proxy)).status == 200


async def test_an_index_replaced_by_a_foreign_one_while_running_is_a_clear_error(
    sidecar, opensearch_url, index_name
):
    assert (await put(sidecar)).status == 200
    assert (await direct(opensearch_url, "DELETE", f"/{index_name}{CONCRETE_SUFFIX}"))[0] == 200
    await foreign_index(opensearch_url, index_name)
    await asyncio.sleep(0.6)

    for answer in (
        await sidecar.get("/_inference"),
        await infer(sidecar),
        await put(sidecar, "/_inference/completion/new"),
    ):
        assert answer.status == 500, await answer.text()
        assert_clear_store_error(await answer.json(), index_name)
    not_ready = await sidecar.get("/_esproxy/ready")
    assert not_ready.status == 503
    # Nothing esproxy wrote went into the foreign index.
    _, found = await direct(opensearch_url, "GET", f"/{index_name}/_search")
    assert [hit["_id"] for hit in found["hits"]["hits"]] == ["planted"]


async def test_an_index_from_a_newer_esproxy_is_refused(
    start_proxy, sidecar_settings, opensearch_url, index_name
):
    body = json.loads(json.dumps(INDEX_BODY))
    body["mappings"]["_meta"]["esproxy_schema_version"] = 99
    body["aliases"] = {index_name: {"is_hidden": True, "is_write_index": True}}
    assert (await direct(opensearch_url, "PUT", f"/{index_name}{CONCRETE_SUFFIX}", body))[0] == 200

    proxy = await start_proxy(sidecar_settings())

    not_ready = await proxy.get("/_esproxy/ready")
    assert not_ready.status == 503
    reason = (await not_ready.json())["checks"]["store"]["error"]
    assert "has schema version 99, written by a newer esproxy" in reason
    refused = await put(proxy)
    assert refused.status == 500
    assert "written by a newer esproxy" in (await refused.json())["error"]["reason"]


async def test_a_node_rebuilt_with_empty_data_heals_the_store(
    tmp_path, start_proxy, sidecar_settings
):
    """The issue's own steps: the node restarted on a fresh data directory, then a PUT."""
    node = OpenSearchNode(home=tmp_path / "node", port=free_port())
    await asyncio.to_thread(node.start)
    try:
        proxy = await start_proxy(sidecar_settings(upstream=node.url))
        assert (await put(proxy)).status == 200
        await asyncio.to_thread(node.stop)
        await asyncio.to_thread(shutil.rmtree, tmp_path / "node" / "data")
        await asyncio.to_thread(node.start)

        created = await put(proxy, "/_inference/completion/after-rebuild")
        assert created.status == 200, await created.text()

        listed = await proxy.get("/_inference")
        assert listed.status == 200
        ids = [e["inference_id"] for e in (await listed.json())["endpoints"]]
        assert ids == ["after-rebuild"]
        status, body = await ready_until(
            proxy, lambda s, b: "missing_from_cluster" in b["checks"].get("endpoints", {})
        )
        assert status == 200
        assert body["checks"]["endpoints"]["missing_from_cluster"] == ["amazon_bedrock_completion"]
        # A restart finds esproxy's own index and is ready.
        again = await start_proxy(sidecar_settings(upstream=node.url))
        assert (await again.get("/_esproxy/ready")).status == 200
    finally:
        await asyncio.to_thread(node.stop)


async def test_the_concrete_index_is_guarded_from_the_first_start(
    sidecar, opensearch_url, index_name
):
    # The aliases were looked up before the store created the index: its name is known anyway.
    concrete = index_name + CONCRETE_SUFFIX
    for method, path in (("DELETE", f"/{concrete}"), ("GET", f"/{concrete}/_search")):
        response = await sidecar.request(method, path)
        assert response.status == 403, await response.text()
    assert (await direct(opensearch_url, "GET", f"/{concrete}/_mapping"))[0] == 200
