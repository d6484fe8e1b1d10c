"""The EndpointStore contract, run against every store.

To add a store, add an async context manager factory to STORES; it gets the pytest request, so it
can ask for other fixtures (a cluster, a temporary directory) with `request.getfixturevalue`.
"""

import asyncio
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import aiohttp
import pytest

from esproxy.errors import EndpointAlreadyExists, EndpointChanged, EndpointNotFound
from esproxy.settings import UpstreamSettings
from esproxy.storage.base import EndpointRecord, EndpointStore
from esproxy.storage.cache import CachedEndpointStore
from esproxy.storage.elasticsearch import ElasticsearchEndpointStore
from esproxy.storage.memory import InMemoryEndpointStore
from esproxy.storage.sqlite import SqliteEndpointStore


@asynccontextmanager
async def memory_store(request: pytest.FixtureRequest) -> AsyncIterator[EndpointStore]:
    yield InMemoryEndpointStore()


@asynccontextmanager
async def sqlite_store(request: pytest.FixtureRequest) -> AsyncIterator[EndpointStore]:
    store = SqliteEndpointStore(request.getfixturevalue("tmp_path") / "data" / "endpoints.db")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def elasticsearch_store(request: pytest.FixtureRequest) -> AsyncIterator[EndpointStore]:
    upstream = UpstreamSettings(urls=(request.getfixturevalue("opensearch_url"),))
    # An index of its own, so tests never see each other's endpoints.
    index = f".esproxy-test-{uuid.uuid4().hex}"
    async with aiohttp.ClientSession() as session:
        store = ElasticsearchEndpointStore(session, upstream, index)
        await store.open()
        try:
            yield store
        finally:
            await store.close()
            async with session.delete(f"{upstream.urls[0]}/{index}-000001") as response:
                assert response.status == 200


@asynccontextmanager
async def cached_memory_store(request: pytest.FixtureRequest) -> AsyncIterator[EndpointStore]:
    yield CachedEndpointStore(InMemoryEndpointStore(), ttl_seconds=5)


@asynccontextmanager
async def cached_sqlite_store(request: pytest.FixtureRequest) -> AsyncIterator[EndpointStore]:
    async with sqlite_store(request) as inner:
        yield CachedEndpointStore(inner, ttl_seconds=5)


STORES: dict[str, Callable[[pytest.FixtureRequest], AbstractAsyncContextManager[EndpointStore]]] = {
    "memory": memory_store,
    "sqlite": sqlite_store,
    "elasticsearch": elasticsearch_store,
    "cached-memory": cached_memory_store,
    "cached-sqlite": cached_sqlite_store,
}


@pytest.fixture(params=list(STORES))
async def store(request: pytest.FixtureRequest) -> AsyncIterator[EndpointStore]:
    async with STORES[request.param](request) as opened:
        yield opened


def record(inference_id: str, model: str = "amazon.titan-embed-text-v2:0") -> EndpointRecord:
    # Deliberately not alphabetical: stores must keep the order responses show.
    config = {
        "inference_id": inference_id,
        "task_type": "text_embedding",
        "service": "amazonbedrock",
        "service_settings": {
            "region": "us-east-1",
            "provider": "amazontitan",
            "model": model,
            "rate_limit": {"requests_per_minute": 240},
            "dimensions": 1024,
            "similarity": "cosine",
        },
        "task_settings": {},
    }
    return EndpointRecord(
        inference_id, config, {"dimensions_set_by_user": False}, sealed_secrets=f"v1.sealed.{model}"
    )


def order_of(record: EndpointRecord) -> str:
    return json.dumps([record.config, record.internal])


async def test_create_then_get_returns_the_record_with_its_key_order(store):
    created = record("my-endpoint")

    await store.create(created)
    got = await store.get("my-endpoint")

    assert got == created
    assert order_of(got) == order_of(created)
    assert got.sealed_secrets == created.sealed_secrets


async def test_values_of_every_json_type_round_trip(store):
    config = {
        "task_type": "completion",
        "zeta": None,
        "alpha": [1, 2.5, -0.1, 10**18, True, False],
        "unicode": 'café ☕ \u2028 "quoted" \\ back',
        "nested": {"b": {"y": [], "x": {}}, "a": "z"},
    }
    created = EndpointRecord("types", config, {"note": "ünïcode"}, "v1.x.y")

    await store.create(created)
    got = await store.get("types")

    assert got == created
    assert order_of(got) == order_of(created)


async def test_list_is_sorted_by_inference_id(store):
    ids = ["b", "a-2", "B", "a", "a.1", "é", "0"]
    for inference_id in ids:
        await store.create(record(inference_id))

    listed = await store.list()

    assert [r.inference_id for r in listed] == sorted(ids)
    assert listed[0] == record("0")


async def test_list_of_an_empty_store_is_empty(store):
    assert await store.list() == []


async def test_replace_overwrites_the_whole_record(store):
    await store.create(record("e", model="old-model"))
    replacement = record("e", model="new-model")

    await store.replace(replacement)

    assert await store.get("e") == replacement
    assert await store.list() == [replacement]


async def test_delete_removes_only_that_endpoint(store):
    await store.create(record("keep"))
    await store.create(record("drop"))

    await store.delete("drop")

    with pytest.raises(EndpointNotFound):
        await store.get("drop")
    assert await store.list() == [record("keep")]


async def test_a_second_create_of_an_id_fails_and_keeps_the_first(store):
    await store.create(record("e", model="first"))

    with pytest.raises(EndpointAlreadyExists) as caught:
        await store.create(record("e", model="second"))

    assert caught.value.status == 400
    assert caught.value.reason == "Inference endpoint [e] already exists"
    assert await store.get("e") == record("e", model="first")


@pytest.mark.parametrize(
    "operation",
    [
        lambda store: store.get("missing"),
        lambda store: store.replace(record("missing")),
        lambda store: store.delete("missing"),
    ],
    ids=["get", "replace", "delete"],
)
async def test_an_unknown_id_is_not_found(store, operation):
    await store.create(record("present"))

    with pytest.raises(EndpointNotFound) as caught:
        await operation(store)

    assert caught.value.status == 404
    assert caught.value.reason == "Inference endpoint not found [missing]"
    assert await store.list() == [record("present")]


async def test_deleted_id_can_be_created_again(store):
    await store.create(record("e", model="first"))
    await store.delete("e")

    await store.create(record("e", model="second"))

    assert await store.get("e") == record("e", model="second")


async def test_concurrent_creates_of_one_id_end_with_exactly_one(store):
    attempts = [record("contested", model=f"model-{n}") for n in range(20)]

    results = await asyncio.gather(*(store.create(r) for r in attempts), return_exceptions=True)

    winners = [r for r, result in zip(attempts, results, strict=True) if result is None]
    losers = [result for result in results if isinstance(result, EndpointAlreadyExists)]
    assert len(winners) == 1
    assert len(losers) == 19
    assert await store.list() == winners


async def test_changing_a_record_after_storing_it_does_not_change_the_store(store):
    created = record("e")
    await store.create(created)

    created.config["service_settings"]["model"] = "changed"
    (await store.get("e")).config["task_type"] = "changed"

    got = await store.get("e")
    assert got.config["service_settings"]["model"] == "amazon.titan-embed-text-v2:0"
    assert got.config["task_type"] == "text_embedding"


async def test_a_replace_expecting_a_version_swaps_only_that_version(store):
    first = dataclasses.replace(record("e", model="first"), sealed_secrets="v2.first")
    await store.create(first)
    second = dataclasses.replace(record("e", model="second"), sealed_secrets="v2.second")
    await store.replace(second, expected=first)

    third = dataclasses.replace(record("e", model="third"), sealed_secrets="v2.third")
    with pytest.raises(EndpointChanged, match=r"\[e\] was changed by another writer"):
        await store.replace(third, expected=first)  # read before `second` was written

    assert await store.get("e") == second
    with pytest.raises(EndpointNotFound):
        await store.replace(record("gone"), expected=first)
