"""Thin handlers for esproxy's own routes: path and body in, InferenceService call, JSON out."""

from __future__ import annotations

import json
from contextlib import aclosing
from typing import Any

from aiohttp import web

from esproxy.app_keys import (
    CHECKED_BODY,
    FORWARDER,
    INFERENCE_SERVICE,
    RESPONSE_TYPE,
    SETTINGS,
    STREAMING,
)
from esproxy.errors import BodyParseError, NoUpstream
from esproxy.inference.models import TaskType, TextEmbeddingResult
from esproxy.inference.service import ALL_IDS
from esproxy.web import chat_handlers
from esproxy.web.cluster_info import cluster_info
from esproxy.web.media_types import negotiate
from esproxy.web.query_params import bool_param, check_params, timeout_param
from esproxy.web.rendering import compact_json_type, output_type, render
from esproxy.web.request_bodies import decode_content, read_raw_body
from esproxy.web.responses import embedding_vectors, json_response, rendered_embeddings
from esproxy.web.server_sent_events import send_completion_deltas


def prepare(request: web.Request, *params: str) -> None:
    """ES's checks before dispatch: media-type headers, then the query parameters."""
    request[RESPONSE_TYPE] = negotiate(
        request.headers.get("Accept"), request.headers.get("Content-Type"), request.body_exists
    )
    check_params(request, params)
    output_type(request)  # an unsupported `?format` is refused before any work


def respond(request: web.Request, body: Any) -> web.Response:
    return render(request, body)


def path_parts(request: web.Request) -> tuple[TaskType | None, str]:
    """`/_inference/{id}` or `/_inference/{task_type}/{id}`: one segment is always the id."""
    first, second = request.match_info["first"], request.match_info.get("second")
    if second is None:
        return None, first
    return TaskType.parse(first), second


async def required_body(request: web.Request) -> bytes:
    raw = await read_body_of(request)
    return decode_body(request, raw)


async def read_body_of(request: web.Request) -> bytes:
    server = request.app[SETTINGS].server
    return await read_raw_body(request, server.max_body_bytes, server.body_timeout_seconds)


def decode_body(request: web.Request, raw: bytes, *, required: bool = True) -> bytes:
    """The body with its Content-Encoding undone; `_update` words its own empty-body error."""
    limit = request.app[SETTINGS].server.max_body_bytes
    body = decode_content(raw, request.headers.get("Content-Encoding"), limit)
    if required and not body:
        raise BodyParseError("request body is required")
    return body


async def put_endpoint(request: web.Request) -> web.StreamResponse:
    prepare(request, "timeout")
    task_type, inference_id = path_parts(request)
    raw = await read_body_of(request)
    body = decode_body(request, raw)
    service = request.app[INFERENCE_SERVICE]
    forwarder, named = request.app.get(FORWARDER), peek_service(body)
    if forwarder is not None and isinstance(named, str) and not service.serves(named):
        return await forwarder.forward(request, body=raw)  # another service: the cluster's own
    config = await service.put_endpoint(task_type, inference_id, body, timeout_param(request))
    return respond(request, config.to_dict())


async def get_endpoints(request: web.Request) -> web.StreamResponse:
    prepare(request)
    task_type, inference_id = None, None
    if "first" in request.match_info:
        task_type, inference_id = path_parts(request)
    listing = inference_id is None or inference_id in ALL_IDS
    if not listing and (foreign := await forward_foreign(request, str(inference_id))):
        return foreign
    configs = await request.app[INFERENCE_SERVICE].get_endpoints(task_type, inference_id)
    endpoints = [config.to_dict() for config in configs]
    if listing and FORWARDER in request.app:
        endpoints = merge_endpoints(endpoints, await request.app[FORWARDER].fetch_json(request))
    return respond(request, {"endpoints": endpoints})


async def update_endpoint(request: web.Request) -> web.StreamResponse:
    prepare(request, "timeout")
    task_type, inference_id = path_parts(request)
    if foreign := await forward_foreign(request, inference_id):
        return foreign
    body = decode_body(request, await read_body_of(request), required=False)
    service = request.app[INFERENCE_SERVICE]
    config = await service.update_endpoint(task_type, inference_id, body, timeout_param(request))
    return respond(request, config.to_dict())


async def get_services(request: web.Request) -> web.StreamResponse:
    prepare(request)
    raw_type = request.match_info.get("task_type")
    task_type = None if raw_type is None else TaskType.parse(raw_type)
    services = request.app[INFERENCE_SERVICE].describe_services(task_type)
    if FORWARDER in request.app:
        services = merge_services(services, await request.app[FORWARDER].fetch_json(request))
    return respond(request, services)


def merge_services(ours: list[dict[str, Any]], theirs: Any) -> list[dict[str, Any]]:
    """The cluster's services with esproxy's entries in place of its own, sorted by service."""
    if not isinstance(theirs, list):
        return ours
    names = {entry["service"] for entry in ours}
    kept = [e for e in theirs if isinstance(e, dict) and e.get("service") not in names]
    return sorted(kept + ours, key=lambda entry: str(entry.get("service")))


async def forward_foreign(request: web.Request, inference_id: str) -> web.StreamResponse | None:
    """Endpoints esproxy does not hold belong to the cluster, which answers for them."""
    forwarder = request.app.get(FORWARDER)
    if forwarder is None or await request.app[INFERENCE_SERVICE].holds(inference_id):
        return None
    return await forwarder.forward(request)


def merge_endpoints(ours: list[dict[str, Any]], theirs: Any) -> list[dict[str, Any]]:
    """Ours plus the cluster's own endpoints, by id; a cluster without the API adds none."""
    if not isinstance(theirs, dict) or not isinstance(theirs.get("endpoints"), list):
        return ours
    held = {endpoint["inference_id"] for endpoint in ours}
    merged = ours + [
        e for e in theirs["endpoints"] if isinstance(e, dict) and e.get("inference_id") not in held
    ]
    return sorted(merged, key=lambda endpoint: str(endpoint.get("inference_id")))


def peek_service(body: bytes) -> object:
    """The `service` a PUT body names, if it is readable JSON; validation comes later."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return parsed.get("service") if isinstance(parsed, dict) else None


async def delete_endpoint(request: web.Request) -> web.StreamResponse:
    prepare(request, "dry_run", "force")
    task_type, inference_id = path_parts(request)
    if foreign := await forward_foreign(request, inference_id):
        return foreign
    bool_param(request, "force")  # validated as ES does; nothing references endpoints here
    result = await request.app[INFERENCE_SERVICE].delete_endpoint(
        task_type, inference_id, dry_run=bool_param(request, "dry_run")
    )
    return respond(request, result)


async def infer(request: web.Request) -> web.StreamResponse:
    prepare(request, "timeout")
    task_type, inference_id = path_parts(request)
    if foreign := await forward_foreign(request, inference_id):
        return foreign
    body = await required_body(request)
    if await chat_handlers.serves_chat(request, task_type, inference_id):
        return await chat_handlers.chat_completion(request, task_type, inference_id, body)
    service = request.app[INFERENCE_SERVICE]
    result = await service.infer(task_type, inference_id, body, timeout_param(request))
    if isinstance(result, TextEmbeddingResult):
        content_type = compact_json_type(request) if result.rendered else None
        if content_type is not None:
            return rendered_embeddings(result, content_type)
        vectors = embedding_vectors(result)
        return respond(request, {result.result_key: [{"embedding": v} for v in vectors]})
    return respond(request, result.to_dict())


async def stream_completion(request: web.Request) -> web.StreamResponse:
    request[STREAMING] = True
    prepare(request, "timeout")
    task_type, inference_id = path_parts(request)
    if foreign := await forward_foreign(request, inference_id):
        return foreign
    body = await required_body(request)
    if await chat_handlers.serves_chat(request, task_type, inference_id):
        return await chat_handlers.stream_chat_completion(request, task_type, inference_id, body)
    service = request.app[INFERENCE_SERVICE]
    deltas = await service.stream(task_type, inference_id, body, timeout_param(request))
    async with aclosing(deltas):
        return await send_completion_deltas(request, deltas)


async def root_info(request: web.Request) -> web.Response:
    prepare(request)
    if request.method == "HEAD":
        return json_response({}, content_type=request[RESPONSE_TYPE])
    return respond(request, cluster_info(request.app[SETTINGS]))


async def forward(request: web.Request) -> web.StreamResponse:
    return await request.app[FORWARDER].forward(request, request.get(CHECKED_BODY))


async def no_upstream(request: web.Request) -> web.Response:
    raise NoUpstream(
        f"no upstream cluster is configured, so esproxy cannot serve [{request.method} "
        f"{request.path}]; it answers only the _inference API. Start it with --upstream URL to "
        "forward everything else to a cluster"
    )
