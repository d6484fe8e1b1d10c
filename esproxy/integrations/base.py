"""The seam every integration implements; the inference service knows integrations only by this."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, runtime_checkable

from esproxy.inference.embedding_cache.keys import EmbeddingIdentity
from esproxy.inference.models import (
    InferenceRequest,
    InferenceResult,
    StoredEndpoint,
    TaskType,
)
from esproxy.inference.rate_limits import RateLimit
from esproxy.inference.unified_chat import ChatRequest

CallSlot = AbstractAsyncContextManager[None]
"""Entered around every single provider call: a rate-limit slot (and later, a concurrency slot)."""


class SlotSource(Protocol):
    """A fresh slot per provider call; `tokens` is the call's estimated token use."""

    def __call__(self, tokens: int = 0) -> CallSlot: ...


class Integration(Protocol):
    """An adapter for one `service` value, such as `amazonbedrock`.

    `parse_request` validates a PUT body strictly and in Elasticsearch's checking order, raising
    the errors of `esproxy.errors`; `parse_stored` reads a stored record leniently so that records
    written by older versions keep working. `validate` makes the probe call that PUT runs and
    returns the endpoint completed with what it learned (for embeddings, `dimensions` and
    `similarity`).
    """

    name: str
    task_types: frozenset[TaskType]
    streaming_task_types: frozenset[TaskType]

    def parse_request(
        self, inference_id: str, task_type: TaskType, body: Mapping[str, Any]
    ) -> StoredEndpoint: ...

    def parse_stored(self, endpoint: StoredEndpoint) -> StoredEndpoint: ...

    def apply_update(
        self, current: StoredEndpoint, path_task_type: TaskType | None, body: Mapping[str, Any]
    ) -> StoredEndpoint:
        """The endpoint after an `_update` body, validated as strictly as a PUT."""
        ...

    def describe(self, task_type: TaskType | None) -> list[dict[str, Any]]:
        """This integration's entry for `GET _inference/_services`, if it has that task type."""
        ...

    def rate_limit(self, endpoint: StoredEndpoint) -> RateLimit: ...

    def validate_request(self, endpoint: StoredEndpoint, request: InferenceRequest) -> None:
        """Integration-specific POST checks, such as the allowed `input_type` values."""
        ...

    def embedding_identity(
        self, endpoint: StoredEndpoint, request: InferenceRequest
    ) -> EmbeddingIdentity | None:
        """What decides the vectors of an embedding request, for the embedding cache; None for
        requests that must not be cached (completions, `task_settings.cache: false`)."""
        ...

    async def validate(self, endpoint: StoredEndpoint, slot: SlotSource) -> StoredEndpoint: ...

    async def infer(
        self, endpoint: StoredEndpoint, request: InferenceRequest, slot: SlotSource
    ) -> InferenceResult: ...

    def stream(
        self, endpoint: StoredEndpoint, request: InferenceRequest, slot: SlotSource
    ) -> AsyncGenerator[str, None]:
        """Text deltas of a completion as the provider sends them; closing it stops the call."""
        ...


@runtime_checkable
class ChatIntegration(Protocol):
    """An integration that also answers Elasticsearch's unified chat API (`chat_completion`).

    Both methods map the request before any call, so bad input fails at once; `chat_stream`
    yields `chat.completion.chunk` objects and closing it stops the provider's stream.
    """

    async def chat(
        self, endpoint: StoredEndpoint, request: ChatRequest, slot: SlotSource
    ) -> dict[str, Any]: ...

    def chat_stream(
        self, endpoint: StoredEndpoint, request: ChatRequest, slot: SlotSource
    ) -> AsyncGenerator[dict[str, Any], None]: ...
