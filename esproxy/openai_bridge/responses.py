"""OpenAI's response and error shapes, rendered from esproxy's results and error tree."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
from aiohttp import web

from esproxy.errors import BridgeRequestError, EndpointNotFound, ProxyError

JSON = "application/json"
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY

# OpenAI's error `type` by status; SDKs pick their exception class by status alone.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def json_response(body: Any, *, status: int = 200, headers: Any = None) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps(body, option=_OPTIONS),
        headers={"Content-Type": JSON, **(headers or {})},
    )


def error_body(error: ProxyError) -> dict[str, Any]:
    param = error.param if isinstance(error, BridgeRequestError) else None
    code: str | None = None
    if isinstance(error, EndpointNotFound):
        param, code = "model", "model_not_found"
    elif error.status == 401:
        code = "invalid_api_key"
    elif error.status == 429:
        code = "rate_limit_exceeded"
    kind = ERROR_TYPES.get(error.status, "server_error" if error.status >= 500 else "api_error")
    return {"error": {"message": error.reason, "type": kind, "param": param, "code": code}}


def error_response(error: ProxyError) -> web.Response:
    # Retry hints (Retry-After) survive; ES's WWW-Authenticate challenges mean nothing here.
    headers = {k: v for k, v in error.headers.items() if k.lower() != "www-authenticate"}
    return json_response(error_body(error), status=error.status, headers=headers)


def embeddings_body(
    vectors: Sequence[Sequence[float]], model: str, encoding: str, prompt_tokens: int
) -> dict[str, Any]:
    # float32 throughout: printed in float32's shortest form, or packed little-endian for base64.
    array = np.asarray(vectors, dtype="<f4")
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": base64.b64encode(row.tobytes()).decode() if encoding == "base64" else row,
        }
        for index, row in enumerate(array)
    ]
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def models_body(ids: Sequence[str]) -> dict[str, Any]:
    # esproxy keeps no creation time per endpoint; OpenAI's clients need only an integer here.
    return {
        "object": "list",
        "data": [{"id": i, "object": "model", "created": 0, "owned_by": "esproxy"} for i in ids],
    }
