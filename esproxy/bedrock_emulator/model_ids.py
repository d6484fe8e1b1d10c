"""Model-id checks: Bedrock's id pattern, the known providers, which models each operation takes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from esproxy.bedrock_emulator.errors import validation_error

# Bedrock's InvokeModelIdentifier pattern, verbatim from the service model; it is quoted in errors.
MODEL_ID_PATTERN: Final = (
    r"(arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:(([0-9]{12}:custom-model/[a-z0-9-]{1,63}[.]{1}"
    r"[a-z0-9-]{1,63}/[a-z0-9]{12})|(:foundation-model/[a-z0-9-]{1,63}[.]{1}[a-z0-9-]{1,63}"
    r"([.:]?[a-z0-9-]{1,63}))|([0-9]{12}:imported-model/[a-z0-9]{12})|([0-9]{12}:"
    r"provisioned-model/[a-z0-9]{12})|([0-9]{12}:custom-model-deployment/[a-z0-9]{12})|([0-9]{12}:"
    r"(inference-profile|application-inference-profile)/[a-zA-Z0-9-:.]+)))|([a-z0-9-]{1,63}[.]{1}"
    r"[a-z0-9-]{1,63}([.:]?[a-z0-9-]{1,63}))|(([0-9a-zA-Z][_-]?)+)|([a-zA-Z0-9-:.]+)$|(^(arn:aws"
    r"(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:[0-9]{12}:prompt/[0-9a-zA-Z]{10}(?::[0-9]{1,5})?))$|(^arn:"
    r"aws:sagemaker:[a-z0-9-]+:[0-9]{12}:endpoint/[a-zA-Z0-9-]+$)|(^arn:aws(-[^:]+)?:bedrock:"
    r"([0-9a-z-]{1,20}):([0-9]{12}):(default-)?prompt-router/[a-zA-Z0-9-:.]+$)"
)
MODEL_ID_REGEX: Final = re.compile(MODEL_ID_PATTERN)
PROVIDERS: Final = frozenset({"amazon", "anthropic", "ai21", "cohere", "meta", "mistral"})
# `provider.name`, then optional `-vN`/`:N`/`:200k` style suffixes, e.g. anthropic.claude-v2:0:100k.
BASE_ID_REGEX: Final = re.compile(r"(?P<provider>[a-z0-9]+)\.[a-z0-9][a-z0-9-]*(?:[.:][a-z0-9-]+)*")
ARN_RESOURCES: Final = ("foundation-model/", "inference-profile/")
INVALID_ID = "The provided model identifier is invalid."
NOT_A_CHAT_MODEL = (
    "This action doesn't support the model that you provided. Try again with a supported text or "
    "chat model."
)


class EmbeddingFamily(StrEnum):
    TITAN_V1 = "titan-v1"
    TITAN_V2 = "titan-v2"
    COHERE_V3 = "cohere-v3"


EMBEDDING_MODELS: Final = {
    "amazon.titan-embed-text-v1": EmbeddingFamily.TITAN_V1,
    "amazon.titan-embed-g1-text-02": EmbeddingFamily.TITAN_V1,
    "amazon.titan-embed-text-v2:0": EmbeddingFamily.TITAN_V2,
    "cohere.embed-english-v3": EmbeddingFamily.COHERE_V3,
    "cohere.embed-multilingual-v3": EmbeddingFamily.COHERE_V3,
}
EMBEDDING_PREFIXES: Final = ("amazon.titan-embed", "cohere.embed")


@dataclass(frozen=True)
class ModelRef:
    """A requested model: the id as sent, the bare foundation-model id, and its provider."""

    model_id: str
    base_id: str
    provider: str

    @property
    def embedding_family(self) -> EmbeddingFamily | None:
        return EMBEDDING_MODELS.get(self.base_id)

    @property
    def is_embedding(self) -> bool:
        return self.base_id.startswith(EMBEDDING_PREFIXES)


def resolve_model(model_id: str) -> ModelRef:
    """Check an id as Bedrock does: the pattern first, then whether the model exists here."""
    if not 1 <= len(model_id) <= 2048 or MODEL_ID_REGEX.fullmatch(model_id) is None:
        raise validation_error(
            f"1 validation error detected: Value '{model_id}' at 'modelId' failed to satisfy "
            f"constraint: Member must satisfy regular expression pattern: {MODEL_ID_PATTERN}"
        )
    base_id = strip_region_prefix(strip_arn(model_id))
    match = BASE_ID_REGEX.fullmatch(base_id)
    if match is None or match["provider"] not in PROVIDERS:
        raise validation_error(INVALID_ID)
    return ModelRef(model_id=model_id, base_id=base_id, provider=match["provider"])


def strip_arn(model_id: str) -> str:
    if not model_id.startswith("arn:"):
        return model_id
    _, _, resource = model_id.rpartition(":")
    for kind in ARN_RESOURCES:
        position = model_id.find(kind)
        if position >= 0:
            return model_id[position + len(kind) :]
    return resource


def strip_region_prefix(model_id: str) -> str:
    """`us.anthropic.claude-...` -> `anthropic.claude-...` (cross-region inference profiles)."""
    prefix, dot, rest = model_id.partition(".")
    if dot and prefix not in PROVIDERS and rest.partition(".")[0] in PROVIDERS:
        return rest
    return model_id


def require_embedding_model(model: ModelRef) -> EmbeddingFamily:
    family = model.embedding_family
    if family is None:
        if model.is_embedding:
            raise validation_error(INVALID_ID)
        raise validation_error(
            f"The Bedrock emulator serves InvokeModel only for embedding models "
            f"({', '.join(sorted(EMBEDDING_MODELS))}); call Converse for {model.model_id}."
        )
    return family


def require_chat_model(model: ModelRef) -> None:
    if model.is_embedding:
        raise validation_error(NOT_A_CHAT_MODEL)
