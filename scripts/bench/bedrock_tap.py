"""A pass-through between esproxy and the Bedrock emulator that records every model call's answer.

Each call is recorded as (monotonic time of the answer, access key, HTTP status), so a benchmark
can count what actually reached "Bedrock" and how many calls were throttled, whatever esproxy
retried. CLOCK_MONOTONIC is system-wide, so times compare with other processes' time.monotonic().
    python bedrock_tap.py PORT EMULATOR_URL
GET /_tap/events answers {"events": [[t, access_key, status], ...]}.
"""

from __future__ import annotations

import re
import sys
import time

import aiohttp
from aiohttp import web

CREDENTIAL = re.compile(r"Credential=([^/]+)/")
HOP = {"host", "connection", "keep-alive", "transfer-encoding", "content-length"}


def main(port: int, target: str) -> None:
    events: list[tuple[float, str, int]] = []

    async def session_ctx(app: web.Application):  # type: ignore[no-untyped-def]
        app["session"] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), auto_decompress=False
        )
        yield
        await app["session"].close()

    async def forward(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        headers["Host"] = request.headers.get("Host", "")
        async with request.app["session"].request(
            request.method,
            target + request.rel_url.raw_path_qs,
            headers=headers,
            data=body,
            skip_auto_headers=("Content-Type", "User-Agent", "Accept-Encoding"),
        ) as upstream:
            payload = await upstream.read()
            found = CREDENTIAL.search(request.headers.get("Authorization", ""))
            events.append((time.monotonic(), found.group(1) if found else "", upstream.status))
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP}
            return web.Response(status=upstream.status, headers=out, body=payload)

    async def list_events(_: web.Request) -> web.Response:
        return web.json_response({"events": events})

    app = web.Application(client_max_size=0)
    app.cleanup_ctx.append(session_ctx)
    app.router.add_get("/_tap/events", list_events)
    app.router.add_route("*", "/{tail:.*}", forward)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2].rstrip("/"))
