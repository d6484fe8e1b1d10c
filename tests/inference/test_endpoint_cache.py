"""Parsed endpoints kept between calls: a changed record is never served from its old parse."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from typing import Any

import pytest

from esproxy.app_keys import INFERENCE_SERVICE
from esproxy.bedrock_emulator import EmulatorSettings, create_emulator_app
from esproxy.errors import EndpointModified, EndpointNotFound
from esproxy.inference.endpoint_cache import MAX_ENTRIES, Parsed, ParsedEndpoints
from esproxy.inference.models import EndpointConfig, StoredEndpoint, TaskType
from esproxy.inference.rate_limits import RateLimiters
from esproxy.inference.service import InferenceService
from esproxy.integrations.amazonbedrock.client import BedrockClients
from esproxy.integrations.amazonbedrock.integration import AmazonBedrockIntegration
from esproxy.integrations.registry import IntegrationRegistry
from esproxy.sealed_records import seal_record
from esproxy.secret_cipher import SecretCipher, SecretKey
from esproxy.storage.base import EndpointRecord
from esproxy.storage.cache import CachedEndpointStore
from esproxy.storage.memory import InMemoryEndpointStore
from tests.fake_clock import Clock
from tests.user_examples import JSON_HEADERS, TITAN_COMPLETION

PATH = "/_inference/completion/chat"
OLD_KEYS = {"access_key": "<aws_access_key>", "secret_key": "<aws_secret_key>"}
NEW_KEYS = {"access_key": "AKIDNEW", "secret_key": "new-secret"}
TTL = 5.0


@pytest.fixture
async def emulator(aiohttp_server):
    """This module's emulator also knows NEW_KEYS, to rotate to."""
    keys = {pair["access_key"]: pair["secret_key"] for pair in (OLD_KEYS, NEW_KEYS)}
    return await aiohttp_server(create_emulator_app(EmulatorSettings(keys=keys)))


def completion(keys: dict[str, str] = OLD_KEYS, **task_settings: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        **TITAN_COMPLETION,
        "service_settings": {**TITAN_COMPLETION["service_settings"], **keys},
    }
    if task_settings:
        body["task_settings"] = task_settings
    return body


async def put(client, path, body):
    response = await client.put(path, data=json.dumps(body), headers=JSON_HEADERS)
    assert response.status == 200, await response.text()


async def converse(client, emulator_calls) -> dict[str, Any]:
    """POST one completion through `client`; the Converse call the emulator received for it."""
    response = await client.post(PATH, data='{"input": "x"}', headers=JSON_HEADERS)
    assert response.status == 200, await response.text()
    call: dict[str, Any] = [c for c in await emulator_calls() if c["operation"] == "Converse"][-1]
    return call


def temperature(call: dict[str, Any]) -> float | None:
    return call["body"].get("inferenceConfig", {}).get("temperature")


async def test_update_is_seen_by_the_next_call(proxy, emulator_calls):
    await put(proxy, PATH, completion())
    assert (await converse(proxy, emulator_calls))["access_key"] == OLD_KEYS["access_key"]
    service = proxy.server.app[INFERENCE_SERVICE]
    assert await service.load_endpoint("chat") is await service.load_endpoint("chat")

    await put(proxy, PATH + "/_update", {"service_settings": NEW_KEYS})
    assert (await converse(proxy, emulator_calls))["access_key"] == "AKIDNEW"
    await put(proxy, "/_inference/chat/_update", {"task_settings": {"temperature": 0.5}})
    call = await converse(proxy, emulator_calls)
    assert (call["access_key"], temperature(call)) == ("AKIDNEW", 0.5)


async def test_put_after_delete_is_seen_by_the_next_call(proxy, emulator_calls):
    await put(proxy, PATH, completion())
    assert (await converse(proxy, emulator_calls))["access_key"] == OLD_KEYS["access_key"]
    assert (await proxy.delete("/_inference/chat")).status == 200
    gone = await proxy.post(PATH, data='{"input": "x"}', headers=JSON_HEADERS)
    assert gone.status == 404

    await put(proxy, PATH, completion(NEW_KEYS, temperature=0.25))
    call = await converse(proxy, emulator_calls)
    assert (call["access_key"], temperature(call)) == ("AKIDNEW", 0.25)


async def test_writes_of_another_instance_sharing_the_data_dir(
    start_proxy, settings_for, tmp_path, emulator_calls
):
    shared = tmp_path / "shared"
    writer = await start_proxy(settings_for(shared))
    # No store TTL: the reader's next read returns what the writer wrote.
    reader = await start_proxy(settings_for(shared, ESPROXY_STORAGE_CACHE_SECONDS="0"))
    await put(writer, PATH, completion())
    assert (await converse(reader, emulator_calls))["access_key"] == OLD_KEYS["access_key"]

    await put(writer, PATH + "/_update", {"service_settings": NEW_KEYS})
    assert (await converse(reader, emulator_calls))["access_key"] == "AKIDNEW"

    assert (await writer.delete("/_inference/chat")).status == 200
    gone = await reader.post(PATH, data='{"input": "x"}', headers=JSON_HEADERS)
    assert gone.status == 404
    await put(writer, PATH, completion(OLD_KEYS, temperature=0.75))
    call = await converse(reader, emulator_calls)
    assert (call["access_key"], temperature(call)) == (OLD_KEYS["access_key"], 0.75)


@pytest.fixture
async def parts():
    """A service over a TTL-cached store, with the backend and cipher to write records around it."""
    backend = InMemoryEndpointStore()
    clock = Clock()
    cipher = SecretCipher(SecretKey(os.urandom(32)))
    # Never opened: loading an endpoint makes no Bedrock call.
    clients = BedrockClients(endpoint_url="http://127.0.0.1:1")
    registry = IntegrationRegistry([AmazonBedrockIntegration(clients)])
    store = CachedEndpointStore(backend, ttl_seconds=TTL, clock=clock)
    service = InferenceService(store, registry, cipher, RateLimiters())
    yield service, backend, cipher, clock
    await clients.close()


def stored(cipher: SecretCipher, inference_id: str, keys: dict[str, str]) -> EndpointRecord:
    config = EndpointConfig(
        inference_id=inference_id,
        task_type=TaskType.COMPLETION,
        service="amazonbedrock",
        service_settings={
            "region": "us-east-1",
            "model": "amazon.titan-text-premier-v1:0",
            "provider": "amazontitan",
            "rate_limit": {"requests_per_minute": 240},
        },
    )
    return seal_record(cipher, EndpointRecord(inference_id, config.to_dict(), {}), keys)


async def test_a_record_changed_in_the_store_is_used_once_the_store_returns_it(parts):
    service, backend, cipher, clock = parts
    await backend.create(stored(cipher, "chat", OLD_KEYS))
    first = await service.load_endpoint("chat")
    assert first.secrets == OLD_KEYS

    # Rewritten by someone else, as another esproxy would: new keys, so new sealed secrets.
    record = stored(cipher, "chat", NEW_KEYS)
    await backend.replace(record)
    # Until its TTL runs out the store returns the old record, and the old parse serves it.
    assert await service.load_endpoint("chat") is first
    clock.now += TTL
    second = await service.load_endpoint("chat")
    assert second.secrets == NEW_KEYS

    # Edited in place with the sealed secrets kept: the old parse is not used for it, and the
    # edit, made outside esproxy, fails authentication.
    settings = {**record.config["service_settings"], "rate_limit": {"requests_per_minute": 7}}
    await backend.replace(replace(record, config={**record.config, "service_settings": settings}))
    clock.now += TTL
    with pytest.raises(EndpointModified, match=r"\[chat\] was modified outside esproxy"):
        await service.load_endpoint("chat")

    await backend.delete("chat")
    clock.now += TTL
    with pytest.raises(EndpointNotFound):
        await service.load_endpoint("chat")
    await backend.create(stored(cipher, "chat", OLD_KEYS))
    clock.now += TTL
    assert (await service.load_endpoint("chat")).secrets == OLD_KEYS


async def test_the_service_keeps_at_most_max_entries_parsed(parts):
    service, backend, cipher, _ = parts
    ids = [f"e{i}" for i in range(MAX_ENTRIES + 1)]
    for inference_id in ids:
        await backend.create(stored(cipher, inference_id, OLD_KEYS))
    loaded = {inference_id: await service.load_endpoint(inference_id) for inference_id in ids}
    # The first was the least recently used when the last came in: parsed again, not kept.
    assert await service.load_endpoint(ids[0]) is not loaded[ids[0]]
    assert await service.load_endpoint(ids[-1]) is loaded[ids[-1]]


def endpoint_for(record: EndpointRecord) -> StoredEndpoint:
    return StoredEndpoint(EndpointConfig.from_dict(record.config), secrets={"secret_key": "s3cr3t"})


def test_parsed_endpoints_drop_the_least_recently_used_and_hide_secrets():
    cipher = SecretCipher(SecretKey(os.urandom(32)))
    cache = ParsedEndpoints(max_entries=3)
    records = {name: stored(cipher, name, OLD_KEYS) for name in "abcd"}
    endpoints = {name: endpoint_for(record) for name, record in records.items()}
    for name in "abc":
        cache.put(name, records[name], endpoints[name])
    assert cache.get("a", records["a"]) is endpoints["a"]  # now b is the least recently used
    cache.put("d", records["d"], endpoints["d"])
    assert len(cache) == 3
    assert cache.get("b", records["b"]) is None
    assert [cache.get(n, records[n]) for n in "acd"] == [endpoints[n] for n in "acd"]
    # Another version of a kept id misses, and replaces the entry rather than adding one.
    newer = stored(cipher, "a", NEW_KEYS)
    assert cache.get("a", newer) is None
    cache.put("a", newer, endpoint_for(newer))
    assert len(cache) == 3
    assert cache.get("a", records["a"]) is None
    cache.forget("a")
    assert len(cache) == 2

    shown = repr(cache) + repr(Parsed(records["c"], endpoints["c"]))
    assert "s3cr3t" not in shown
    assert records["c"].sealed_secrets not in shown
