"""Bedrock request bodies esproxy builds and the responses it reads, per model provider.

Pure functions over plain values: no I/O, no aiobotocore.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np

from esproxy.errors import ProxyError
from esproxy.integrations.amazonbedrock.model_providers import ModelProvider

# The user's document says max_new_tokens "Defaults to 64"; ES documents that but sends nothing,
# which lets Bedrock default to the model's maximum. We follow the document.
DEFAULT_MAX_NEW_TOKENS = 64

# ES characters-per-token estimate for `max_input_tokens` (its Truncator).
CHARS_PER_TOKEN = 3

NOT_A_NUMBER = "Amazon Bedrock embeddings response holds a value that is not a number"

COHERE_INPUT_TYPES = {
    "ingest": "search_document",
    "internal_ingest": "search_document",
    "unspecified": "search_document",
    "search": "search_query",
    "internal_search": "search_query",
    "classification": "classification",
    "clustering": "clustering",
}

# ES's `top_k` task setting is a float in 0.0..1.0, but every Bedrock model that has top-k takes a
# whole number of tokens, under its own name in `additionalModelRequestFields`. ES itself writes
# `{"top_k":0.500000}` into `additionalModelResponseFieldPaths`, which Bedrock rejects as a
# malformed JSON pointer, so there is no working behaviour to copy. We read the float as a share of
# the model's top-k range: k = round(top_k * upper), at least 1 (0.0 is greedy, 1.0 the widest).
# Upper bounds are those of the model-parameter pages (Claude 500, Command R `k` 500, Mistral 200).
TOP_K_FIELDS: Mapping[ModelProvider, tuple[str, int]] = {
    ModelProvider.ANTHROPIC: ("top_k", 500),
    ModelProvider.COHERE: ("k", 500),
    ModelProvider.MISTRAL: ("top_k", 200),
}


def truncate_inputs(texts: Sequence[str], max_input_tokens: int | None) -> list[str]:
    """Cut each input to `max_input_tokens * 3` characters, as ES does before sending."""
    if max_input_tokens is None:
        return list(texts)
    limit = max_input_tokens * CHARS_PER_TOKEN
    return [text[:limit] for text in texts]


def titan_embedding_body(text: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    # ES sends only `inputText`, so Titan v2 uses its defaults (1024 dimensions, normalized);
    # esproxy adds the endpoint's options (embedding_options.titan_fields), if any.
    return {"inputText": text, **(options or {})}


def cohere_input_type(input_type: str | None) -> str:
    if input_type is None:
        return "search_document"
    return COHERE_INPUT_TYPES.get(input_type.lower(), "search_document")


def cohere_embedding_body(
    texts: Sequence[str],
    input_type: str | None,
    truncate: str | None,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"texts": list(texts), "input_type": cohere_input_type(input_type)}
    if truncate is not None:
        body["truncate"] = truncate.upper()
    body.update(options or {})
    return body


def top_k_field(provider: ModelProvider, top_k: float) -> dict[str, int]:
    """The provider's top-k field for ES's 0.0..1.0 `top_k`; empty when the model has none."""
    known = TOP_K_FIELDS.get(provider)
    if known is None:
        return {}
    name, upper = known
    return {name: max(1, round(top_k * upper))}


def converse_request(
    inputs: Sequence[str],
    *,
    provider: ModelProvider,
    max_new_tokens: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    top_k: float | None = None,
) -> dict[str, Any]:
    """Converse arguments (without `modelId`) for one conversation holding every input."""
    # ES sends each input as its own user message, but Bedrock requires user and assistant turns
    # to alternate and rejects two user messages in a row. One user message with a text block per
    # input is the same conversation in a form Bedrock accepts; one input is sent exactly as ES.
    config: dict[str, Any] = {}
    if temperature is not None:
        config["temperature"] = temperature
    if top_p is not None:
        config["topP"] = top_p
    config["maxTokens"] = max_new_tokens or DEFAULT_MAX_NEW_TOKENS
    request: dict[str, Any] = {
        "messages": [{"role": "user", "content": [{"text": text} for text in inputs]}],
        "inferenceConfig": config,
    }
    extra = top_k_field(provider, top_k) if top_k is not None else {}
    if extra:
        request["additionalModelRequestFields"] = extra
    return request


def parse_titan_embedding(body: Mapping[str, Any]) -> array[float]:
    return float32_vector(require_field(body, "embedding", "embeddings"))


def titan_token_count(body: Mapping[str, Any]) -> int | None:
    count = body.get("inputTextTokenCount")
    return count if isinstance(count, int) and not isinstance(count, bool) else None


def parse_cohere_vectors(
    body: Mapping[str, Any], expected: int, kind: str = "float"
) -> Sequence[Any]:
    """The raw vectors of one type; typed answers (and Cohere v4's) key the vectors by type.
    Float vectors may come as the rows of one 2-D float32 array (`vector_json`)."""
    vectors = require_field(body, "embeddings", "embeddings")
    if isinstance(vectors, Mapping):
        vectors = require_field(vectors, kind, "embeddings")
    elif kind != "float":
        raise ProxyError(
            f"Amazon Bedrock returned float embeddings where [{kind}] was asked for", status=500
        )
    if not is_list(vectors) or len(vectors) != expected:
        count = len(vectors) if is_list(vectors) else 0
        raise ProxyError(
            f"Amazon Bedrock returned [{count}] embeddings for [{expected}] inputs",
            status=500,
        )
    return cast(Sequence[Any], vectors)


def parse_cohere_embeddings(body: Mapping[str, Any], expected: int) -> list[array[float]]:
    return [float32_vector(vector) for vector in parse_cohere_vectors(body, expected)]


def parse_converse_output(response: Mapping[str, Any]) -> list[str]:
    """One result per text content block of the answer, as ES reads a Converse response."""
    output = require_field(response, "output", "converse")
    message = require_field(output, "message", "converse")
    content = require_field(message, "content", "converse")
    return [block["text"] for block in content if isinstance(block.get("text"), str)]


def float32_rows(vectors: Sequence[Any]) -> Sequence[Sequence[float]]:
    """Float vectors held as float32: the 2-D array `vector_json` read stays as it is (its rows
    are the vectors; a copy per row cost ~0.3 ms per Cohere answer of 96), lists are narrowed."""
    if isinstance(vectors, np.ndarray) and vectors.ndim == 2 and vectors.dtype == np.float32:
        return cast(Sequence[Sequence[float]], vectors)
    return [float32_vector(vector) for vector in vectors]


def float32_vector(values: Any) -> array[float]:
    """A vector held as float32, which is how ES reads Bedrock's numbers (`vector_json` reads
    most answers' vectors as float32 arrays already)."""
    if isinstance(values, np.ndarray):
        if values.ndim != 1:  # a list of lists where one vector belongs
            raise ProxyError(NOT_A_NUMBER, status=500)
        return array("f", values.tobytes())  # a copy of the bytes: ~1 µs for 1024 numbers
    if not isinstance(values, list):
        raise ProxyError("Amazon Bedrock embeddings response holds no list of numbers", status=500)
    try:
        return array("f", values)
    except TypeError:
        raise ProxyError(NOT_A_NUMBER, status=500) from None


def is_list(value: Any) -> bool:
    """A JSON list: a list, or the float32 array `vector_json` reads a list of numbers into."""
    return isinstance(value, (list, np.ndarray))


def require_field(body: Any, name: str, kind: str) -> Any:
    if not isinstance(body, Mapping) or name not in body:
        raise ProxyError(
            f"Failed to find required field [{name}] in Amazon Bedrock {kind} response", status=500
        )
    return body[name]
