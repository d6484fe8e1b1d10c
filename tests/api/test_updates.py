"""`_update` and `_services` over HTTP."""

from __future__ import annotations

import json

import pytest

from esproxy.bedrock_emulator import EmulatorSettings, create_emulator_app
from tests.user_examples import JSON_HEADERS, TITAN_COMPLETION

PATH = "/_inference/completion/chat"


@pytest.fixture
async def emulator(aiohttp_server):
    """This module's emulator knows a second key pair, to rotate to."""
    keys = {"<aws_access_key>": "<aws_secret_key>", "AKIDNEW": "new-secret"}
    return await aiohttp_server(create_emulator_app(EmulatorSettings(keys=keys)))


@pytest.fixture
async def chat(proxy):
    response = await proxy.put(PATH, data=json.dumps(TITAN_COMPLETION), headers=JSON_HEADERS)
    assert response.status == 200
    return proxy


async def update(proxy, path, body):
    return await proxy.put(path, data=json.dumps(body), headers=JSON_HEADERS)


async def test_update_rate_limit_and_task_settings(chat, emulator_calls):
    body = {
        "service_settings": {"rate_limit": {"requests_per_minute": 30}},
        "task_settings": {"temperature": 0.5},
    }
    for path in (PATH + "/_update", "/_inference/chat/_update"):
        response = await update(chat, path, body)
        assert response.status == 200, await response.text()
        config = await response.json()
        assert config["service_settings"]["rate_limit"] == {"requests_per_minute": 30}
        assert config["task_settings"] == {"temperature": 0.5}
    listed = await (await chat.get("/_inference/chat")).json()
    assert listed["endpoints"][0] == config
    await chat.post(PATH, data='{"input": "x"}', headers=JSON_HEADERS)
    converse = [c for c in await emulator_calls() if c["operation"] == "Converse"][-1]
    assert converse["body"]["inferenceConfig"]["temperature"] == 0.5


async def test_keys_rotate_as_a_pair(chat, emulator_calls):
    half = {"service_settings": {"access_key": "new-access"}}
    response = await update(chat, PATH + "/_update", half)
    assert response.status == 400
    assert "[secret_settings] does not contain the required setting [secret_key]" in (
        await response.text()
    )
    pair = {"service_settings": {"access_key": "AKIDNEW", "secret_key": "new-secret"}}
    response = await update(chat, PATH + "/_update", pair)
    assert response.status == 200
    assert "new-secret" not in await response.text()
    await chat.post(PATH, data='{"input": "x"}', headers=JSON_HEADERS)
    assert (await emulator_calls())[-1]["access_key"] == "AKIDNEW"


async def test_keys_bedrock_refuses_are_not_stored(chat, emulator_calls):
    pair = {"service_settings": {"access_key": "AKIDBAD", "secret_key": "wrong"}}
    response = await update(chat, PATH + "/_update", pair)
    assert response.status == 400
    body = await response.json()
    assert body["error"]["reason"] == (
        "Could not complete inference endpoint creation as validation call to service threw an "
        "exception."
    )
    await chat.post(PATH, data='{"input": "x"}', headers=JSON_HEADERS)
    assert (await emulator_calls())[-1]["access_key"] == "<aws_access_key>"


async def test_fields_that_cannot_change_are_rejected(chat):
    response = await update(chat, PATH + "/_update", {"service_settings": {"model": "other"}})
    assert response.status == 400
    assert (await chat.get("/_inference/chat")).status == 200
    stored = await (await chat.get("/_inference/chat")).json()
    assert stored["endpoints"][0]["service_settings"]["model"] == "amazon.titan-text-premier-v1:0"


async def test_update_of_unknown_endpoint_and_wrong_task_type(chat):
    missing = await update(chat, "/_inference/completion/nope/_update", {"task_settings": {}})
    assert missing.status == 404
    wrong = await update(
        chat, "/_inference/text_embedding/chat/_update", {"task_settings": {"temperature": 0.1}}
    )
    assert wrong.status == 400


async def test_services_describe_amazonbedrock(proxy):
    every = await (await proxy.get("/_inference/_services")).json()
    assert [s["service"] for s in every] == ["amazonbedrock"]
    assert set(every[0]["configurations"]) >= {"access_key", "secret_key", "region", "model"}
    embeddings = await (await proxy.get("/_inference/_services/text_embedding")).json()
    assert embeddings[0]["service"] == "amazonbedrock"
    assert await (await proxy.get("/_inference/_services/rerank")).json() == []
