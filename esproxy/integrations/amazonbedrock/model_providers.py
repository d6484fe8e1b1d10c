"""Bedrock's model providers and what each can do, as Elasticsearch's capability table has it.

Request bodies and response parsing per provider live in `bodies`; this module only names them.
"""

from __future__ import annotations

from enum import StrEnum

from esproxy.inference.java_text import java_enum_name
from esproxy.inference.models import TaskType


class ModelProvider(StrEnum):
    """Values are lower case, as ES prints providers in messages; `display_name` is the echo."""

    AMAZONTITAN = "amazontitan"
    ANTHROPIC = "anthropic"
    AI21LABS = "ai21labs"
    COHERE = "cohere"
    META = "meta"
    MISTRAL = "mistral"

    @property
    def display_name(self) -> str:
        """The enum name ES writes into `service_settings.provider` (`AMAZONTITAN`)."""
        return self.name


PROVIDER_CHOICES = tuple(provider.value for provider in ModelProvider)

EMBEDDING_PROVIDERS = frozenset({ModelProvider.AMAZONTITAN, ModelProvider.COHERE})
TOP_K_PROVIDERS = frozenset({ModelProvider.ANTHROPIC, ModelProvider.COHERE, ModelProvider.MISTRAL})
DEFAULT_SIMILARITY = {ModelProvider.AMAZONTITAN: "cosine", ModelProvider.COHERE: "dot_product"}
EMBEDDING_BATCH_SIZES = {ModelProvider.AMAZONTITAN: 1, ModelProvider.COHERE: 96}


def parse_provider(value: str) -> ModelProvider:
    """ES's `valueOf(trim().toUpperCase())`; raises ValueError for an unknown provider."""
    try:
        return ModelProvider[java_enum_name(value)]
    except KeyError:
        raise ValueError(value) from None


def unknown_provider_message(value: str, scope: str = "service_settings") -> str:
    choices = ", ".join(sorted(PROVIDER_CHOICES))
    return f"[{scope}] Invalid value [{value}] received. [provider] must be one of [{choices}]"


def supports_task_type(provider: ModelProvider, task_type: TaskType) -> bool:
    if task_type is TaskType.TEXT_EMBEDDING:
        return provider in EMBEDDING_PROVIDERS
    return task_type in (TaskType.COMPLETION, TaskType.CHAT_COMPLETION)


def accepts_top_k(provider: ModelProvider) -> bool:
    return provider in TOP_K_PROVIDERS


def default_similarity(provider: ModelProvider) -> str:
    return DEFAULT_SIMILARITY.get(provider, "cosine")


def embedding_batch_size(provider: ModelProvider) -> int:
    return EMBEDDING_BATCH_SIZES.get(provider, 1)
