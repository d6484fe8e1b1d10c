"""The floor for an aiohttp-based forwarder on this machine: aiohttp server + aiohttp client and
nothing else (no middlewares, header filtering, streaming or node pool). An experiment for the
forwarding benchmark (`--floor`), not a product.
    python minimal_proxy.py PORT UPSTREAM_URL
"""

import sys

import aiohttp
from aiohttp import web

HOP = {"host", "connection", "keep-alive", "transfer-encoding", "content-length"}


def main(port: int, target: str) -> None:
    async def session_ctx(app: web.Application):  # type: ignore[no-untyped-def]
        app["session"] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=512), auto_decompress=False
        )
        yield
        await app["session"].close()

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        async with request.app["session"].request(
            request.method,
            target + request.rel_url.raw_path_qs,
            data=body or None,
            headers={k: v for k, v in request.headers.items() if k.lower() not in HOP},
        ) as upstream:
            payload = await upstream.read()
            headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP}
            return web.Response(status=upstream.status, headers=headers, body=payload)

    app = web.Application(client_max_size=0)
    app.cleanup_ctx.append(session_ctx)
    app.router.add_route("*", "/{tail:.*}", forward)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2].rstrip("/"))
