"""Connections lent to aiohttp for esproxy's own APIs, and taken back for forwarding.

`_inference` and `/_esproxy` requests are answered by aiohttp on the client's own connection; the
splicer still frames every request on it and takes the connection back at the first request bound
upstream. The node's count of connections opened shows which path forwarded a request: the
splicer keeps one connection to it, aiohttp's forwarder another of its own.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from yarl import URL

from esproxy.settings import Settings
from tests.chat_examples import CHAT_ENDPOINT, QUESTION, parse_events
from tests.upstream.conftest import StartForwarder
from tests.upstream.raw_client import (
    RawConnection,
    fetch,
    get,
    http_connections_opened,
    request,
)

HEALTH = "/_cluster/health?filter_path=status"


@pytest.fixture
async def lender(
    start_forwarder: StartForwarder, settings_for: Callable[..., Settings], opensearch_url: str
) -> TestClient[Any, Any]:
    """esproxy in front of the node, with the Bedrock emulator, and no cluster traffic of its own
    (endpoints in memory, local limits): the node sees only what is forwarded."""
    return await start_forwarder(opensearch_url, base=settings_for(ESPROXY_LIMITS_MODE="local"))


async def assert_healthy(connection: RawConnection) -> None:
    status, _, body = await connection.answer()
    assert status == b"HTTP/1.1 200 OK", body
    assert json.loads(body)["status"] in ("green", "yellow")


async def warm_up(connection: RawConnection) -> None:
    """esproxy's first `_inference` request asks the node once for what it serves itself."""
    connection.send(get("/_inference/_all"))
    await assert_no_endpoints(connection)


async def assert_no_endpoints(connection: RawConnection) -> None:
    status, headers, body = await connection.answer()
    assert status == b"HTTP/1.1 200 OK", body
    assert headers["x-elastic-product"] == "Elasticsearch"
    assert json.loads(body) == {"endpoints": []}


async def test_forwarded_requests_between_inference_ones_are_spliced_again(
    lender: TestClient[Any, Any], direct: aiohttp.ClientSession, opensearch_url: str
) -> None:
    connection = await RawConnection.open(lender.port)
    await warm_up(connection)
    before = await http_connections_opened(direct, opensearch_url)
    for _ in range(10):
        connection.send(get(HEALTH))
        await assert_healthy(connection)
        connection.send(get("/_inference/_all"))
        await assert_no_endpoints(connection)
        connection.send(get("/_esproxy/health"))
        assert (await connection.answer())[0] == b"HTTP/1.1 200 OK"
    connection.send(get(HEALTH))
    await assert_healthy(connection)
    await connection.close()
    # One connection: every forwarded request went by the splicer's, none by aiohttp's forwarder.
    assert await http_connections_opened(direct, opensearch_url) - before == 1


async def test_pipelined_inference_and_forwarded_requests_are_answered_in_order(
    lender: TestClient[Any, Any], direct: aiohttp.ClientSession, opensearch_url: str
) -> None:
    connection = await RawConnection.open(lender.port)
    await warm_up(connection)
    before = await http_connections_opened(direct, opensearch_url)
    order = ["/_inference/_all", HEALTH, "/_inference/_all", "/_inference/_all", HEALTH, HEALTH]
    connection.send(b"".join(get(path) for path in order * 3))
    for path in order * 3:
        if path == HEALTH:
            await assert_healthy(connection)
        else:
            await assert_no_endpoints(connection)
    await connection.close()
    assert await http_connections_opened(direct, opensearch_url) - before == 1


async def test_a_streamed_chat_then_a_pipelined_forwarded_request(
    lender: TestClient[Any, Any], direct: aiohttp.ClientSession, opensearch_url: str
) -> None:
    created = await lender.put("/_inference/chat_completion/lent-chat", json=CHAT_ENDPOINT)
    assert created.status == 200, await created.text()
    before = await http_connections_opened(direct, opensearch_url)
    connection = await RawConnection.open(lender.port)
    chat = json.dumps({"messages": [QUESTION]}).encode()
    for _ in range(3):
        # The forwarded request is already waiting while the answer streams.
        connection.send(
            get(HEALTH)
            + request("POST", "/_inference/chat_completion/lent-chat/_stream", chat)
            + get(HEALTH)
        )
        await assert_healthy(connection)
        status, headers, body = await connection.answer()
        assert status == b"HTTP/1.1 200 OK", body
        assert headers["content-type"] == "text/event-stream"
        events = parse_events(body.decode())
        assert events[-1] == ("message", "[DONE]")
        first = json.loads(events[0][1])
        assert first["object"] == "chat.completion.chunk"
        assert first["choices"][0]["delta"]["role"] == "assistant"
        await assert_healthy(connection)
    await connection.close()
    assert await http_connections_opened(direct, opensearch_url) - before == 1


async def test_a_lent_requests_body_is_framed_by_its_length(
    lender: TestClient[Any, Any], direct: aiohttp.ClientSession, opensearch_url: str
) -> None:
    # A request line and a blank line inside the body: framed by Content-Length, it is JSON text.
    smuggled = "PUT /lend-smuggled HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    settings = {"region": "us-east-1", "model": "\r\n\r\n" + smuggled}
    body = json.dumps({"service": "amazonbedrock", "service_settings": settings}).encode()
    whole = request("PUT", "/_inference/completion/framed", body) + get(HEALTH)
    head_end = whole.index(b"\r\n\r\n") + 4
    connection = await RawConnection.open(lender.port)
    # In pieces: the head, a body cut inside the smuggled line, and the rest with the next request.
    for piece in (whole[:head_end], whole[head_end : head_end + 30], whole[head_end + 30 :]):
        connection.send(piece)
        await asyncio.sleep(0.05)
    status, _, answer = await connection.answer()
    assert status == b"HTTP/1.1 400 Bad Request", answer
    assert json.loads(answer)["error"]["type"] == "validation_exception"
    await assert_healthy(connection)
    await connection.close()
    status, _ = await fetch(direct, f"{opensearch_url}/lend-smuggled")
    assert status == 404


async def test_expect_continue_on_a_lent_request(lender: TestClient[Any, Any]) -> None:
    body = json.dumps({"service": "nope"}).encode()
    connection = await RawConnection.open(lender.port)
    head = request("PUT", "/_inference/completion/expecting", body, "Expect: 100-continue")
    connection.send(head[: -len(body)])  # the head alone: the body waits for the interim answer
    interim = await asyncio.wait_for(connection.reader.readuntil(b"\r\n\r\n"), 10)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    connection.send(body + get(HEALTH))
    status, _, answer = await connection.answer()
    assert status == b"HTTP/1.1 400 Bad Request", answer
    await assert_healthy(connection)
    await connection.close()


async def test_connection_close_on_a_lent_request_ends_the_connection(
    lender: TestClient[Any, Any], direct: aiohttp.ClientSession, opensearch_url: str
) -> None:
    connection = await RawConnection.open(lender.port)
    connection.send(
        get("/_inference/_all", "Connection: close") + request("PUT", "/lend-after-close")
    )
    status, headers, _ = await connection.answer()
    assert status == b"HTTP/1.1 200 OK"
    assert headers["connection"] == "close"
    assert await connection.closed()
    await connection.close()
    status, _ = await fetch(direct, f"{opensearch_url}/lend-after-close")
    assert status == 404


async def test_a_chunked_request_after_a_lent_one_still_reaches_the_node(
    lender: TestClient[Any, Any], direct: aiohttp.ClientSession, opensearch_url: str
) -> None:
    # The splicer does not frame chunked requests: the connection stays with aiohttp, which does.
    connection = await RawConnection.open(lender.port)
    connection.send(
        get("/_inference/_all")
        + b"PUT /lend-chunked/_doc/1?refresh=true HTTP/1.1\r\nHost: esproxy.test\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'4\r\n{"n"\r\n4\r\n: 7}\r\n0\r\n\r\n' + get(HEALTH)
    )
    await assert_no_endpoints(connection)
    status, _, answer = await connection.answer()
    assert status == b"HTTP/1.1 201 Created", answer
    await assert_healthy(connection)
    await connection.close()
    _, document = await fetch(direct, f"{opensearch_url}/lend-chunked/_doc/1")
    assert document["_source"] == {"n": 7}


async def test_a_malformed_request_after_a_lent_one_gets_elasticsearchs_400(
    lender: TestClient[Any, Any],
) -> None:
    connection = await RawConnection.open(lender.port)
    connection.send(get("/_inference/_all") + b"GET /x HTTP/1.1\nHost: y\n\n")
    await assert_no_endpoints(connection)
    status, headers, body = await connection.answer()
    assert status == b"HTTP/1.1 400 Bad Request"
    assert headers["x-elastic-product"] == "Elasticsearch"
    assert json.loads(body)["error"]["type"] == "illegal_argument_exception"
    assert "Expected CRLF" in json.loads(body)["error"]["reason"]
    assert await connection.closed()
    await connection.close()


async def test_the_guard_still_refuses_on_a_lent_connection(
    lender: TestClient[Any, Any],
) -> None:
    connection = await RawConnection.open(lender.port)
    connection.send(get("/_inference/_all") + get("/.esproxy-leases/_search") + get(HEALTH))
    await assert_no_endpoints(connection)
    status, _, body = await connection.answer()
    assert status == b"HTTP/1.1 403 Forbidden", body
    assert json.loads(body)["error"]["type"] == "security_exception"
    await assert_healthy(connection)
    await connection.close()


async def test_a_lent_request_answered_before_its_large_body_is_read(
    lender: TestClient[Any, Any], direct: aiohttp.ClientSession, opensearch_url: str
) -> None:
    # A wrong method is refused without reading the body: aiohttp reads the rest (its flow
    # control pausing and resuming the connection) before the splicer may take it back.
    connection = await RawConnection.open(lender.port)
    await warm_up(connection)
    before = await http_connections_opened(direct, opensearch_url)
    body = b"x" * 1_000_000
    whole = request("PATCH", "/_inference/completion/big", body) + get(HEALTH)
    for at in range(0, len(whole), 64 * 1024):
        connection.send(whole[at : at + 64 * 1024])
        await connection.writer.drain()
    status, _, answer = await connection.answer()
    assert status == b"HTTP/1.1 405 Method Not Allowed", answer
    assert b"Incorrect HTTP method" in answer
    await assert_healthy(connection)
    await connection.close()
    assert await http_connections_opened(direct, opensearch_url) - before == 1


async def test_a_lent_request_aiohttp_refuses_ends_the_connection_with_what_followed(
    lender: TestClient[Any, Any], direct: aiohttp.ClientSession, opensearch_url: str
) -> None:
    # The splicer frames this head (it takes any byte but space, CR and LF in a target), aiohttp
    # refuses it: the connection is never taken back, so the request behind it reaches nothing.
    connection = await RawConnection.open(lender.port)
    connection.send(get("/_inference/\x01") + request("PUT", "/lend-after-refusal"))
    status, headers, body = await connection.answer()
    assert status == b"HTTP/1.1 400 Bad Request", body
    assert headers["connection"] == "close"
    assert json.loads(body)["error"]["type"] == "illegal_argument_exception"
    assert await connection.closed()
    await connection.close()
    status, _ = await fetch(direct, f"{opensearch_url}/lend-after-refusal")
    assert status == 404


async def test_requests_esproxy_must_judge_are_lent_and_taken_back(
    lender: TestClient[Any, Any], direct: aiohttp.ClientSession, opensearch_url: str
) -> None:
    # Node info (its addresses rewritten), the guard's refusal and an encoded path (aiohttp
    # decodes it before routing), each followed by a request the splicer forwards again. The
    # encoded path gets the node's own answer: the node is the oracle.
    odd = "/_cluster/%68ealth?filter_path=status"
    async with direct.get(URL(f"{opensearch_url}{odd}", encoded=True)) as straight:
        expected = straight.status
    connection = await RawConnection.open(lender.port)
    await warm_up(connection)
    before = await http_connections_opened(direct, opensearch_url)
    for _ in range(3):
        connection.send(
            get("/_nodes/_local/http")
            + get(HEALTH)
            + get("/.esproxy-leases/_search")
            + get(HEALTH)
            + get(odd)
            + get(HEALTH)
        )
        status, _, body = await connection.answer()
        assert status == b"HTTP/1.1 200 OK", body
        (node,) = json.loads(body)["nodes"].values()
        assert node["http"]["publish_address"] == "esproxy.test:80"  # as the client named it
        await assert_healthy(connection)
        status, _, body = await connection.answer()
        assert status == b"HTTP/1.1 403 Forbidden", body
        await assert_healthy(connection)
        status, _, body = await connection.answer()
        assert int(status.split()[1]) == expected, body
        await assert_healthy(connection)
    await connection.close()
    # The splicer's one connection, and aiohttp's forwarder's own for what the app sends on.
    assert await http_connections_opened(direct, opensearch_url) - before <= 2
