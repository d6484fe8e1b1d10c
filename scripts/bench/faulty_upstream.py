"""An upstream for the soak run: forwards to a real cluster, and breaks requests that ask for it.

A request carrying `X-Bench-Fault: reset` has its connection reset before any answer;
`X-Bench-Fault: midbody` gets the status line, headers and half the body, then a reset. The soak
driver marks the requests it wants broken, so every failure it sees can be accounted for.
    python faulty_upstream.py PORT CLUSTER_URL
"""

from __future__ import annotations

import socket
import struct
import sys

import aiohttp
from aiohttp import web

HOP = {"host", "connection", "keep-alive", "transfer-encoding", "content-length", "x-bench-fault"}


def reset(request: web.Request) -> None:
    """Close with RST rather than FIN (SO_LINGER 0), as a crashed or killed node would."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def main(port: int, target: str) -> None:
    async def session_ctx(app: web.Application):  # type: ignore[no-untyped-def]
        app["session"] = aiohttp.ClientSession(auto_decompress=False)
        yield
        await app["session"].close()

    async def forward(request: web.Request) -> web.StreamResponse:
        fault = request.headers.get("X-Bench-Fault")
        body = await request.read()
        if fault == "reset":
            reset(request)
            raise ConnectionResetError("fault injected: reset before answering")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        async with request.app["session"].request(
            request.method,
            target + request.rel_url.raw_path_qs,
            headers=headers,
            data=body or None,
            allow_redirects=False,
            skip_auto_headers=("Content-Type", "User-Agent", "Accept-Encoding", "Accept"),
        ) as upstream:
            payload = await upstream.read()
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP}
        if fault == "midbody" and len(payload) > 1:
            response = web.StreamResponse(status=upstream.status, headers=out)
            response.content_length = len(payload)
            await response.prepare(request)
            await response.write(payload[: len(payload) // 2])
            reset(request)
            return response
        return web.Response(status=upstream.status, headers=out, body=payload)

    app = web.Application(client_max_size=0)
    app.cleanup_ctx.append(session_ctx)
    app.router.add_route("*", "/{tail:.*}", forward)
    web.run_app(
        app, host="127.0.0.1", port=port, access_log=None, print=None, handler_cancellation=True
    )


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2].rstrip("/"))
