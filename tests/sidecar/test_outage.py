"""The cluster goes away and comes back: esproxy says so clearly, recovers alone, loses nothing."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.opensearch_node import OpenSearchNode
from tests.ports import free_port
from tests.user_examples import JSON_HEADERS, TITAN_COMPLETION

COMPLETION = "/_inference/completion/amazon_bedrock_completion"


@pytest.fixture
def own_node(tmp_path):
    node = OpenSearchNode(home=tmp_path / "node", port=free_port())
    node.start()
    yield node
    node.stop()


async def test_upstream_killed_and_restarted(own_node, start_proxy, sidecar_settings):
    url = own_node.url
    proxy = await start_proxy(sidecar_settings(upstream=url))
    created = await proxy.put(COMPLETION, data=json.dumps(TITAN_COMPLETION), headers=JSON_HEADERS)
    assert created.status == 200, await created.text()
    assert (await proxy.get("/_cluster/health")).status == 200

    await asyncio.to_thread(own_node.stop)
    down = await proxy.get("/_cluster/health")
    assert down.status == 502
    body = await down.json()
    assert body["status"] == 502 and url.removeprefix("http://") in body["error"]["reason"]
    not_ready = await proxy.get("/_esproxy/ready")
    assert not_ready.status == 503
    assert (await not_ready.json())["checks"]["upstream"]["ok"] is False
    assert (await proxy.get("/_esproxy/health")).status == 200
    # Writes need the cluster: a clear 503, and nothing half-written once it is back.
    refused = await proxy.put(
        "/_inference/completion/during-outage",
        data=json.dumps(TITAN_COMPLETION),
        headers=JSON_HEADERS,
    )
    assert refused.status == 503, await refused.text()
    assert (await refused.json())["error"]["reason"]
    gone = await proxy.delete("/_inference/amazon_bedrock_completion")
    assert gone.status in (502, 503)
    # The endpoint is cached, so inference goes on while the cluster is away.
    served = await proxy.post(COMPLETION, data='{"input": "still here?"}', headers=JSON_HEADERS)
    assert served.status == 200

    await asyncio.to_thread(own_node.start)
    assert own_node.url == url
    for _ in range(50):
        health = await proxy.get("/_cluster/health")
        if health.status == 200:
            break
        await asyncio.sleep(0.2)
    assert health.status == 200
    assert (await proxy.get("/_esproxy/ready")).status == 200
    listed = await (await proxy.get("/_inference")).json()
    assert [e["inference_id"] for e in listed["endpoints"]] == ["amazon_bedrock_completion"]
