"""Elasticsearch's `_stream` wire format: server-sent events, each opened by a UTF-8 BOM.

A failure before the first event answers with the error's status; after it, an `error` event
ends the stream in place of `[DONE]`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from esproxy.errors import ProxyError
from esproxy.web.responses import PRODUCT_HEADERS, OwnStreamResponse, to_json

log = logging.getLogger(__name__)

EVENT_STREAM = "text/event-stream"
_MESSAGE = "\ufeffevent: message\ndata: ".encode()
_ERROR = "\ufeffevent: error\ndata: ".encode()
DONE = _MESSAGE + b"[DONE]\n\n"


def message_event(data: object) -> bytes:
    return _MESSAGE + to_json(data) + b"\n\n"


def error_event(error: ProxyError) -> bytes:
    return _ERROR + to_json(error.to_body()) + b"\n\n"


def start_stream(status: int = 200) -> web.StreamResponse:
    headers = {**PRODUCT_HEADERS, "Content-Type": EVENT_STREAM, "Cache-Control": "no-cache"}
    return OwnStreamResponse(status=status, headers=headers)


async def send_error_stream(request: web.Request, error: ProxyError) -> web.StreamResponse:
    response = start_stream(error.status)
    response.headers.update(error.headers)
    await response.prepare(request)
    await response.write(error_event(error))
    await response.write_eof()
    return response


async def send_completion_deltas(
    request: web.Request, deltas: AsyncIterator[str]
) -> web.StreamResponse:
    """One event per delta, written as it arrives so the client sees each one at once."""
    response = start_stream()
    await response.prepare(request)
    try:
        async for delta in deltas:
            await response.write(message_event({"completion": [{"delta": delta}]}))
    except ProxyError as error:
        await response.write(error_event(error))
    except Exception:
        log.exception("unexpected error while streaming %s", request.path)
        await response.write(error_event(ProxyError("esproxy failed while streaming")))
    else:
        await response.write(DONE)
    await response.write_eof()
    return response
