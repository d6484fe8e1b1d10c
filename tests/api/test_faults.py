"""Bedrock faults under concurrent load: every request succeeds or gets its documented error,
nothing stored is lost, and no task outlives its request."""

from __future__ import annotations

import asyncio
import json

from tests.user_examples import JSON_HEADERS, TITAN_COMPLETION, TITAN_EMBEDDINGS

FAULTS = [
    {"code": "ThrottlingException", "count": 6},
    {"status": 500, "count": 3},
    {"code": "ServiceUnavailableException", "count": 2},
    {"code": "ValidationException", "count": 2},
    {"code": "Hang", "count": 2},
    {"code": "ThrottlingException", "after_events": 2, "operation": "ConverseStream", "count": 2},
]
# What each documented failure looks like to a caller: status -> ES error type.
DOCUMENTED = {
    400: {"status_exception", "exception"},
    429: {"exception", "timeout_exception", "es_rejected_execution_exception"},
    500: {"exception"},
    503: {"exception"},
}


async def test_mixed_faults_under_load(proxy, emulator):
    for path, body in (
        ("/_inference/completion/chat", TITAN_COMPLETION),
        ("/_inference/text_embedding/vectors", TITAN_EMBEDDINGS),
    ):
        # A rate high enough that the limiter is not what this test measures.
        body = json.loads(json.dumps(body))
        body["service_settings"]["rate_limit"] = {"requests_per_minute": 60000}
        assert (await proxy.put(path, data=json.dumps(body), headers=JSON_HEADERS)).ok
    baseline = request_tasks()
    async with proxy.session.post(emulator.make_url("/_emulator/faults"), json=FAULTS) as added:
        assert added.status == 200, await added.text()

    async def one(i: int) -> tuple[int, str]:
        if i % 3 == 0:
            path, body = "/_inference/vectors?timeout=2s", {"input": [f"text {i}", "more"]}
        elif i % 3 == 1:
            path, body = "/_inference/chat?timeout=2s", {"input": f"question {i}"}
        else:
            path, body = "/_inference/chat/_stream?timeout=2s", {"input": f"story {i}"}
        response = await proxy.post(path, data=json.dumps(body), headers=JSON_HEADERS)
        return response.status, await response.text()

    outcomes = await asyncio.gather(*(one(i) for i in range(60)))
    for status, text in outcomes:
        if status == 200:
            continue
        assert status in DOCUMENTED, text
        body = (
            json.loads(text.split("data: ", 1)[-1]) if "event: error" in text else json.loads(text)
        )
        assert body["status"] == status
        assert body["error"]["type"] in DOCUMENTED[status], text
        assert body["error"]["reason"]
    assert sum(status == 200 for status, _ in outcomes) >= 30

    listed = await (await proxy.get("/_inference")).json()
    assert [e["inference_id"] for e in listed["endpoints"]] == ["chat", "vectors"]
    await asyncio.sleep(0.5)
    assert request_tasks() <= baseline, request_tasks() - baseline


def request_tasks() -> set[str]:
    """Tasks doing work, leaving out the idle keep-alive connections the servers hold open."""
    return {
        repr(task.get_coro())
        for task in asyncio.all_tasks()
        if "RequestHandler.start" not in repr(task.get_coro())
        and task is not asyncio.current_task()
    }
