"""Upstream failures: no answer is esproxy's own ES-shaped 502/504; a broken answer is cut off."""

from __future__ import annotations

import logging
import time

import aiohttp
import pytest

from tests.faulty_upstream import PARTIAL_BODY
from tests.upstream.conftest import StartForwarder


def es_error(reason: str, status: int) -> dict[str, object]:
    cause = {"type": "exception", "reason": reason}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


async def test_unreachable_upstream_is_an_es_shaped_502(
    start_forwarder: StartForwarder, dead_url: str
) -> None:
    client = await start_forwarder(dead_url)
    response = await client.get("/my-index/_search")
    assert response.status == 502
    assert response.headers["Content-Type"] == "application/json"
    reason = f"could not connect to upstream [{dead_url}]: Connection refused"
    assert await response.json() == es_error(reason, 502)


async def test_every_node_unreachable_names_the_last_one_tried(
    start_forwarder: StartForwarder, dead_url: str
) -> None:
    other_dead = dead_url.rsplit(":", 1)[0] + ":1"
    client = await start_forwarder(dead_url, other_dead)
    response = await client.post("/_bulk", data=b"{}\n", headers={"Content-Type": "x-ndjson"})
    assert response.status == 502
    reason = (await response.json())["error"]["reason"]
    assert reason.startswith("could not connect to upstream [http://127.0.0.1:")
    assert reason.endswith("]: Connection refused")


async def test_connect_timeout_is_a_504(
    start_forwarder: StartForwarder, blackhole_url: str
) -> None:
    client = await start_forwarder(blackhole_url, connect_timeout=0.3)
    started = time.monotonic()
    response = await client.get("/")
    assert response.status == 504
    reason = f"could not connect to upstream [{blackhole_url}] within 0.3s"
    assert await response.json() == es_error(reason, 504)
    assert time.monotonic() - started < 3


async def test_hang_is_a_504_within_the_read_timeout(
    start_forwarder: StartForwarder, faulty_url: str
) -> None:
    client = await start_forwarder(faulty_url, read_timeout=0.5)
    started = time.monotonic()
    response = await client.get("/hang")
    elapsed = time.monotonic() - started
    assert response.status == 504
    reason = f"upstream [{faulty_url}] sent nothing for 0.5s"
    assert await response.json() == es_error(reason, 504)
    assert 0.5 <= elapsed < 3


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_reset_is_a_502(
    start_forwarder: StartForwarder, faulty_url: str, method: str
) -> None:
    client = await start_forwarder(faulty_url)
    response = await client.request(method, "/reset", data=b'{"query":{}}', headers=JSON)
    assert response.status == 502
    reason = (await response.json())["error"]["reason"]
    assert reason.startswith(f"upstream [{faulty_url}] ")
    assert "Connection reset by peer" in reason or "closed the connection" in reason


async def test_garbage_is_a_502(start_forwarder: StartForwarder, faulty_url: str) -> None:
    client = await start_forwarder(faulty_url)
    response = await client.get("/garbage")
    assert response.status == 502
    reason = (await response.json())["error"]["reason"]
    assert reason.startswith(f"upstream [{faulty_url}] sent an invalid HTTP response: ")


@pytest.mark.parametrize("path", ["/truncated", "/truncated-chunked"])
async def test_close_mid_body_aborts_the_client_response(
    start_forwarder: StartForwarder,
    faulty_url: str,
    path: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = await start_forwarder(faulty_url)
    async with client.get(path) as response:
        assert response.status == 200
        received = await read_until_broken(response)
    assert received == PARTIAL_BODY  # the upstream's bytes, and no error body spliced after them
    assert_logged_abort(caplog, faulty_url, path)


async def test_stall_mid_body_aborts_after_the_read_timeout(
    start_forwarder: StartForwarder, faulty_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = await start_forwarder(faulty_url, read_timeout=0.5)
    started = time.monotonic()
    async with client.get("/stall") as response:
        assert response.status == 200
        received = await read_until_broken(response)
    assert received == PARTIAL_BODY
    assert 0.5 <= time.monotonic() - started < 3
    assert_logged_abort(caplog, faulty_url, "/stall")


async def test_client_going_away_releases_the_upstream_connection(
    start_forwarder: StartForwarder, faulty_url: str
) -> None:
    client = await start_forwarder(faulty_url)
    with pytest.raises(TimeoutError):
        await client.get("/hang", timeout=aiohttp.ClientTimeout(total=0.3))
    await client.get("/truncated")  # the forwarder is still healthy afterwards


JSON = {"Content-Type": "application/json"}


async def read_until_broken(response: aiohttp.ClientResponse) -> bytes:
    received = bytearray()
    with pytest.raises(aiohttp.ClientPayloadError):
        while chunk := await response.content.readany():
            received += chunk
    return bytes(received)


def assert_logged_abort(caplog: pytest.LogCaptureFixture, url: str, path: str) -> None:
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        message.startswith(f"GET {path}: upstream [{url}] ")
        and message.endswith("; closing the client connection mid-response")
        for message in warnings
    ), warnings
