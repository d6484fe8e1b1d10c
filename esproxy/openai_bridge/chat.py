"""`POST /_esproxy/openai/v1/chat/completions` over esproxy's chat and completion endpoints.

OpenAI's chat request is Elasticsearch's unified chat request plus a few OpenAI-only fields, so
the body is read by the unified chat parser once those are taken out; `model` names the esproxy
endpoint and is never passed on as a Bedrock model. `chat_completion` endpoints answer through
the chat service; `completion` endpoints (what the cluster's `openai` completion task calls) take
one user message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from esproxy.app_keys import CHAT_SERVICE, INFERENCE_SERVICE
from esproxy.authorization import privileges
from esproxy.errors import BridgeRequestError, ProxyError
from esproxy.inference.models import CompletionResult, TaskType
from esproxy.inference.unified_chat import ChatRequest, check_chat_request, parse_chat_request
from esproxy.observability import events
from esproxy.openai_bridge import access, requests, responses
from esproxy.web.handlers import decode_body, read_body_of

log = logging.getLogger(__name__)

EVENT_STREAM = "text/event-stream"
DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True)
class BridgeChat:
    model: str
    stream: bool
    request: ChatRequest


def parse_chat(body: bytes) -> BridgeChat:
    fields = dict(requests.decode_object(body))
    model = requests.require_model(fields)
    del fields["model"]  # the endpoint's id, never a Bedrock model override
    stream = fields.pop("stream", False)
    if not isinstance(stream, bool):
        raise BridgeRequestError("Invalid type for 'stream': expected a boolean.", param="stream")
    n = fields.pop("n", 1)
    if n != 1:
        raise BridgeRequestError("Only n=1 is supported: esproxy returns one choice.", param="n")
    # Accepted and not needed: usage always ends a stream, Bedrock calls tools one turn at a time.
    for name in ("stream_options", "user", "parallel_tool_calls"):
        fields.pop(name, None)
    if "max_tokens" in fields:  # OpenAI's older name
        fields.setdefault("max_completion_tokens", fields.pop("max_tokens"))
    request = parse_chat_request(orjson.dumps(fields))
    check_chat_request(request)
    return BridgeChat(model, stream, request)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    scope = await access.grant(request, privileges.INFER)
    chat = parse_chat(decode_body(request, await read_body_of(request)))
    access.require(scope, chat.model)
    config = await request.app[INFERENCE_SERVICE].endpoint_config(chat.model)
    if config.task_type == TaskType.CHAT_COMPLETION:
        service = request.app[CHAT_SERVICE]
        if not chat.stream:
            answer = await service.chat(TaskType.CHAT_COMPLETION, chat.model, chat.request)
            return responses.json_response(stamped(answer, chat.model))
        chunks = await service.chat_stream(TaskType.CHAT_COMPLETION, chat.model, chat.request)
        return await send_chunks(request, chunks, chat.model)
    if config.task_type == TaskType.COMPLETION:
        return await complete(request, chat)
    raise BridgeRequestError(
        f"Model [{chat.model}] is a [{config.task_type}] endpoint; the chat route takes "
        "[chat_completion] and [completion] endpoints.",
        param="model",
    )


async def complete(request: web.Request, chat: BridgeChat) -> web.StreamResponse:
    """A `completion` endpoint: one user message in, one answer out, as ES's task sends it."""
    messages = chat.request.messages
    if chat.request.tools or len(messages) != 1 or messages[0].role != "user":
        raise BridgeRequestError(
            f"Model [{chat.model}] is a [completion] endpoint: it takes one user message and no "
            "tools. Use a [chat_completion] endpoint for conversations and tool calls.",
            param="messages",
        )
    body = orjson.dumps({"input": messages[0].text})
    service = request.app[INFERENCE_SERVICE]
    completion_id = f"chatcmpl-{time.time_ns():x}"
    if chat.stream:
        deltas = await service.stream(TaskType.COMPLETION, chat.model, body)
        chunks = completion_chunks(completion_id, chat.model, deltas)
        return await send_chunks(request, chunks, chat.model)
    result = await service.infer(TaskType.COMPLETION, chat.model, body)
    if not isinstance(result, CompletionResult):
        raise ProxyError(f"endpoint [{chat.model}] did not answer with a completion")
    message = {"content": result.results[0], "role": "assistant"}
    return responses.json_response(
        stamped(
            {
                "id": completion_id,
                "choices": [{"finish_reason": "stop", "index": 0, "message": message}],
                "model": chat.model,
                "object": "chat.completion",
                "usage": recorded_usage(),
            },
            chat.model,
        )
    )


async def completion_chunks(
    completion_id: str, model: str, deltas: AsyncIterator[str]
) -> AsyncIterator[dict[str, Any]]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"delta": delta, "finish_reason": finish, "index": 0}
        return {"id": completion_id, "choices": [choice], "model": model, "object": CHUNK}

    async with aclosing(deltas):  # type: ignore[type-var]
        yield chunk({"role": "assistant"})
        async for text in deltas:
            yield chunk({"content": text})
        yield chunk({}, "stop")


CHUNK = "chat.completion.chunk"


def recorded_usage() -> dict[str, int]:
    """Bedrock's own token counts for this request, as OpenAI's usage object."""
    record = events.current_request()
    prompt, completion = (0, 0) if record is None else (record.input_tokens, record.output_tokens)
    return {
        "completion_tokens": completion,
        "prompt_tokens": prompt,
        "total_tokens": prompt + completion,
    }


def stamped(body: Mapping[str, Any], model: str) -> dict[str, Any]:
    """As OpenAI names them: the model asked for (the endpoint), and a creation time, which
    Elasticsearch's unified objects lack."""
    return {**body, "model": model, "created": int(time.time())}


async def send_chunks(
    request: web.Request, chunks: AsyncIterator[Mapping[str, Any]], model: str
) -> web.StreamResponse:
    """OpenAI's stream: bare `data:` events, `[DONE]` last, an `error` object on failure."""
    response = web.StreamResponse(
        headers={"Content-Type": EVENT_STREAM, "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    try:
        async for chunk in chunks:
            await response.write(b"data: " + orjson.dumps(stamped(chunk, model)) + b"\n\n")
    except ProxyError as error:
        await response.write(b"data: " + orjson.dumps(responses.error_body(error)) + b"\n\n")
    except Exception:
        log.exception("unexpected error while streaming %s", request.path)
        failure = ProxyError("esproxy failed while streaming the answer; retry the request")
        await response.write(b"data: " + orjson.dumps(responses.error_body(failure)) + b"\n\n")
    else:
        await response.write(DONE)
    finally:
        closer = getattr(chunks, "aclose", None)
        if closer is not None:
            await closer()
    await response.write_eof()
    return response
