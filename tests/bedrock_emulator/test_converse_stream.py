"""ConverseStream through real aiobotocore clients: event order, incremental delivery, errors."""

from __future__ import annotations

import itertools
import time

import pytest

from tests.bedrock_emulator.harness import CLAUDE, user


async def events_of(response):
    return [event async for event in response["stream"]]


def text_of(events):
    return "".join(
        e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e
    )


async def test_stream_has_bedrocks_event_sequence(bedrock):
    response = await bedrock.converse_stream(modelId=CLAUDE, messages=user("Stream this"))
    assert response["ResponseMetadata"]["HTTPHeaders"]["content-type"] == (
        "application/vnd.amazon.eventstream"
    )
    events = await events_of(response)
    kinds = [next(iter(event)) for event in events]
    deltas = kinds.count("contentBlockDelta")
    assert deltas > 3
    assert kinds == [
        "messageStart",
        *["contentBlockDelta"] * deltas,
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    assert events[0] == {"messageStart": {"role": "assistant"}}
    assert events[-3] == {"contentBlockStop": {"contentBlockIndex": 0}}
    assert events[-2] == {"messageStop": {"stopReason": "end_turn"}}
    metadata = events[-1]["metadata"]
    assert metadata["usage"]["inputTokens"] == 2
    assert isinstance(metadata["metrics"]["latencyMs"], int)


async def test_stream_text_matches_converse(bedrock):
    streamed = await events_of(await bedrock.converse_stream(modelId=CLAUDE, messages=user("same")))
    whole = await bedrock.converse(modelId=CLAUDE, messages=user("same"))
    assert text_of(streamed) == whole["output"]["message"]["content"][0]["text"]
    assert streamed[-1]["metadata"]["usage"] == whole["usage"]


async def test_stream_honours_max_tokens(bedrock):
    response = await bedrock.converse_stream(
        modelId=CLAUDE, messages=user("budget"), inferenceConfig={"maxTokens": 3}
    )
    events = await events_of(response)
    assert {"messageStop": {"stopReason": "max_tokens"}} in events
    assert events[-1]["metadata"]["usage"]["outputTokens"] == 3


async def test_events_arrive_one_by_one(start_emulator, make_client):
    client = await make_client(await start_emulator(stream_delay_ms=40))
    started = time.monotonic()
    response = await client.converse_stream(modelId=CLAUDE, messages=user("pace me"))
    arrivals = [time.monotonic() - started async for _ in response["stream"]]
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert len(arrivals) > 6
    assert arrivals[0] < arrivals[-1] / 3  # the first event did not wait for the rest
    assert min(gaps) > 0.02  # each event was flushed on its own, not batched
    assert arrivals[-1] - arrivals[0] >= 0.04 * (len(arrivals) - 1) * 0.9


async def test_a_burst_opens_the_stream_before_the_pauses(start_emulator, make_client):
    client = await make_client(await start_emulator(stream_delay_ms=40, stream_burst=2))
    started = time.monotonic()
    response = await client.converse_stream(modelId=CLAUDE, messages=user("pace me"))
    events, arrivals = [], []
    async for event in response["stream"]:
        events.append(next(iter(event)))
        arrivals.append(time.monotonic() - started)
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert events[:2] == ["messageStart", "contentBlockDelta"]
    assert gaps[0] < 0.02  # the message start and the first delta came together
    assert min(gaps[1:]) > 0.02  # every later event waited its pause
    assert len(gaps) > 5


async def test_bad_request_fails_before_the_stream(bedrock):
    with pytest.raises(bedrock.exceptions.ValidationException):
        await bedrock.converse_stream(modelId=CLAUDE, messages=[])
