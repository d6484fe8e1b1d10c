"""The data every layer shares: task types, endpoints, inference requests and results.

Plain frozen dataclasses only; parsing lives in the schemas and rendering in the web layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from esproxy.errors import BadRequest


class TaskType(StrEnum):
    """Every task type Elasticsearch knows; an integration declares which it supports."""

    TEXT_EMBEDDING = "text_embedding"
    SPARSE_EMBEDDING = "sparse_embedding"
    RERANK = "rerank"
    COMPLETION = "completion"
    ANY = "any"
    CHAT_COMPLETION = "chat_completion"
    EMBEDDING = "embedding"

    @classmethod
    def parse(cls, value: str) -> TaskType:
        try:
            return cls(value.lower())
        except ValueError:
            raise BadRequest(f"Unknown task_type [{value}]") from None


@dataclass(frozen=True)
class EndpointConfig:
    """An endpoint as GET shows it: no secrets, settings already in Elasticsearch's key order."""

    inference_id: str
    task_type: TaskType
    service: str
    service_settings: Mapping[str, Any]
    task_settings: Mapping[str, Any] = field(default_factory=dict)
    chunking_settings: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "inference_id": self.inference_id,
            "task_type": str(self.task_type),
            "service": self.service,
            "service_settings": dict(self.service_settings),
        }
        if self.task_settings:
            body["task_settings"] = dict(self.task_settings)
        if self.chunking_settings is not None:
            body["chunking_settings"] = dict(self.chunking_settings)
        return body

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> EndpointConfig:
        return cls(
            inference_id=body["inference_id"],
            task_type=TaskType(body["task_type"]),
            service=body["service"],
            service_settings=body["service_settings"],
            task_settings=body.get("task_settings") or {},
            chunking_settings=body.get("chunking_settings"),
        )


@dataclass(frozen=True)
class StoredEndpoint:
    """An endpoint with its secrets, as the service hands it to an integration.

    `internal` holds persisted-only service fields that responses never show, such as
    `dimensions_set_by_user`.
    """

    config: EndpointConfig
    secrets: Mapping[str, str] = field(repr=False)
    internal: Mapping[str, Any] = field(default_factory=dict)

    @property
    def inference_id(self) -> str:
        return self.config.inference_id


@dataclass(frozen=True)
class InferenceRequest:
    """A POST body after validation; `task_settings` are per-request overrides.

    `timeout` is the body's alternative to the `timeout` query parameter, in seconds.
    """

    inputs: Sequence[str]
    input_type: str | None = None
    task_settings: Mapping[str, Any] = field(default_factory=dict)
    timeout: float | None = None


# Elasticsearch's response key for each dense_vector element type.
EMBEDDING_RESULT_KEYS = {
    "float": "text_embedding",
    "byte": "text_embedding_bytes",
    "bit": "text_embedding_bits",
}


@dataclass(frozen=True)
class TextEmbeddingResult:
    """One vector per input, in input order: float32 values, or signed bytes for the `byte` and
    `bit` element types (bits packed eight to a byte). `tokens` holds each input's token count
    where known (the embedding cache counts what its hits save)."""

    embeddings: Sequence[Sequence[float]]
    element_type: str = "float"
    tokens: Sequence[int] = ()
    rendered: Sequence[bytes] = ()  # each vector's JSON text, where the cache already has it

    @property
    def result_key(self) -> str:
        return EMBEDDING_RESULT_KEYS[self.element_type]

    def to_dict(self) -> dict[str, Any]:
        return {self.result_key: [{"embedding": vector} for vector in self.embeddings]}


@dataclass(frozen=True)
class CompletionResult:
    results: Sequence[str]

    def to_dict(self) -> dict[str, Any]:
        return {"completion": [{"result": text} for text in self.results]}


InferenceResult = TextEmbeddingResult | CompletionResult
