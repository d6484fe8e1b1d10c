"""Faults queued through `/_emulator/faults`, observed through real aiobotocore clients."""

from __future__ import annotations

import asyncio
import json
import time

import botocore
import pytest
from aiohttp import web

from esproxy.bedrock_emulator import EmulatorSettings, create_emulator_app
from tests.bedrock_emulator.harness import CLAUDE, TITAN_TEXT, TITAN_V2, add_fault, control, user


async def call(client, model_id=CLAUDE):
    return await client.converse(modelId=model_id, messages=user("fault?"))


async def test_fault_fails_the_next_count_calls(emulator, bedrock):
    await add_fault(emulator, status=429, code="ThrottlingException", message="Slow down", count=2)
    for _ in range(2):
        with pytest.raises(bedrock.exceptions.ThrottlingException) as caught:
            await call(bedrock)
        assert caught.value.response["Error"]["Message"] == "Slow down"
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert (await call(bedrock))["stopReason"] == "end_turn"


async def test_fault_can_target_one_model(emulator, bedrock):
    await add_fault(emulator, code="ModelErrorException", status=424, model=TITAN_TEXT)
    await call(bedrock, CLAUDE)
    with pytest.raises(bedrock.exceptions.ModelErrorException):
        await call(bedrock, TITAN_TEXT)
    await call(bedrock, TITAN_TEXT)


async def test_fault_can_target_one_operation(emulator, bedrock):
    await add_fault(emulator, code="ServiceUnavailableException", operation="InvokeModel")
    await call(bedrock)
    with pytest.raises(bedrock.exceptions.ServiceUnavailableException) as caught:
        await bedrock.invoke_model(modelId=TITAN_V2, body=json.dumps({"inputText": "x"}))
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503


async def test_status_alone_picks_the_bedrock_code(emulator, bedrock):
    await add_fault(emulator, status=500)
    with pytest.raises(bedrock.exceptions.InternalServerException):
        await call(bedrock)


async def test_listing_and_clearing_faults(emulator, bedrock):
    body = await add_fault(emulator, code="AccessDeniedException", count=3, model=CLAUDE)
    assert body == {
        "faults": [
            {
                "code": "AccessDeniedException",
                "status": 403,
                "message": "You don't have access to the model with the specified model ID.",
                "count": 3,
                "model": CLAUDE,
            }
        ]
    }
    assert await control(emulator, "DELETE", "/_emulator/faults") == (200, {"faults": []})
    await call(bedrock)


@pytest.mark.parametrize(
    "spec", [{"count": 2}, {"code": "X", "count": 0}, {"code": "X", "colour": "red"}, [1]]
)
async def test_bad_fault_specs_are_refused(emulator, spec):
    status, body = await control(emulator, "POST", "/_emulator/faults", spec)
    assert status == 400
    assert body["error"]


async def test_hang_holds_the_call_until_the_client_gives_up(emulator, make_client):
    client = await make_client(emulator, config={"read_timeout": 0.3})
    await add_fault(emulator, code="Hang")
    with pytest.raises(botocore.exceptions.ReadTimeoutError):
        await call(client)
    assert (await call(client))["stopReason"] == "end_turn"


async def test_hang_with_a_limit_ends_in_a_model_timeout(emulator, bedrock):
    await add_fault(emulator, code="Hang", hang_ms=100)
    with pytest.raises(bedrock.exceptions.ModelTimeoutException):
        await call(bedrock)


async def test_hang_ms_alone_makes_a_slow_but_normal_call(emulator, bedrock):
    await add_fault(emulator, hang_ms=200)
    started = time.monotonic()
    await call(bedrock)
    assert time.monotonic() - started >= 0.2


async def test_hang_ends_when_the_client_leaves_without_handler_cancellation(make_client):
    # `esproxy serve --dev` runs the emulator in an AppRunner, which does not cancel handlers.
    runner = web.AppRunner(create_emulator_app(EmulatorSettings()), shutdown_timeout=30)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()

    class Server:
        def make_url(self, path):
            return f"http://127.0.0.1:{runner.addresses[0][1]}{path}"

    try:
        await add_fault(Server(), code="Hang")
        client = await make_client(Server(), config={"read_timeout": 0.2})
        with pytest.raises(botocore.exceptions.ReadTimeoutError):
            await call(client)
        await client.close()
    finally:
        started = time.monotonic()
        await asyncio.wait_for(runner.cleanup(), 10)
    assert time.monotonic() - started < 5


async def test_stream_fails_after_some_events(emulator, bedrock):
    await add_fault(emulator, code="ThrottlingException", message="Too many tokens", after_events=3)
    response = await bedrock.converse_stream(modelId=CLAUDE, messages=user("break"))
    events = []
    with pytest.raises(botocore.exceptions.EventStreamError) as caught:
        async for event in response["stream"]:
            events.append(event)
    assert [next(iter(event)) for event in events] == ["messageStart", *["contentBlockDelta"] * 2]
    assert caught.value.response["Error"] == {
        "Code": "throttlingException",
        "Message": "Too many tokens",
    }


async def test_stream_model_error_and_unmodelled_codes(emulator, bedrock):
    await add_fault(emulator, code="ModelStreamErrorException", after_events=0, status=500)
    await add_fault(emulator, code="WeirdFailure", message="odd", after_events=1)
    for expected in ("modelStreamErrorException", "WeirdFailure"):
        response = await bedrock.converse_stream(modelId=CLAUDE, messages=user("break"))
        with pytest.raises(botocore.exceptions.EventStreamError) as caught:
            async for _ in response["stream"]:
                pass
        assert caught.value.response["Error"]["Code"] == expected


async def test_stream_fault_leaves_other_operations_alone(emulator, bedrock):
    await add_fault(emulator, code="ThrottlingException", after_events=1)
    await call(bedrock)
    response = await bedrock.converse_stream(modelId=CLAUDE, messages=user("break"))
    with pytest.raises(botocore.exceptions.EventStreamError):
        async for _ in response["stream"]:
            pass
