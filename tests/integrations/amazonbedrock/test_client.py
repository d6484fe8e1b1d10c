"""BedrockClients against the bundled emulator over a real socket: caching and error translation."""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass, field

import pytest

from esproxy.bedrock_emulator import EmulatorSettings, create_emulator_app
from esproxy.errors import ProviderError, ProviderUnavailable
from esproxy.integrations.amazonbedrock.client import STATUS_BY_CODE, BedrockClients
from tests.emulator_control import add_fault, recorded

ACCESS_KEY = "AKIDCLIENTTEST"
SECRET_KEY = "client-test-secret"
TITAN = "amazon.titan-embed-text-v2:0"
CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
HELLO = {"messages": [{"role": "user", "content": [{"text": "Hi"}]}]}

# Every error code in bedrock-runtime-wire.md (§1.10 modelled exceptions and front-door codes,
# §3.2 authentication errors), the HTTP status Bedrock answers it with, and what we answer.
WIRE_CODES = [
    ("ValidationException", 400, 400),
    ("ServiceQuotaExceededException", 400, 429),
    ("AccessDeniedException", 403, 403),
    ("ResourceNotFoundException", 404, 404),
    ("ModelTimeoutException", 408, 408),
    ("ModelErrorException", 424, 424),
    ("ModelStreamErrorException", 424, 424),
    ("ThrottlingException", 429, 429),
    ("ModelNotReadyException", 429, 429),
    ("InternalServerException", 500, 500),
    ("ServiceUnavailableException", 503, 503),
    ("ConflictException", 400, 500),
    ("InvalidSignatureException", 403, 403),
    ("UnrecognizedClientException", 403, 403),
    ("ExpiredTokenException", 403, 403),
    ("MissingAuthenticationTokenException", 403, 403),
    ("IncompleteSignature", 400, 403),
    ("IncompleteSignatureException", 400, 403),
    ("InternalFailure", 500, 500),
    ("InvalidAction", 400, 500),
    ("InvalidClientTokenId", 403, 403),
    ("NotAuthorized", 400, 403),
    ("RequestExpired", 400, 403),
    ("ServiceUnavailable", 503, 503),
]
RETRY_LATER = {"ThrottlingException", "ModelNotReadyException", "ServiceQuotaExceededException"}


@dataclass(frozen=True)
class Keys:
    region: str = "us-east-1"
    access_key: str = ACCESS_KEY
    secret_key: str = field(default=SECRET_KEY, repr=False)


@pytest.fixture
async def emulator(aiohttp_server):
    return await aiohttp_server(
        create_emulator_app(EmulatorSettings(keys={ACCESS_KEY: SECRET_KEY}))
    )


@pytest.fixture
async def clients(emulator):
    clients = BedrockClients(endpoint_url=str(emulator.make_url("")).rstrip("/"))
    yield clients
    await clients.close()


def test_every_mapped_code_is_covered_by_the_wire_list():
    assert set(STATUS_BY_CODE) <= {code for code, _, _ in WIRE_CODES}


@pytest.mark.parametrize(("code", "wire_status", "status"), WIRE_CODES)
async def test_invoke_model_error_keeps_code_message_and_request_id(
    clients, emulator, code, wire_status, status
):
    await add_fault(emulator, code=code, status=wire_status, message=f"{code} happened")
    with pytest.raises(ProviderError) as caught:
        await clients.invoke_model(Keys(), TITAN, {"inputText": "hello"})
    error = caught.value
    assert (error.status, error.code, error.message) == (status, code, f"{code} happened")
    assert error.reason == f"AmazonBedrock invoke model failure: [{code} happened]"
    assert error.request_id
    if code in RETRY_LATER:
        assert error.headers == {"Retry-After": "1"}
    else:
        assert not error.headers


@pytest.mark.parametrize(("code", "wire_status", "status"), WIRE_CODES)
async def test_converse_error_uses_the_converse_reason(
    clients, emulator, code, wire_status, status
):
    await add_fault(emulator, code=code, status=wire_status, message="no")
    with pytest.raises(ProviderError) as caught:
        await clients.converse(Keys(), CLAUDE, HELLO)
    assert (caught.value.status, caught.value.code) == (status, code)
    assert caught.value.reason == "AmazonBedrock converse failure: [no]"


async def test_errors_are_not_retried_by_botocore(clients, emulator):
    await add_fault(emulator, code="ThrottlingException", count=1)
    with pytest.raises(ProviderError):
        await clients.invoke_model(Keys(), TITAN, {"inputText": "hello"})
    assert len(await recorded(emulator)) == 1
    await clients.invoke_model(Keys(), TITAN, {"inputText": "hello"})
    assert len(await recorded(emulator)) == 2


async def test_wrong_secret_is_a_signature_error(clients):
    with pytest.raises(ProviderError) as caught:
        await clients.invoke_model(Keys(secret_key="wrong"), TITAN, {"inputText": "hello"})
    assert (caught.value.status, caught.value.code) == (403, "InvalidSignatureException")
    assert "wrong" not in str(caught.value.to_body())


async def test_client_side_validation_answers_like_bedrock(clients, emulator):
    with pytest.raises(ProviderError) as caught:
        await clients.converse(Keys(), CLAUDE, {**HELLO, "inferenceConfig": {"maxTokens": 0}})
    assert (caught.value.status, caught.value.code) == (400, "ValidationException")
    assert await recorded(emulator) == []


async def test_calls_reach_the_emulator_signed(clients, emulator):
    body = await clients.invoke_model(Keys(), TITAN, {"inputText": "hello"})
    assert len(body["embedding"]) == 1024
    answer = await clients.converse(Keys(), CLAUDE, HELLO)
    assert answer["output"]["message"]["content"][0]["text"]
    assert [(r["operation"], r["signature_verified"]) for r in await recorded(emulator)] == [
        ("InvokeModel", True),
        ("Converse", True),
    ]


async def test_stream_yields_text_deltas(clients):
    deltas = [text async for text in clients.converse_stream(Keys(), CLAUDE, HELLO)]
    assert len(deltas) > 1
    assert all(isinstance(text, str) for text in deltas)


async def test_stream_error_before_events_uses_the_converse_reason(clients, emulator):
    await add_fault(emulator, code="AccessDeniedException", message="denied")
    with pytest.raises(ProviderError) as caught:
        [text async for text in clients.converse_stream(Keys(), CLAUDE, HELLO)]
    assert (caught.value.status, caught.value.reason) == (
        403,
        "AmazonBedrock converse failure: [denied]",
    )


async def test_stream_error_after_events_uses_the_streaming_reason(clients, emulator):
    await add_fault(emulator, code="ThrottlingException", message="slow down", after_events=2)
    received = []
    with pytest.raises(ProviderError) as caught:
        async for text in clients.converse_stream(Keys(), CLAUDE, HELLO):
            received.append(text)
    assert len(received) == 1  # messageStart, then one delta
    error = caught.value
    assert (error.status, error.code, error.message) == (429, "ThrottlingException", "slow down")
    assert error.reason == "AmazonBedrock StreamingChatProcessor failure: [slow down]"
    assert error.headers == {"Retry-After": "1"}


async def test_connection_refused_is_provider_unavailable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    clients = BedrockClients(endpoint_url=f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(ProviderUnavailable) as caught:
            await clients.invoke_model(Keys(), TITAN, {"inputText": "hello"})
        assert caught.value.reason == "Amazon Bedrock invoke model call failed"
        assert caught.value.status == 502
        assert caught.value.to_cause()["caused_by"]["type"] == "endpoint_connection_error"
        with pytest.raises(ProviderUnavailable, match="converse call failed"):
            await clients.converse(Keys(), CLAUDE, HELLO)
    finally:
        await clients.close()


async def test_read_timeout_is_provider_unavailable(emulator):
    await add_fault(emulator, hang_ms=2000)
    clients = BedrockClients(endpoint_url=str(emulator.make_url("")).rstrip("/"), read_timeout=0.2)
    try:
        with pytest.raises(ProviderUnavailable) as caught:
            await clients.converse(Keys(), CLAUDE, HELLO)
        assert caught.value.to_cause()["caused_by"]["type"] == "read_timeout_error"
    finally:
        await clients.close()


async def test_clients_are_cached_per_credentials(clients):
    first = await clients.client_for(Keys())
    assert await clients.client_for(Keys()) is first
    assert await clients.client_for(Keys(secret_key="other")) is not first
    assert await clients.client_for(Keys(region="eu-west-1")) is not first


async def test_concurrent_first_use_opens_one_client(clients):
    opened = await asyncio.gather(*(clients.client_for(Keys()) for _ in range(20)))
    assert all(client is opened[0] for client in opened)


async def test_a_cancelled_caller_leaves_the_client_usable(clients):
    waiting = asyncio.create_task(clients.client_for(Keys()))
    await asyncio.sleep(0)
    waiting.cancel()
    client = await clients.client_for(Keys())
    assert await clients.client_for(Keys()) is client


async def test_log_lines_name_the_call_but_never_the_keys(clients, emulator, caplog):
    caplog.set_level(logging.INFO, logger="esproxy.integrations.amazonbedrock.client")
    await clients.invoke_model(Keys(), TITAN, {"inputText": "hello"})
    await add_fault(emulator, code="ThrottlingException")
    with pytest.raises(ProviderError):
        await clients.converse(Keys(), CLAUDE, HELLO)
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith(f"bedrock InvokeModel model={TITAN} status=200 duration_ms=")
    assert lines[1].startswith(f"bedrock Converse model={CLAUDE} status=429 duration_ms=")
    assert not any(ACCESS_KEY in line or SECRET_KEY in line for line in caplog.text.splitlines())
