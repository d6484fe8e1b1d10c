"""Several node URLs against the real node, and node-info answers as sniffing clients see them."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient

from tests.upstream.conftest import JSON, StartForwarder, base_of, exchange, forwarder_of


async def test_round_robin_skips_a_dead_node_and_marks_it(
    start_forwarder: StartForwarder, opensearch_url: str, dead_url: str
) -> None:
    client = await start_forwarder(dead_url, opensearch_url)
    index = "fwd-round-robin"
    created = await client.put(f"/{index}", json={"settings": {"number_of_replicas": 0}})
    assert created.status == 200
    for n in range(6):  # bodies too: a refused connection never consumed one
        stored = await client.post(
            f"/{index}/_doc?refresh=true", data=b'{"n": %d}' % n, headers=JSON
        )
        assert stored.status == 201
    count = await client.get(f"/{index}/_count")
    assert (await count.json())["count"] == 6

    dead, alive = forwarder_of(client).pool.nodes
    assert dead.url == dead_url
    # Tried first, then skipped while backing off (1 s, then 2 s, ...) over these 8 requests.
    assert 1 <= dead.failures < 8
    assert dead.dead_until > time.monotonic()
    assert alive.failures == 0


async def test_a_node_that_times_out_connecting_hands_the_request_on(
    start_forwarder: StartForwarder, opensearch_url: str, blackhole_url: str
) -> None:
    client = await start_forwarder(blackhole_url, opensearch_url, connect_timeout=0.3)
    for n in range(2):
        stored = await client.put(f"/fwd-handed-on/_doc/{n}", data=b'{"n": 1}', headers=JSON)
        assert stored.status == 201
    slow, alive = forwarder_of(client).pool.nodes
    assert (slow.failures, alive.failures) == (1, 0)


async def node_info(session: aiohttp.ClientSession, base: str, path: str, **kwargs: Any) -> Any:
    answer = await exchange(session, base, "GET", path, **kwargs)
    assert answer.status == 200, answer.body
    return orjson.loads(answer.body)


@pytest.mark.parametrize(
    "path",
    ["/_nodes", "/_nodes/http", "/_nodes/_all/http", "/_nodes/_local/http", "/_nodes/{id}/http"],
)
async def test_node_info_names_esproxy_as_every_nodes_http_address(
    direct: aiohttp.ClientSession, opensearch_url: str, forwarder: TestClient[Any, Any], path: str
) -> None:
    straight = await node_info(direct, opensearch_url, "/_nodes/_local/http")
    (node_id,) = straight["nodes"]
    path = path.format(id=node_id)
    straight = await node_info(direct, opensearch_url, path)
    proxied = await node_info(forwarder.session, base_of(forwarder), path)

    address = f"127.0.0.1:{forwarder.port}"
    http = straight["nodes"][node_id]["http"]
    assert http["publish_address"] == opensearch_url.removeprefix("http://")
    http.update(publish_address=address, bound_address=[address])
    assert proxied == straight  # transport addresses and everything else as the node said


async def test_pretty_and_compressed_node_info_is_rewritten_too(
    opensearch_url: str, forwarder: TestClient[Any, Any]
) -> None:
    answer = await exchange(
        forwarder.session,
        base_of(forwarder),
        "GET",
        "/_nodes/http?pretty",
        headers={"Accept-Encoding": "gzip"},
    )
    assert answer.status == 200
    assert answer.header("Content-Encoding") is None  # fetched plain so it could be rewritten
    assert answer.header("Content-Length") == str(len(answer.body))
    assert answer.body.startswith(b'{\n  "_nodes": {')
    (node,) = orjson.loads(answer.body)["nodes"].values()
    assert node["http"]["publish_address"] == f"127.0.0.1:{forwarder.port}"


async def test_node_info_without_http_addresses_stays_byte_exact(
    direct: aiohttp.ClientSession, opensearch_url: str, forwarder: TestClient[Any, Any]
) -> None:
    path = "/_nodes/jvm?filter_path=nodes.*.jvm.version,nodes.*.name"
    straight = await exchange(direct, opensearch_url, "GET", path)
    assert straight.status == 200
    assert await exchange(forwarder.session, base_of(forwarder), "GET", path) == straight
