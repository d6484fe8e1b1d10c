"""Rendering of the responses esproxy makes itself: compact JSON, ES headers, float32 vectors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson
from aiohttp import web

from esproxy.inference.models import TextEmbeddingResult
from esproxy.web.media_types import JSON

PRODUCT_HEADERS = {"X-elastic-product": "Elasticsearch"}
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class OwnResponse(web.Response):
    """A response without aiohttp's `Server` (it names the stack) and `Date` headers."""

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()
        self._headers.popall("Server", None)
        self._headers.popall("Date", None)


class OwnStreamResponse(web.StreamResponse):
    """The same for streamed answers (`_stream`'s server-sent events)."""

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()
        self._headers.popall("Server", None)
        self._headers.popall("Date", None)


def encode_default(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return list(value)
    raise TypeError(f"cannot render {type(value).__name__} as JSON")


def to_json(body: Any, *, pretty: bool = False) -> bytes:
    if pretty:
        return "".join(pretty_parts(body, 0)).encode() + b"\n"
    return orjson.dumps(body, default=encode_default, option=_OPTIONS)


def pretty_parts(value: Any, level: int) -> list[str]:
    """ES's `?pretty` layout (Jackson's printer): `"key" : value`, `[ ]` and `{ }` when empty."""
    inner, outer = "\n" + "  " * (level + 1), "\n" + "  " * level
    if isinstance(value, dict):
        if not value:
            return ["{ }"]
        entries = [
            inner + orjson.dumps(str(key)).decode() + " : " + "".join(pretty_parts(item, level + 1))
            for key, item in value.items()
        ]
        return ["{", ",".join(entries), outer, "}"]
    if isinstance(value, (list, tuple, np.ndarray)):
        if len(value) == 0:
            return ["[ ]"]
        items = [inner + "".join(pretty_parts(item, level + 1)) for item in value]
        return ["[", ",".join(items), outer, "]"]
    return [orjson.dumps(value, option=_OPTIONS).decode()]


def float32_vectors(vectors: Any) -> Any:
    """Vectors as float32 arrays, so they print in float32's shortest form, as ES prints them."""
    return np.asarray(vectors, dtype=np.float32)


def embedding_vectors(result: TextEmbeddingResult) -> Any:
    """float32 vectors as above; byte and bit vectors as signed bytes, as ES prints Java bytes."""
    if result.element_type == "float":
        return float32_vectors(result.embeddings)
    return np.asarray(result.embeddings, dtype=np.int8)


def rendered_embeddings(result: TextEmbeddingResult, content_type: str) -> web.Response:
    """The compact answer built from vectors already rendered (embedding cache hits): the same
    bytes `json_response` would give, without formatting a float again."""
    items = b",".join(b'{"embedding":' + text + b"}" for text in result.rendered)
    data = b'{"' + result.result_key.encode() + b'":[' + items + b"]}"
    return OwnResponse(body=data, headers={**PRODUCT_HEADERS, "Content-Type": content_type})


def json_response(
    body: Any,
    *,
    status: int = 200,
    content_type: str = JSON,
    pretty: bool = False,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    data = to_json(body, pretty=pretty)
    all_headers = {**PRODUCT_HEADERS, "Content-Type": content_type, **(headers or {})}
    return OwnResponse(status=status, body=data, headers=all_headers)
