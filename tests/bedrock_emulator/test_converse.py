"""Converse through real aiobotocore clients: answers, budgets, usage, validation, model ids."""

from __future__ import annotations

import pytest

from tests.bedrock_emulator.harness import CLAUDE, TITAN_TEXT, TITAN_V2, user

CHAT_MODELS = [
    TITAN_TEXT,
    CLAUDE,
    "ai21.jamba-1-5-large-v1:0",
    "cohere.command-r-plus-v1:0",
    "meta.llama3-8b-instruct-v1:0",
    "mistral.mistral-large-2402-v1:0",
    "us.anthropic.claude-3-haiku-20240307-v1:0",
    "amazon.nova-pro-v1:0",
    "anthropic.claude-v2:0:100k",
    "arn:aws:bedrock:us-east-1::foundation-model/meta.llama3-8b-instruct-v1:0",
    "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0",
]


async def answer(client, text, model_id=CLAUDE, **request):
    return await client.converse(modelId=model_id, messages=user(text), **request)


@pytest.mark.parametrize("model_id", CHAT_MODELS)
async def test_every_provider_answers(bedrock, model_id):
    response = await answer(bedrock, "What is Elastic?", model_id)
    message = response["output"]["message"]
    assert message["role"] == "assistant"
    assert "what is elastic" in message["content"][0]["text"]
    assert response["stopReason"] == "end_turn"
    usage = response["usage"]
    assert usage["inputTokens"] == 4
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]
    assert isinstance(response["metrics"]["latencyMs"], int)


async def test_answers_are_deterministic_and_follow_the_input(bedrock):
    first = await answer(bedrock, "Tell me about shards")
    again = await answer(bedrock, "Tell me about shards")
    other = await answer(bedrock, "Tell me about replicas")
    text = first["output"]["message"]["content"][0]["text"]
    assert text == again["output"]["message"]["content"][0]["text"]
    assert text != other["output"]["message"]["content"][0]["text"]


async def test_max_tokens_cuts_the_answer(bedrock):
    full = await answer(bedrock, "Explain vector search")
    cut = await answer(bedrock, "Explain vector search", inferenceConfig={"maxTokens": 5})
    assert cut["stopReason"] == "max_tokens"
    assert cut["usage"]["outputTokens"] == 5
    assert full["usage"]["outputTokens"] > 5
    cut_text = cut["output"]["message"]["content"][0]["text"]
    assert full["output"]["message"]["content"][0]["text"].startswith(cut_text)


async def test_stop_sequence_ends_the_answer(bedrock):
    response = await answer(bedrock, "hello", inferenceConfig={"stopSequences": ["reply"]})
    assert response["stopReason"] == "stop_sequence"
    assert response["output"]["message"]["content"][0]["text"] == "Emulated anthropic "


async def test_system_and_history_count_as_input(bedrock):
    response = await bedrock.converse(
        modelId=CLAUDE,
        system=[{"text": "Be brief."}],
        messages=[
            *user("one"),
            {"role": "assistant", "content": [{"text": "two"}]},
            *user("three"),
        ],
    )
    assert response["usage"]["inputTokens"] == 6
    assert "three" in response["output"]["message"]["content"][0]["text"]


async def test_latency_knob_delays_the_answer(start_emulator, make_client):
    client = await make_client(await start_emulator(latency_ms=150))
    response = await answer(client, "slow")
    assert response["metrics"]["latencyMs"] >= 150


async def test_unknown_model_id_is_invalid(bedrock):
    with pytest.raises(bedrock.exceptions.ValidationException) as caught:
        await answer(bedrock, "hi", "openai.gpt-9")
    assert caught.value.response["Error"]["Message"] == "The provided model identifier is invalid."


async def test_malformed_model_id_fails_the_pattern(bedrock):
    with pytest.raises(bedrock.exceptions.ValidationException) as caught:
        await answer(bedrock, "hi", "foo bar")
    message = caught.value.response["Error"]["Message"]
    assert message.startswith(
        "1 validation error detected: Value 'foo bar' at 'modelId' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: (arn:aws"
    )


async def test_embedding_model_is_refused(bedrock):
    with pytest.raises(bedrock.exceptions.ValidationException) as caught:
        await answer(bedrock, "hi", TITAN_V2)
    assert "doesn't support the model that you provided" in str(caught.value)


async def test_out_of_range_parameters_are_constraint_errors(bedrock):
    with pytest.raises(bedrock.exceptions.ValidationException) as caught:
        await answer(bedrock, "hi", inferenceConfig={"temperature": 2.0, "topP": 1.5})
    assert caught.value.response["Error"]["Message"] == (
        "2 validation errors detected: Value '2.0' at 'inferenceConfig.temperature' failed to "
        "satisfy constraint: Member must have value less than or equal to 1; Value '1.5' at "
        "'inferenceConfig.topP' failed to satisfy constraint: Member must have value less than "
        "or equal to 1"
    )


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ([], "A conversation must start with a user message."),
        ([{"role": "assistant", "content": [{"text": "x"}]}], "must start with a user message"),
        ([*user("a"), *user("b")], "must alternate between user and assistant roles"),
        (
            [{"role": "user", "content": []}],
            "The content field in the Message object at messages.0",
        ),
    ],
)
async def test_conversation_rules(bedrock, messages, expected):
    with pytest.raises(bedrock.exceptions.ValidationException) as caught:
        await bedrock.converse(modelId=CLAUDE, messages=messages)
    assert expected in caught.value.response["Error"]["Message"]


async def test_top_k_goes_only_to_models_that_take_it(bedrock):
    extra = {"additionalModelRequestFields": {"top_k": 5}}
    assert (await answer(bedrock, "hi", CLAUDE, **extra))["stopReason"] == "end_turn"
    with pytest.raises(bedrock.exceptions.ValidationException) as caught:
        await answer(bedrock, "hi", "cohere.command-r-v1:0", **extra)
    assert caught.value.response["Error"]["Message"] == (
        "The model returned the following errors: Malformed input request: #: extraneous key "
        "[top_k] is not permitted, please reformat your input and try again."
    )


async def test_unimplemented_operation_is_unknown(bedrock):
    with pytest.raises(bedrock.exceptions.ClientError) as caught:
        await bedrock.count_tokens(modelId=CLAUDE, input={"converse": {"messages": user("x")}})
    error = caught.value.response
    assert error["Error"]["Code"] == "UnknownOperationException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 404
