"""The error middleware: a ProxyError, aiohttp HTTP error or surprise becomes an ES error body."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler

from esproxy.app_keys import STREAMING
from esproxy.errors import MalformedRequest, PlainError, ProxyError
from esproxy.web.parse_errors import malformed_request
from esproxy.web.rendering import render
from esproxy.web.server_sent_events import send_error_stream

log = logging.getLogger(__name__)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ProxyError as error:
        if request.get(STREAMING):
            return await send_error_stream(request, error)
        return render_error(request, error)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return render_error(request, PlainError(error.reason, status=error.status))
    except Exception as error:
        if isinstance(error, HttpProcessingError) and error is request.content.exception():
            # The body's framing went bad after the head: ElasticRequestHandler ended the body
            # with the parser's error, and whatever read it (a handler, the guard, forwarding)
            # raised it. Any other parse error is not the caller's.
            return render_error(request, malformed_request(error))
        # The only place an unexpected error is caught; it is a bug, so log it with its traceback.
        log.exception("unexpected error handling %s %s", request.method, request.path)
        return render_error(request, ProxyError("esproxy failed to handle the request"))


def render_error(request: web.Request, error: ProxyError) -> web.Response:
    if error.status >= 500:
        log.warning("%s %s -> %s %s", request.method, request.path, error.status, error.reason)
    response = render(request, error.to_body(), status=error.status, headers=error.headers)
    if isinstance(error, MalformedRequest):
        response.force_close()  # the rest of the stream cannot be framed
    return response
