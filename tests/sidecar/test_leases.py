"""The lease index as the cluster sees it: made by esproxy with its own strict mapping, one lease
per process holding a heartbeat and per-endpoint figures, guarded like the endpoint index, and
made again (never auto-created) if someone deletes it."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from tests.user_examples import JSON_HEADERS, TITAN_COMPLETION

COMPLETION = "/_inference/completion/leased"


async def direct(opensearch_url, method, path, body=None):
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, opensearch_url + path, json=body) as response,
    ):
        return response.status, await response.json(content_type=None)


async def leases(opensearch_url, alias):
    await direct(opensearch_url, "POST", f"/{alias}/_refresh")
    status, found = await direct(opensearch_url, "POST", f"/{alias}/_search", {"size": 100})
    assert status == 200, found
    return [hit["_source"] for hit in found["hits"]["hits"]]


async def test_each_process_keeps_one_lease_in_a_strict_hidden_index(
    start_proxy, sidecar_settings, opensearch_url, index_name
):
    alias = f"{index_name}-leases"
    settings = sidecar_settings(ESPROXY_LIMITS_LEASE_SECONDS="0.5")
    first = await start_proxy(settings)
    await start_proxy(settings)  # a second process, sharing the leases
    put = await first.put(COMPLETION, data=json.dumps(TITAN_COMPLETION), headers=JSON_HEADERS)
    assert put.status == 200, await put.text()
    await asyncio.sleep(1.2)
    found = await leases(opensearch_url, alias)
    assert len(found) == 2
    mine = next(lease for lease in found if "amazonbedrock/leased" in lease["endpoints"])
    assert set(mine) == {"process", "host", "heartbeat", "seq", "lease_seconds", "endpoints"}
    assert mine["lease_seconds"] == 0.5
    figures = mine["endpoints"]["amazonbedrock/leased"]
    assert figures["ok"] == 1.0 and figures["share"] > 0

    status, index = await direct(opensearch_url, "GET", f"/{alias}")
    [(concrete, body)] = index.items()
    assert concrete == f"{alias}-v1"
    assert body["settings"]["index"]["hidden"] == "true"
    assert body["aliases"][alias]["is_hidden"] is True
    assert body["mappings"]["dynamic"] == "strict"
    assert body["mappings"]["properties"]["endpoints"] == {"type": "object", "enabled": False}

    # Through esproxy, neither name reaches the cluster.
    for name in (alias, concrete):
        refused = await first.get(f"/{name}/_search")
        assert refused.status == 403, await refused.text()
        assert "is reserved for esproxy" in (await refused.json())["error"]["reason"]
    ready = (await (await first.get("/_esproxy/ready")).json())["checks"]["limits"]
    assert ready["mode"] == "cluster"
    assert (ready["leases"]["state"], ready["leases"]["processes"]) == ("ok", 2)

    # Deleted behind esproxy's back: made again, with the strict mapping, not auto-created.
    await direct(opensearch_url, "DELETE", f"/{concrete}")
    for _ in range(40):
        await asyncio.sleep(0.25)
        status, index = await direct(opensearch_url, "GET", f"/{alias}")
        if status == 200 and len(await leases(opensearch_url, alias)) == 2:
            break
    assert status == 200
    assert index[concrete]["mappings"]["dynamic"] == "strict"
