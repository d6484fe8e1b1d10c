"""`chat_completion` over HTTP: the unified request, the Converse mapping, the unified stream."""

from __future__ import annotations

import json
from typing import Any

import pytest

from esproxy.splice.server import SplicingServer
from tests.chat_examples import CHAT_ENDPOINT, CLAUDE, QUESTION, WEATHER_TOOL, parse_events
from tests.user_examples import JSON_HEADERS

STREAM = "/_inference/chat_completion/assistant/_stream"


def chat_body(**extra: Any) -> str:
    return json.dumps({"messages": [QUESTION], **extra})


@pytest.fixture
async def chat(proxy):
    response = await proxy.put(
        "/_inference/chat_completion/assistant",
        data=json.dumps(CHAT_ENDPOINT),
        headers=JSON_HEADERS,
    )
    assert response.status == 200, await response.text()
    return proxy


async def stream(proxy, body: str, path: str = STREAM):
    response = await proxy.post(path, data=body, headers=JSON_HEADERS)
    return response, parse_events(await response.text())


def chunks_of(events: list[tuple[str, str]]) -> list[dict[str, Any]]:
    assert events[-1] == ("message", "[DONE]")
    assert all(event == "message" for event, _ in events)
    return [json.loads(data) for _, data in events[:-1]]


def text_of(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])


async def test_put_get_delete_and_services_list_chat_completion(chat):
    response = await chat.get("/_inference/chat_completion/assistant")
    [endpoint] = (await response.json())["endpoints"]
    assert endpoint["task_type"] == "chat_completion"
    assert endpoint["service_settings"]["provider"] == "ANTHROPIC"
    listed = await (await chat.get("/_inference/_all")).json()
    assert [e["inference_id"] for e in listed["endpoints"]] == ["assistant"]
    services = await (await chat.get("/_inference/_services/chat_completion")).json()
    assert [s["service"] for s in services] == ["amazonbedrock"]
    assert "chat_completion" in services[0]["task_types"]
    update = {"task_settings": {"temperature": 0.5}}
    response = await chat.put(
        "/_inference/chat_completion/assistant/_update",
        data=json.dumps(update),
        headers=JSON_HEADERS,
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["task_settings"] == {"temperature": 0.5}
    response = await chat.delete("/_inference/chat_completion/assistant")
    assert response.status == 200


async def test_put_probe_sends_one_user_message(chat, emulator_calls):
    [probe] = await emulator_calls()
    assert probe["operation"] == "ConverseStream"  # ES's probe is a streamed unified call
    assert probe["body"]["messages"] == [{"role": "user", "content": [{"text": "how big"}]}]


async def test_put_validates_provider_task_settings(proxy):
    body = json.loads(json.dumps(CHAT_ENDPOINT))
    body["service_settings"]["provider"] = "amazontitan"
    body["task_settings"] = {"top_k": 0.5}
    response = await proxy.put(
        "/_inference/chat_completion/c", data=json.dumps(body), headers=JSON_HEADERS
    )
    assert response.status == 400
    assert (await response.json())["error"]["reason"] == (
        "The [top_k] task parameter is not available for provider [amazontitan]"
    )


async def test_streamed_text_answer_frames(chat, emulator_calls):
    response, events = await stream(chat, chat_body(max_completion_tokens=200, temperature=0.2))
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    assert response.headers["X-Elastic-Product"] == "Elasticsearch"
    chunks = chunks_of(events)
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == CLAUDE for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"] == [{"delta": {"role": "assistant"}, "index": 0}]
    assert text_of(chunks).startswith("Emulated anthropic reply to: what is the weather in paris.")
    assert chunks[-2]["choices"] == [{"delta": {}, "finish_reason": "stop", "index": 0}]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"completion_tokens": 55, "prompt_tokens": 7, "total_tokens": 62}
    raw = events[1][1]  # compact JSON in ES's key order
    assert raw == json.dumps(json.loads(raw), separators=(",", ":"))
    assert list(json.loads(raw)) == ["id", "choices", "model", "object"]
    sent = [c for c in await emulator_calls() if c["operation"] == "ConverseStream"][-1]["body"]
    assert sent["inferenceConfig"] == {"maxTokens": 200, "temperature": 0.2}
    assert "toolConfig" not in sent


async def test_stream_bytes_are_elasticsearch_framing(chat):
    response = await chat.post(STREAM, data=chat_body(), headers=JSON_HEADERS)
    raw = await response.read()
    first, _, _ = raw.partition(b"\n\n")
    assert first.startswith(b"\xef\xbb\xbfevent: message\ndata: {")
    assert raw.endswith(b"\xef\xbb\xbfevent: message\ndata: [DONE]\n\n")


async def test_streamed_tool_call_then_answer(chat, emulator_calls):
    _, events = await stream(chat, chat_body(tools=[WEATHER_TOOL]))
    chunks = chunks_of(events)
    start = chunks[1]["choices"][0]["delta"]["tool_calls"][0]
    assert list(start) == ["index", "id", "function", "type"]
    assert start["index"] == 0 and start["function"] == {"name": "get_weather"}
    call_id = start["id"]
    assert call_id.startswith("tooluse_")
    pieces = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks[2:-2]]
    assert len(pieces) > 1  # partial JSON, as Bedrock streams it
    assert all(piece["index"] == 0 and "id" not in piece for piece in pieces)
    arguments = "".join(piece["function"]["arguments"] for piece in pieces)
    assert json.loads(arguments) == {"city": "paris", "unit": "celsius"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    sent = [c for c in await emulator_calls() if c["operation"] == "ConverseStream"][-1]
    assert sent["body"]["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "description": "Get the current weather for a city",
                    "inputSchema": {"json": WEATHER_TOOL["function"]["parameters"]},
                }
            }
        ]
    }

    messages = [
        {"role": "system", "content": "Be brief."},
        QUESTION,
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "18 degrees and sunny"},
    ]
    _, events = await stream(chat, json.dumps({"messages": messages, "tools": [WEATHER_TOOL]}))
    chunks = chunks_of(events)
    assert "18 degrees and sunny" in text_of(chunks)
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    sent = [c for c in await emulator_calls() if c["operation"] == "ConverseStream"][-1]["body"]
    assert sent["system"] == [{"text": "Be brief."}]
    assert sent["messages"][1] == {
        "role": "assistant",
        "content": [
            {
                "toolUse": {
                    "toolUseId": call_id,
                    "name": "get_weather",
                    "input": {"city": "paris", "unit": "celsius"},
                }
            }
        ],
    }
    assert sent["messages"][2]["content"] == [
        {"toolResult": {"toolUseId": call_id, "content": [{"text": "18 degrees and sunny"}]}}
    ]


async def test_consecutive_same_role_messages_are_merged(chat, emulator_calls):
    messages = [
        {"role": "user", "content": "first"},
        {"role": "user", "content": [{"type": "text", "text": "second"}]},
    ]
    _, events = await stream(chat, json.dumps({"messages": messages}))
    chunks_of(events)
    sent = [c for c in await emulator_calls() if c["operation"] == "ConverseStream"][-1]["body"]
    assert sent["messages"] == [
        {"role": "user", "content": [{"text": "first"}, {"text": "second"}]}
    ]


async def test_tool_choice_maps_to_converse(chat, emulator_calls):
    named = {"type": "function", "function": {"name": "get_weather"}}
    for choice, expected in (("auto", {"auto": {}}), ("required", {"any": {}}), (named, None)):
        _, events = await stream(chat, chat_body(tools=[WEATHER_TOOL], tool_choice=choice))
        chunks_of(events)
        sent = [c for c in await emulator_calls() if c["operation"] == "ConverseStream"][-1]
        wanted = expected or {"tool": {"name": "get_weather"}}
        assert sent["body"]["toolConfig"]["toolChoice"] == wanted
    _, events = await stream(chat, chat_body(tools=[WEATHER_TOOL], tool_choice="none"))
    assert "Emulated" in text_of(chunks_of(events))
    sent = [c for c in await emulator_calls() if c["operation"] == "ConverseStream"][-1]
    assert "toolConfig" not in sent["body"]


async def test_non_streaming_answer(chat):
    response = await chat.post(
        "/_inference/chat_completion/assistant",
        data=json.dumps({"messages": [{"role": "user", "content": "hello world"}]}),
        headers=JSON_HEADERS,
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    assert list(body) == ["id", "choices", "model", "object", "usage"]
    assert body["object"] == "chat.completion" and body["model"] == CLAUDE
    assert body["id"]
    [choice] = body["choices"]
    assert list(choice) == ["index", "message", "finish_reason"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert list(choice["message"]) == ["role", "content"]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"].startswith("Emulated anthropic reply to: hello world.")
    usage = body["usage"]
    assert usage["prompt_tokens"] == 2
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_non_streaming_on_the_id_alone(chat):
    response = await chat.post("/_inference/assistant", data=chat_body(), headers=JSON_HEADERS)
    assert response.status == 200, await response.text()
    assert (await response.json())["object"] == "chat.completion"


async def test_non_streaming_tool_call(chat):
    response = await chat.post(
        "/_inference/chat_completion/assistant",
        data=chat_body(tools=[WEATHER_TOOL], tool_choice="required"),
        headers=JSON_HEADERS,
    )
    body = await response.json()
    [choice] = body["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert list(choice["message"]) == ["role", "tool_calls"]  # no text, so no content
    [call] = choice["message"]["tool_calls"]
    assert list(call) == ["id", "type", "function"]
    assert list(call["function"]) == ["name", "arguments"]
    assert call["type"] == "function" and call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "paris", "unit": "celsius"}
    assert call["id"].startswith("tooluse_")


async def test_provider_without_tools_is_a_clear_400(proxy, emulator_calls):
    body = json.loads(json.dumps(CHAT_ENDPOINT))
    body["service_settings"].update(provider="amazontitan", model="amazon.titan-text-premier-v1:0")
    response = await proxy.put(
        "/_inference/chat_completion/titan", data=json.dumps(body), headers=JSON_HEADERS
    )
    assert response.status == 200, await response.text()
    before = len(await emulator_calls())
    response, events = await stream(
        proxy, chat_body(tools=[WEATHER_TOOL]), "/_inference/chat_completion/titan/_stream"
    )
    assert response.status == 400
    [(event, data)] = events
    assert event == "error"
    error = json.loads(data)["error"]
    assert error["code"] == "bad_request" and error["type"] == "status_exception"
    assert error["message"].startswith(
        "Tools are not supported for model [amazon.titan-text-premier-v1:0]"
    )
    assert len(await emulator_calls()) == before


async def test_unknown_endpoint_and_wrong_task_type_take_the_unified_shape(chat, proxy):
    response, events = await stream(
        chat, chat_body(), "/_inference/chat_completion/missing/_stream"
    )
    assert response.status == 404
    assert json.loads(events[0][1]) == {
        "error": {
            "code": "not_found",
            "message": "Inference endpoint not found [missing]",
            "type": "resource_not_found_exception",
        }
    }
    await chat.put(
        "/_inference/completion/plain",
        data=json.dumps(CHAT_ENDPOINT),
        headers=JSON_HEADERS,
    )
    response, events = await stream(chat, chat_body(), "/_inference/chat_completion/plain/_stream")
    assert response.status == 400
    assert json.loads(events[0][1])["error"]["message"] == (
        "Incompatible task_type for unified API, the requested type [chat_completion] must be "
        "one of [chat_completion]"
    )


async def test_bedrock_error_mid_stream_is_a_unified_error_event(chat, emulator):
    async with chat.session.post(
        emulator.make_url("/_emulator/faults"),
        json={"code": "ThrottlingException", "after_events": 2, "operation": "ConverseStream"},
    ) as fault:
        assert fault.status == 200, await fault.text()
    response, events = await stream(chat, chat_body())
    assert response.status == 200
    assert events[-1][0] == "error"
    error = json.loads(events[-1][1])["error"]
    assert list(error) == ["code", "message", "type"]
    assert error["code"] == "too_many_requests"


async def test_readiness_reports_chat_counts(chat):
    await stream(chat, chat_body(tools=[WEATHER_TOOL]))
    await chat.post(
        "/_inference/chat_completion/assistant",
        data=chat_body(tools=[WEATHER_TOOL]),
        headers=JSON_HEADERS,
    )
    await stream(chat, json.dumps({"messages": [{"role": "robot", "content": "x"}]}))
    body = await (await chat.get("/_esproxy/ready")).json()
    assert body["chat"] == {  # the PUT probe is the integration's own call, not counted here
        "calls": 1,
        "streams": 1,
        "streams_open": 0,
        "tool_calls": 2,
        "refused": 1,
        "failed": 0,
    }


async def test_parallel_tool_results_share_one_user_turn(chat, emulator_calls):
    calls = [
        {
            "id": f"call-{city}",
            "type": "function",
            "function": {"name": "get_weather", "arguments": json.dumps({"city": city})},
        }
        for city in ("paris", "rome")
    ]
    messages = [
        QUESTION,
        {"role": "assistant", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "call-paris", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call-rome", "content": "rainy"},
    ]
    response = await chat.post(
        "/_inference/chat_completion/assistant",
        data=json.dumps({"messages": messages, "tools": [WEATHER_TOOL]}),
        headers=JSON_HEADERS,
    )
    body = await response.json()
    assert body["choices"][0]["message"]["content"] == (
        "Emulated anthropic reply from the tool result: sunny | rainy."
    )
    sent = [c for c in await emulator_calls() if c["operation"] == "Converse"][-1]["body"]
    assert [turn["role"] for turn in sent["messages"]] == ["user", "assistant", "user"]
    assert [block["toolResult"]["toolUseId"] for block in sent["messages"][2]["content"]] == [
        "call-paris",
        "call-rome",
    ]


async def test_a_sidecar_streams_the_same_bytes(chat, start_proxy, settings_for, unused_tcp_port):
    # With an upstream, `_inference` answers reach the client through the splicer, which relays
    # the app's bytes; the first delta is let out before the rest of the answer is translated.
    sidecar = await start_proxy(
        settings_for(
            ESPROXY_UPSTREAM=f"http://127.0.0.1:{unused_tcp_port}",
            ESPROXY_STORAGE_BACKEND="memory",
            ESPROXY_AUTH_MODE="none",
        )
    )
    assert isinstance(sidecar.server.runner.server, SplicingServer)
    put = await sidecar.put(
        "/_inference/chat_completion/assistant",
        data=json.dumps(CHAT_ENDPOINT),
        headers=JSON_HEADERS,
    )
    assert put.status == 200, await put.text()
    for body in (chat_body(), chat_body(tools=[WEATHER_TOOL])):
        answers = []
        for client in (chat, sidecar):
            response = await client.post(STREAM, data=body, headers=JSON_HEADERS)
            assert response.status == 200
            assert response.headers["Transfer-Encoding"] == "chunked"
            raw = await response.read()
            ids = {json.loads(data)["id"] for _, data in parse_events(raw.decode())[:-1]}
            assert len(ids) == 1
            answers.append(raw.replace(ids.pop().encode(), b"chatcmpl-X"))
        assert answers[0] == answers[1]
