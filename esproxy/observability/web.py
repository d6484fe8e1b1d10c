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
from esproxy.observability.metrics import Metrics

METRICS_KEY = web.AppKey("metrics", Metrics)
ACCESS_LOG_KEY = web.AppKey("access_log", AccessLog)

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
        seconds = time.perf_counter() - started
        app = request.app
        metrics = app.get(METRICS_KEY)
        if metrics is not None:
            if record.inference:
                metrics.inference_done(record, status, seconds)
            if not record.forwarded:
                metrics.route_answered(route_pattern(request), status)
        access = app.get(ACCESS_LOG_KEY)
        if access is not None:
            log_request(access, request, response, record, status, seconds)


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


def route_pattern(request: web.Request) -> str:
    """The pattern of the route that answered (`/_inference/{first}`), never the raw path."""
    resource = request.match_info.route.resource
    return "unmatched" if resource is None else resource.canonical


def log_request(
    access: AccessLog,
    request: web.Request,
    response: web.StreamResponse | None,
    record: events.RequestRecord,
    status: int,
    seconds: float,
) -> None:
    inference_id = record.inference_id
    if inference_id is None and request.path.startswith("/_inference/"):
        match = request.match_info
        inference_id = match.get("second") or match.get("first")
    headers = request.headers
    access.write(
        method=request.method,
        path=request.path,
        status=status,
        seconds=seconds,
        bytes_in=request.content.total_bytes,
        bytes_out=body_bytes(response),
        opaque_id=headers.get("X-Opaque-Id"),
        traceparent=headers.get("traceparent"),
        inference_id=inference_id,
        bedrock_request_ids=record.bedrock_request_ids,
        retries=record.retries,
        rate_limit_wait=record.rate_limit_wait,
        forwarded=record.forwarded,
    )


async def require_details_access(request: web.Request) -> None:
    """`/_esproxy/ready`'s rule for its details: a caller `GET _inference` admits, or a loopback
    caller when callers are not checked (or cannot be checked now)."""
    from esproxy.web.health import may_see_details

    if not await may_see_details(request):
        raise AccessDenied(
            f"[{request.path}] is for callers that may read the inference endpoints "
            "(GET _inference), as are the details of /_esproxy/ready; or scrape [metrics] listen"
        )


def body_bytes(response: web.StreamResponse | None) -> int:
    """A streamed answer is sent by now; a plain one is sent after the middleware, so its length."""
    if response is None:
        return 0
    return response.body_length or response.content_length or 0


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
