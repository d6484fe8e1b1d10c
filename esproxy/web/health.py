"""Liveness and readiness under `/_esproxy/`, a prefix Elasticsearch never uses.

Readiness needs the store and, in sidecar mode, the cluster; Bedrock reachability is reported but
does not fail readiness, since forwarding still works while a Bedrock region is away.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web
from yarl import URL

from esproxy.app_keys import (
    BACKING_STORE,
    BEDROCK_CLIENTS,
    BEDROCK_ENDPOINT_URL,
    FORWARDER,
    SETTINGS,
)
from esproxy.errors import EndpointNotFound, ProxyError
from esproxy.web.responses import json_response

PROBE_SECONDS = 2.0
PROBE_ID = "_esproxy_readiness_probe"


async def live(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    app = request.app
    checks: dict[str, Any] = {"store": await probe(check_store(app))}
    if FORWARDER in app:
        checks["upstream"] = await probe(app[FORWARDER].ping())
    checks["bedrock"] = await probe(check_bedrock(app))
    if BEDROCK_CLIENTS in app:
        # Informational, like Bedrock: renewals that keep failing show here (and in the log).
        checks["aws_credentials"] = app[BEDROCK_CLIENTS].credentials.snapshot()
    needed = [name for name in ("store", "upstream") if name in checks]
    is_ready = all(checks[name]["ok"] for name in needed)
    body = {"status": "ready" if is_ready else "not_ready", "checks": checks}
    return json_response(body, status=200 if is_ready else 503)


async def probe(check: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(PROBE_SECONDS):
            detail = await check
    except TimeoutError:
        return {"ok": False, "error": f"no answer within {PROBE_SECONDS:.0f} s"}
    except (ProxyError, OSError) as error:
        return {"ok": False, "error": str(error)}
    result: dict[str, Any] = {"ok": True, "took_ms": round((time.perf_counter() - started) * 1000)}
    if detail:
        result["target"] = detail
    return result


async def check_store(app: web.Application) -> None:
    # A read past the cache, so the answer is about the backend itself.
    try:
        await app[BACKING_STORE].get(PROBE_ID)
    except EndpointNotFound:
        return


async def check_bedrock(app: web.Application) -> str:
    """A TCP connection to where Bedrock calls go: the forward proxy when one is configured, else
    the configured URL, else AWS in us-east-1."""
    configured = app.get(BEDROCK_ENDPOINT_URL, None)
    proxy = app[SETTINGS].bedrock.proxy_url if SETTINGS in app else None
    url = URL(proxy or configured or "https://bedrock-runtime.us-east-1.amazonaws.com")
    host, port = url.host or "localhost", url.port or 443
    _, writer = await asyncio.open_connection(host, port)
    writer.close()
    await writer.wait_closed()
    return f"{host}:{port}"
