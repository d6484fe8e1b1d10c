"""InvokeModel for the embedding models: Titan G1/V2 and Cohere embed v3 request checks and bodies.

Validation texts follow Bedrock's JSON-schema errors (`Malformed input request: #/...`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from esproxy.bedrock_emulator import embeddings
from esproxy.bedrock_emulator.errors import BedrockError, malformed_input, validation_error
from esproxy.bedrock_emulator.model_ids import EmbeddingFamily
from esproxy.bedrock_emulator.tokens import count_tokens

TITAN_V1_DIMENSIONS: Final = 1536
TITAN_V2_DIMENSIONS: Final = (256, 512, 1024)
TITAN_MAX_CHARS: Final = 50_000
TITAN_MAX_TOKENS: Final = 8192
COHERE_DIMENSIONS: Final = 1024
COHERE_MAX_TEXTS: Final = 96
COHERE_MAX_CHARS: Final = 2048
COHERE_INPUT_TYPES: Final = ("search_document", "search_query", "classification", "clustering")
COHERE_TRUNCATE: Final = ("NONE", "START", "END")
COHERE_TYPES: Final = ("float", "int8", "uint8", "binary", "ubinary")
COHERE_CONVERTERS: Final[dict[str, Callable[[list[float]], list[int]]]] = {
    "int8": embeddings.to_int8,
    "uint8": embeddings.to_uint8,
    "binary": embeddings.to_binary,
    "ubinary": embeddings.to_ubinary,
}


@dataclass(frozen=True)
class EmbeddingResult:
    """A model-native response body and the input tokens Bedrock reports in a header."""

    body: bytes = field(repr=False)
    input_tokens: int


def invoke_embedding(family: EmbeddingFamily, raw_body: bytes) -> EmbeddingResult:
    """Validate and answer one InvokeModel call; CPU-bound, so callers run it in a thread."""
    request = load_object(raw_body)
    if family is EmbeddingFamily.TITAN_V1:
        return embed_titan_v1(request)
    if family is EmbeddingFamily.TITAN_V2:
        return embed_titan_v2(request)
    return embed_cohere_v3(request)


def load_object(raw_body: bytes) -> dict[str, object]:
    try:
        request = json.loads(raw_body or b"null")
    except (UnicodeDecodeError, ValueError):
        raise malformed_input([]) from None
    if not isinstance(request, dict):
        raise malformed_input([f"#: expected type: JSONObject, found: {json_type(request)}"])
    return request


def json_type(value: object) -> str:
    """The type names the schema validator prints."""
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer"
    if isinstance(value, float):
        return "BigDecimal"
    if isinstance(value, str):
        return "String"
    return "JSONArray" if isinstance(value, list) else "JSONObject"


def extraneous_keys(request: dict[str, object], allowed: tuple[str, ...]) -> list[str]:
    return [f"#: extraneous key [{key}] is not permitted" for key in request if key not in allowed]


def required_string(request: dict[str, object], key: str, problems: list[str]) -> str:
    value = request.get(key)
    if key not in request:
        problems.append(f"#: required key [{key}] not found")
    elif not isinstance(value, str):
        problems.append(f"#/{key}: expected type: String, found: {json_type(value)}")
    return value if isinstance(value, str) else ""


def enum_list(
    request: dict[str, object], key: str, allowed: tuple[str, ...], problems: list[str]
) -> list[str]:
    value = request.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(f"#/{key}: expected type: JSONArray, found: {json_type(value)}")
        return []
    for index, item in enumerate(value):
        if item not in allowed:
            problems.append(f"#/{key}/{index}: {item} is not a valid enum value")
    return [item for item in value if item in allowed]


def check_titan_text(text: str) -> int:
    if len(text) > TITAN_MAX_CHARS:
        raise validation_error(
            f"Malformed input request: expected maxLength: {TITAN_MAX_CHARS}, actual: {len(text)}, "
            "please reformat your input and try again."
        )
    tokens = count_tokens(text)
    if tokens > TITAN_MAX_TOKENS:
        raise validation_error(
            f"400 Bad Request: Too many input tokens. Max input tokens: {TITAN_MAX_TOKENS}, "
            f"request input token count: {tokens} "
        )
    return tokens


def embed_titan_v1(request: dict[str, object]) -> EmbeddingResult:
    problems = extraneous_keys(request, ("inputText",))
    text = required_string(request, "inputText", problems)
    if problems:
        raise malformed_input(problems)
    tokens = check_titan_text(text)
    # G1 has no normalize flag; unit vectors keep every kNN similarity function meaningful.
    vector = embeddings.embed(text, TITAN_V1_DIMENSIONS)
    return respond({"embedding": vector, "inputTextTokenCount": tokens}, tokens)


def embed_titan_v2(request: dict[str, object]) -> EmbeddingResult:
    problems = extraneous_keys(request, ("inputText", "dimensions", "normalize", "embeddingTypes"))
    text = required_string(request, "inputText", problems)
    dimensions = titan_dimensions(request, problems)
    normalize = request.get("normalize", True)
    if not isinstance(normalize, bool):
        problems.append(f"#/normalize: expected type: Boolean, found: {json_type(normalize)}")
    types = enum_list(request, "embeddingTypes", ("float", "binary"), problems) or ["float"]
    if problems:
        raise malformed_input(problems)
    tokens = check_titan_text(text)
    vector = embeddings.embed(text, dimensions, normalize=normalize is True)
    by_type: dict[str, object] = {"float": vector} if "float" in types else {}
    if "binary" in types:
        by_type["binary"] = embeddings.to_bits(vector)
    body = {"embedding": vector, "inputTextTokenCount": tokens, "embeddingsByType": by_type}
    return respond(body, tokens)


def titan_dimensions(request: dict[str, object], problems: list[str]) -> int:
    dimensions = request.get("dimensions", 1024)
    if isinstance(dimensions, int) and dimensions in TITAN_V2_DIMENSIONS:
        return dimensions
    problems.append(f"#/dimensions: {dimensions} is not a valid enum value")
    return 1024


def embed_cohere_v3(request: dict[str, object]) -> EmbeddingResult:
    allowed = ("texts", "images", "input_type", "truncate", "embedding_types")
    problems = extraneous_keys(request, allowed)
    texts = cohere_texts(request, problems)
    input_type = required_string(request, "input_type", problems)
    if "input_type" in request and input_type not in COHERE_INPUT_TYPES:
        problems.append(f"#/input_type: {input_type} is not a valid enum value")
    truncate = request.get("truncate", "NONE")
    if truncate not in COHERE_TRUNCATE:
        problems.append(f"#/truncate: {truncate} is not a valid enum value")
    types = enum_list(request, "embedding_types", COHERE_TYPES, problems)
    if problems:
        raise malformed_input(problems)
    vectors = [embeddings.embed(text, COHERE_DIMENSIONS) for text in texts]
    body: dict[str, object] = {"id": str(uuid.uuid4()), "texts": texts}
    if types:
        body["embeddings"] = {kind: convert(kind, vectors) for kind in types}
        body["response_type"] = "embeddings_by_type"
    else:
        body["embeddings"] = vectors
        body["response_type"] = "embeddings_floats"
    return respond(body, sum(count_tokens(text) for text in texts))


def cohere_texts(request: dict[str, object], problems: list[str]) -> list[str]:
    if "images" in request:
        raise BedrockError(
            "ValidationException", "The Bedrock emulator does not embed images; send texts instead."
        )
    if "texts" not in request:
        problems.append("#: required key [texts] not found")
        return []
    texts = request["texts"]
    if not isinstance(texts, list):
        problems.append(f"#/texts: expected type: JSONArray, found: {json_type(texts)}")
        return []
    if len(texts) > COHERE_MAX_TEXTS:
        problems.append(
            f"#/texts: expected maximum item count: {COHERE_MAX_TEXTS}, found: {len(texts)}"
        )
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            problems.append(f"#/texts/{index}: expected type: String, found: {json_type(text)}")
        elif len(text) > COHERE_MAX_CHARS:
            problems.append(
                f"#/texts/{index}: expected maxLength: {COHERE_MAX_CHARS}, actual: {len(text)}"
            )
    return [text for text in texts if isinstance(text, str)]


def convert(kind: str, vectors: list[list[float]]) -> list[list[float]] | list[list[int]]:
    if kind == "float":
        return vectors
    return [COHERE_CONVERTERS[kind](vector) for vector in vectors]


def respond(body: dict[str, object], input_tokens: int) -> EmbeddingResult:
    return EmbeddingResult(body=json.dumps(body).encode(), input_tokens=input_tokens)
