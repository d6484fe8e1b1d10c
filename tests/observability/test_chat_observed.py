"""Unified chat calls show up like every other inference call: metrics per endpoint, tokens, and
one access-log line each with Bedrock's request id."""

from __future__ import annotations

import json
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from tests.chat_examples import CHAT_ENDPOINT, CLAUDE, QUESTION, WEATHER_TOOL
from tests.emulator_control import control
from tests.observability.conftest import log_lines, matching, scrape, value
from tests.user_examples import JSON_HEADERS


async def test_chat_calls_are_counted_and_logged(
    observed: TestClient, emulator: TestServer, access_log_path: Path
) -> None:
    response = await observed.put(
        "/_inference/chat_completion/assistant",
        data=json.dumps(CHAT_ENDPOINT),
        headers=JSON_HEADERS,
    )
    assert response.status == 200, await response.text()
    body = json.dumps({"messages": [QUESTION], "tools": [WEATHER_TOOL]})
    streamed = await observed.post(
        "/_inference/chat_completion/assistant/_stream", data=body, headers=JSON_HEADERS
    )
    assert streamed.status == 200
    await streamed.read()
    answered = await observed.post(
        "/_inference/chat_completion/assistant", data=body, headers=JSON_HEADERS
    )
    assert answered.status == 200

    s = await scrape(observed)
    calls = {
        (dict(k)["operation"], dict(k)["outcome"]): v
        for k, v in matching(s, "esproxy_bedrock_calls_total", inference_id="assistant").items()
    }
    assert calls == {("ConverseStream", "ok"): 2, ("Converse", "ok"): 1}  # the probe streams
    requests = {
        (dict(k)["task_type"], dict(k)["status"]): v
        for k, v in matching(
            s, "esproxy_inference_requests_total", inference_id="assistant"
        ).items()
    }
    assert requests == {("chat_completion", "200"): 2}
    usage = (await control(emulator, "GET", "/_emulator/usage"))["models"][CLAUDE]
    tokens = "esproxy_bedrock_tokens_total"
    assert value(s, tokens, inference_id="assistant", direction="input") == usage["input_tokens"]
    assert value(s, tokens, inference_id="assistant", direction="output") == usage["output_tokens"]

    lines = await log_lines(access_log_path, 4)  # PUT, stream, answer, scrape
    chat = [line for line in lines if line["path"].startswith("/_inference/chat_completion")]
    assert [(line["method"], line["status"]) for line in chat] == [
        ("PUT", 200),
        ("POST", 200),
        ("POST", 200),
    ]
    assert all(line["inference_id"] == "assistant" for line in chat[1:])
    assert all(len(line["bedrock_request_ids"]) == 1 for line in chat[1:])
