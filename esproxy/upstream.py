"""UpstreamForwarder: streams any request to the upstream cluster and its answer back, untouched.

No body is parsed or buffered, except a node-info answer, whose HTTP addresses point at esproxy.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import ssl
import time
from collections.abc import AsyncIterator
from functools import lru_cache
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from esproxy.errors import UpstreamTimeout, UpstreamUnavailable
from esproxy.observability import events
from esproxy.observability.events import ForwardRecorder, NoForwardRecording
from esproxy.settings import UpstreamSettings
from esproxy.upstream_nodes import (
    NodePool,
    UpstreamNode,
    is_nodes_info,
    publish_address,
    rewrite_http_addresses,
)
from esproxy.upstream_session import client_timeout

log = logging.getLogger(__name__)


# RFC 9110 §7.6.1 hop-by-hop headers (plus any `Proxy-*`, and the names `Connection` lists).
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade"}
)
# Host is set per node; aiohttp has already answered `Expect: 100-continue` to the client itself.
REQUEST_ONLY = HOP_BY_HOP | {"host", "expect"}
# Headers aiohttp would add on its own: a forwarded request carries only what the client sent.
SKIP_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")

Headers = CIMultiDictProxy[str] | CIMultiDict[str]


# Query parameters that shape an answer's rendering rather than its content.
RENDERING_PARAMS = frozenset({"filter_path", "format", "pretty", "human"})


class ForwardedResponse(web.StreamResponse):
    """Holds the status line and headers back until the first body bytes (or the end).

    They then leave in one write: a small answer costs one send and one packet, not two.
    """

    _send_headers_immediately = False  # aiohttp's own switch, the one its Response class uses


class UpstreamForwarder:
    """Forwards requests to the upstream nodes over a session it borrows and never closes."""

    def __init__(self, settings: UpstreamSettings, session: aiohttp.ClientSession) -> None:
        if session.auto_decompress:
            raise ValueError("forwarding needs a session made with auto_decompress=False")
        self.pool = NodePool(settings.urls)
        self.session = session
        self.timeout = client_timeout(settings)
        self.connect_timeout = settings.connect_timeout
        self.read_timeout = settings.read_timeout
        self.recorder: ForwardRecorder = NoForwardRecording()

    async def forward(self, request: web.Request, body: bytes | None = None) -> web.StreamResponse:
        """`body` is for a request whose body esproxy already read (still content-encoded)."""
        started = time.perf_counter()
        events.forwarded()
        path = request.raw_path
        if path[:1] != "/":  # an absolute-form target: only its path and query go upstream
            path = request.rel_url.raw_path_qs
        headers = end_to_end(request.headers, REQUEST_ONLY)
        nodes_info = is_nodes_info(request.method, path)
        if nodes_info:
            headers.popall("Accept-Encoding", None)  # the answer is rewritten, so fetch it plain
        data: bytes | AsyncIterator[bytes] | None = body
        body_stream = None
        if body is None and request.body_exists:
            body_stream = request.content
            data = paced(body_stream, self.read_timeout)
        try:
            node, upstream = await self.send(request.method, path, headers, data, body_stream)
        except UpstreamUnavailable as error:
            self.recorder.forwarded(error.status, request.content.total_bytes, 0)
            raise
        async with upstream:
            if nodes_info:
                response = await self.relay_nodes_info(request, node, upstream)
            else:
                response = await self.relay(request, node, upstream)
        bytes_in = len(body) if body is not None else request.content.total_bytes
        # A rewritten node-info answer is a plain Response, sent after this returns.
        bytes_out = response.body_length or response.content_length or 0
        self.recorder.forwarded(upstream.status, bytes_in, bytes_out)
        log.debug(
            "%s %s -> %d in %.2f ms from %s",
            request.method,
            path,
            upstream.status,
            (time.perf_counter() - started) * 1000,
            node.url,
        )
        return response

    async def ping(self) -> str:
        """Any HTTP answer from a node proves the cluster is reachable; returns the node's URL."""
        headers = CIMultiDict({"Accept-Encoding": "identity"})
        node, upstream = await self.send("HEAD", "/", headers, None)
        upstream.release()
        return node.url

    async def fetch_json(self, request: web.Request) -> Any:
        """The cluster's JSON answer to the same bodiless request, or None when it has none.

        Only for small answers esproxy merges with its own, such as the endpoint list.
        """
        headers = end_to_end(request.headers, REQUEST_ONLY)
        headers.popall("Accept-Encoding", None)
        # Plain JSON to merge: esproxy applies filter_path, format and pretty to the merged answer.
        headers["Accept"] = "application/json"
        url = request.rel_url
        target = url.with_query(
            [(k, v) for k, v in url.query.items() if k not in RENDERING_PARAMS]
        ).raw_path_qs
        try:
            node, upstream = await self.send(request.method, target, headers, None)
            async with upstream:
                body = await upstream.read()
        except (UpstreamUnavailable, aiohttp.ClientError, OSError) as error:
            log.warning("no answer from the cluster for %s: %s", request.raw_path, error)
            return None
        if upstream.status != 200:
            return None
        try:
            return json.loads(body)
        except ValueError:
            log.warning("unreadable answer from %s for %s", node.url, request.raw_path)
            return None

    async def send(
        self,
        method: str,
        path: str,
        headers: CIMultiDict[str],
        data: bytes | AsyncIterator[bytes] | None,
        body_stream: aiohttp.StreamReader | None = None,
    ) -> tuple[UpstreamNode, aiohttp.ClientResponse]:
        """Response headers from the first node that takes the connection. `body_stream` is the
        client's body when `data` streams it."""
        pool = self.pool
        for attempt in range(1, len(pool) + 1):
            node = pool.select()
            headers["Host"] = node.host
            try:
                upstream = await self.session.request(
                    method,
                    URL(node.url + path, encoded=True),
                    headers=headers,
                    data=data,
                    allow_redirects=False,
                    timeout=self.timeout,
                    skip_auto_headers=SKIP_AUTO_HEADERS,
                )
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as error:
                # Nothing reached this node, and the body is still unread: another node may take it.
                pool.mark_dead(node)
                if attempt == len(pool):
                    self.recorder.upstream_error(failure_reason(error))
                    raise self.translate(node, error) from None
                log.debug("retrying on another node: %s", self.translate(node, error).reason)
                continue
            except (aiohttp.ClientError, OSError) as error:
                refused = body_stream.exception() if body_stream is not None else None
                if refused is not None and error.__cause__ is refused:
                    # The client's own body went bad while it was sent (its framing, refused
                    # after the head: web/parse_errors.py): the client's error, not the node's.
                    raise refused from None
                self.recorder.upstream_error(failure_reason(error))
                raise self.translate(node, error) from None
            if node.failures:
                pool.mark_alive(node)
            return node, upstream
        raise AssertionError("unreachable: the node pool is never empty")

    async def relay(
        self, request: web.Request, node: UpstreamNode, upstream: aiohttp.ClientResponse
    ) -> web.StreamResponse:
        """Status, headers and raw body bytes back to the client, each chunk as it arrives."""
        headers = end_to_end(upstream.headers)
        response = ForwardedResponse(
            status=upstream.status, reason=upstream.reason, headers=headers
        )
        content = upstream.content
        try:
            await response.prepare(request)
            while True:
                try:
                    chunk = await content.readany()
                except (aiohttp.ClientError, OSError) as error:
                    self.abort(request, response, node, error)
                    return response
                if not chunk:
                    break
                await response.write(chunk)
            await response.write_eof()
        except ConnectionError:
            log.debug("client went away during %s %s", request.method, request.raw_path)
        return response

    def abort(
        self,
        request: web.Request,
        response: web.StreamResponse,
        node: UpstreamNode,
        error: BaseException,
    ) -> None:
        """Cut the client's connection: the status line is out, so an error body cannot follow."""
        self.recorder.upstream_error(failure_reason(error))
        log.warning(
            "%s %s: %s; closing the client connection mid-response",
            request.method,
            request.raw_path,
            self.translate(node, error).reason,
        )
        response.force_close()
        if request.transport is not None:
            request.transport.close()

    async def relay_nodes_info(
        self, request: web.Request, node: UpstreamNode, upstream: aiohttp.ClientResponse
    ) -> web.StreamResponse:
        # Sniffing clients replace their node list with each node's `http.publish_address`; left as
        # the cluster sent them, later requests, `_inference` ones included, would bypass esproxy.
        # So they all name the address the client reached esproxy on (which clients deduplicate).
        if upstream.status != 200 or "json" not in upstream.content_type:
            return await self.relay(request, node, upstream)
        if upstream.headers.get("Content-Encoding", "identity") != "identity":
            return await self.relay(request, node, upstream)
        try:
            body = await upstream.read()
        except (aiohttp.ClientError, OSError) as error:
            self.recorder.upstream_error(failure_reason(error))
            raise self.translate(node, error) from None
        address = publish_address(request.url)
        rewritten = rewrite_http_addresses(body, address, pretty="pretty" in request.query)
        headers = end_to_end(upstream.headers)
        headers.popall("Content-Length", None)  # aiohttp sets it from the new body
        body = body if rewritten is None else rewritten
        return web.Response(
            status=upstream.status, reason=upstream.reason, headers=headers, body=body
        )

    def translate(self, node: UpstreamNode, error: BaseException) -> UpstreamUnavailable:
        """An aiohttp client failure as esproxy's 502 or 504, naming the node and the cause."""
        where = f"upstream [{node.url}]"
        if isinstance(error, aiohttp.ConnectionTimeoutError):
            return cannot_connect(where, TimeoutError(), self.connect_timeout)
        if isinstance(error, TimeoutError):
            return fell_silent(where, self.read_timeout)
        if isinstance(error, aiohttp.ClientConnectorError):
            return cannot_connect(where, error.os_error, self.connect_timeout)
        if isinstance(error, aiohttp.ServerDisconnectedError):
            return UpstreamUnavailable(f"{where} closed the connection before answering")
        if isinstance(error, aiohttp.ClientPayloadError):
            return UpstreamUnavailable(f"{where} sent an incomplete body: {error}")
        if isinstance(error, aiohttp.ClientResponseError):
            # llhttp's message draws a caret under the bad bytes on later lines; keep the first.
            return sent_invalid_answer(where, str(error.message).partition("\n")[0].rstrip(":"))
        if isinstance(error, OSError):
            return broke_off(where, error)
        return UpstreamUnavailable(f"{where} failed: {str(error) or type(error).__name__}")


def failure_reason(error: BaseException) -> str:
    """An aiohttp client failure as `esproxy_upstream_errors_total{reason}` names it."""
    if isinstance(error, aiohttp.ConnectionTimeoutError):
        return events.CONNECT_TIMEOUT
    if isinstance(error, TimeoutError):
        return events.READ_TIMEOUT
    if isinstance(error, aiohttp.ClientConnectorError):
        return events.CONNECT
    if isinstance(error, aiohttp.ClientResponseError):
        return events.INVALID_ANSWER
    return events.CLOSED


# The reasons a node's failure is given, the same on the aiohttp path and the spliced one.
def cannot_connect(where: str, error: BaseException, seconds: float) -> UpstreamUnavailable:
    if isinstance(error, TimeoutError):
        return UpstreamTimeout(f"could not connect to {where} within {seconds:g}s")
    if isinstance(error, OSError):
        return UpstreamUnavailable(f"could not connect to {where}: {describe_os_error(error)}")
    return UpstreamUnavailable(f"could not connect to {where}: {error}")


def fell_silent(where: str, seconds: float) -> UpstreamTimeout:
    return UpstreamTimeout(f"{where} sent nothing for {seconds:g}s")


def broke_off(where: str, error: OSError) -> UpstreamUnavailable:
    return UpstreamUnavailable(f"{where} failed: {describe_os_error(error)}")


def sent_invalid_answer(where: str, problem: object) -> UpstreamUnavailable:
    return UpstreamUnavailable(f"{where} sent an invalid HTTP response: {problem}")


async def paced(content: aiohttp.StreamReader, seconds: float) -> AsyncIterator[bytes]:
    """The client's body, chunk by chunk; a client that stalls longer than `seconds` between
    chunks is cut off, so it cannot hold an upstream connection for ever."""
    while True:
        try:
            async with asyncio.timeout(seconds):
                chunk = await content.readany()
        except TimeoutError:
            raise aiohttp.ClientPayloadError(
                f"the client sent no body bytes for {seconds:g} s"
            ) from None
        if not chunk:
            return
        yield chunk


def end_to_end(source: Headers, drop: frozenset[str] = HOP_BY_HOP) -> CIMultiDict[str]:
    """Every header but the hop-by-hop ones, repeated names and their order kept."""
    # Copy, then delete: C-level multidict work, several times faster than a per-header loop.
    target = CIMultiDict(source)
    for name in drop:
        if name in target:
            del target[name]
    connection = source.get("Connection")
    if connection:
        for name in connection_tokens(connection):
            target.popall(name, None)
    if "proxy-" in ",".join(target).lower():
        for name in [name for name in target if name.lower().startswith("proxy-")]:
            target.popall(name, None)
    return target


@lru_cache(maxsize=64)
def connection_tokens(value: str) -> frozenset[str]:
    """The header names a `Connection` header marks as hop-by-hop (clients send a handful)."""
    return frozenset(token.strip().lower() for token in value.split(","))


def describe_os_error(error: OSError) -> str:
    """`Connection refused` rather than asyncio's `Connect call failed ('127.0.0.1', 9201)`."""
    # TLS and name-lookup errors number their own codes, so only their own text is meaningful.
    if isinstance(error, (ssl.SSLError, socket.gaierror)) or not error.errno or error.errno < 0:
        return str(error.strerror or error or type(error).__name__)
    return os.strerror(error.errno)
