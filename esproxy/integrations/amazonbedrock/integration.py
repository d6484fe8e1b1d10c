"""AmazonBedrockIntegration: the `amazonbedrock` service behind the Integration protocol.

Settings parsing lives in `settings`, bodies in `bodies` and the calls themselves in `client`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, Coroutine, Mapping, Sequence
from contextlib import aclosing
from typing import Any, TypeVar

from esproxy.errors import BadRequest, ProxyError
from esproxy.inference.embedding_cache.keys import EmbeddingIdentity, canonical_spec
from esproxy.inference.models import (
    CompletionResult,
    InferenceRequest,
    InferenceResult,
    StoredEndpoint,
    TaskType,
    TextEmbeddingResult,
)
from esproxy.inference.rate_limits import RateLimit, estimate_tokens
from esproxy.inference.unified_chat import ChatRequest, Message
from esproxy.integrations.amazonbedrock import bodies, chat, embedding_options, settings, updates
from esproxy.integrations.amazonbedrock.client import BedrockClients
from esproxy.integrations.amazonbedrock.credentials import CredentialsUnavailable
from esproxy.integrations.amazonbedrock.model_providers import ModelProvider, embedding_batch_size
from esproxy.integrations.amazonbedrock.retries import RetryPolicy
from esproxy.integrations.amazonbedrock.service_description import describe_service
from esproxy.integrations.amazonbedrock.settings import (
    BedrockEndpoint,
    CompletionTaskSettings,
    EmbeddingTaskSettings,
)
from esproxy.integrations.base import CallSlot, SlotSource

T = TypeVar("T")

TYPED_ENDPOINTS = 1024  # as many as the service's endpoint cache holds

# ES's probe: one input, sent as an ingest would send it (Cohere: search_document).
PROBE = InferenceRequest(inputs=["how big"], input_type="internal_ingest")
# ES's chat_completion probe: one user message, as its ChatCompletionModelValidator sends it.
CHAT_PROBE = ChatRequest(messages=(Message(role="user", content="how big"),))
NO_REQUEST = InferenceRequest(inputs=())
PROBE_FAILED = (
    "Could not complete inference endpoint creation as validation call to service threw an "
    "exception."
)


class AmazonBedrockIntegration:
    name = "amazonbedrock"
    task_types = frozenset({TaskType.TEXT_EMBEDDING, TaskType.COMPLETION, TaskType.CHAT_COMPLETION})
    streaming_task_types = frozenset({TaskType.COMPLETION, TaskType.CHAT_COMPLETION})

    def __init__(
        self, clients: BedrockClients, retries: RetryPolicy | None = None, *, keyless: bool = False
    ) -> None:
        self._clients = clients
        # `[bedrock] credentials = "default"`: endpoints may leave out their keys.
        self._keyless = keyless
        self._retries = RetryPolicy() if retries is None else retries
        # The typed view of each stored endpoint, for as long as the service hands out the same
        # parsed record (its endpoint cache does until the record changes): marshmallow runs once.
        self._typed: dict[str, tuple[StoredEndpoint, BedrockEndpoint]] = {}

    def parse_request(
        self, inference_id: str, task_type: TaskType, body: Mapping[str, Any]
    ) -> StoredEndpoint:
        return settings.parse_request_endpoint(inference_id, task_type, body, keyless=self._keyless)

    def parse_stored(self, endpoint: StoredEndpoint) -> StoredEndpoint:
        settings.read_endpoint(endpoint)
        return endpoint

    def apply_update(
        self, current: StoredEndpoint, path_task_type: TaskType | None, body: Mapping[str, Any]
    ) -> StoredEndpoint:
        return updates.apply_update(current, path_task_type, body)

    def describe(self, task_type: TaskType | None) -> list[dict[str, Any]]:
        return describe_service(task_type)

    def rate_limit(self, endpoint: StoredEndpoint) -> RateLimit:
        # Per endpoint, where ES shares one limiter among all endpoints with the same keys:
        # Bedrock's quotas are per model and region, so unrelated endpoints should not queue
        # behind each other. Read from the public config alone, as deletion has no secrets.
        adaptive, tokens_per_minute = settings.rate_limit_extensions(endpoint.config)
        return RateLimit(
            key=f"amazonbedrock/{endpoint.inference_id}",
            requests_per_minute=settings.requests_per_minute(endpoint.config),
            inference_id=endpoint.inference_id,
            adaptive=adaptive,
            tokens_per_minute=tokens_per_minute,
        )

    def validate_request(self, endpoint: StoredEndpoint, request: InferenceRequest) -> None:
        settings.validate_input_type(endpoint, request.input_type)

    def embedding_identity(
        self, endpoint: StoredEndpoint, request: InferenceRequest
    ) -> EmbeddingIdentity | None:
        """What decides this request's vectors, for the embedding cache; None when not cached."""
        bedrock = self._read(endpoint, request)
        task = bedrock.task_settings
        if not isinstance(task, EmbeddingTaskSettings) or task.cache is False:
            return None
        cohere = bedrock.provider is ModelProvider.COHERE
        spec = canonical_spec(
            {
                "service": self.name,
                "provider": str(bedrock.provider),
                "model": bedrock.model,
                # Titan takes no input type; Cohere's is what ES's input type maps to.
                "input_type": bodies.cohere_input_type(request.input_type) if cohere else None,
                "truncate": task.truncate if cohere else None,
                "dimensions": bedrock.dimensions if bedrock.dimensions_set_by_user else None,
                "normalize": bedrock.normalize,
                "embedding_type": bedrock.embedding_type or "float",
            }
        )
        return EmbeddingIdentity(
            spec=spec,
            texts=bodies.truncate_inputs(request.inputs, bedrock.max_input_tokens),
            element_type=str(embedding_options.element_type(bedrock.embedding_type)),
            batch_size=embedding_batch_size(bedrock.provider),
        )

    async def validate(self, endpoint: StoredEndpoint, slot: SlotSource) -> StoredEndpoint:
        """ES's PUT probe; embeddings learn their dimensions (and default similarity) from it."""
        try:
            if endpoint.config.task_type is TaskType.CHAT_COMPLETION:
                # ES's probe here is a streamed unified call; read it to its end.
                async with aclosing(self.chat_stream(endpoint, CHAT_PROBE, slot)) as chunks:
                    async for _ in chunks:
                        pass
                return endpoint
            result = await self.infer(endpoint, PROBE, slot)
        except CredentialsUnavailable:
            raise  # a role that cannot be assumed: its reason names STS's code
        except ProxyError as error:
            raise BadRequest(PROBE_FAILED, caused_by=error) from error
        if isinstance(result, TextEmbeddingResult):
            return settings.with_learned_embedding_settings(endpoint, len(result.embeddings[0]))
        return endpoint

    async def infer(
        self, endpoint: StoredEndpoint, request: InferenceRequest, slot: SlotSource
    ) -> InferenceResult:
        bedrock = self._read(endpoint, request)
        if isinstance(bedrock.task_settings, EmbeddingTaskSettings):
            return await self._embed(bedrock, bedrock.task_settings, request, slot)
        converse = converse_request(bedrock, request.inputs)
        response = await self._retries.call(
            "Converse",
            bedrock.model,
            sized(slot, converse_tokens(converse)),
            lambda: self._clients.converse(bedrock, bedrock.model, converse),
        )
        return CompletionResult(bodies.parse_converse_output(response))

    def stream(
        self, endpoint: StoredEndpoint, request: InferenceRequest, slot: SlotSource
    ) -> AsyncGenerator[str, None]:
        """The text deltas of a completion, for `_stream`; the slot is held for the stream."""
        bedrock = self._read(endpoint, request)
        converse = converse_request(bedrock, request.inputs)
        return self._retries.stream(
            "ConverseStream",
            bedrock.model,
            sized(slot, converse_tokens(converse)),
            lambda: self._clients.converse_stream(bedrock, bedrock.model, converse),
        )

    async def chat(
        self, endpoint: StoredEndpoint, request: ChatRequest, slot: SlotSource
    ) -> dict[str, Any]:
        """One `chat.completion` object for a unified chat request (Converse)."""
        bedrock = self._read(endpoint, NO_REQUEST)
        converse = chat.converse_chat_request(
            request, provider=bedrock.provider, model=bedrock.model, defaults=chat_defaults(bedrock)
        )
        response = await self._retries.call(
            "Converse",
            bedrock.model,
            slot,
            lambda: self._clients.converse(bedrock, bedrock.model, converse),
        )
        return chat.chat_completion(response, completion_id=completion_id(), model=bedrock.model)

    def chat_stream(
        self, endpoint: StoredEndpoint, request: ChatRequest, slot: SlotSource
    ) -> AsyncGenerator[dict[str, Any], None]:
        """`chat.completion.chunk` objects for a unified chat request (ConverseStream). The
        request is mapped before the generator is returned, so bad input fails at once."""
        bedrock = self._read(endpoint, NO_REQUEST)
        converse = chat.converse_chat_request(
            request, provider=bedrock.provider, model=bedrock.model, defaults=chat_defaults(bedrock)
        )
        translator = chat.ChunkTranslator(completion_id(), bedrock.model)
        events = self._retries.stream(
            "ConverseStream",
            bedrock.model,
            slot,
            lambda: self._clients.converse_stream_events(bedrock, bedrock.model, converse),
        )
        return translate_events(events, translator)

    def _read(self, endpoint: StoredEndpoint, request: InferenceRequest) -> BedrockEndpoint:
        known = self._typed.get(endpoint.inference_id)
        if known is not None and known[0] is endpoint:
            typed = known[1]
        else:
            typed = settings.read_endpoint(endpoint)
            if len(self._typed) >= TYPED_ENDPOINTS and endpoint.inference_id not in self._typed:
                del self._typed[next(iter(self._typed))]  # the oldest
            self._typed[endpoint.inference_id] = (endpoint, typed)
        return settings.with_request_task_settings(typed, request.task_settings)

    async def _embed(
        self,
        bedrock: BedrockEndpoint,
        task: EmbeddingTaskSettings,
        request: InferenceRequest,
        slot: SlotSource,
    ) -> TextEmbeddingResult:
        texts = bodies.truncate_inputs(request.inputs, bedrock.max_input_tokens)
        kind = str(embedding_options.element_type(bedrock.embedding_type))
        if bedrock.provider is ModelProvider.COHERE:
            size = embedding_batch_size(bedrock.provider)
            batches = [texts[start : start + size] for start in range(0, len(texts), size)]
            embedded = await run_in_order(
                [
                    self._embed_cohere(bedrock, batch, request.input_type, task.truncate, slot)
                    for batch in batches
                ]
            )
            # One batch keeps its 2-D float32 array whole: the answer prints from it without a copy.
            vectors = (
                embedded[0]
                if len(embedded) == 1
                else [vector for batch in embedded for vector in batch]
            )
            # Bedrock gives Cohere's token count per call only; ES's estimate stands in per text.
            tokens = [-(-len(text) // bodies.CHARS_PER_TOKEN) for text in texts]
            return TextEmbeddingResult(vectors, kind, tokens)
        # Titan embeds one text per call, so N inputs make N calls, all at once. (ES refuses
        # more than one input for Titan, and then times out.)
        answers = await run_in_order([self._embed_titan(bedrock, text, slot) for text in texts])
        tokens = [count for _, count in answers]
        return TextEmbeddingResult([vector for vector, _ in answers], kind, tokens)

    async def _embed_titan(
        self, bedrock: BedrockEndpoint, text: str, slot: SlotSource
    ) -> tuple[Sequence[float], int]:
        options = embedding_options.titan_fields(
            bedrock.dimensions if bedrock.dimensions_set_by_user else None,
            bedrock.normalize,
            bedrock.embedding_type,
        )
        request = bodies.titan_embedding_body(text, options)
        body = await self._retries.call(
            "InvokeModel",
            bedrock.model,
            sized(slot, estimate_tokens(text)),
            lambda: self._clients.invoke_model(bedrock, bedrock.model, request),
        )
        count = bodies.titan_token_count(body)
        tokens = -(-len(text) // bodies.CHARS_PER_TOKEN) if count is None else count
        if bedrock.embedding_type == "binary":
            return embedding_options.titan_binary(body), tokens
        return bodies.parse_titan_embedding(body), tokens

    async def _embed_cohere(
        self,
        bedrock: BedrockEndpoint,
        texts: Sequence[str],
        input_type: str | None,
        truncate: str | None,
        slot: SlotSource,
    ) -> Sequence[Sequence[float]]:
        kind = bedrock.embedding_type or "float"
        options = embedding_options.cohere_fields(kind)
        request = bodies.cohere_embedding_body(texts, input_type, truncate, options)
        body = await self._retries.call(
            "InvokeModel",
            bedrock.model,
            sized(slot, sum(estimate_tokens(text) for text in texts)),
            lambda: self._clients.invoke_model(bedrock, bedrock.model, request),
        )
        vectors = bodies.parse_cohere_vectors(body, len(texts), kind)
        if kind == "float":
            return bodies.float32_rows(vectors)
        return [embedding_options.cohere_typed(vector, kind) for vector in vectors]


def converse_request(bedrock: BedrockEndpoint, inputs: Sequence[str]) -> dict[str, Any]:
    task = bedrock.task_settings
    if not isinstance(task, CompletionTaskSettings):
        raise BadRequest(f"[{bedrock.inference_id}] is not a [completion] endpoint")
    return bodies.converse_request(
        inputs,
        provider=bedrock.provider,
        max_new_tokens=task.max_new_tokens,
        temperature=task.temperature,
        top_p=task.top_p,
        top_k=task.top_k,
    )


def converse_tokens(converse: Mapping[str, Any]) -> int:
    """A Converse call's token estimate: its texts, plus every output token it may ask for."""
    texts = [
        block.get("text", "")
        for message in converse.get("messages", [])
        for block in message.get("content", [])
        if isinstance(block, Mapping)
    ]
    output = converse.get("inferenceConfig", {}).get("maxTokens") or 0
    return sum(estimate_tokens(text) for text in texts if isinstance(text, str)) + int(output)


def sized(slot: SlotSource, estimate: int) -> SlotSource:
    """`slot` with the call's token estimate, for the key's token budget to reserve."""

    def sized_slot(tokens: int = 0) -> CallSlot:
        return slot(estimate + tokens)

    return sized_slot


def chat_defaults(bedrock: BedrockEndpoint) -> chat.ChatDefaults:
    task = bedrock.task_settings
    if not isinstance(task, CompletionTaskSettings):
        raise BadRequest(f"[{bedrock.inference_id}] is not a [chat_completion] endpoint")
    return chat.ChatDefaults(
        temperature=task.temperature,
        top_p=task.top_p,
        top_k=task.top_k,
        max_new_tokens=task.max_new_tokens,
    )


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


async def translate_events(
    events: AsyncGenerator[dict[str, Any], None], translator: chat.ChunkTranslator
) -> AsyncGenerator[dict[str, Any], None]:
    async with aclosing(events):
        async for event in events:
            for chunk in translator.chunks(event):
                yield chunk


async def run_in_order(calls: Sequence[Coroutine[Any, Any, T]]) -> list[T]:
    """Run the calls at once; their results in call order.

    The first failure cancels the rest and is raised alone, so a request never yields a partial
    result.
    """
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(call) for call in calls]
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]
