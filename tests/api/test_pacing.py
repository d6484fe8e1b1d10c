"""Pacing seen over HTTP: an endpoint's calls reach Bedrock at its rate, a full queue answers 429
with Elasticsearch's text, token budgets refuse what could never fit, and /_esproxy/ready shows
each endpoint's pace. (The slot in inference/service.py doing nothing must fail these.)"""

from __future__ import annotations

import asyncio
import copy
import json

from tests.user_examples import JSON_HEADERS, TITAN_COMPLETION

COMPLETION = "/_inference/completion/paced"


def completion(**rate_limit):
    body = copy.deepcopy(TITAN_COMPLETION)
    body["service_settings"]["rate_limit"] = rate_limit
    return body


async def post(proxy, body):
    return await proxy.post(COMPLETION, data=json.dumps(body), headers=JSON_HEADERS)


async def test_calls_are_paced_and_a_full_queue_refuses_with_429(
    start_proxy, settings_for, emulator_calls
):
    proxy = await start_proxy(settings_for(ESPROXY_BEDROCK_QUEUE_CAPACITY="2"))
    put = await proxy.put(
        COMPLETION, data=json.dumps(completion(requests_per_minute=30)), headers=JSON_HEADERS
    )
    assert put.status == 200, await put.text()  # its probe call took this second's slot
    waiting = [asyncio.create_task(post(proxy, {"input": f"q{i}"})) for i in range(2)]
    for _ in range(300):  # until both wait in the endpoint's queue (the report is cached 1 s)
        limits = (await (await proxy.get("/_esproxy/ready")).json())["checks"]["limits"]
        if limits["endpoints"]["amazonbedrock/paced"]["waiting"] == 2:
            break
        await asyncio.sleep(0.01)
    refused = await post(proxy, {"input": "one too many"})
    assert refused.status == 429
    error = (await refused.json())["error"]
    assert error["type"] == "es_rejected_execution_exception"
    assert error["reason"] == (
        "Failed to execute task for inference id [paced] because the request service "
        "[amazonbedrock/paced] queue is full"
    )
    assert [(await answer).status for answer in waiting] == [200, 200]
    times = [call["at"] for call in await emulator_calls()]
    assert len(times) == 3  # the probe and the two waiters; the refused call never went out
    # 30 a minute: one every two seconds (the probe's call went out late: its client was new).
    assert times[2] - times[1] >= 1.9 and times[2] - times[0] >= 3.0, times


async def test_a_request_larger_than_a_minutes_tokens_is_refused_with_400(proxy, emulator_calls):
    body = completion(requests_per_minute=600, tokens_per_minute=3000)
    put = await proxy.put(COMPLETION, data=json.dumps(body), headers=JSON_HEADERS)
    assert put.status == 200, await put.text()
    shown = (await (await proxy.get("/_inference/paced")).json())["endpoints"][0]
    assert shown["service_settings"]["rate_limit"] == {
        "requests_per_minute": 600,
        "tokens_per_minute": 3000,
    }
    before = len(await emulator_calls())
    refused = await post(proxy, {"input": "words " * 2500})  # about 3,750 tokens
    assert refused.status == 400
    reason = (await refused.json())["error"]["reason"]
    assert "more than the [3000] tokens_per_minute of inference endpoint [paced]" in reason
    assert len(await emulator_calls()) == before


async def test_rate_limit_extensions_are_checked_like_elasticsearchs_own(proxy):
    bad = await proxy.put(
        COMPLETION, data=json.dumps(completion(adaptive="yes")), headers=JSON_HEADERS
    )
    assert bad.status == 400
    assert "[adaptive]" in (await bad.json())["error"]["reason"]
    negative = await proxy.put(
        COMPLETION, data=json.dumps(completion(tokens_per_minute=-5)), headers=JSON_HEADERS
    )
    assert negative.status == 400
    assert (
        "[tokens_per_minute] must be a positive long" in (await negative.json())["error"]["reason"]
    )
    unknown = await proxy.put(
        COMPLETION, data=json.dumps(completion(burst=3)), headers=JSON_HEADERS
    )
    assert unknown.status == 400
    assert (await unknown.json())["error"]["reason"] == (
        "Configuration contains settings [{burst=3}] unknown to the [amazon_bedrock] service"
    )


async def test_update_keeps_the_extensions_it_is_not_given(proxy):
    body = completion(requests_per_minute=100, adaptive=False, tokens_per_minute=5000)
    assert (await proxy.put(COMPLETION, data=json.dumps(body), headers=JSON_HEADERS)).status == 200
    update = {"service_settings": {"rate_limit": {"requests_per_minute": 50}}}
    updated = await proxy.put(
        "/_inference/paced/_update", data=json.dumps(update), headers=JSON_HEADERS
    )
    assert updated.status == 200, await updated.text()
    assert (await updated.json())["service_settings"]["rate_limit"] == {
        "requests_per_minute": 50,
        "adaptive": False,
        "tokens_per_minute": 5000,
    }


async def test_ready_shows_each_endpoints_pace(proxy):
    body = completion(requests_per_minute=90, adaptive=False)
    assert (await proxy.put(COMPLETION, data=json.dumps(body), headers=JSON_HEADERS)).status == 200
    limits = (await (await proxy.get("/_esproxy/ready")).json())["checks"]["limits"]
    assert limits["mode"] == "local"
    entry = limits["endpoints"]["amazonbedrock/paced"]
    assert entry["requests_per_minute"] == 90
    assert entry["pace_per_minute"] == 90
    assert entry["adaptive"] is False
    assert entry["succeeded_last_minute"] == 1
