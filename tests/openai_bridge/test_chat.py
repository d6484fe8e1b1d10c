"""The chat route through the official OpenAI SDK: plain answers, streams, and a whole tool loop."""

from __future__ import annotations

import json

import openai
import pytest

from tests.chat_examples import CHAT_ENDPOINT, QUESTION, WEATHER_TOOL
from tests.openai_bridge.conftest import COMPLETION_ID
from tests.user_examples import JSON_HEADERS

CHAT_ID = "assistant"


@pytest.fixture
async def sdk(bridged, base_url, api_key):
    response = await bridged.put(
        f"/_inference/chat_completion/{CHAT_ID}",
        data=json.dumps(CHAT_ENDPOINT),
        headers={**JSON_HEADERS, "Authorization": f"ApiKey {api_key}"},
    )
    assert response.status == 200, await response.text()
    async with openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0) as client:
        yield client


async def test_a_plain_answer(sdk):
    answer = await sdk.chat.completions.create(
        model=CHAT_ID, messages=[{"role": "user", "content": "Say hello"}]
    )
    assert answer.object == "chat.completion"
    assert answer.model == CHAT_ID
    [choice] = answer.choices
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant" and choice.message.content
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    assert isinstance(answer.created, int) and answer.created > 0


async def test_a_stream_matches_the_plain_answer(sdk):
    messages = [{"role": "user", "content": "Say hello"}]
    whole = await sdk.chat.completions.create(model=CHAT_ID, messages=messages)
    stream = await sdk.chat.completions.create(
        model=CHAT_ID, messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


async def test_a_whole_tool_loop(sdk, emulator_calls):
    messages = [QUESTION]
    first = await sdk.chat.completions.create(
        model=CHAT_ID, messages=messages, tools=[WEATHER_TOOL], tool_choice="auto"
    )
    [choice] = first.choices
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    assert arguments["city"]
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 21}'},
    ]
    second = await sdk.chat.completions.create(
        model=CHAT_ID, messages=messages, tools=[WEATHER_TOOL]
    )
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content
    sent = (await emulator_calls())[-1]["body"]
    assert sent["messages"][-1]["role"] == "user"
    assert sent["messages"][-1]["content"][0]["toolResult"]["toolUseId"] == call.id


async def test_a_streamed_tool_call_assembles_into_the_plain_one(sdk):
    stream = await sdk.chat.completions.create(
        model=CHAT_ID, messages=[QUESTION], tools=[WEATHER_TOOL], stream=True
    )
    name, arguments = None, ""
    async for chunk in stream:
        for delta_call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            name = delta_call.function.name or name
            arguments += delta_call.function.arguments or ""
    assert name == "get_weather"
    assert json.loads(arguments)["city"]


async def test_a_completion_endpoint_takes_one_user_message(sdk):
    answer = await sdk.chat.completions.create(
        model=COMPLETION_ID, messages=[{"role": "user", "content": "What is Elastic?"}]
    )
    assert answer.choices[0].message.content
    stream = await sdk.chat.completions.create(
        model=COMPLETION_ID,
        messages=[{"role": "user", "content": "What is Elastic?"}],
        stream=True,
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == answer.choices[0].message.content
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk.chat.completions.create(
            model=COMPLETION_ID, messages=[QUESTION], tools=[WEATHER_TOOL]
        )
    assert refused.value.body["param"] == "messages"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"model": CHAT_ID, "messages": []}, 400),
        ({"model": CHAT_ID, "messages": [{"role": "wizard", "content": "x"}]}, 400),
        ({"model": CHAT_ID, "messages": [{"role": "tool", "content": "x"}]}, 400),
        ({"model": CHAT_ID, "messages": "hello"}, 400),
        ({"model": CHAT_ID, "messages": [QUESTION], "n": 2}, 400),
        ({"model": CHAT_ID, "messages": [QUESTION], "stream": "yes"}, 400),
        ({"model": "nope", "messages": [QUESTION]}, 404),
        ({"messages": [QUESTION]}, 400),
    ],
)
async def test_bad_chat_requests_get_openai_errors(bridged, sdk, api_key, body, status):
    response = await bridged.post(
        "/_esproxy/openai/v1/chat/completions",
        data=json.dumps(body),
        headers={**JSON_HEADERS, "Authorization": f"Bearer {api_key}"},
    )
    assert response.status == status, await response.text()
    error = (await response.json())["error"]
    assert set(error) == {"message", "type", "param", "code"}
