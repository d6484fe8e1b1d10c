"""ChatService: Elasticsearch's unified chat API (`chat_completion`) over the inference service.

The checks run in ES's order: the request was parsed and validated by the caller; then the
endpoint is loaded (404), its task type checked, and the integration maps the request before any
provider call. Streams wait for their first chunk under the call's deadline, as completions do.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any, cast

from esproxy.errors import BadRequest, ProxyError, StatusError
from esproxy.inference.models import StoredEndpoint, TaskType
from esproxy.inference.service import InferenceService
from esproxy.inference.timeouts import default_timeout
from esproxy.inference.unified_chat import ChatRequest
from esproxy.integrations.base import ChatIntegration, Integration
from esproxy.observability import events

Chunk = dict[str, Any]


@dataclass
class ChatStats:
    """What the chat API has done since start, for readiness details now and metrics later."""

    calls: int = 0  # non-streaming answers
    streams: int = 0  # streams started
    streams_open: int = 0
    tool_calls: int = 0  # tool calls handed to callers, streamed or not
    refused: int = 0  # 4xx before any Bedrock call or from Bedrock
    failed: int = 0  # 5xx, before or during a stream

    def to_json(self) -> dict[str, int]:
        return asdict(self)


class ChatService:
    def __init__(self, inference: InferenceService) -> None:
        self._inference = inference
        self.stats = ChatStats()

    async def is_chat_endpoint(self, inference_id: str) -> bool:
        """Whether esproxy holds `inference_id` as a `chat_completion` endpoint."""
        if not await self._inference.holds(inference_id):
            return False
        endpoint = await self._inference.load_endpoint(inference_id)
        return endpoint.config.task_type is TaskType.CHAT_COMPLETION

    async def chat(
        self,
        path_task_type: TaskType | None,
        inference_id: str,
        request: ChatRequest,
        time_limit: float | None = None,
    ) -> Chunk:
        try:
            endpoint, integration, slots = await self._prepare(path_task_type, inference_id)
            work = integration.chat(endpoint, request, slots)
            result = await self._inference.within(deadline(time_limit), work)
        except ProxyError as error:
            self._count_failure(error)
            raise
        self.stats.calls += 1
        for choice in result.get("choices", ()):
            self.stats.tool_calls += len(choice.get("message", {}).get("tool_calls", ()))
        return result

    async def chat_stream(
        self,
        path_task_type: TaskType | None,
        inference_id: str,
        request: ChatRequest,
        time_limit: float | None = None,
    ) -> AsyncGenerator[Chunk, None]:
        try:
            endpoint, integration, slots = await self._prepare(path_task_type, inference_id)
            chunks = integration.chat_stream(endpoint, request, slots)
        except ProxyError as error:
            self._count_failure(error)
            raise
        try:
            first = await self._inference.within(deadline(time_limit), anext(chunks, None))
        except BaseException as error:
            await chunks.aclose()
            if isinstance(error, ProxyError):
                self._count_failure(error)
            raise
        self.stats.streams += 1
        return self._counted(first, chunks)

    def stats_json(self) -> dict[str, int]:
        return self.stats.to_json()

    def _count_failure(self, error: ProxyError) -> None:
        if error.status < 500:
            self.stats.refused += 1
        else:
            self.stats.failed += 1

    async def _counted(
        self, first: Chunk | None, rest: AsyncGenerator[Chunk, None]
    ) -> AsyncGenerator[Chunk, None]:
        """`first`, then the rest of the stream, counted as they go."""
        self.stats.streams_open += 1
        try:
            async with aclosing(rest):
                if first is None:
                    return
                self._count_tool_calls(first)
                yield first
                async for chunk in rest:
                    self._count_tool_calls(chunk)
                    yield chunk
        except ProxyError as error:
            self._count_failure(error)
            raise
        finally:
            self.stats.streams_open -= 1

    def _count_tool_calls(self, chunk: Chunk) -> None:
        for choice in chunk["choices"]:
            for call in choice["delta"].get("tool_calls", ()):
                self.stats.tool_calls += "id" in call

    async def _prepare(
        self, path_task_type: TaskType | None, inference_id: str
    ) -> tuple[StoredEndpoint, ChatIntegration, Any]:
        events.inference_started(inference_id)
        endpoint = await self._inference.load_endpoint(inference_id)
        task_type = endpoint.config.task_type
        requested = path_task_type or TaskType.CHAT_COMPLETION
        if requested not in (TaskType.ANY, TaskType.CHAT_COMPLETION) or (
            task_type is not TaskType.CHAT_COMPLETION
        ):
            raise BadRequest(
                f"Incompatible task_type for unified API, the requested type [{requested}] must "
                f"be one of [{TaskType.CHAT_COMPLETION}]"
            )
        integration, slots = self._inference.integration_for(endpoint)
        return endpoint, chat_integration(integration), slots


def chat_integration(integration: Integration) -> ChatIntegration:
    if not answers_chat(type(integration)):
        raise StatusError(
            f"The [{integration.name}] service does not support the unified chat API",
            status=400,
        )
    return cast(ChatIntegration, integration)


@cache
def answers_chat(kind: type[Integration]) -> bool:
    """Once per class: a check against a runtime protocol inspects every member (~5 µs)."""
    return issubclass(kind, ChatIntegration)


def deadline(time_limit: float | None) -> float:
    return default_timeout(TaskType.CHAT_COMPLETION) if time_limit is None else time_limit
