"""AmazonBedrockIntegration against the emulator over a real socket, with SigV4 verified."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import pytest

from esproxy.bedrock_emulator import EmulatorSettings, create_emulator_app
from esproxy.errors import BadRequest, ProviderError
from esproxy.inference.models import (
    CompletionResult,
    EndpointConfig,
    InferenceRequest,
    StoredEndpoint,
    TaskType,
)
from esproxy.inference.rate_limits import RateLimit
from esproxy.integrations.amazonbedrock.client import BedrockClients
from esproxy.integrations.amazonbedrock.integration import AmazonBedrockIntegration
from tests.emulator_control import control, recorded

ACCESS_KEY = "AKIDINTEGRATION"
SECRET_KEY = "integration-secret"
TITAN_V2 = "amazon.titan-embed-text-v2:0"
COHERE = "cohere.embed-english-v3"
CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"


class CountingSlots:
    """A slot source that counts how often a slot was entered."""

    def __init__(self):
        self.entered = 0
        self.tokens = []

    @asynccontextmanager
    async def __call__(self, tokens=0):
        self.entered += 1
        self.tokens.append(tokens)
        yield


@pytest.fixture
async def emulator(aiohttp_server):
    return await aiohttp_server(
        create_emulator_app(EmulatorSettings(keys={ACCESS_KEY: SECRET_KEY}))
    )


@pytest.fixture
async def integration(emulator):
    clients = BedrockClients(endpoint_url=str(emulator.make_url("")).rstrip("/"))
    yield AmazonBedrockIntegration(clients)
    await clients.close()


def endpoint(integration, task_type, provider, model, task_settings=None, **service):
    body = {
        "service": "amazonbedrock",
        "service_settings": {
            "access_key": ACCESS_KEY,
            "secret_key": SECRET_KEY,
            "region": "us-east-1",
            "provider": provider,
            "model": model,
            **service,
        },
        "task_settings": task_settings or {},
    }
    return integration.parse_request(f"{provider}-{task_type}", TaskType(task_type), body)


async def embed(integration, stored, inputs, input_type=None, slots=None):
    request = InferenceRequest(inputs=inputs, input_type=input_type)
    result = await integration.infer(stored, request, slots or CountingSlots())
    return list(result.embeddings)


async def test_titan_inputs_each_get_their_own_call_and_keep_their_order(integration, emulator):
    titan = endpoint(integration, "text_embedding", "amazontitan", TITAN_V2)
    texts = ["first text about cats", "second text about dogs", "third text about fish"]
    slots = CountingSlots()
    vectors = await embed(integration, titan, texts, slots=slots)
    calls = await recorded(emulator)
    assert slots.entered == len(calls) == 3
    assert sorted(c["body"]["inputText"] for c in calls) == sorted(texts)
    assert all(c["signature_verified"] for c in calls)
    assert [len(v) for v in vectors] == [1024, 1024, 1024]
    for text, vector in zip(texts, vectors, strict=True):
        assert await embed(integration, titan, [text]) == [vector]


async def test_cohere_sends_batches_of_96_with_the_mapped_input_type(integration, emulator):
    cohere = endpoint(integration, "text_embedding", "cohere", COHERE)
    texts = [f"text number {i}" for i in range(100)]
    slots = CountingSlots()
    vectors = await embed(integration, cohere, texts, input_type="search", slots=slots)
    calls = await recorded(emulator)
    assert slots.entered == len(calls) == 2
    assert sorted(len(c["body"]["texts"]) for c in calls) == [4, 96]
    assert {c["body"]["input_type"] for c in calls} == {"search_query"}
    assert len(vectors) == 100
    again = await embed(integration, cohere, [texts[97]], input_type="search")
    assert float32_bytes(again) == float32_bytes([vectors[97]])


async def test_cohere_truncate_and_max_input_tokens_reach_the_request(integration, emulator):
    cohere = endpoint(
        integration,
        "text_embedding",
        "cohere",
        COHERE,
        task_settings={"truncate": "end"},
        max_input_tokens=2,
    )
    await embed(integration, cohere, ["abcdefghij"])
    [call] = await recorded(emulator)
    assert call["body"] == {"texts": ["abcdef"], "input_type": "search_document", "truncate": "END"}


async def test_one_failed_input_fails_the_whole_request(integration, emulator):
    titan = endpoint(integration, "text_embedding", "amazontitan", TITAN_V2)
    await control(
        emulator, "POST", "/_emulator/faults", {"code": "ThrottlingException", "count": 16}
    )
    with pytest.raises(ProviderError) as caught:
        await embed(integration, titan, ["a", "b", "c", "d"])
    assert (caught.value.status, caught.value.code) == (429, "ThrottlingException")


async def test_completion_sends_64_max_tokens_by_default(integration, emulator):
    claude = endpoint(integration, "completion", "anthropic", CLAUDE)
    slots = CountingSlots()
    result = await integration.infer(claude, InferenceRequest(inputs=["What is Elastic?"]), slots)
    assert isinstance(result, CompletionResult)
    assert len(result.results) == 1 and result.results[0]
    [call] = await recorded(emulator)
    assert slots.entered == 1
    assert call["operation"] == "Converse"
    assert call["body"] == {
        "messages": [{"role": "user", "content": [{"text": "What is Elastic?"}]}],
        "inferenceConfig": {"maxTokens": 64},
    }


async def test_completion_task_settings_and_request_overrides(integration, emulator):
    claude = endpoint(
        integration, "completion", "anthropic", CLAUDE, {"temperature": 0.5, "top_k": 0.1}
    )
    request = InferenceRequest(inputs=["one", "two"], task_settings={"max_new_tokens": 12})
    await integration.infer(claude, request, CountingSlots())
    [call] = await recorded(emulator)
    assert call["body"]["inferenceConfig"] == {"temperature": 0.5, "maxTokens": 12}
    assert call["body"]["additionalModelRequestFields"] == {"top_k": 50}
    assert call["body"]["messages"] == [
        {"role": "user", "content": [{"text": "one"}, {"text": "two"}]}
    ]


async def test_stream_yields_deltas_within_one_slot(integration, emulator):
    claude = endpoint(integration, "completion", "anthropic", CLAUDE)
    slots = CountingSlots()
    deltas = [
        text async for text in integration.stream(claude, InferenceRequest(inputs=["Hello"]), slots)
    ]
    assert deltas and all(isinstance(text, str) for text in deltas)
    assert slots.entered == 1
    assert [c["operation"] for c in await recorded(emulator)] == ["ConverseStream"]


async def test_probe_learns_titan_dimensions_and_similarity(integration, emulator):
    titan = endpoint(integration, "text_embedding", "amazontitan", TITAN_V2)
    slots = CountingSlots()
    learned = await integration.validate(titan, slots)
    settings = learned.config.service_settings
    assert (settings["dimensions"], settings["similarity"]) == (1024, "cosine")
    assert slots.entered == 1
    assert [c["body"] for c in await recorded(emulator)] == [{"inputText": "how big"}]


async def test_probe_for_cohere_sends_search_document(integration, emulator):
    cohere = endpoint(integration, "text_embedding", "cohere", COHERE)
    learned = await integration.validate(cohere, CountingSlots())
    assert learned.config.service_settings["similarity"] == "dot_product"
    assert learned.config.service_settings["dimensions"] == 1024
    assert [c["body"] for c in await recorded(emulator)] == [
        {"texts": ["how big"], "input_type": "search_document"}
    ]


async def test_probe_for_completion_makes_one_converse_call(integration, emulator):
    claude = endpoint(integration, "completion", "anthropic", CLAUDE)
    assert await integration.validate(claude, CountingSlots()) == claude
    assert [c["operation"] for c in await recorded(emulator)] == ["Converse"]


async def test_failed_probe_is_es_validation_error_caused_by_bedrock(integration, emulator):
    titan = endpoint(integration, "text_embedding", "amazontitan", TITAN_V2)
    await control(
        emulator,
        "POST",
        "/_emulator/faults",
        {"code": "AccessDeniedException", "message": "no access"},
    )
    with pytest.raises(BadRequest) as caught:
        await integration.validate(titan, CountingSlots())
    error = caught.value
    assert (error.status, error.error_type) == (400, "status_exception")
    assert error.reason == (
        "Could not complete inference endpoint creation as validation call to service threw an "
        "exception."
    )
    assert isinstance(error.caused_by, ProviderError)
    assert (
        error.to_cause()["caused_by"]["reason"] == "AmazonBedrock invoke model failure: [no access]"
    )


async def test_rate_limit_is_per_endpoint_and_needs_no_secrets(integration):
    titan = endpoint(
        integration,
        "text_embedding",
        "amazontitan",
        TITAN_V2,
        rate_limit={"requests_per_minute": 30},
    )
    public_only = StoredEndpoint(config=titan.config, secrets={})
    assert integration.rate_limit(public_only) == RateLimit(
        key="amazonbedrock/amazontitan-text_embedding", requests_per_minute=30
    )


async def test_unreadable_stored_record_is_rejected(integration):
    config = EndpointConfig(
        inference_id="broken",
        task_type=TaskType.COMPLETION,
        service="amazonbedrock",
        service_settings={"region": "us-east-1"},
    )
    with pytest.raises(BadRequest, match=r"Failed to parse stored model \[broken\]"):
        integration.parse_stored(StoredEndpoint(config=config, secrets={}))


async def test_unknown_input_type_is_refused(integration):
    titan = endpoint(integration, "text_embedding", "amazontitan", TITAN_V2)
    with pytest.raises(BadRequest):
        integration.validate_request(titan, InferenceRequest(inputs=["x"], input_type="bogus"))


def float32_bytes(vectors: Any) -> bytes:
    """Vectors as the float32 bytes they hold (Cohere's come as one 2-D array's rows)."""
    return np.asarray(vectors, dtype=np.float32).tobytes()
