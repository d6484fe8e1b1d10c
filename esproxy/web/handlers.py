"""Thin handlers for esproxy's own routes: path and body in, InferenceService call, JSON out."""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

from aiohttp import web

from esproxy.app_keys import INFERENCE_SERVICE, RESPONSE_TYPE, SETTINGS, STREAMING
from esproxy.errors import BodyParseError, NoUpstream
from esproxy.inference.models import TaskType, TextEmbeddingResult
from esproxy.web.cluster_info import cluster_info
from esproxy.web.media_types import negotiate
from esproxy.web.query_params import bool_param, check_params, timeout_param
from esproxy.web.request_bodies import read_body
from esproxy.web.responses import float32_vectors, json_response
from esproxy.web.server_sent_events import send_completion_deltas


def prepare(request: web.Request, *params: str) -> None:
    """ES's checks before dispatch: media-type headers, then the query parameters."""
    request[RESPONSE_TYPE] = negotiate(
        request.headers.get("Accept"), request.headers.get("Content-Type"), request.body_exists
    )
    check_params(request, params)


def respond(request: web.Request, body: Any) -> web.Response:
    return json_response(
        body, content_type=request[RESPONSE_TYPE], pretty="pretty" in request.query
    )


def path_parts(request: web.Request) -> tuple[TaskType | None, str]:
    """`/_inference/{id}` or `/_inference/{task_type}/{id}`: one segment is always the id."""
    first, second = request.match_info["first"], request.match_info.get("second")
    if second is None:
        return None, first
    return TaskType.parse(first), second


async def required_body(request: web.Request) -> bytes:
    body = await read_body(request, request.app[SETTINGS].server.max_body_bytes)
    if not body:
        raise BodyParseError("request body is required")
    return body


async def put_endpoint(request: web.Request) -> web.Response:
    prepare(request, "timeout")
    task_type, inference_id = path_parts(request)
    body = await required_body(request)
    service = request.app[INFERENCE_SERVICE]
    config = await service.put_endpoint(task_type, inference_id, body, timeout_param(request))
    return respond(request, config.to_dict())


async def get_endpoints(request: web.Request) -> web.Response:
    prepare(request)
    task_type, inference_id = (
        (None, None) if "first" not in request.match_info else path_parts(request)
    )
    configs = await request.app[INFERENCE_SERVICE].get_endpoints(task_type, inference_id)
    return respond(request, {"endpoints": [config.to_dict() for config in configs]})


async def delete_endpoint(request: web.Request) -> web.Response:
    prepare(request, "dry_run", "force")
    task_type, inference_id = path_parts(request)
    bool_param(request, "force")  # validated as ES does; nothing references endpoints here
    result = await request.app[INFERENCE_SERVICE].delete_endpoint(
        task_type, inference_id, dry_run=bool_param(request, "dry_run")
    )
    return respond(request, result)


async def infer(request: web.Request) -> web.Response:
    prepare(request, "timeout")
    task_type, inference_id = path_parts(request)
    body = await required_body(request)
    service = request.app[INFERENCE_SERVICE]
    result = await service.infer(task_type, inference_id, body, timeout_param(request))
    if isinstance(result, TextEmbeddingResult):
        vectors = float32_vectors(result.embeddings)
        return respond(request, {"text_embedding": [{"embedding": v} for v in vectors]})
    return respond(request, result.to_dict())


async def stream_completion(request: web.Request) -> web.StreamResponse:
    request[STREAMING] = True
    prepare(request, "timeout")
    task_type, inference_id = path_parts(request)
    body = await required_body(request)
    service = request.app[INFERENCE_SERVICE]
    deltas = await service.stream(task_type, inference_id, body, timeout_param(request))
    async with aclosing(deltas):
        return await send_completion_deltas(request, deltas)


async def root_info(request: web.Request) -> web.Response:
    prepare(request)
    if request.method == "HEAD":
        return json_response({}, content_type=request[RESPONSE_TYPE])
    return respond(request, cluster_info(request.app[SETTINGS]))


async def no_upstream(request: web.Request) -> web.Response:
    raise NoUpstream(
        f"no upstream cluster is configured, so esproxy cannot serve [{request.method} "
        f"{request.path}]; it answers only the _inference API. Start it with --upstream URL to "
        "forward everything else to a cluster"
    )
