"""The request log at `/_emulator/requests`: what each call was, as the emulator received it."""

from __future__ import annotations

import json
import time

import pytest

from tests.bedrock_emulator.harness import (
    ACCESS_KEY,
    CLAUDE,
    COHERE_EN,
    control,
    recorded,
    user,
)

PROFILE_ARN = (
    "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
    "us.anthropic.claude-3-haiku-20240307-v1:0"
)


async def test_calls_are_recorded_in_order_with_decoded_bodies(emulator, bedrock):
    body = {"texts": ["a"], "input_type": "search_query"}
    await bedrock.invoke_model(modelId=COHERE_EN, body=json.dumps(body))
    await bedrock.converse(modelId=CLAUDE, messages=user("one"))
    stream = await bedrock.converse_stream(modelId=PROFILE_ARN, messages=user("two"))
    async for _ in stream["stream"]:
        pass
    entries = await recorded(emulator)
    assert all(time.time() - 60 < entry.pop("at") <= time.time() for entry in entries)
    assert entries == [
        {
            "operation": "InvokeModel",
            "model": COHERE_EN,
            "body": body,
            "signature_verified": True,
            "access_key": ACCESS_KEY,
            "throttled": False,
        },
        {
            "operation": "Converse",
            "model": CLAUDE,
            "body": {"messages": user("one")},
            "signature_verified": True,
            "access_key": ACCESS_KEY,
            "throttled": False,
        },
        {
            "operation": "ConverseStream",
            "model": PROFILE_ARN,
            "body": {"messages": user("two")},
            "signature_verified": True,
            "access_key": ACCESS_KEY,
            "throttled": False,
        },
    ]


async def test_rejected_calls_are_recorded_too(emulator, bedrock):
    with pytest.raises(bedrock.exceptions.ValidationException):
        await bedrock.invoke_model(modelId="amazon.titan-embed-text-v2:0", body=b"not json")
    [entry] = await recorded(emulator)
    assert (entry["operation"], entry["body"]) == ("InvokeModel", "not json")


async def test_clearing_the_log(emulator, bedrock):
    await bedrock.converse(modelId=CLAUDE, messages=user("one"))
    cleared = {"requests": [], "counts": {}}
    assert await control(emulator, "DELETE", "/_emulator/requests") == (200, cleared)
    assert await recorded(emulator) == []


async def test_the_log_keeps_only_the_newest_calls(start_emulator, make_client):
    server = await start_emulator(max_recorded_requests=2)
    client = await make_client(server)
    for text in ("one", "two", "three"):
        await client.converse(modelId=CLAUDE, messages=user(text))
    assert [r["body"]["messages"] for r in await recorded(server)] == [user("two"), user("three")]


async def test_counts_go_on_past_the_kept_calls(start_emulator, make_client):
    server = await start_emulator(max_recorded_requests=2)
    client = await make_client(server)
    for text in ("one", "two", "three"):
        await client.converse(modelId=CLAUDE, messages=user(text))
    await client.invoke_model(modelId="amazon.titan-embed-text-v2:0", body=b'{"inputText": "x"}')
    _, body = await control(server, "GET", "/_emulator/requests")
    assert body["counts"] == {"Converse": 3, "InvokeModel": 1}
