"""esproxy as a sidecar: endpoints live in the cluster, everything else is forwarded untouched."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
import uuid

import aiohttp

from tests.user_examples import JSON_HEADERS, TITAN_COMPLETION, TITAN_EMBEDDINGS

COMPLETION = "/_inference/completion/amazon_bedrock_completion"


async def put(client, path, body):
    return await client.put(path, data=json.dumps(body), headers=JSON_HEADERS)


async def direct(opensearch_url, method, path, **kwargs):
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, opensearch_url + path, **kwargs) as response,
    ):
        return response.status, await response.read()


async def test_endpoint_is_a_document_in_the_cluster_without_plaintext_keys(
    sidecar, opensearch_url, index_name
):
    response = await put(sidecar, COMPLETION, TITAN_COMPLETION)
    assert response.status == 200, await response.text()
    status, raw = await direct(
        opensearch_url, "GET", f"/{index_name}/_doc/amazon_bedrock_completion"
    )
    assert status == 200
    document = json.loads(raw)["_source"]
    assert document["config"]["service_settings"]["model"] == "amazon.titan-text-premier-v1:0"
    assert b"<aws_access_key>" not in raw and b"<aws_secret_key>" not in raw
    settings = json.loads((await direct(opensearch_url, "GET", f"/{index_name}/_settings"))[1])
    assert settings[f"{index_name}-000001"]["settings"]["index"]["hidden"] == "true"


async def test_other_requests_are_forwarded_byte_for_byte(sidecar, opensearch_url):
    index = f"docs-{uuid.uuid4().hex[:8]}"
    settings = {"settings": {"number_of_replicas": 0}}
    created = await sidecar.put(f"/{index}", json=settings)
    assert created.status == 200
    bulk = "".join(
        json.dumps({"index": {"_id": str(i)}}) + "\n" + json.dumps({"n": i}) + "\n"
        for i in range(50)
    ).encode()
    headers = {"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"}
    indexed = await sidecar.post(
        f"/{index}/_bulk?refresh=true", data=gzip.compress(bulk), headers=headers
    )
    assert indexed.status == 200
    assert json.loads(await indexed.read())["errors"] is False
    for method, path in (
        ("GET", f"/{index}/_doc/7"),
        ("GET", f"/{index}/_search?q=n:7&filter_path=hits.hits._source"),
        ("GET", "/no-such-index/_doc/1"),
        ("HEAD", f"/{index}"),
        ("HEAD", "/no-such-index"),
    ):
        theirs = await direct(opensearch_url, method, path)
        response = await sidecar.request(method, path)
        assert (response.status, await response.read()) == theirs, (method, path)


async def test_listing_merges_with_a_cluster_that_has_no_inference_api(sidecar):
    assert (await put(sidecar, COMPLETION, TITAN_COMPLETION)).status == 200
    listed = await (await sidecar.get("/_inference")).json()
    assert [e["inference_id"] for e in listed["endpoints"]] == ["amazon_bedrock_completion"]


async def test_foreign_services_and_ids_go_to_the_cluster(sidecar, opensearch_url):
    body = {"service": "openai", "service_settings": {"api_key": "k", "model_id": "m"}}
    theirs = await direct(
        opensearch_url,
        "PUT",
        "/_inference/text_embedding/other",
        data=json.dumps(body),
        headers=JSON_HEADERS,
    )
    response = await put(sidecar, "/_inference/text_embedding/other", body)
    assert (response.status, await response.read()) == theirs
    theirs = await direct(opensearch_url, "GET", "/_inference/not-ours")
    response = await sidecar.get("/_inference/not-ours")
    assert (response.status, await response.read()) == theirs


async def test_two_instances_share_endpoints_within_the_cache_bound(start_proxy, sidecar_settings):
    first = await start_proxy(sidecar_settings())
    second = await start_proxy(sidecar_settings())
    assert (await put(first, COMPLETION, TITAN_COMPLETION)).status == 200
    assert (await second.get("/_inference/amazon_bedrock_completion")).status == 200
    infer = await second.post(COMPLETION, data='{"input": "hi"}', headers=JSON_HEADERS)
    assert infer.status == 200

    assert (await second.delete("/_inference/amazon_bedrock_completion")).status == 200
    deadline = time.monotonic() + 0.5 + 2  # cache_seconds plus slack for the test machine
    # Once esproxy no longer holds the id, it is the cluster's to answer (OpenSearch: no API).
    cluster_answer = await (await first.get("/_inference/never-held")).read()
    while time.monotonic() < deadline:
        seen = await first.post(COMPLETION, data='{"input": "hi"}', headers=JSON_HEADERS)
        if seen.status != 200:
            break
        await asyncio.sleep(0.1)
    assert seen.status == 400
    assert (await first.get("/_inference/amazon_bedrock_completion")).status == 400
    assert b"no handler found" in cluster_answer


async def test_concurrent_puts_through_two_instances_create_exactly_one(
    start_proxy, sidecar_settings
):
    instances = [await start_proxy(sidecar_settings()) for _ in range(2)]
    responses = await asyncio.gather(
        *(put(instances[i % 2], COMPLETION, TITAN_COMPLETION) for i in range(50))
    )
    statuses = sorted(r.status for r in responses)
    assert statuses == [200] + [400] * 49
    for response in responses:
        if response.status == 400:
            assert (await response.json())["error"]["type"] == "resource_already_exists_exception"


async def test_restart_keeps_endpoints(start_proxy, sidecar_settings):
    settings = sidecar_settings()
    first = await start_proxy(settings)
    assert (await put(first, "/_inference/text_embedding/e", TITAN_EMBEDDINGS)).status == 200
    await first.close()
    again = await start_proxy(settings)
    listed = await (await again.get("/_inference")).json()
    assert [e["inference_id"] for e in listed["endpoints"]] == ["e"]


async def test_a_stalled_upload_does_not_hold_an_upstream_connection(start_proxy, sidecar_settings):
    proxy = await start_proxy(sidecar_settings(ESPROXY_UPSTREAM_READ_TIMEOUT="1"))
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    writer.write(
        b"PUT /stalled/_doc/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"a":'
    )
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(4096), 30)
    writer.close()
    # Cut off after the read timeout, with an ES-shaped 408 and the connection closed.
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
    assert b"\r\nConnection: close" in head
    assert json.loads(body) == {"error": "the client sent no body bytes for 1s", "status": 408}
    assert (await proxy.get("/_cluster/health")).status == 200
