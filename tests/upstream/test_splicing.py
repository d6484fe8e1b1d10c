"""The spliced forwarding path over raw sockets: keep-alive, pipelining, framing, and hand-offs.

Forwarded requests never become aiohttp objects; these tests hold esproxy to what HTTP/1.1
clients and nodes expect of a proxy on one connection, request after request.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from tests.upstream.conftest import StartForwarder
from tests.upstream.raw_client import RawConnection, fetch, get, http_connections_opened


async def test_a_keep_alive_client_uses_one_node_connection(
    forwarder: TestClient[Any, Any], direct: aiohttp.ClientSession, opensearch_url: str
) -> None:
    before = await http_connections_opened(direct, opensearch_url)
    for _ in range(30):
        response = await forwarder.get("/_cluster/health?filter_path=status")
        assert response.status == 200
        await response.read()
    assert await http_connections_opened(direct, opensearch_url) - before == 1


async def test_pipelined_requests_are_answered_in_order(forwarder: TestClient[Any, Any]) -> None:
    connection = await RawConnection.open(forwarder.port)
    ids = [f"pipelined-{n}" for n in range(5)]
    connection.send(
        b"".join(get("/_cluster/health?filter_path=status", f"X-Opaque-Id: {i}") for i in ids)
    )
    for expected in ids:
        status, headers, body = await connection.answer()
        assert status == b"HTTP/1.1 200 OK"
        assert headers["x-opaque-id"] == expected
        assert json.loads(body)["status"] in ("green", "yellow")
    await connection.close()


async def test_inference_requests_between_forwarded_ones_keep_the_connection(
    forwarder: TestClient[Any, Any],
) -> None:
    connection = await RawConnection.open(forwarder.port)
    for path in ("/_cluster/health?filter_path=status", "/_inference", "/_esproxy/health"):
        connection.send(get(path))
        status, headers, body = await connection.answer()
        assert status == b"HTTP/1.1 200 OK", body
        assert "connection" not in headers
    connection.send(get("/_inference/_all", "X-Opaque-Id: last"))
    status, _, body = await connection.answer()
    assert status == b"HTTP/1.1 200 OK"
    assert json.loads(body) == {"endpoints": []}
    connection.send(get("/_cluster/health?filter_path=status"))
    assert (await connection.answer())[0] == b"HTTP/1.1 200 OK"
    await connection.close()


async def test_connection_close_is_honoured(forwarder: TestClient[Any, Any]) -> None:
    connection = await RawConnection.open(forwarder.port)
    connection.send(get("/_cluster/health?filter_path=status", "Connection: close"))
    status, headers, _ = await connection.answer()
    assert status == b"HTTP/1.1 200 OK"
    assert headers["connection"] == "close"
    assert await connection.closed()
    await connection.close()


async def test_expect_continue_gets_its_interim_answer_before_the_body(
    forwarder: TestClient[Any, Any],
) -> None:
    body = b'{"n": 1}'
    connection = await RawConnection.open(forwarder.port)
    connection.send(
        b"PUT /splice-expect/_doc/1?refresh=true HTTP/1.1\r\nHost: esproxy.test\r\n"
        b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    interim = await asyncio.wait_for(connection.reader.readuntil(b"\r\n\r\n"), 10)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    connection.send(body)
    status, _, answer = await connection.answer()
    assert status == b"HTTP/1.1 201 Created", answer
    await connection.close()


async def test_a_chunked_request_body_still_reaches_the_node(
    forwarder: TestClient[Any, Any], direct: aiohttp.ClientSession, opensearch_url: str
) -> None:
    # Chunked requests are not spliced: aiohttp's parser reads them, and the forwarder sends them.
    connection = await RawConnection.open(forwarder.port)
    connection.send(
        b"PUT /splice-chunked/_doc/1?refresh=true HTTP/1.1\r\nHost: esproxy.test\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'4\r\n{"n"\r\n4\r\n: 7}\r\n0\r\n\r\n'
    )
    status, _, answer = await connection.answer()
    assert status == b"HTTP/1.1 201 Created", answer
    connection.send(get("/_cluster/health?filter_path=status"))  # the connection lives on
    assert (await connection.answer())[0] == b"HTTP/1.1 200 OK"
    await connection.close()
    _, document = await fetch(direct, f"{opensearch_url}/splice-chunked/_doc/1")
    assert document["_source"] == {"n": 7}


async def test_conflicting_content_lengths_are_refused_and_nothing_is_indexed(
    forwarder: TestClient[Any, Any], direct: aiohttp.ClientSession, opensearch_url: str
) -> None:
    connection = await RawConnection.open(forwarder.port)
    connection.send(
        b"PUT /splice-smuggle/_doc/1?refresh=true HTTP/1.1\r\nHost: esproxy.test\r\n"
        b"Content-Type: application/json\r\nContent-Length: 8\r\nContent-Length: 40\r\n\r\n"
        b'{"n": 1}GET /_cluster/health HTTP/1.1\r\nHost: x\r\n\r\n'
    )
    status, _, _ = await connection.answer()
    assert status.split(b" ")[1] == b"400"  # aiohttp's parser refuses it
    await connection.close()
    status, _ = await fetch(direct, f"{opensearch_url}/splice-smuggle/_doc/1")
    assert status == 404


async def test_a_stalled_request_body_gets_a_408_and_the_connection_closes(
    start_forwarder: StartForwarder, opensearch_url: str
) -> None:
    client = await start_forwarder(opensearch_url, read_timeout=0.5)
    connection = await RawConnection.open(client.port)
    connection.send(
        b"POST /_bulk HTTP/1.1\r\nHost: esproxy.test\r\nContent-Type: application/x-ndjson\r\n"
        b'Content-Length: 1000\r\n\r\n{"index":{"_index":"x"}}\n'
    )
    status, headers, body = await connection.answer()
    assert status == b"HTTP/1.1 408 Request Timeout"
    assert headers["x-elastic-product"] == "Elasticsearch"
    assert json.loads(body) == {
        "error": "the client sent no body bytes for 0.5s",
        "status": 408,
    }
    assert await connection.closed()
    await connection.close()


async def test_a_chunked_answer_is_passed_on_with_its_framing(
    start_forwarder: StartForwarder, faulty_url: str
) -> None:
    client = await start_forwarder(faulty_url)
    connection = await RawConnection.open(client.port)
    connection.send(get("/slow-chunked"))
    head = await asyncio.wait_for(connection.reader.readuntil(b"\r\n\r\n"), 10)
    assert b"\r\nTransfer-Encoding: chunked\r\n" in head
    rest = await asyncio.wait_for(connection.reader.readuntil(b"X-Checksum: 1\r\n\r\n"), 10)
    assert rest == b'5\r\n{"a":\r\na;ext=1\r\n[1,2,3,4]}\r\n0\r\nX-Checksum: 1\r\n\r\n'
    # The node keeps its connection open, so only the framing said where the answer ended.
    connection.send(get("/early-answer"))
    status, _, body = await connection.answer()
    assert status == b"HTTP/1.1 413 Request Entity Too Large"
    assert json.loads(body)["status"] == 413
    await connection.close()


async def test_an_answer_framed_by_close_ends_the_client_connection(
    start_forwarder: StartForwarder, faulty_url: str
) -> None:
    client = await start_forwarder(faulty_url)
    connection = await RawConnection.open(client.port)
    connection.send(get("/until-close"))
    status, headers, body = await connection.answer()
    assert status == b"HTTP/1.1 200 OK"
    assert headers["connection"] == "close"
    assert body == b'{"framed_by":"close"}'
    await connection.close()


async def test_an_answer_before_the_body_ends_closes_the_connection(
    start_forwarder: StartForwarder, faulty_url: str
) -> None:
    client = await start_forwarder(faulty_url)
    connection = await RawConnection.open(client.port)
    connection.send(
        b"POST /early-answer HTTP/1.1\r\nHost: esproxy.test\r\nContent-Length: 10000000\r\n\r\n"
        + b"x" * 1000
    )
    status, _, body = await connection.answer()
    assert status == b"HTTP/1.1 413 Request Entity Too Large"
    assert json.loads(body)["error"] == "too large"
    assert await connection.closed()  # the rest of the body would be read as the next request
    await connection.close()
