"""Handlers for Elasticsearch's unified chat API: `POST /_inference/chat_completion/{id}[/_stream]`.

Body parse errors are the REST layer's and answer as ES errors; `messages` validation follows.
On `_stream`, every later failure (unknown endpoint, wrong task type, a request Bedrock could not
take, a Bedrock error) takes the unified error shape, as ES's unified action renders it; the
non-streaming answer goes through ES's ordinary inference action, whose errors are ordinary.
"""

from __future__ import annotations

from contextlib import aclosing

from aiohttp import web

from esproxy.app_keys import CHAT_SERVICE, RESPONSE_TYPE, STREAMING
from esproxy.errors import ProxyError
from esproxy.inference.models import TaskType
from esproxy.inference.unified_chat import check_chat_request, parse_chat_request
from esproxy.web.media_types import JSON
from esproxy.web.query_params import timeout_param
from esproxy.web.responses import json_response
from esproxy.web.unified_stream import send_chat_chunks, send_unified_error


async def serves_chat(request: web.Request, task_type: TaskType | None, inference_id: str) -> bool:
    """Whether this inference call is a unified chat call: by its path, or by its endpoint."""
    if task_type is TaskType.CHAT_COMPLETION:
        return True
    if task_type not in (None, TaskType.ANY):
        return False
    return await request.app[CHAT_SERVICE].is_chat_endpoint(inference_id)


async def chat_completion(
    request: web.Request, task_type: TaskType | None, inference_id: str, body: bytes
) -> web.StreamResponse:
    """The non-streaming answer: one `chat.completion` object."""
    chat_request = parse_chat_request(body)
    check_chat_request(chat_request)
    service = request.app[CHAT_SERVICE]
    # ES answers this through its ordinary inference action: errors take the ordinary shape.
    result = await service.chat(task_type, inference_id, chat_request, timeout_param(request))
    content_type = request.get(RESPONSE_TYPE, JSON)
    return json_response(result, content_type=content_type, pretty="pretty" in request.query)


async def stream_chat_completion(
    request: web.Request, task_type: TaskType | None, inference_id: str, body: bytes
) -> web.StreamResponse:
    request[STREAMING] = False  # parse errors are the REST layer's plain answers
    chat_request = parse_chat_request(body)
    request[STREAMING] = True
    check_chat_request(chat_request)
    service = request.app[CHAT_SERVICE]
    try:
        chunks = await service.chat_stream(
            task_type, inference_id, chat_request, timeout_param(request)
        )
    except ProxyError as error:
        return await send_unified_error(request, error)
    async with aclosing(chunks):
        return await send_chat_chunks(request, chunks)
