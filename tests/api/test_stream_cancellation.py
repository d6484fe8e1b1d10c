"""A client that leaves mid-stream ends esproxy's Bedrock stream too (issue #10, item 8).

The emulator counts its ConverseStream answers: open, finished, and abandoned (ended because its
client went away). Bedrock here holds each stream open after two events, as a slow model would;
once the caller of esproxy hangs up, the emulator must see its own stream close.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.chat_examples import CHAT_ENDPOINT, QUESTION
from tests.user_examples import JSON_HEADERS, TITAN_COMPLETION


async def stream_counts(proxy, emulator) -> dict[str, Any]:
    async with proxy.session.get(emulator.make_url("/_emulator/streams")) as response:
        counts: dict[str, Any] = await response.json()
        return counts


async def wait_for(proxy, emulator, **expected: int) -> dict[str, Any]:
    counts: dict[str, Any] = {}
    for _ in range(100):
        counts = await stream_counts(proxy, emulator)
        if all(counts[key] == value for key, value in expected.items()):
            return counts
        await asyncio.sleep(0.05)
    raise AssertionError(f"emulator streams {counts}, expected {expected}")


CASES = [
    ("/_inference/completion/story", TITAN_COMPLETION, {"input": "tell me a story"}),
    ("/_inference/chat_completion/story", CHAT_ENDPOINT, {"messages": [QUESTION]}),
]


@pytest.mark.parametrize(("path", "endpoint", "body"), CASES)
async def test_leaving_mid_stream_closes_the_bedrock_stream(proxy, emulator, path, endpoint, body):
    response = await proxy.put(path, data=json.dumps(endpoint), headers=JSON_HEADERS)
    assert response.status == 200, await response.text()
    before = await stream_counts(proxy, emulator)  # the PUT probe may have streamed already
    async with proxy.session.post(
        emulator.make_url("/_emulator/faults"),
        json={"code": "Hang", "after_events": 2, "operation": "ConverseStream"},
    ) as fault:
        assert fault.status == 200, await fault.text()

    response = await proxy.post(f"{path}/_stream", data=json.dumps(body), headers=JSON_HEADERS)
    assert response.status == 200
    await asyncio.wait_for(response.content.readuntil(b"\n\n"), 10)
    await wait_for(proxy, emulator, open=1)
    response.close()  # the caller hangs up while Bedrock still holds the stream open
    counts = await wait_for(proxy, emulator, open=0)
    assert counts["abandoned"] == before["abandoned"] + 1
    assert counts["finished"] == before["finished"]


@pytest.mark.parametrize(("path", "endpoint", "body"), CASES)
async def test_leaving_before_the_first_event_closes_the_bedrock_stream(
    proxy, emulator, path, endpoint, body
):
    response = await proxy.put(path, data=json.dumps(endpoint), headers=JSON_HEADERS)
    assert response.status == 200, await response.text()
    before = await stream_counts(proxy, emulator)  # the PUT probe may have streamed already
    async with proxy.session.post(
        emulator.make_url("/_emulator/faults"),
        json={"code": "Hang", "after_events": 0, "operation": "ConverseStream"},
    ) as fault:
        assert fault.status == 200, await fault.text()

    request = asyncio.ensure_future(
        proxy.post(f"{path}/_stream", data=json.dumps(body), headers=JSON_HEADERS)
    )
    await wait_for(proxy, emulator, open=1)
    request.cancel()  # esproxy is still waiting for Bedrock's first event
    counts = await wait_for(proxy, emulator, open=0)
    assert counts["abandoned"] == before["abandoned"] + 1
    assert counts["finished"] == before["finished"]
