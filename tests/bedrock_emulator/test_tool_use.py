"""Tool use in Converse and ConverseStream through real aiobotocore clients.

The emulated model calls a tool when one is on offer and the user just asked something, with an
input built from the tool's schema; after the tool's result it answers in text quoting it. Usage
is deterministic, so these tests pin exact calls and token counts.
"""

from __future__ import annotations

import json

import pytest

from tests.bedrock_emulator.harness import CLAUDE, TITAN_TEXT, user

WEATHER = {
    "toolSpec": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "inputSchema": {
            "json": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "days": {"type": "integer"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["city", "unit"],
            }
        },
    }
}
TIME = {
    "toolSpec": {
        "name": "get_time",
        "description": "Current time in a timezone",
        "inputSchema": {"json": {"type": "object", "properties": {"zone": {"type": "string"}}}},
    }
}
TOOLS = {"tools": [TIME, WEATHER]}
QUESTION = user("What is the weather in Paris?")


async def test_converse_calls_the_best_matching_tool(bedrock):
    response = await bedrock.converse(modelId=CLAUDE, messages=QUESTION, toolConfig=TOOLS)
    assert response["stopReason"] == "tool_use"
    [block] = response["output"]["message"]["content"]
    use = block["toolUse"]
    assert use["name"] == "get_weather"
    assert use["input"] == {"city": "paris", "unit": "celsius"}
    assert use["toolUseId"].startswith("tooluse_") and len(use["toolUseId"]) == 30
    assert response["usage"] == {"inputTokens": 133, "outputTokens": 17, "totalTokens": 150}
    again = await bedrock.converse(modelId=CLAUDE, messages=QUESTION, toolConfig=TOOLS)
    assert again["output"] == response["output"]


async def test_tool_choice_names_the_tool(bedrock):
    config = {**TOOLS, "toolChoice": {"tool": {"name": "get_time"}}}
    response = await bedrock.converse(modelId=CLAUDE, messages=QUESTION, toolConfig=config)
    use = response["output"]["message"]["content"][0]["toolUse"]
    assert use["name"] == "get_time" and use["input"] == {"zone": "paris"}


async def test_tool_result_turn_gets_a_text_answer(bedrock):
    first = await bedrock.converse(modelId=CLAUDE, messages=QUESTION, toolConfig=TOOLS)
    assistant = first["output"]["message"]
    use_id = assistant["content"][0]["toolUse"]["toolUseId"]
    result = {"toolResult": {"toolUseId": use_id, "content": [{"text": "18C, sunny"}]}}
    messages = [*QUESTION, assistant, {"role": "user", "content": [result]}]
    response = await bedrock.converse(modelId=CLAUDE, messages=messages, toolConfig=TOOLS)
    assert response["stopReason"] == "end_turn"
    text = response["output"]["message"]["content"][0]["text"]
    assert text == "Emulated anthropic reply from the tool result: 18C, sunny."


async def test_stream_sends_tool_use_start_and_partial_json(bedrock):
    response = await bedrock.converse_stream(modelId=CLAUDE, messages=QUESTION, toolConfig=TOOLS)
    events = [event async for event in response["stream"]]
    kinds = [next(iter(event)) for event in events]
    assert kinds[:2] == ["messageStart", "contentBlockStart"]
    assert kinds[-3:] == ["contentBlockStop", "messageStop", "metadata"]
    start = events[1]["contentBlockStart"]
    assert start["contentBlockIndex"] == 0
    assert start["start"]["toolUse"]["name"] == "get_weather"
    pieces = [e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in events[2:-3]]
    assert len(pieces) > 2 and all(len(piece) <= 8 for piece in pieces)
    assert json.loads("".join(pieces)) == {"city": "paris", "unit": "celsius"}
    assert events[-2] == {"messageStop": {"stopReason": "tool_use"}}
    assert events[-1]["metadata"]["usage"] == {
        "inputTokens": 133,
        "outputTokens": 17,
        "totalTokens": 150,
    }


@pytest.mark.parametrize(
    ("messages", "config", "message"),
    [
        (
            [*QUESTION, *user("and in Rome?")],
            None,
            "A conversation must alternate between user and assistant roles. Make sure the "
            "conversation alternates between user and assistant roles and try again.",
        ),
        (
            [
                *QUESTION,
                {"role": "assistant", "content": [{"text": "Let me check."}]},
                {
                    "role": "user",
                    "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "x"}]}}],
                },
            ],
            TOOLS,
            "The number of toolResult blocks at messages.2.content exceeds the number of toolUse "
            "blocks of previous turn.",
        ),
        (
            [{"role": "user", "content": []}],
            None,
            "The content field in the Message object at messages.0 is empty. Add a ContentBlock "
            "object to the content field and try again.",
        ),
        (
            user(" "),
            None,
            "The text field in the ContentBlock object at messages.0.content.0 is blank. Add text "
            "to the text field, and try again.",
        ),
        (
            [
                *QUESTION,
                {
                    "role": "assistant",
                    "content": [
                        {"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {}}}
                    ],
                },
            ],
            None,
            "The toolConfig field must be defined when using toolUse and toolResult content "
            "blocks.",
        ),
    ],
)
async def test_rejects_what_bedrock_rejects(bedrock, messages, config, message):
    extra = {"toolConfig": config} if config else {}
    for call in (bedrock.converse, bedrock.converse_stream):
        with pytest.raises(bedrock.exceptions.ValidationException) as raised:
            await call(modelId=CLAUDE, messages=messages, **extra)
        assert raised.value.response["Error"]["Message"] == message


async def test_model_without_tool_use_refuses_tools(bedrock):
    with pytest.raises(bedrock.exceptions.ValidationException) as raised:
        await bedrock.converse(modelId=TITAN_TEXT, messages=QUESTION, toolConfig=TOOLS)
    assert raised.value.response["Error"]["Message"] == "This model doesn't support tool use."
