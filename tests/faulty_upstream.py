"""An upstream that misbehaves on purpose, for tests where the fault is the point.

Each path is one fault; normal upstream behaviour always comes from the real OpenSearch node.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import struct

from aiohttp import web

PARTIAL_BODY = b'{"took":1,"hits":{"hits":['  # the first bytes of what looks like a search answer


async def hang(request: web.Request) -> web.StreamResponse:
    """Accepts the request and never answers."""
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def reset(request: web.Request) -> web.StreamResponse:
    """Resets the connection (TCP RST) without answering."""
    transport = request.transport
    assert transport is not None
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    return web.Response()  # never sent: the connection is gone


async def garbage(request: web.Request) -> web.StreamResponse:
    """Answers with bytes that are not HTTP, then closes."""
    transport = request.transport
    assert transport is not None
    transport.write(b"SSH-2.0-OpenSSH_9.6\r\n\x00\xff not an HTTP answer\r\n\r\n")
    transport.close()
    return web.Response()


async def truncated(request: web.Request) -> web.StreamResponse:
    """Promises a long body in Content-Length, sends a little of it, then closes."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.content_length = 100_000
    return await send_partial(request, response)


async def truncated_chunked(request: web.Request) -> web.StreamResponse:
    """Starts a chunked body, then closes before the last chunk."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    return await send_partial(request, response)


async def slow_chunked(request: web.Request) -> web.StreamResponse:
    """A chunked answer in dribbles: chunk sizes, extensions and a trailer split across writes."""
    transport = request.transport
    assert transport is not None
    pieces = [
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"5\r\n",
        b'{"a":\r\n',
        b"a;ext=1\r\n[1,2,3,4]}",
        b"\r\n0\r\nX-Checksum: 1",
        b"\r\n\r\n",
    ]
    for piece in pieces:
        transport.write(piece)
        await asyncio.sleep(0.02)
    await asyncio.sleep(1)  # keeps the connection a while: the proxy must find the end by itself
    transport.close()
    return web.Response()  # never sent: the connection is gone


async def until_close(request: web.Request) -> web.StreamResponse:
    """An answer with no length: its body ends when the connection does."""
    transport = request.transport
    assert transport is not None
    transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n")
    await asyncio.sleep(0.02)
    transport.write(b'{"framed_by":"close"}')
    transport.close()
    return web.Response()  # never sent: the connection is gone


async def early_answer(request: web.Request) -> web.StreamResponse:
    """Refuses the request before reading its body, as a node does with a 413."""
    return web.json_response({"error": "too large", "status": 413}, status=413)


async def send_partial(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    await response.prepare(request)
    await response.write(PARTIAL_BODY)
    await asyncio.sleep(0.05)  # let the proxy pass those bytes on before the close
    assert request.transport is not None
    request.transport.close()
    return response


async def stall(request: web.Request) -> web.StreamResponse:
    """Sends the status, headers and a first chunk, then goes silent."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    await response.write(PARTIAL_BODY)
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def slow_sink(request: web.Request) -> web.Response:
    """Reads the body slowly, so a proxy that buffers instead of streaming would have to hold it.

    Answers with the byte count and SHA-256 of what arrived, how its length was framed, and the
    request headers exactly as they came.
    """
    digest, size, pause_at = hashlib.sha256(), 0, 0
    while chunk := await request.content.readany():
        digest.update(chunk)
        size += len(chunk)
        if size >= pause_at:  # 5 ms per MiB: slower than the sender, so back-pressure builds
            pause_at += 1 << 20
            await asyncio.sleep(0.005)
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "")
    framing = {"content_length": request.content_length, "chunked": chunked}
    headers = [[name.decode(), value.decode()] for name, value in request.raw_headers]
    return web.json_response(
        {"bytes": size, "sha256": digest.hexdigest(), **framing, "headers": headers}
    )


FAULTS = {
    "/hang": hang,
    "/reset": reset,
    "/garbage": garbage,
    "/truncated": truncated,
    "/truncated-chunked": truncated_chunked,
    "/stall": stall,
    "/slow-sink": slow_sink,
    "/slow-chunked": slow_chunked,
    "/until-close": until_close,
    "/early-answer": early_answer,
}


def create_faulty_app() -> web.Application:
    app = web.Application(client_max_size=0)
    for path, handler in FAULTS.items():
        app.router.add_route("*", path, handler)
    return app
