"""Liveness and readiness under `/_esproxy/`, a prefix Elasticsearch never uses.

`/_esproxy/health` says only that the process serves. `/_esproxy/ready` runs the readiness checks
(esproxy/readiness.py: the store, the cluster in sidecar mode, Bedrock, authorization, and whatever
other rooms add), at most once a second. Unauthenticated callers (Kubernetes probes) get only the
status; node URLs, the Bedrock host and error texts go to callers that `GET /_inference` would
admit, or, when nothing checks callers or they cannot be checked now, to loopback ones.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from yarl import URL

from esproxy.addresses import is_loopback
from esproxy.app_keys import (
    AUTHORIZER,
    BEDROCK_ENDPOINT_URL,
    CHAT_SERVICE,
    FORWARDER,
    READINESS,
    SETTINGS,
    STORE_HEALTH,
)
from esproxy.authorization.privileges import GET_ENDPOINTS, Credentials
from esproxy.errors import AuthorizationUnavailable, ProxyError
from esproxy.readiness import Readiness
from esproxy.web.rendering import render


async def live(request: web.Request) -> web.Response:
    return render(request, {"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    report = await request.app[READINESS].report()
    body: dict[str, object] = {"status": "ready" if report.ready else "not_ready"}
    if await may_see_details(request):
        body["checks"] = report.checks
        if CHAT_SERVICE in request.app:
            body["chat"] = request.app[CHAT_SERVICE].stats_json()
    return render(request, body, status=200 if report.ready else 503)


async def may_see_details(request: web.Request) -> bool:
    authorizer = request.app.get(AUTHORIZER)
    if authorizer is None or getattr(authorizer, "is_open", False):
        return is_loopback(request.remote or "")
    authorization = request.headers.get("Authorization")
    if authorization is None:
        return False  # probes send none: never a cluster call for them
    credentials = Credentials(authorization, request.headers.get("es-security-runas-user"))
    try:
        await authorizer.authorize(credentials, GET_ENDPOINTS, request.raw_path)
    except AuthorizationUnavailable:
        # Callers cannot be checked now, and the report says why: the operator's own machine
        # may read it.
        return is_loopback(request.remote or "")
    except ProxyError:
        return False
    return True


def add_default_checks(app: web.Application, readiness: Readiness) -> None:
    """The store and, in sidecar mode, the cluster decide readiness; Bedrock is reported only,
    since forwarding still works while a Bedrock region is away."""

    async def store() -> None:
        # Opened yet, reachable, and still esproxy's own (esproxy/store_health.py).
        await app[STORE_HEALTH].check_store()

    async def bedrock() -> str:
        return await check_bedrock(app)

    readiness.add("store", store)
    if app[SETTINGS].upstream.urls:
        readiness.add("upstream", lambda: app[FORWARDER].ping())
    readiness.add("bedrock", bedrock, required=False)


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
