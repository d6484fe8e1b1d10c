"""ChatService: Elasticsearch's unified chat API (`chat_completion`) over the inference service.

The checks run in ES's order: the request was parsed and validated by the caller; then the
endpoint is loaded (404), its task type checked, and the integration maps the request before any
provider call. Streams wait for their first chunk under the call's deadline, as completions do.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from esproxy.errors import BadRequest, StatusError
from esproxy.inference.models import StoredEndpoint, TaskType
from esproxy.inference.service import InferenceService
from esproxy.inference.timeouts import default_timeout
from esproxy.inference.unified_chat import ChatRequest
from esproxy.integrations.base import ChatIntegration, Integration

Chunk = dict[str, Any]


class ChatService:
    def __init__(self, inference: InferenceService) -> None:
        self._inference = inference

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
        endpoint, integration, slots = await self._prepare(path_task_type, inference_id)
        seconds = deadline(time_limit)
        return await self._inference.within(seconds, integration.chat(endpoint, request, slots))

    async def chat_stream(
        self,
        path_task_type: TaskType | None,
        inference_id: str,
        request: ChatRequest,
        time_limit: float | None = None,
    ) -> AsyncGenerator[Chunk, None]:
        endpoint, integration, slots = await self._prepare(path_task_type, inference_id)
        chunks = integration.chat_stream(endpoint, request, slots)
        try:
            first = await self._inference.within(deadline(time_limit), anext(chunks, None))
        except BaseException:
            await chunks.aclose()
            raise
        return continue_chunks(first, chunks)

    async def _prepare(
        self, path_task_type: TaskType | None, inference_id: str
    ) -> tuple[StoredEndpoint, ChatIntegration, Any]:
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
    if not isinstance(integration, ChatIntegration):
        raise StatusError(
            f"The [{integration.name}] service does not support the unified chat API",
            status=400,
        )
    return integration


def deadline(time_limit: float | None) -> float:
    return default_timeout(TaskType.CHAT_COMPLETION) if time_limit is None else time_limit


async def continue_chunks(
    first: Chunk | None, rest: AsyncGenerator[Chunk, None]
) -> AsyncGenerator[Chunk, None]:
    async with aclosing(rest):
        if first is None:
            return
        yield first
        async for chunk in rest:
            yield chunk
