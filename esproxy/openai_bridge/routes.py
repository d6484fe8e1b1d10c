"""The OpenAI-compatible routes: thin handlers over InferenceService, errors in OpenAI's shape."""

from __future__ import annotations

import functools
import logging

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from esproxy.app_keys import INFERENCE_SERVICE
from esproxy.authorization import privileges
from esproxy.errors import BridgeRequestError, ProxyError
from esproxy.inference.models import TaskType, TextEmbeddingResult
from esproxy.observability import events
from esproxy.openai_bridge import access, requests, responses
from esproxy.openai_bridge.chat import chat_completions
from esproxy.web.handlers import decode_body, read_body_of

log = logging.getLogger(__name__)

PREFIX = "/_esproxy/openai/v1"


def add_bridge_routes(app: web.Application) -> None:
    router = app.router
    router.add_post(f"{PREFIX}/embeddings", openai_errors(embeddings))
    router.add_post(f"{PREFIX}/chat/completions", openai_errors(chat_completions))
    router.add_get(f"{PREFIX}/models", openai_errors(models))


def openai_errors(handler: Handler) -> Handler:
    """Render esproxy's errors as OpenAI does, so OpenAI SDKs and ES's parser read them."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ProxyError as error:
            if error.status >= 500:
                log.warning("%s %s -> %s %s", request.method, request.path, error.status, error)
            return responses.error_response(error)
        except web.HTTPException as error:
            if error.status < 400:
                raise
            return responses.error_response(ProxyError(error.reason, status=error.status))

    return wrapped


async def embeddings(request: web.Request) -> web.StreamResponse:
    scope = await access.grant(request, privileges.INFER)
    parsed = requests.parse_embeddings(decode_body(request, await read_body_of(request)))
    access.require(scope, parsed.model)
    service = request.app[INFERENCE_SERVICE]
    config = await service.endpoint_config(parsed.model)
    if config.task_type != TaskType.TEXT_EMBEDDING:
        raise BridgeRequestError(
            f"Model [{parsed.model}] is a [{config.task_type}] endpoint; the embeddings route "
            "takes [text_embedding] endpoints.",
            param="model",
        )
    element_type = config.service_settings.get("element_type", "float")
    if element_type != "float":
        raise BridgeRequestError(
            f"Model [{parsed.model}] makes [{element_type}] vectors; OpenAI's embeddings API and "
            "the cluster's openai service take float vectors only.",
            param="model",
        )
    dims = config.service_settings.get("dimensions")
    if parsed.dimensions is not None and parsed.dimensions != dims:
        raise BridgeRequestError(
            f"Model [{parsed.model}] makes vectors of [{dims}] dimensions; send 'dimensions' as "
            f"{dims} or leave it out.",
            param="dimensions",
        )
    body = orjson.dumps({"input": list(parsed.inputs)})
    result = await service.infer(TaskType.TEXT_EMBEDDING, parsed.model, body)
    if not isinstance(result, TextEmbeddingResult) or result.element_type != "float":
        raise BridgeRequestError(
            f"Model [{parsed.model}] does not return float embeddings.", param="model"
        )
    return responses.json_response(
        responses.embeddings_body(
            result.embeddings, parsed.model, parsed.encoding_format, input_tokens()
        )
    )


def input_tokens() -> int:
    """Bedrock's own count for this request's calls (a cache hit costs none)."""
    record = events.current_request()
    return 0 if record is None else record.input_tokens


async def models(request: web.Request) -> web.StreamResponse:
    scope = await access.grant(request, privileges.GET_ENDPOINTS)
    configs = await request.app[INFERENCE_SERVICE].get_endpoints(None, None)
    return responses.json_response(
        responses.models_body([c.inference_id for c in configs if scope(c.inference_id)])
    )
