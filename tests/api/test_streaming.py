"""`_stream` over HTTP: Elasticsearch's SSE framing, deltas as they come, errors as events."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.user_examples import JSON_HEADERS, TITAN_COMPLETION, TITAN_EMBEDDINGS

BOM = "\ufeff"


@pytest.fixture
async def endpoints(proxy):
    for path, body in (
        ("/_inference/completion/chat", TITAN_COMPLETION),
        ("/_inference/text_embedding/vectors", TITAN_EMBEDDINGS),
    ):
        response = await proxy.put(path, data=json.dumps(body), headers=JSON_HEADERS)
        assert response.status == 200, await response.text()
    return proxy


def parse_events(text: str) -> list[tuple[str, str]]:
    events = []
    for block in text.split("\n\n"):
        if not block:
            continue
        assert block.startswith(BOM), block
        event, data = block[len(BOM) :].split("\n")
        events.append((event.removeprefix("event: "), data.removeprefix("data: ")))
    return events


async def test_stream_frames_match_elasticsearch(endpoints, emulator_calls):
    for path in ("/_inference/completion/chat/_stream", "/_inference/chat/_stream"):
        response = await endpoints.post(
            path, data='{"input": "tell me a story"}', headers=JSON_HEADERS
        )
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        assert response.headers["X-Elastic-Product"] == "Elasticsearch"
        events = parse_events(await response.text())
        assert events[-1] == ("message", "[DONE]")
        deltas = [json.loads(data)["completion"][0]["delta"] for _, data in events[:-1]]
        assert len(deltas) > 1 and all(event == "message" for event, _ in events)

    completion = await endpoints.post(
        "/_inference/completion/chat", data='{"input": "tell me a story"}', headers=JSON_HEADERS
    )
    assert "".join(deltas) == (await completion.json())["completion"][0]["result"]
    streamed = [c for c in await emulator_calls() if c["operation"] == "ConverseStream"]
    assert streamed[-1]["body"]["inferenceConfig"] == {"maxTokens": 64}


async def test_each_delta_is_sent_before_bedrock_makes_the_next(endpoints, emulator):
    # Bedrock sends one delta and then nothing: the client still gets that delta at once.
    async with endpoints.session.post(
        emulator.make_url("/_emulator/faults"),
        json={"code": "Hang", "after_events": 2, "operation": "ConverseStream"},
    ) as fault:
        assert fault.status == 200, await fault.text()
    response = await endpoints.post(
        "/_inference/chat/_stream", data='{"input": "one two three"}', headers=JSON_HEADERS
    )
    assert response.status == 200
    first = await asyncio.wait_for(response.content.readuntil(b"\n\n"), 10)
    [(event, data)] = parse_events(first.decode())
    assert event == "message" and json.loads(data)["completion"][0]["delta"]
    response.close()


async def test_stream_on_text_embedding_is_es_405_as_an_event(endpoints):
    response = await endpoints.post(
        "/_inference/vectors/_stream", data='{"input": "x"}', headers=JSON_HEADERS
    )
    assert response.status == 405
    assert response.headers["Content-Type"] == "text/event-stream"
    [(event, data)] = parse_events(await response.text())
    assert event == "error"
    error = json.loads(data)
    assert error["status"] == 405
    assert error["error"]["reason"] == (
        "Streaming is not allowed for service [amazonbedrock] and task [text_embedding]. "
        "Supported tasks: [completion,chat_completion]"
    )


async def test_unknown_endpoint_is_an_error_event_with_404(endpoints):
    response = await endpoints.post(
        "/_inference/completion/nope/_stream", data='{"input": "x"}', headers=JSON_HEADERS
    )
    assert response.status == 404
    [(event, data)] = parse_events(await response.text())
    assert (event, json.loads(data)["status"]) == ("error", 404)


async def test_mid_stream_failure_becomes_an_error_event(endpoints, emulator):
    async with endpoints.session.post(
        emulator.make_url("/_emulator/faults"),
        json={"code": "ThrottlingException", "after_events": 3, "operation": "ConverseStream"},
    ) as fault:
        assert fault.status == 200, await fault.text()
    response = await endpoints.post(
        "/_inference/chat/_stream", data='{"input": "a long story"}', headers=JSON_HEADERS
    )
    assert response.status == 200
    events = parse_events(await response.text())
    assert events[-1][0] == "error"
    error = json.loads(events[-1][1])
    assert error["error"]["reason"].startswith("AmazonBedrock StreamingChatProcessor failure: [")
    assert ("message", "[DONE]") not in events


async def test_client_disconnect_cancels_the_bedrock_stream(endpoints, emulator):
    async with endpoints.session.post(
        emulator.make_url("/_emulator/faults"),
        json={"code": "Hang", "after_events": 2, "operation": "ConverseStream"},
    ) as fault:
        assert fault.status == 200
    response = await endpoints.post(
        "/_inference/chat/_stream", data='{"input": "hang after one"}', headers=JSON_HEADERS
    )
    first = await response.content.readuntil(b"\n\n")
    assert b"event: message" in first
    response.close()
    await asyncio.sleep(0.2)
    # The proxy is still healthy and serves the next request.
    again = await endpoints.post("/_inference/chat", data='{"input": "x"}', headers=JSON_HEADERS)
    assert again.status == 200
