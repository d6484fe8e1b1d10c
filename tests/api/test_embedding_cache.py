"""The embedding cache over HTTP, counted at the emulator's request log."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from esproxy.app_keys import EMBEDDING_CACHE
from esproxy.authorization.api_keys import generate_api_key, hash_api_key
from tests.user_examples import JSON_HEADERS

KEYS = {
    "access_key": "<aws_access_key>",
    "secret_key": "<aws_secret_key>",
    "region": "us-east-1",
    # Titan makes a call per input: ES's default 240 a minute would pace these tests.
    "rate_limit": {"requests_per_minute": 1_000_000},
}
TITAN = {"provider": "amazontitan", "model": "amazon.titan-embed-text-v2:0"}
COHERE = {"provider": "cohere", "model": "cohere.embed-english-v3"}
READINESS_CACHE = 1.05
TEXTS = [f"chunk {i} of the corpus about topic {i % 7}" for i in range(96)]


async def put(proxy, inference_id, task_type="text_embedding", task_settings=None, **service):
    body = {"service": "amazonbedrock", "service_settings": {**KEYS, **service}}
    if task_settings:
        body["task_settings"] = task_settings
    response = await proxy.put(
        f"/_inference/{task_type}/{inference_id}", data=json.dumps(body), headers=JSON_HEADERS
    )
    assert response.status == 200, await response.text()


async def post_raw(proxy, inference_id, texts, **extra):
    """The answer's bytes, exactly as sent."""
    response = await proxy.post(
        f"/_inference/{inference_id}",
        data=json.dumps({"input": texts, **extra}),
        headers=JSON_HEADERS,
    )
    body = await response.read()
    assert response.status == 200, body
    return body


def invocations(calls):
    return [call["body"] for call in calls if call["operation"] == "InvokeModel"]


@pytest.fixture
def count_calls(emulator_calls):
    """InvokeModel calls since the last time it was asked (the PUT probes included)."""
    seen = 0

    async def count():
        nonlocal seen
        calls = invocations(await emulator_calls())
        new, seen = calls[seen:], len(calls)
        return new

    return count


async def stats(proxy):
    await asyncio.sleep(READINESS_CACHE)  # /_esproxy/ready reuses a report for a second
    body = await (await proxy.get("/_esproxy/ready")).json()
    return body["checks"]["embedding_cache"]


@pytest.mark.parametrize(
    "service",
    [TITAN, COHERE, {**COHERE, "embedding_type": "int8"}, {**TITAN, "embedding_type": "binary"}],
)
async def test_cached_answers_are_byte_identical_to_uncached_ones(proxy, count_calls, service):
    await put(proxy, "e", **service)
    await count_calls()
    texts = TEXTS[:8]
    uncached = await post_raw(proxy, "e", texts, task_settings={"cache": False})
    first = await post_raw(proxy, "e", texts)
    cached = await post_raw(proxy, "e", texts)
    assert uncached == first == cached
    sent = await count_calls()
    per_request = 8 if service["provider"] == "amazontitan" else 1
    assert len(sent) == 2 * per_request  # the uncached call, then the first cached one; not a third


async def test_cohere_partial_hits_send_only_the_misses_in_one_call(proxy, count_calls):
    await put(proxy, "cohere", **COHERE)
    cached = TEXTS[::3][:30]  # 30 texts spread over the request
    await post_raw(proxy, "cohere", cached)
    await count_calls()
    answer = await post_raw(proxy, "cohere", TEXTS)
    sent = await count_calls()
    assert len(sent) == 1
    assert sent[0]["texts"] == [t for t in TEXTS if t not in cached]
    assert len(sent[0]["texts"]) == 66
    assert answer == await post_raw(proxy, "cohere", TEXTS, task_settings={"cache": False})


async def test_titan_partial_hits_make_one_call_per_miss(proxy, count_calls):
    await put(proxy, "titan", **TITAN)
    await post_raw(proxy, "titan", TEXTS[:30])
    await count_calls()
    answer = await post_raw(proxy, "titan", TEXTS)
    sent = await count_calls()
    assert sorted(body["inputText"] for body in sent) == sorted(TEXTS[30:])
    assert answer == await post_raw(proxy, "titan", TEXTS, task_settings={"cache": False})


async def test_equal_texts_in_one_request_are_sent_once(proxy, count_calls):
    await put(proxy, "cohere", **COHERE)
    await count_calls()
    texts = ["same", "other", "same", "same"]
    answer = json.loads(await post_raw(proxy, "cohere", texts))["text_embedding"]
    assert (await count_calls())[0]["texts"] == ["same", "other"]
    assert answer[0] == answer[2] == answer[3] != answer[1]


async def test_stats_count_hits_misses_saved_calls_and_tokens(proxy, count_calls):
    await put(proxy, "titan", **TITAN)
    await post_raw(proxy, "titan", ["one two three", "four five"])
    await post_raw(proxy, "titan", ["one two three", "six"])
    numbers = await stats(proxy)
    assert (numbers["hits"], numbers["misses"]) == (1, 3)
    assert numbers["saved_bedrock_calls"] == 1
    assert numbers["saved_input_tokens"] == 3  # Titan's own count for "one two three"
    assert numbers["memory"]["entries"] == 3
    assert numbers["scope"] == "endpoint"


async def test_cache_false_per_request_and_per_endpoint(proxy, count_calls):
    await put(proxy, "off", task_settings={"cache": False}, **TITAN)
    await count_calls()
    await post_raw(proxy, "off", ["x"])
    await post_raw(proxy, "off", ["x"])
    assert len(await count_calls()) == 2
    # A request may turn it back on.
    await post_raw(proxy, "off", ["x"], task_settings={"cache": True})
    await post_raw(proxy, "off", ["x"], task_settings={"cache": True})
    assert len(await count_calls()) == 1


async def test_a_cache_setting_that_is_not_a_boolean_is_refused(proxy):
    await put(proxy, "titan", **TITAN)
    response = await proxy.post(
        "/_inference/titan",
        data=json.dumps({"input": "x", "task_settings": {"cache": "no"}}),
        headers=JSON_HEADERS,
    )
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["type"] == "validation_exception"
    assert error["reason"] == (
        "Validation Failed: 1: field [cache] is not of the expected type. The value [no] cannot "
        "be converted to a [Boolean];"
    )


async def test_completions_are_never_cached(proxy, emulator_calls):
    completion = {"provider": "anthropic", "model": "anthropic.claude-3-haiku-20240307-v1:0"}
    await put(proxy, "chat", "completion", **completion)
    for _ in range(2):
        await post_raw(proxy, "chat", "hello", task_settings={"cache": True})
    converse = [c for c in await emulator_calls() if c["operation"] == "Converse"]
    assert len(converse) == 3  # the PUT probe and both calls


async def test_endpoint_scope_keeps_endpoints_apart(proxy, count_calls):
    await put(proxy, "tenant-a", **TITAN)
    await put(proxy, "tenant-b", **TITAN)
    await count_calls()
    await post_raw(proxy, "tenant-a", ["secret text"])
    await post_raw(proxy, "tenant-b", ["secret text"])
    assert len(await count_calls()) == 2


async def test_model_scope_shares_between_endpoints_with_the_same_options(
    start_proxy, settings_for, count_calls
):
    proxy = await start_proxy(settings_for(ESPROXY_CACHE_SCOPE="model"))
    await put(proxy, "a", **TITAN)
    await put(proxy, "b", **TITAN)
    await put(proxy, "small", **TITAN, dimensions=256)
    await count_calls()
    first = await post_raw(proxy, "a", ["shared text"])
    assert await post_raw(proxy, "b", ["shared text"]) == first
    assert len(await count_calls()) == 1
    await post_raw(proxy, "small", ["shared text"])  # other options: another key space
    assert len(await count_calls()) == 1
    assert (await stats(proxy))["scope"] == "model"


async def test_input_type_and_truncation_are_part_of_the_key(proxy, count_calls):
    await put(proxy, "cohere", **COHERE)
    await count_calls()
    await post_raw(proxy, "cohere", ["query text"], input_type="search")
    await post_raw(proxy, "cohere", ["query text"], input_type="ingest")
    await post_raw(proxy, "cohere", ["query text"], task_settings={"truncate": "end"})
    await post_raw(proxy, "cohere", ["query text"], input_type="search")
    assert len(await count_calls()) == 3


async def test_update_that_changes_the_vectors_starts_a_new_key_space(proxy, count_calls):
    await put(proxy, "cohere", **COHERE)
    await post_raw(proxy, "cohere", ["text"])
    response = await proxy.put(
        "/_inference/cohere/_update",
        data=json.dumps({"task_settings": {"truncate": "start"}}),
        headers=JSON_HEADERS,
    )
    assert response.status == 200, await response.text()
    await count_calls()
    await post_raw(proxy, "cohere", ["text"])
    assert [body["texts"] for body in await count_calls()] == [["text"]]


async def test_clear_empties_the_cache_or_one_endpoint(proxy, count_calls):
    await put(proxy, "a", **TITAN)
    await put(proxy, "b", **TITAN)
    await post_raw(proxy, "a", ["x", "y"])
    await post_raw(proxy, "b", ["x"])
    response = await proxy.post("/_esproxy/cache/a/_clear")
    assert response.status == 200
    assert await response.json() == {
        "acknowledged": True,
        "inference_id": "a",
        "cleared": {"memory": 2},
    }
    await count_calls()
    await post_raw(proxy, "a", ["x"])
    await post_raw(proxy, "b", ["x"])
    assert [body["inputText"] for body in await count_calls()] == ["x"]
    response = await proxy.post("/_esproxy/cache/_clear")
    assert await response.json() == {"acknowledged": True, "cleared": {"memory": 2}}
    assert (await stats(proxy))["memory"] == {
        "entries": 0,
        "bytes": 0,
        "limit_bytes": 64 * 1024 * 1024,
    }


async def test_a_deleted_endpoint_leaves_nothing_for_its_successor(proxy, count_calls):
    await put(proxy, "e", **TITAN)
    await post_raw(proxy, "e", ["private"])
    assert (await proxy.delete("/_inference/e")).status == 200
    await put(proxy, "e", **TITAN)
    await count_calls()
    await post_raw(proxy, "e", ["private"])
    assert len(await count_calls()) == 1


async def test_memory_stays_within_its_bound_under_unique_texts(
    start_proxy, settings_for, count_calls
):
    limit = 100_000
    proxy = await start_proxy(settings_for(ESPROXY_CACHE_MEMORY_BYTES=str(limit)))
    await put(proxy, "e", **TITAN, dimensions=256)
    cache = proxy.server.app[EMBEDDING_CACHE]
    for start in range(0, 600, 60):
        await post_raw(proxy, "e", [f"unique text number {n}" for n in range(start, start + 60)])
        assert cache.memory.used_bytes <= limit
    memory = (await stats(proxy))["memory"]
    assert memory["bytes"] <= limit
    # 1 KiB of float32 plus its JSON text (short here: the emulator's vectors are mostly 0.0)
    # per 256-dimension vector: about 40 fit, and far fewer than the 600 texts sent.
    assert 20 < memory["entries"] < 60
    await count_calls()
    await post_raw(proxy, "e", ["unique text number 599", "unique text number 0"])  # newest, oldest
    assert [body["inputText"] for body in await count_calls()] == ["unique text number 0"]


@pytest.mark.parametrize(
    ("query", "start"),
    [
        ("?pretty", b'{\n  "text_embedding_bytes" : ['),
        ("?format=yaml", b"---\ntext_embedding_bytes:"),
        ("?filter_path=text_embedding_bytes.embedding", b'{"text_embedding_bytes":[{"embedding"'),
        ("?filter_path=nothing", b"{}"),
    ],
)
async def test_rendering_options_on_cached_answers_match_uncached_ones(proxy, query, start):
    await put(proxy, "e", **COHERE, embedding_type="int8")
    answers = []
    for settings in ({"cache": False}, {}, {}):
        response = await proxy.post(
            f"/_inference/e{query}",
            data=json.dumps({"input": TEXTS[:3], "task_settings": settings}),
            headers=JSON_HEADERS,
        )
        assert response.status == 200
        answers.append(await response.read())
    assert answers[0] == answers[1] == answers[2]
    assert answers[0].startswith(start)


async def test_clearing_needs_the_same_rights_as_managing_endpoints(start_proxy, settings_for):
    key = generate_api_key()
    proxy = await start_proxy(settings_for(ESPROXY_AUTH_API_KEYS=hash_api_key(key)))
    for path in ("/_esproxy/cache/_clear", "/_esproxy/cache/e/_clear"):
        refused = await proxy.post(path)
        assert refused.status == 401
        assert (await refused.json())["error"]["type"] == "security_exception"
        wrong = await proxy.post(path, headers={"Authorization": f"ApiKey {generate_api_key()}"})
        assert wrong.status == 401
        allowed = await proxy.post(path, headers={"Authorization": f"ApiKey {key}"})
        assert allowed.status == 200


async def slow_next_call(emulator, hang_ms=400):
    async with aiohttp.ClientSession() as session:
        fault = {"operation": "InvokeModel", "hang_ms": hang_ms, "count": 1}
        async with session.post(emulator.make_url("/_emulator/faults"), json=fault) as response:
            assert response.status == 200, await response.text()


async def test_concurrent_requests_for_the_same_texts_share_one_call(proxy, emulator, count_calls):
    await put(proxy, "cohere", **COHERE)
    await count_calls()
    await slow_next_call(emulator)
    texts = TEXTS[:10]
    answers = await asyncio.gather(
        post_raw(proxy, "cohere", texts),
        post_raw(proxy, "cohere", [*texts[5:], "one more"]),
        post_raw(proxy, "cohere", texts),
    )
    sent = [body["texts"] for body in await count_calls()]
    assert sorted(map(len, sent)) == [1, 10]  # the ten once, and the one the others lacked
    assert (
        answers[0]
        == answers[2]
        == await post_raw(proxy, "cohere", texts, task_settings={"cache": False})
    )


async def test_a_failed_call_leaves_the_waiting_requests_to_fetch_for_themselves(
    proxy, emulator, count_calls
):
    await put(proxy, "cohere", **COHERE)
    await count_calls()
    async with aiohttp.ClientSession() as session:
        fault = {
            "operation": "InvokeModel",
            "hang_ms": 300,
            "code": "ValidationException",
            "status": 400,
            "message": "first call fails",
            "count": 1,
        }
        async with session.post(emulator.make_url("/_emulator/faults"), json=fault) as response:
            assert response.status == 200, await response.text()
    first = proxy.post(
        "/_inference/cohere", data=json.dumps({"input": ["a", "b"]}), headers=JSON_HEADERS
    )
    failed, answer = await asyncio.gather(first, post_raw(proxy, "cohere", ["a", "b"]))
    assert failed.status == 400
    assert len(json.loads(answer)["text_embedding"]) == 2
    assert len(await count_calls()) == 2


async def test_the_numbers_are_in_the_metrics(proxy):
    await put(proxy, "titan", **TITAN)
    await post_raw(proxy, "titan", ["one two three", "four five"])
    await post_raw(proxy, "titan", ["one two three", "six"])
    response = await proxy.get("/_esproxy/metrics")
    assert response.status == 200
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(await response.text())
        for sample in family.samples
    }
    assert samples["esproxy_embedding_cache_hits_total"] == 1
    assert samples["esproxy_embedding_cache_misses_total"] == 3
    assert samples["esproxy_embedding_cache_saved_bedrock_calls_total"] == 1
    assert samples["esproxy_embedding_cache_saved_input_tokens_total"] == 3
    assert samples["esproxy_embedding_cache_memory_entries"] == 3
    assert samples["esproxy_embedding_cache_memory_bytes"] > 0
