"""The HTTP side of observability: the middleware that times, counts and logs each request esproxy
answers itself, the X-Opaque-Id echo, and the `/_esproxy/metrics` route.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler

from esproxy.app_keys import SETTINGS
from esproxy.errors import AccessDenied
from esproxy.observability import events
from esproxy.observability.access_log import AccessLog
from esproxy.observability.bookkeeping import Bookkeeping
from esproxy.observability.metrics import Metrics

METRICS_KEY = web.AppKey("metrics", Metrics)
ACCESS_LOG_KEY = web.AppKey("access_log", AccessLog)
BOOKKEEPING_KEY = web.AppKey("bookkeeping", Bookkeeping)

# Prometheus' text format, version 0.0.4 (what prometheus-client renders).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATUS_CLIENT_GONE = 499  # nginx's number for a request whose client left before its answer
# The route of requests aiohttp's parser refused: they never matched one.
MALFORMED_ROUTE = "malformed"


@web.middleware
async def observe_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    record = events.start_request()
    status = STATUS_CLIENT_GONE
    response: web.StreamResponse | None = None
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as error:  # redirects and the like, which pass the error middleware
        status = error.status
        raise
    finally:
        bookkeeping = request.app.get(BOOKKEEPING_KEY)
        if bookkeeping is not None:
            bookkeeping.hold(request, response, record, status, time.perf_counter() - started)


def malformed_recorder(app: web.Application) -> Callable[[int, int], None]:
    """What counts and logs the answer to a request aiohttp could not parse, which never reaches
    `observe_requests`: its method and path are unknown, so its access line says `-` for both."""

    def record(status: int, bytes_out: int) -> None:
        metrics = app.get(METRICS_KEY)
        if metrics is not None:
            metrics.route_answered(MALFORMED_ROUTE, status)
        access = app.get(ACCESS_LOG_KEY)
        if access is not None:
            access.write(
                method="-",
                path="-",
                status=status,
                seconds=0.0,
                bytes_in=0,
                bytes_out=bytes_out,
                opaque_id=None,
                traceparent=None,
            )

    return record


async def require_details_access(request: web.Request) -> None:
    """`/_esproxy/ready`'s rule for its details: a caller `GET _inference` admits, or a loopback
    caller when callers are not checked (or cannot be checked now)."""
    from esproxy.web.health import may_see_details

    if not await may_see_details(request):
        raise AccessDenied(
            f"[{request.path}] is for callers that may read the inference endpoints "
            "(GET _inference), as are the details of /_esproxy/ready; or scrape [metrics] listen"
        )


async def echo_opaque_id(request: web.Request, response: web.StreamResponse) -> None:
    """Elasticsearch returns the caller's X-Opaque-Id on every answer; forwarded answers already
    carry the cluster's own."""
    opaque_id = request.headers.get("X-Opaque-Id")
    if opaque_id is not None and "X-Opaque-Id" not in response.headers:
        response.headers["X-Opaque-Id"] = opaque_id


async def serve_metrics(request: web.Request) -> web.Response:
    metrics = request.app.get(METRICS_KEY)
    if metrics is None:
        raise web.HTTPNotFound(text="metrics are turned off: [metrics] enabled = false")
    if request.app.get(SETTINGS) is not None:  # the main listener; `[metrics] listen` has none
        await require_details_access(request)
    metrics.refresh()
    # Reading /proc for the process series is file I/O: keep it off the event loop.
    body = await asyncio.to_thread(metrics.render)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
