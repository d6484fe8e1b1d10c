"""The embedding options Elasticsearch never sends: Titan v2 `dimensions`, `normalize` and binary
vectors, Cohere's `embedding_type`s. Which model takes which, the request fields they become, and
how each vector form is read back into the form Elasticsearch's dense_vector takes.

esproxy extensions, listed in docs/compatibility.md. Pure functions: no I/O.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

from esproxy.errors import ProxyError
from esproxy.integrations.amazonbedrock.model_providers import ModelProvider

TITAN_V2_DIMENSIONS = (256, 512, 1024)
EMBEDDING_TYPES = ("binary", "float", "int8", "ubinary", "uint8")
TITAN_V2_TYPES = ("binary", "float")
TITAN_V2 = "Titan Text Embeddings V2 (amazon.titan-embed-text-v2:0)"
COHERE_TYPED = "Cohere Embed v3 or v4 (cohere.embed-english-v3, cohere.embed-multilingual-v3, " + (
    "cohere.embed-v4:0)"
)
# Model ids, bare or inside an ARN or inference profile. Unknown ids (custom-model ARNs) get no
# options: esproxy cannot tell what they accept, so it refuses rather than guess.
_TITAN_V2 = re.compile(r"amazon\.titan-embed-text-v2")
_COHERE_TYPED = re.compile(r"cohere\.embed-(?:english-v3|multilingual-v3|v4)")


class ElementType(StrEnum):
    """Elasticsearch's dense_vector element types, and the response key of each."""

    FLOAT = "float"
    BYTE = "byte"
    BIT = "bit"

    @property
    def result_key(self) -> str:
        return {"float": "text_embedding", "byte": "text_embedding_bytes"}.get(
            self.value, "text_embedding_bits"
        )


ELEMENT_TYPES = {
    "float": ElementType.FLOAT,
    "int8": ElementType.BYTE,
    "uint8": ElementType.BYTE,
    "binary": ElementType.BIT,
    "ubinary": ElementType.BIT,
}


def element_type(embedding_type: str | None) -> ElementType:
    return ELEMENT_TYPES[embedding_type or "float"]


def is_titan_v2(provider: ModelProvider, model: str) -> bool:
    return provider is ModelProvider.AMAZONTITAN and _TITAN_V2.search(model) is not None


def takes_embedding_types(provider: ModelProvider, model: str) -> bool:
    return provider is ModelProvider.COHERE and _COHERE_TYPED.search(model) is not None


def option_problems(provider: ModelProvider, model: str, service: Mapping[str, Any]) -> list[str]:
    """What is wrong with the options of a PUT, each naming the values that would be accepted."""
    problems: list[str] = []
    titan_v2 = is_titan_v2(provider, model)
    dimensions = service.get("dimensions")
    if dimensions is not None:
        choices = ", ".join(map(str, TITAN_V2_DIMENSIONS))
        if not titan_v2:
            problems.append(
                f"[service_settings] does not allow the setting [dimensions] for model [{model}]: "
                f"only {TITAN_V2} takes it, as one of [{choices}]"
            )
        elif dimensions not in TITAN_V2_DIMENSIONS:
            problems.append(
                f"[service_settings] Invalid value [{dimensions}] received. [dimensions] must be "
                f"one of [{choices}] for model [{model}]"
            )
    if service.get("normalize") is not None and not titan_v2:
        problems.append(
            f"[service_settings] does not allow the setting [normalize] for model [{model}]: "
            f"only {TITAN_V2} takes it"
        )
    kind = service.get("embedding_type")
    if kind is not None and kind != "float":
        if titan_v2 and kind not in TITAN_V2_TYPES:
            problems.append(
                f"[service_settings] Invalid value [{kind}] received. [embedding_type] must be one "
                f"of [{', '.join(TITAN_V2_TYPES)}] for model [{model}]"
            )
        elif not titan_v2 and not takes_embedding_types(provider, model):
            problems.append(
                f"[service_settings] Invalid value [{kind}] received. [embedding_type] must be "
                f"[float] for model [{model}]: [binary] needs {TITAN_V2}; [binary, int8, ubinary, "
                f"uint8] need {COHERE_TYPED}"
            )
    return problems


def titan_fields(
    dimensions: int | None, normalize: bool | None, embedding_type: str | None
) -> dict[str, Any]:
    """Titan v2's optional request fields; nothing when every option is at its default."""
    body: dict[str, Any] = {}
    if dimensions is not None:
        body["dimensions"] = dimensions
    if normalize is not None:
        body["normalize"] = normalize
    if embedding_type == "binary":
        body["embeddingTypes"] = ["binary"]
    return body


def cohere_fields(embedding_type: str | None) -> dict[str, Any]:
    if embedding_type in (None, "float"):
        return {}
    return {"embedding_types": [embedding_type]}


def titan_binary(body: Mapping[str, Any]) -> array[int]:
    """Titan's 0/1 per dimension, packed eight to a byte as ES's bit vectors are."""
    by_type = body.get("embeddingsByType")
    bits = by_type.get("binary") if isinstance(by_type, Mapping) else None
    if not isinstance(bits, list) or len(bits) % 8 or any(bit not in (0, 1) for bit in bits):
        raise ProxyError(
            "Amazon Bedrock embeddings response holds no binary embedding of whole bytes",
            status=500,
        )
    return pack_bits(bits)


def pack_bits(bits: Sequence[int]) -> array[int]:
    packed = array("b")
    for start in range(0, len(bits), 8):
        byte = 0
        for bit in bits[start : start + 8]:
            byte = (byte << 1) | bit
        packed.append(byte - 256 if byte > 127 else byte)
    return packed


def cohere_typed(values: Any, embedding_type: str) -> array[int]:
    """One Cohere vector of a quantised type as signed bytes, the form a dense_vector takes.

    uint8 is moved down by 128 (l2 distances stay the same) and ubinary read as signed bytes
    (the same bits); int8 and binary pass as they are.
    """
    shift = {"uint8": -128, "ubinary": 0}.get(embedding_type, 0)
    low, high = (0, 255) if embedding_type in ("uint8", "ubinary") else (-128, 127)
    if not isinstance(values, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and low <= v <= high for v in values
    ):
        raise ProxyError(
            f"Amazon Bedrock embeddings response holds an [{embedding_type}] value out of range",
            status=500,
        )
    if embedding_type == "ubinary":
        return array("b", [v - 256 if v > 127 else v for v in values])
    return array("b", [v + shift for v in values])


def reported_dimensions(kind: ElementType, vector_length: int) -> int:
    """dims as Elasticsearch counts them: bits for bit vectors (8 per byte), else values."""
    return vector_length * 8 if kind is ElementType.BIT else vector_length


def default_similarity(kind: ElementType, provider_default: str) -> str:
    # dense_vector bit fields take only l2_norm (a Hamming distance).
    return "l2_norm" if kind is ElementType.BIT else provider_default
