"""What the Elasticsearch store adds to the contract: its index, several instances, node failures.

Everything runs against the real OpenSearch node, except faults, which a tiny app in this module
stages: a cluster answering garbage or refusing esproxy's credentials.
"""

import asyncio
import contextlib
import json
import logging
import socket
import uuid
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from esproxy.errors import EndpointAlreadyExists, EndpointNotFound, StoreUnavailable
from esproxy.secret_cipher import SecretCipher, generate_key_text, parse_key
from esproxy.settings import UpstreamSettings
from esproxy.storage import elasticsearch as elasticsearch_module
from esproxy.storage.base import EndpointRecord
from esproxy.storage.elasticsearch import (
    CONCRETE_SUFFIX,
    INDEX_BODY,
    ElasticsearchEndpointStore,
)


def record(inference_id: str, sealed_secrets: str = "v1.sealed") -> EndpointRecord:
    config = {"inference_id": inference_id, "task_type": "completion", "service": "amazonbedrock"}
    return EndpointRecord(inference_id, config, {"version": 1}, sealed_secrets)


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as opened:
        yield opened


async def drop_index(session: aiohttp.ClientSession, url: str, name: str) -> None:
    """Remove a store's indices: its concrete index (and so its alias), or a legacy one."""
    names = f"{name}{CONCRETE_SUFFIX},{name}"
    async with session.delete(f"{url}/{names}?ignore_unavailable=true") as response:
        assert response.status in (200, 404), await response.text()


@pytest.fixture
async def index(opensearch_url, session):
    name = f".esproxy-test-{uuid.uuid4().hex}"
    yield name
    await drop_index(session, opensearch_url, name)


@pytest.fixture
async def store(opensearch_url, session, index):
    opened = ElasticsearchEndpointStore(session, UpstreamSettings(urls=(opensearch_url,)), index)
    await opened.open()
    yield opened
    await opened.close()


async def read_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as response:
        assert response.status == 200, await response.text()
        return await response.json()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def test_the_index_is_hidden_with_the_explicit_mapping(opensearch_url, session, index, store):
    settings = await read_json(session, f"{opensearch_url}/{index}/_settings")
    mapping = await read_json(session, f"{opensearch_url}/{index}/_mapping")
    aliases = await read_json(session, f"{opensearch_url}/{index}/_alias")
    concrete = index + CONCRETE_SUFFIX

    assert aliases == {concrete: {"aliases": {index: {"is_hidden": True, "is_write_index": True}}}}
    index = concrete
    assert settings[index]["settings"]["index"]["hidden"] == "true"
    assert settings[index]["settings"]["index"]["auto_expand_replicas"] == "0-1"
    assert mapping[index]["mappings"] == INDEX_BODY["mappings"]
    assert mapping[index]["mappings"]["dynamic"] == "strict"
    assert mapping[index]["mappings"]["properties"]["config"] == {
        "type": "object",
        "enabled": False,
    }
    health = await read_json(session, f"{opensearch_url}/_cluster/health/{index}")
    assert health["status"] == "green"


async def test_endpoint_configs_add_no_fields_to_the_mapping(opensearch_url, session, index, store):
    config = {"task_type": "completion", "service_settings": {f"f{n}": {"x": n} for n in range(50)}}
    await store.create(EndpointRecord("wide", config, {"anything": [1, "two"]}, "v1.x"))

    mapping = await read_json(session, f"{opensearch_url}/{index}/_mapping")

    assert mapping[index + CONCRETE_SUFFIX]["mappings"] == INDEX_BODY["mappings"]


async def test_instances_opening_one_new_index_at_once_all_succeed(opensearch_url, session, index):
    upstream = UpstreamSettings(urls=(opensearch_url,))
    stores = [ElasticsearchEndpointStore(session, upstream, index) for _ in range(4)]

    await asyncio.gather(*(each.open() for each in stores))

    await stores[0].create(record("e"))
    assert await stores[3].get("e") == record("e")


async def test_an_index_not_made_by_esproxy_is_refused(opensearch_url, session, index):
    async with session.put(
        f"{opensearch_url}/{index}", json={"settings": {"number_of_replicas": 0}}
    ):
        pass
    store = ElasticsearchEndpointStore(session, UpstreamSettings(urls=(opensearch_url,)), index)

    with pytest.raises(StoreUnavailable, match=r"not created by esproxy") as caught:
        await store.open()
    assert index in caught.value.reason


async def test_stored_documents_hold_no_plaintext_secret(opensearch_url, session, index, store):
    secrets = {"access_key": "AKIAPLAINTEXTCHECK", "secret_key": "very/secret+value"}
    sealed = SecretCipher(parse_key(generate_key_text())).seal("e", secrets, b"{}")
    await store.create(record("e", sealed_secrets=sealed))
    await store.replace(record("e", sealed_secrets=sealed))

    async with session.get(f"{opensearch_url}/{index}/_doc/e") as response:
        stored = await response.text()

    assert json.loads(stored)["_source"]["sealed_secrets"] == sealed
    for value in secrets.values():
        assert value not in stored


async def test_ids_that_need_escaping_round_trip(store):
    inference_id = "a/b?c#d é%20+"

    await store.create(record(inference_id))

    assert await store.get(inference_id) == record(inference_id)
    await store.delete(inference_id)
    assert await store.list() == []


async def test_list_pages_through_every_endpoint(store, monkeypatch):
    monkeypatch.setattr(elasticsearch_module, "PAGE_SIZE", 2)
    ids = ["e", "a", "d", "c", "b"]
    for inference_id in ids:
        await store.create(record(inference_id))

    assert [r.inference_id for r in await store.list()] == sorted(ids)


async def test_a_session_that_does_not_decompress_still_reads_answers(opensearch_url, index, store):
    # The forwarder's session is made with auto_decompress=False and may be lent to the store.
    await store.create(record("e"))
    async with aiohttp.ClientSession(auto_decompress=False) as raw:
        borrowing = ElasticsearchEndpointStore(raw, UpstreamSettings(urls=(opensearch_url,)), index)
        await borrowing.open()

        assert await borrowing.list() == [record("e")]


async def test_two_instances_share_one_index(opensearch_url, index):
    upstream = UpstreamSettings(urls=(opensearch_url,))
    async with aiohttp.ClientSession() as first, aiohttp.ClientSession() as second:
        stores = [ElasticsearchEndpointStore(s, upstream, index) for s in (first, second)]
        for each in stores:
            await each.open()

        attempts = [stores[n % 2].create(record("contested", f"v1.{n}")) for n in range(20)]
        results = await asyncio.gather(*attempts, return_exceptions=True)

        assert results.count(None) == 1
        assert sum(isinstance(r, EndpointAlreadyExists) for r in results) == 19
        assert (
            await stores[0].list() == await stores[1].list() == [await stores[1].get("contested")]
        )

        await stores[0].delete("contested")
        with pytest.raises(EndpointNotFound):
            await stores[1].get("contested")
        with pytest.raises(EndpointNotFound):
            await stores[1].replace(record("contested"))
        assert await stores[1].list() == []


async def test_racing_replaces_through_two_instances_all_succeed(opensearch_url, index):
    upstream = UpstreamSettings(urls=(opensearch_url,))
    async with aiohttp.ClientSession() as first, aiohttp.ClientSession() as second:
        stores = [ElasticsearchEndpointStore(s, upstream, index) for s in (first, second)]
        for each in stores:
            await each.open()
        await stores[0].create(record("e"))
        replacements = [record("e", f"v1.{n}") for n in range(8)]

        await asyncio.gather(*(stores[n % 2].replace(r) for n, r in enumerate(replacements)))

        assert await stores[0].get("e") in replacements


async def test_an_unreachable_cluster_is_unavailable_and_named(session):
    url = closed_port_url()
    upstream = UpstreamSettings(urls=(url.replace("//", "//esproxy:pw-secret@"),))
    store = ElasticsearchEndpointStore(session, upstream, ".esproxy-inference")

    with pytest.raises(StoreUnavailable) as caught:
        await store.get("e")

    assert caught.value.status == 503
    assert f"[{url}]" in caught.value.reason
    assert "pw-secret" not in caught.value.reason


async def test_the_next_node_is_tried_when_one_is_unreachable(opensearch_url, session, index):
    upstream = UpstreamSettings(urls=(closed_port_url(), opensearch_url))
    store = ElasticsearchEndpointStore(session, upstream, index)

    await store.open()
    await store.create(record("e"))

    assert await store.get("e") == record("e")


async def answer_garbage(request: web.Request) -> web.Response:
    return web.Response(status=500, text="<html><body>Internal Server Error</body></html>")


async def answer_ok_garbage(request: web.Request) -> web.Response:
    return web.Response(status=200, text="not json {")


async def answer_cluster_error(request: web.Request) -> web.Response:
    error = {"type": "cluster_block_exception", "reason": "index [x] blocked by: [FORBIDDEN/8]"}
    return web.json_response({"error": error, "status": 503}, status=503)


async def refuse_credentials(request: web.Request) -> web.Response:
    request.app[SEEN].append(request.headers.get("Authorization"))
    error = {"type": "security_exception", "reason": "unable to authenticate user [esproxy]"}
    return web.json_response({"error": error, "status": 401}, status=401)


SEEN = web.AppKey("seen", list)


@pytest.fixture
def fault_url(aiohttp_server):
    async def start(handler) -> str:
        app = web.Application()
        app[SEEN] = []
        app.router.add_route("*", "/{tail:.*}", handler)
        server = await aiohttp_server(app)
        return str(server.make_url("")).rstrip("/")

    return start


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        (answer_garbage, r"status \[500\] and a body that is not JSON"),
        (answer_ok_garbage, r"status \[200\] and a body that is not JSON"),
        (answer_cluster_error, r"status \[503\]: cluster_block_exception: index \[x\] blocked"),
    ],
    ids=["500-html", "200-not-json", "503-cluster-error"],
)
async def test_a_cluster_answering_garbage_is_unavailable(fault_url, session, handler, expected):
    url = await fault_url(handler)
    store = ElasticsearchEndpointStore(session, UpstreamSettings(urls=(url,)), ".esproxy-inference")

    calls = [store.open, lambda: store.get("e"), store.list, lambda: store.create(record("e"))]
    for call in calls:
        with pytest.raises(StoreUnavailable, match=expected) as caught:
            await call()
        assert f"upstream node [{url}]" in caught.value.reason


@pytest.mark.parametrize(
    ("credentials", "authorization"),
    [
        ({"api_key": "a2V5LWlkOnNlY3JldA=="}, "ApiKey a2V5LWlkOnNlY3JldA=="),
        ({"api_key": "key-id:secret"}, "ApiKey a2V5LWlkOnNlY3JldA=="),
        ({"username": "esproxy", "password": "pw-secret"}, "Basic ZXNwcm94eTpwdy1zZWNyZXQ="),
    ],
    ids=["encoded-api-key", "id-and-key", "basic"],
)
async def test_refused_credentials_are_unavailable_without_leaking_them(
    fault_url, session, caplog, credentials, authorization
):
    url = await fault_url(refuse_credentials)
    store = ElasticsearchEndpointStore(session, UpstreamSettings(urls=(url,), **credentials), "i")

    with caplog.at_level(logging.DEBUG), pytest.raises(StoreUnavailable) as caught:
        await store.get("e")

    reason = caught.value.reason
    assert "status [401]: security_exception: unable to authenticate user [esproxy]" in reason
    assert "check [upstream] api_key or username and password" in reason
    for text in (reason, caplog.text, repr(store)):
        assert "secret" not in text
        assert authorization.split()[1] not in text


async def test_without_credentials_a_refusal_says_to_configure_some(fault_url, session):
    url = await fault_url(refuse_credentials)
    store = ElasticsearchEndpointStore(session, UpstreamSettings(urls=(url,)), "i")

    with pytest.raises(StoreUnavailable, match=r"esproxy has no upstream credentials"):
        await store.delete("e")


async def test_a_cluster_that_stops_answering_is_unavailable(aiohttp_server, session):
    async def hang(request: web.Request) -> web.Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hang)
    server = await aiohttp_server(app)
    url = str(server.make_url("")).rstrip("/")
    store = ElasticsearchEndpointStore(
        session, UpstreamSettings(urls=(url,), read_timeout=0.2), ".esproxy-inference"
    )

    with pytest.raises(StoreUnavailable, match=r"no answer in time") as caught:
        await store.get("e")
    assert f"[{url}]" in caught.value.reason


async def test_a_legacy_index_moves_behind_the_alias_keeping_its_endpoints(
    opensearch_url, session, index
):
    legacy_body = json.loads(json.dumps(INDEX_BODY))
    legacy_body["mappings"]["_meta"]["esproxy_schema_version"] = 1
    async with session.put(f"{opensearch_url}/{index}", json=legacy_body) as response:
        assert response.status == 200
    document = {"inference_id": "old", "task_type": "completion", "service": "amazonbedrock"}
    document |= {"config": record("old").config, "internal": {"version": 1}}
    document |= {"sealed_secrets": "v1.sealed", "created_at": "2025-01-01T00:00:00.000Z"}
    async with session.put(f"{opensearch_url}/{index}/_doc/old?refresh=true", json=document):
        pass
    upstream = UpstreamSettings(urls=(opensearch_url,))
    stores = [ElasticsearchEndpointStore(session, upstream, index) for _ in range(3)]

    await asyncio.gather(*(each.open() for each in stores))

    aliases = await read_json(session, f"{opensearch_url}/{index}/_alias")
    assert list(aliases) == [index + CONCRETE_SUFFIX]
    assert await stores[0].list() == [record("old")]
    await stores[1].create(record("new"))
    assert [r.inference_id for r in await stores[2].list()] == ["new", "old"]


async def test_opening_without_create_never_makes_the_index(opensearch_url, session, index):
    store = ElasticsearchEndpointStore(session, UpstreamSettings(urls=(opensearch_url,)), index)

    with pytest.raises(StoreUnavailable, match=rf"there is no endpoint index \[{index}\]"):
        await store.open(create=False)

    async with session.get(f"{opensearch_url}/{index}*?expand_wildcards=all") as response:
        assert await response.json() == {}


async def test_writes_after_the_index_is_lost_recreate_it_as_esproxy_s(
    opensearch_url, session, index, store
):
    await store.create(record("e"))
    concrete = index + CONCRETE_SUFFIX
    all_of_them = f"{opensearch_url}/{index}*?expand_wildcards=all"

    for write in (
        lambda: store.create(record("x")),
        lambda: store.replace(record("x")),
        lambda: store.delete("x"),
    ):
        async with session.delete(f"{opensearch_url}/{concrete}") as response:
            assert response.status == 200
        # What the store relies on: the cluster refuses such a write instead of creating.
        raw = f"{opensearch_url}/{index}/_create/probe?require_alias=true"
        async with session.put(raw, json={"inference_id": "probe"}) as response:
            assert response.status == 404
        async with session.get(all_of_them) as response:
            assert await response.json() == {}

        with contextlib.suppress(EndpointNotFound):
            await write()

        found = await read_json(session, all_of_them)
        assert list(found) == [concrete]
        assert found[concrete]["mappings"] == INDEX_BODY["mappings"]
        assert found[concrete]["aliases"] == {index: {"is_hidden": True, "is_write_index": True}}
    assert store.stats.index_recreations == 3
