"""Parsing OpenAI request bodies into what esproxy's inference service takes.

Errors name the offending parameter (`param`), as OpenAI's do, so that SDKs can show it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from esproxy.errors import BridgeRequestError

ENCODING_FORMATS = ("float", "base64")
EMBEDDINGS_FIELDS = frozenset({"input", "model", "dimensions", "encoding_format", "user"})


@dataclass(frozen=True)
class EmbeddingsRequest:
    inputs: tuple[str, ...]
    model: str
    dimensions: int | None
    encoding_format: str


def decode_object(body: bytes) -> Mapping[str, Any]:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BridgeRequestError(
            "We could not parse the JSON body of your request. The body must be a JSON object."
        ) from None
    if not isinstance(parsed, dict):
        raise BridgeRequestError(
            f"The request body must be a JSON object, not {json_type(parsed)}."
        )
    return parsed


def parse_embeddings(body: bytes) -> EmbeddingsRequest:
    fields = decode_object(body)
    unknown = sorted(set(fields) - EMBEDDINGS_FIELDS)
    if unknown:
        raise BridgeRequestError(
            f"Unrecognized request argument supplied: {unknown[0]}", param=unknown[0]
        )
    model = require_model(fields)
    inputs = parse_inputs(fields.get("input"))
    dimensions = fields.get("dimensions")
    if dimensions is not None and (
        not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1
    ):
        raise BridgeRequestError(
            f"Invalid value for 'dimensions': expected a positive integer, got "
            f"{orjson.dumps(dimensions).decode()}.",
            param="dimensions",
        )
    encoding = fields.get("encoding_format", "float")
    if encoding not in ENCODING_FORMATS:
        raise BridgeRequestError(
            f"Invalid value for 'encoding_format': expected one of 'float' or 'base64', got "
            f"{orjson.dumps(encoding).decode()}.",
            param="encoding_format",
        )
    user = fields.get("user")
    if user is not None and not isinstance(user, str):
        raise BridgeRequestError("Invalid type for 'user': expected a string.", param="user")
    return EmbeddingsRequest(inputs, model, dimensions, encoding)


def require_model(fields: Mapping[str, Any]) -> str:
    model = fields.get("model")
    if model is None:
        raise BridgeRequestError(
            "You must provide a model parameter: the id of an esproxy inference endpoint.",
            param="model",
        )
    if not isinstance(model, str) or not model:
        raise BridgeRequestError(
            "Invalid value for 'model': expected the id of an esproxy inference endpoint.",
            param="model",
        )
    return model


def parse_inputs(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise BridgeRequestError(
            "Invalid type for 'input': expected a string or an array of strings, got "
            f"{json_type(value)}.",
            param="input",
        )
    if not value:
        raise BridgeRequestError("'input' must not be empty.", param="input")
    for index, item in enumerate(value):
        if isinstance(item, (int, list)) and not isinstance(item, bool):
            raise BridgeRequestError(
                "Token arrays are not supported in 'input': send text; esproxy's models "
                "tokenize it themselves.",
                param="input",
            )
        if not isinstance(item, str):
            raise BridgeRequestError(
                f"Invalid type for 'input[{index}]': expected a string, got {json_type(item)}.",
                param="input",
            )
        if not item:
            raise BridgeRequestError(
                f"'input[{index}]' must not be an empty string.", param="input"
            )
    return tuple(value)


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
