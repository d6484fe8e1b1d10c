"""Requests aiohttp's HTTP parser refuses, sent as raw bytes: each gets Elasticsearch's 400 error
body and headers, closes its connection, stores nothing, and is counted and logged.

Each runs against esproxy alone and with the splicer in front (a cluster configured), since the
two reach aiohttp's parser differently: the splicer hands such requests over, or passes their head
to the app.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.http_exceptions import BadHttpMessage, BadStatusLine, LineTooLong
from aiohttp.test_utils import TestClient

from esproxy.settings import Settings
from esproxy.web.parse_errors import MAX_REASON, malformed_request
from tests.observability.conftest import log_lines, scrape, value

LONG = 70_000  # past aiohttp's 64 KiB a line (app.py's SERVER_KWARGS)
PUT = b"PUT /_inference/completion/probe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
BODY = b'{"service": "amazonbedrock"}'

CASES = {
    "long-request-line": (
        b"GET /_inference/" + b"a" * LONG + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        "too_long_http_line_exception",
        "An HTTP line is larger than 65536 bytes.",
    ),
    "long-header": (
        b"GET /_inference HTTP/1.1\r\nHost: x\r\nAccept: text/plain;" + b"x" * LONG + b"\r\n\r\n",
        "too_long_http_header_exception",
        "HTTP header is larger than 65536 bytes.",
    ),
    "bad-method": (
        b"G@T /_inference HTTP/1.1\r\nHost: x\r\n\r\n",
        "illegal_argument_exception",
        "Invalid method encountered in [G@T /_inference HTTP/1.1]",
    ),
    "control-char-in-header": (
        PUT + b"X-Opaque-Id: a\x01b\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY),
        "illegal_argument_exception",
        "Invalid header value char in [X-Opaque-Id: a\\x01b]",
    ),
    "credential-in-a-bad-header": (
        b"GET /_inference HTTP/1.1\r\nHost: x\r\nAuthorization: Basic c2VjcmV0\x01\r\n\r\n",
        "illegal_argument_exception",
        "Invalid header value char in [Authorization: (value withheld)]",
    ),
    "query-in-a-bad-request-line": (
        b"G@T /_inference?api_key=c2VjcmV0 HTTP/1.1\r\nHost: x\r\n\r\n",
        "illegal_argument_exception",
        "Invalid method encountered in [G@T /_inference?... HTTP/1.1]",
    ),
    "space-in-header-name": (
        b"GET /_inference HTTP/1.1\r\nHost: x\r\nX Opaque: b\r\n\r\n",
        "illegal_argument_exception",
        "Invalid header token in [X Opaque: (value withheld)]",
    ),
    "bad-chunk-size": (
        PUT + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n" + BODY + b"\r\n0\r\n\r\n",
        "illegal_argument_exception",
        "Invalid character in chunk size in [zz]",
    ),
    "bad-content-length": (
        PUT + b"Content-Length: 1x\r\n\r\n" + BODY,
        "illegal_argument_exception",
        "Invalid character in Content-Length in [Content-Length: 1x]",
    ),
    "bare-line-feeds": (
        b"GET /_inference HTTP/1.1\nHost: x\n\n",
        "illegal_argument_exception",
        "Bad status line: Expected CRLF after version in [GET /_inference HTTP/1.1]",
    ),
    "long-bad-header-value": (
        b"GET /_inference HTTP/1.1\r\nHost: x\r\nX-Opaque-Id: " + b"y" * 60_000 + b"\x7f\r\n\r\n",
        "illegal_argument_exception",
        "Invalid header value char in [X-Opaque-Id: " + "y" * 67 + "...]",
    ),
}


@pytest.fixture
def dead_url() -> str:
    """A port nothing listens on: the splicer is in front, and no request of these reaches it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture(params=["alone", "spliced"])
def front(
    request: pytest.FixtureRequest,
    settings_for: Callable[..., Settings],
    dead_url: str,
    tmp_path: Path,
) -> Callable[..., Settings]:
    cluster = {"ESPROXY_UPSTREAM": dead_url, "ESPROXY_AUTH_MODE": "none"}
    extra = cluster if request.param == "spliced" else {}

    def build(**environ: str) -> Settings:
        return settings_for(ESPROXY_STORAGE_BACKEND="memory", **extra, **environ)

    return build


async def exchange(
    client: TestClient, request: bytes, later: bytes = b""
) -> tuple[str, dict[str, str], bytes, bool]:
    """Status line, headers (lower-case names), body by its Content-Length, and whether the
    connection closed after it. `later` is sent a moment after the request, as its own packet."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(request)
        if later:
            await writer.drain()
            await asyncio.sleep(0.3)
            writer.write(later)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status, *lines = head[:-4].decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 10)
        closed = await asyncio.wait_for(reader.read(), 10) == b""
    finally:
        writer.close()
    return status, headers, body, closed


@pytest.mark.parametrize("case", CASES)
async def test_a_request_aiohttp_cannot_parse_gets_an_es_error(start_proxy, front, case):
    proxy = await start_proxy(front())
    request, error_type, reason = CASES[case]
    status, headers, body, closed = await exchange(proxy, request)
    assert status == "HTTP/1.1 400 Bad Request", status
    assert headers["connection"] == "close"
    assert headers["x-elastic-product"] == "Elasticsearch"
    assert headers["content-type"] == "application/json"
    cause = {"type": error_type, "reason": reason}
    assert json.loads(body) == {"error": {"root_cause": [cause], **cause}, "status": 400}
    assert closed
    listing = await proxy.get("/_inference")
    assert (await listing.json()) == {"endpoints": []}


CHUNKED_PUT = PUT + b"Transfer-Encoding: chunked\r\n\r\n5\r\n" + BODY[:5] + b"\r\n"
BAD_CHUNK = b"zz\r\n" + BODY[5:] + b"\r\n0\r\n\r\n"
BAD_CHUNK_ERROR = {
    "type": "illegal_argument_exception",
    "reason": "Invalid character in chunk size in [zz]",
}


async def test_framing_refused_after_the_head_is_answered_at_once(start_proxy, front):
    """A good first chunk, then a bad chunk size in a later packet: by then aiohttp has handed
    the request to its handler, which used to wait for the rest of the body until its 60 s
    timeout (a 408). The same 400 comes at once, the connection closes, nothing is stored."""
    proxy = await start_proxy(front())
    began = asyncio.get_running_loop().time()
    status, headers, body, closed = await exchange(proxy, CHUNKED_PUT, later=BAD_CHUNK)
    assert asyncio.get_running_loop().time() - began < 5
    assert status.split(" ", 2)[1] == "400", status
    assert headers["x-elastic-product"] == "Elasticsearch"
    assert json.loads(body) == {
        "error": {"root_cause": [BAD_CHUNK_ERROR], **BAD_CHUNK_ERROR},
        "status": 400,
    }
    assert closed
    listing = await proxy.get("/_inference")
    assert (await listing.json()) == {"endpoints": []}


async def test_framing_refused_after_an_early_answer_closes_at_once(
    start_proxy, settings_for, dead_url
):
    """A request answered before its body was read: beside a cluster, an endpoint esproxy does
    not have goes to the cluster, here unreachable, a 502 at once. Its broken framing arrives
    after the answer, while aiohttp reads the rest of the body to discard it, for up to 10 s:
    the 400 for the framing follows at once instead, and the connection closes."""
    proxy = await start_proxy(
        settings_for(
            ESPROXY_STORAGE_BACKEND="memory", ESPROXY_UPSTREAM=dead_url, ESPROXY_AUTH_MODE="none"
        )
    )
    target = b"POST /_inference/text_embedding/elsewhere"
    request = target + CHUNKED_PUT[CHUNKED_PUT.index(b" HTTP/1.1") :]
    began = asyncio.get_running_loop().time()
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    try:
        writer.write(request)
        first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        length = int(re.search(rb"Content-Length: (\d+)", first, re.I).group(1))
        await reader.readexactly(length)
        writer.write(BAD_CHUNK)
        rest = await asyncio.wait_for(reader.read(), 5)  # to the close
    finally:
        writer.close()
    assert asyncio.get_running_loop().time() - began < 5
    statuses = [first.split(b" ", 2)[1], *re.findall(rb"^HTTP/1\.1 (\d+)", rest, re.M)]
    assert statuses[-1] == b"400", (first, rest)
    assert json.loads(rest.partition(b"\r\n\r\n")[2]) == {
        "error": {"root_cause": [BAD_CHUNK_ERROR], **BAD_CHUNK_ERROR},
        "status": 400,
    }


async def test_framing_refused_in_a_body_the_guard_reads_is_answered_at_once(
    start_proxy, settings_for, dead_url
):
    """`_aliases` bodies name indices, so the guard reads them whole before forwarding. A bad
    chunk size in a later packet is the same 400 at once, and nothing reaches the cluster (here
    unreachable: forwarding would be a 502)."""
    proxy = await start_proxy(
        settings_for(
            ESPROXY_STORAGE_BACKEND="memory", ESPROXY_UPSTREAM=dead_url, ESPROXY_AUTH_MODE="none"
        )
    )
    request = b"POST /_aliases" + CHUNKED_PUT[CHUNKED_PUT.index(b" HTTP/1.1") :]
    began = asyncio.get_running_loop().time()
    status, _, body, closed = await exchange(proxy, request, later=BAD_CHUNK)
    assert asyncio.get_running_loop().time() - began < 5
    assert status.split(" ", 2)[1] == "400", status
    assert json.loads(body) == {
        "error": {"root_cause": [BAD_CHUNK_ERROR], **BAD_CHUNK_ERROR},
        "status": 400,
    }
    assert closed


async def test_framing_refused_in_a_forwarded_body_is_the_client_error(
    start_proxy, settings_for, opensearch_url
):
    """A body streamed to the cluster as it arrives (a path esproxy must decode is forwarded by
    the app rather than spliced): when its framing goes bad mid-way, the client gets the 400 at
    once, not a 502 that blames the node, and the node keeps nothing of it."""
    proxy = await start_proxy(
        settings_for(
            ESPROXY_STORAGE_BACKEND="memory",
            ESPROXY_UPSTREAM=opensearch_url,
            ESPROXY_AUTH_MODE="none",
            ESPROXY_AUTH_ALLOW_UNSECURED_CLUSTER="true",
        )
    )
    request = b"POST /half%2Dsent/_doc" + CHUNKED_PUT[CHUNKED_PUT.index(b" HTTP/1.1") :]
    began = asyncio.get_running_loop().time()
    status, _, body, closed = await exchange(proxy, request, later=BAD_CHUNK)
    assert asyncio.get_running_loop().time() - began < 5
    assert status == "HTTP/1.1 400 Bad Request", status
    assert json.loads(body) == {
        "error": {"root_cause": [BAD_CHUNK_ERROR], **BAD_CHUNK_ERROR},
        "status": 400,
    }
    assert closed
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{opensearch_url}/half-sent/_count") as response,
    ):
        assert response.status == 404, await response.text()


async def test_refused_requests_are_counted_and_logged(start_proxy, front, tmp_path):
    access_log = tmp_path / "access.log"
    proxy = await start_proxy(
        front(ESPROXY_LOG_FORMAT="json", ESPROXY_LOG_ACCESS_FILE=str(access_log))
    )
    for case in ("long-request-line", "bad-method"):
        await exchange(proxy, CASES[case][0])
    samples = await scrape(proxy)
    assert value(samples, "esproxy_http_requests_total", route="malformed", status="400") == 2
    lines: list[dict[str, Any]] = await log_lines(access_log, 3)  # and the scrape's
    refused = [line for line in lines if line["status"] == 400]
    assert [(line["method"], line["path"]) for line in refused] == [("-", "-")] * 2
    assert all(line["bytes_out"] > 0 and not line["forwarded"] for line in refused)


# What aiohttp's two parsers raise: the C one (llhttp) quotes a long target in a bytearray and a
# header's name or value in bytes; the pure-Python one quotes whole lines.
@pytest.mark.parametrize(
    ("error", "error_type"),
    [
        (LineTooLong(bytearray(b"/_inference/aaa") + b"...", 65536), "too_long_http_line"),
        (LineTooLong(b"GET /_inference/aaa...", 65536), "too_long_http_line"),
        (LineTooLong(b"xxxxxxxx...", 65536), "too_long_http_header"),
        (LineTooLong(b"/looks/like/a/path...", 65536), "too_long_http_header"),
        (LineTooLong(b"Accept: xxxx...", 65536), "too_long_http_header"),
        (LineTooLong(b"Accept : GET /x...", 65536), "too_long_http_header"),
    ],
)
def test_a_long_line_is_told_from_a_long_header(error, error_type):
    assert malformed_request(error).error_type == error_type + "_exception"


@pytest.mark.parametrize(
    "error",
    [
        BadStatusLine("GET /" + "a" * 60_000 + " HTTP/9.9"),  # the Python parser's whole line
        BadHttpMessage("Invalid header value char:\n\n  b'X: " + "y" * 60_000 + "'\n  ^"),
    ],
)
def test_a_reason_never_quotes_a_whole_long_line(error):
    reason = malformed_request(error).reason
    assert len(reason) <= MAX_REASON + 3
