"""Elasticsearch's unified chat stream: `chat.completion.chunk` objects as server-sent events.

The framing is ES's `ServerSentEventsRestActionListener`, the same as for completions: each event
opens with a UTF-8 BOM, `event: message`, one chunk per `data:` line, and `data: [DONE]` closes
the stream. Failures take the unified error shape (`{"error": {"code", "message", "type"}}`) in
an `event: error`: with the error's status before the first chunk, in place of `[DONE]` after it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from esproxy.errors import ProxyError, unified_error_body
from esproxy.web.responses import to_json
from esproxy.web.server_sent_events import DONE, message_event, start_stream

log = logging.getLogger(__name__)

_ERROR = "\ufeffevent: error\ndata: ".encode()


def unified_error_event(error: ProxyError) -> bytes:
    return _ERROR + to_json(unified_error_body(error)) + b"\n\n"


async def send_unified_error(request: web.Request, error: ProxyError) -> web.StreamResponse:
    response = start_stream(error.status)
    response.headers.update(error.headers)
    await response.prepare(request)
    await response.write(unified_error_event(error))
    await response.write_eof()
    return response


async def send_chat_chunks(
    request: web.Request, chunks: AsyncIterator[dict[str, Any]]
) -> web.StreamResponse:
    """One event per chunk, written as it arrives."""
    response = start_stream()
    await response.prepare(request)
    try:
        async for chunk in chunks:
            await response.write(message_event(chunk))
    except ProxyError as error:
        await response.write(unified_error_event(error))
    except Exception:
        log.exception("unexpected error while streaming %s", request.path)
        failure = ProxyError("Fatal error while streaming response. Please retry the request.")
        await response.write(unified_error_event(failure))
    else:
        await response.write(DONE)
    await response.write_eof()
    return response
