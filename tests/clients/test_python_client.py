"""The official elasticsearch-py client, unmodified, against esproxy on a real socket."""

from __future__ import annotations

import logging

import aiohttp
import pytest
from elasticsearch import ApiError, AsyncElasticsearch, BadRequestError, NotFoundError

from tests.user_examples import TITAN_COMPLETION, TITAN_EMBEDDINGS


@pytest.fixture
async def client(proxy):
    es = AsyncElasticsearch(str(proxy.make_url("/")), request_timeout=30)
    yield es
    await es.close()


async def test_info_and_ping(client):
    assert await client.ping()
    info = await client.info()
    assert info["tagline"] == "You Know, for Search"


async def test_every_inference_method_from_the_user_document(client):
    created = await client.inference.put(
        task_type="text_embedding",
        inference_id="amazon_bedrock_embeddings",
        inference_config=TITAN_EMBEDDINGS,
    )
    assert created["service_settings"]["dimensions"] == 1024
    created = await client.inference.put_amazonbedrock(
        task_type="completion",
        amazonbedrock_inference_id="amazon_bedrock_completion",
        service=TITAN_COMPLETION["service"],
        service_settings=TITAN_COMPLETION["service_settings"],
    )
    assert created["inference_id"] == "amazon_bedrock_completion"

    listed = await client.inference.get()
    assert [e["inference_id"] for e in listed["endpoints"]] == [
        "amazon_bedrock_completion",
        "amazon_bedrock_embeddings",
    ]
    one = await client.inference.get(inference_id="amazon_bedrock_embeddings")
    assert one["endpoints"][0]["task_type"] == "text_embedding"

    vectors = await client.inference.text_embedding(
        inference_id="amazon_bedrock_embeddings", input=["a", "b", "c"]
    )
    assert [len(v["embedding"]) for v in vectors["text_embedding"]] == [1024] * 3
    generic = await client.inference.inference(
        inference_id="amazon_bedrock_embeddings", input="one"
    )
    assert len(generic["text_embedding"]) == 1
    completion = await client.inference.completion(
        inference_id="amazon_bedrock_completion", input="What is Elastic?"
    )
    assert completion["completion"][0]["result"]

    deleted = await client.inference.delete(inference_id="amazon_bedrock_completion")
    assert deleted["acknowledged"] is True
    with pytest.raises(NotFoundError) as missing:
        await client.inference.get(inference_id="amazon_bedrock_completion")
    assert missing.value.meta.status == 404
    assert "Inference endpoint not found [amazon_bedrock_completion]" in str(missing.value)


async def test_errors_become_the_right_exception_classes(client):
    await client.inference.put(
        task_type="completion", inference_id="taken", inference_config=TITAN_COMPLETION
    )
    with pytest.raises(BadRequestError) as exists:
        await client.inference.put(
            task_type="completion", inference_id="taken", inference_config=TITAN_COMPLETION
        )
    assert exists.value.message == "resource_already_exists_exception"

    bad = {**TITAN_COMPLETION, "task_settings": {"temperature": 1}}
    with pytest.raises(BadRequestError) as invalid:
        await client.inference.put(task_type="completion", inference_id="bad", inference_config=bad)
    assert invalid.value.body["error"]["reason"] == (
        "Validation Failed: 1: field [temperature] is not of the expected type. "
        "The value [1] cannot be converted to a [Double];"
    )

    with pytest.raises(BadRequestError) as wrong_type:
        await client.inference.text_embedding(inference_id="taken", input="x")
    assert "does not match the model type [completion]" in str(wrong_type.value)


async def test_bedrock_throttling_reaches_the_client_as_a_429_it_retries(client, emulator):
    await client.inference.put(
        task_type="completion", inference_id="busy", inference_config=TITAN_COMPLETION
    )
    # esproxy tries a call 4 times (1 + 3 retries); 4 throttles make it answer 429, and the
    # client's own retry then finds Bedrock free again.
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            emulator.make_url("/_emulator/faults"),
            json={"code": "ThrottlingException", "count": 4, "operation": "Converse"},
        ) as fault,
    ):
        assert fault.status == 200
    answer = await client.options(retry_on_status=(429,), max_retries=2).inference.completion(
        inference_id="busy", input="hello"
    )
    assert answer["completion"][0]["result"]
    async with (
        aiohttp.ClientSession() as session,
        session.get(emulator.make_url("/_emulator/requests")) as listed,
    ):
        calls = [c for c in (await listed.json())["requests"] if c["operation"] == "Converse"]
    # The PUT probe, four throttled attempts, then the client's retry.
    assert len(calls) == 6


@pytest.mark.parametrize(
    "options",
    [{}, {"request_timeout": 150, "retry_on_status": (502, 503, 504)}],
    ids=["client-defaults", "readme-settings"],
)
async def test_standalone_non_inference_calls_fail_once_and_keep_the_node(proxy, options, caplog):
    """Without a cluster, `indices.create` fails at once with 501, and the node stays alive."""
    es = AsyncElasticsearch(str(proxy.make_url("/")), **options)
    try:
        with (
            caplog.at_level(logging.DEBUG, logger="elastic_transport"),
            pytest.raises(ApiError) as caught,
        ):
            await es.indices.create(index="my-index")
        assert caught.value.meta.status == 400
        assert "no upstream cluster is configured" in str(caught.value.message) + str(
            caught.value.body
        )
        assert "Retrying" not in caplog.text
        assert len(es.transport.node_pool._dead_nodes.queue) == 0
        # The next call goes straight through: the node was never put in timeout.
        assert (await es.inference.get())["endpoints"] == []
    finally:
        await es.close()
