"""Answers are booked (counted and logged) a moment after they end, out of the next request's way.
Whatever reads the books settles them first, so no reader misses an answer that has ended: here a
scrape or the endpoints view pipelined right behind the answer."""

from __future__ import annotations

import json

from aiohttp.test_utils import TestClient

from tests.observability.conftest import matching, parse
from tests.upstream.raw_client import RawConnection, get, request
from tests.user_examples import JSON_HEADERS, TITAN_COMPLETION

MISSING = "/_inference/completion/missing"
SCRAPE = "/_esproxy/metrics"


def post(path: str, document: object) -> bytes:
    return request("POST", path, json.dumps(document).encode())


async def pipelined(client: TestClient, *requests: bytes) -> list[bytes]:
    """The answers' bodies to `requests`, written in one go on one connection: each is served
    the moment the one before it has been answered, well inside the bookkeeping's moment."""
    connection = await RawConnection.open(client.port)
    connection.send(b"".join(requests))
    bodies = []
    for _ in requests:
        status, _, body = await connection.answer()
        assert status.startswith(b"HTTP/1.1 "), status
        bodies.append(body)
    await connection.close()
    return bodies


async def test_a_scrape_right_behind_an_answer_counts_it(proxy: TestClient) -> None:
    _, scraped = await pipelined(proxy, post(MISSING, {"input": "x"}), get(SCRAPE))
    answered = matching(parse(scraped.decode()), "esproxy_http_requests_total", status="404")
    assert sum(answered.values()) == 1
    refused = matching(parse(scraped.decode()), "esproxy_inference_requests_total", status="404")
    assert sum(refused.values()) == 1


async def test_the_endpoints_view_right_behind_a_call_counts_it(
    proxy: TestClient, emulator: object
) -> None:
    response = await proxy.put(
        "/_inference/completion/chat", data=json.dumps(TITAN_COMPLETION), headers=JSON_HEADERS
    )
    assert response.status == 200, await response.text()
    view = get("/_esproxy/endpoints?format=json")
    before, answer, after = await pipelined(
        proxy, view, post("/_inference/chat", {"input": "x"}), view
    )
    assert "completion" in json.loads(answer)
    [counted_before] = [row["requests_5m"] for row in json.loads(before) if row["id"] == "chat"]
    [counted_after] = [row["requests_5m"] for row in json.loads(after) if row["id"] == "chat"]
    assert int(counted_after) == int(counted_before) + 1  # `_cat`-style: numbers as text
