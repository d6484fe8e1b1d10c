"""esproxy's own answers as Elasticsearch renders them for the request's common parameters.

`?filter_path` (successful answers only: ES never filters errors), `?format=yaml` or an
`Accept: application/yaml` header, `?pretty`; `?human` and `?error_trace` are accepted (no field
of esproxy's answers has a human form, and esproxy has no stack traces to show). No `Server` or
`Date` header, which ES never sends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from esproxy.app_keys import RESPONSE_TYPE
from esproxy.errors import PlainError
from esproxy.web.filter_path import apply_filter_path
from esproxy.web.media_types import JSON, YAML
from esproxy.web.responses import PRODUCT_HEADERS, OwnResponse, to_json
from esproxy.web.yaml_output import to_yaml

FORMATS = {"json": JSON, "yaml": YAML}


def output_type(request: web.Request) -> str:
    """The Content-Type to answer in: `?format` first, then what the headers negotiated."""
    wanted = request.query.get("format")
    if wanted is not None:
        found = FORMATS.get(wanted.lower())
        if found is None:
            raise PlainError(
                f"format [{wanted}] is not supported by esproxy; use json or yaml", status=406
            )
        return found
    negotiated: str = request.get(RESPONSE_TYPE, JSON)
    return negotiated


def is_pretty(request: web.Request) -> bool:
    value = request.query.get("pretty")
    return value is not None and value.lower() != "false"


def compact_json_type(request: web.Request) -> str | None:
    """The Content-Type when the answer would be plain compact JSON (no `pretty`, `filter_path`
    or YAML), for answers that can be assembled from JSON already rendered; else None."""
    if is_pretty(request) or "filter_path" in request.query:
        return None
    try:
        content_type = output_type(request)
    except PlainError:
        return None  # render() reports the bad `format`
    return None if content_type == YAML else content_type


def render(
    request: web.Request,
    body: Any,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    filtered: bool = True,
) -> web.Response:
    try:
        content_type = output_type(request)
    except PlainError:
        content_type = JSON  # the error about `format` itself
    if filtered and status < 400 and "filter_path" in request.query:
        body = apply_filter_path(body, request.query.getall("filter_path"))
    data = to_yaml(body) if content_type == YAML else to_json(body, pretty=is_pretty(request))
    all_headers = {**PRODUCT_HEADERS, "Content-Type": content_type, **(headers or {})}
    return OwnResponse(status=status, body=data, headers=all_headers)
