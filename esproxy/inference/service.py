"""InferenceService: the one place that combines the store, the integrations and the rate limits.

It speaks in models and errors only; HTTP parsing and rendering stay in `web/`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from esproxy.errors import (
    BadRequest,
    EndpointAlreadyExists,
    EndpointModified,
    EndpointNotFound,
    KeyNotConfigured,
    RequestTimedOut,
    SecretsUnreadable,
    StatusError,
)
from esproxy.inference import schemas
from esproxy.inference.embedding_cache import EmbeddingCache
from esproxy.inference.endpoint_cache import ParsedEndpoints
from esproxy.inference.models import (
    EndpointConfig,
    InferenceRequest,
    InferenceResult,
    StoredEndpoint,
    TaskType,
    TextEmbeddingResult,
)
from esproxy.inference.rate_limits import RateLimiters, deadline_at
from esproxy.inference.timeouts import (
    DEFAULT_TIMEOUT_SECONDS,
    default_timeout,
    render_time_value,
)
from esproxy.integrations.base import CallSlot, Integration, SlotSource
from esproxy.integrations.registry import IntegrationRegistry
from esproxy.observability import events
from esproxy.observability.events import NoTelemetry, Telemetry
from esproxy.sealed_records import open_any_record, open_record, seal_record
from esproxy.secret_cipher import SecretCipher
from esproxy.storage.base import EndpointRecord, EndpointStore
from esproxy.storage.cache import CachedEndpointStore

log = logging.getLogger(__name__)

T = TypeVar("T")

ALL_IDS = frozenset({"_all", "*"})
# Marks, in memory only, an endpoint read from a legacy (v1) record, so that an update re-seals it.
LEGACY_MARK = "_esproxy_legacy_record"


class InferenceService:
    def __init__(
        self,
        store: EndpointStore,
        registry: IntegrationRegistry,
        cipher: SecretCipher,
        limiters: RateLimiters,
        embedding_cache: EmbeddingCache | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._store = store
        self._registry = registry
        self._cipher = cipher
        self._limiters = limiters
        self._telemetry: Telemetry = NoTelemetry() if telemetry is None else telemetry
        self._parsed = ParsedEndpoints()
        self._embedding_cache = embedding_cache

    async def put_endpoint(
        self,
        path_task_type: TaskType | None,
        inference_id: str,
        raw_body: bytes,
        time_limit: float | None = None,
    ) -> EndpointConfig:
        schemas.validate_inference_id(inference_id)
        body = schemas.decode_json_body(raw_body)
        task_type = schemas.resolve_task_type(path_task_type, body)
        integration = self._registry.get(schemas.require_service(body))
        endpoint = integration.parse_request(inference_id, task_type, body)
        # ES checks for an existing id only after its probe call; checking first saves that call.
        await self._ensure_absent(inference_id)
        seconds = default_timeout(TaskType.TEXT_EMBEDDING) if time_limit is None else time_limit
        self._observe(endpoint.config)  # the probe's calls count under the new id...
        try:
            endpoint = await self._within(
                seconds, integration.validate(endpoint, self._slots(integration, endpoint))
            )
            # A rotation of the key file seals with the new key.
            await self._cipher.follow_key_file()
            await self._store.create(self._seal(endpoint))
        except BaseException:
            self._telemetry.forget(inference_id)  # ...which keeps no series unless stored
            raise
        return endpoint.config

    async def update_endpoint(
        self,
        path_task_type: TaskType | None,
        inference_id: str,
        raw_body: bytes,
        time_limit: float | None = None,
    ) -> EndpointConfig:
        if not raw_body.strip():
            raise BadRequest("Request body is empty")
        body = schemas.decode_json_body(raw_body)
        # A legacy record may be updated: the write seals it, config included (docs/design.md).
        record, current = await self._load(inference_id, allow_legacy=True)
        integration = self._registry.get(current.config.service)
        # ES cannot update through `/_inference/{id}/_update` at all; the endpoint's own type
        # stands in for the missing path segment.
        if path_task_type is None and "task_type" not in body:
            path_task_type = current.config.task_type
        updated = integration.apply_update(current, path_task_type, body)
        if updated == current and not is_legacy(current):
            return current.config  # nothing changed, so no probe call, as in ES
        seconds = DEFAULT_TIMEOUT_SECONDS if time_limit is None else time_limit
        self._observe(updated.config)
        slots = self._slots(integration, updated)
        updated = await self._within(seconds, integration.validate(updated, slots))
        # Through the cache, so this instance's next call already uses the new keys and rate.
        # Conditional on the version read: a racing rotation or update is not overwritten.
        await self._cipher.follow_key_file()
        await self._store.replace(self._seal(updated), expected=record)
        # The new record would miss anyway; dropping the old parse frees its decrypted keys now.
        self._parsed.forget(inference_id)
        return updated.config

    def describe_services(self, task_type: TaskType | None) -> list[dict[str, Any]]:
        return [entry for i in self._registry for entry in i.describe(task_type)]

    async def get_endpoints(
        self, task_type: TaskType | None, inference_id: str | None
    ) -> list[EndpointConfig]:
        if inference_id is None or inference_id in ALL_IDS:
            records = [r for r in await self._store.list() if self._is_intact(r)]
            configs = [EndpointConfig.from_dict(r.config) for r in records]
            return [c for c in configs if task_type in (None, c.task_type)]
        record = await self._store.get(inference_id)
        if not self._is_intact(record):
            self._cipher_check(record)  # raises the error that says what happened
        config = EndpointConfig.from_dict(record.config)
        check_requested_task_type(task_type, config)
        return [config]

    async def endpoint_config(self, inference_id: str) -> EndpointConfig:
        """`get_endpoints(None, inference_id)`'s one config, for readers that never change it
        (the OpenAI bridge's routing). A record already parsed for inference is known intact, so
        its config is read from the shared record, without the copy `get_endpoints` makes."""
        record = await self._read(inference_id)
        if self._parsed.get(inference_id, record) is None:
            [config] = await self.get_endpoints(None, inference_id)
            return config
        return EndpointConfig.from_dict(record.config)

    def _is_intact(self, record: EndpointRecord) -> bool:
        """False only for a record known to be changed outside esproxy: GET never shows it.

        Records whose key is missing, or legacy ones, are shown: GET is how an operator checks
        them; inference refuses them.
        """
        try:
            self._cipher_check(record)
        except EndpointModified:
            log.warning("not listing endpoint [%s]: modified outside esproxy", record.inference_id)
            return False
        except SecretsUnreadable:
            return True
        return True

    def _cipher_check(self, record: EndpointRecord) -> None:
        if self._parsed.get(record.inference_id, record) is None:
            open_any_record(self._cipher, record)

    async def delete_endpoint(
        self, task_type: TaskType | None, inference_id: str, *, dry_run: bool = False
    ) -> dict[str, Any]:
        config = EndpointConfig.from_dict((await self._store.get(inference_id)).config)
        check_requested_task_type(task_type, config)
        # With no cluster behind us there are no pipelines or semantic_text mappings to protect.
        if dry_run:
            return {"acknowledged": False, "pipelines": [], "indexes": []}
        await self._store.delete(inference_id)
        self._parsed.forget(inference_id)
        if self._embedding_cache is not None:
            # A new endpoint of the same id (perhaps another tenant's) must not see these.
            await self._embedding_cache.forget_endpoint(inference_id)
        self._telemetry.forget(inference_id)
        # Rate limits read only the public config, so no secrets are decrypted to drop the limiter.
        limit = self._registry.get(config.service).rate_limit(StoredEndpoint(config, secrets={}))
        self._limiters.forget(limit.key)
        return {"acknowledged": True, "pipelines": [], "indexes": []}

    async def infer(
        self,
        path_task_type: TaskType | None,
        inference_id: str,
        raw_body: bytes,
        time_limit: float | None = None,
    ) -> InferenceResult:
        events.inference_started(inference_id)
        call = await self._prepare_call(path_task_type, inference_id, raw_body, time_limit)
        cache = self._embedding_cache
        identity = None
        if cache is not None:
            identity = call.integration.embedding_identity(call.endpoint, call.request)
        if cache is None or identity is None:
            work = call.integration.infer(call.endpoint, call.request, call.slots)
            return await self._within(call.seconds, work)

        async def fetch(indices: Sequence[int]) -> TextEmbeddingResult:
            inputs = [call.request.inputs[i] for i in indices]
            request = replace(call.request, inputs=inputs)
            result = await call.integration.infer(call.endpoint, request, call.slots)
            if not isinstance(result, TextEmbeddingResult):
                raise TypeError(f"an embedding request gave {type(result).__name__}")
            return result

        embedded = cache.embed(call.endpoint.inference_id, identity, fetch)
        return await self._within(call.seconds, embedded)

    async def stream(
        self,
        path_task_type: TaskType | None,
        inference_id: str,
        raw_body: bytes,
        time_limit: float | None = None,
    ) -> AsyncGenerator[str, None]:
        """Deltas of a streamed completion. The deadline covers the wait for the first delta;
        after that, a stream runs as long as the provider keeps sending."""
        events.inference_started(inference_id)
        call = await self._prepare_call(path_task_type, inference_id, raw_body, time_limit)
        task_type = call.endpoint.config.task_type
        if task_type not in call.integration.streaming_task_types:
            # In ES's task type order: `[completion,chat_completion]`.
            streaming = call.integration.streaming_task_types
            supported = ",".join(task for task in TaskType if task in streaming)
            raise StatusError(
                f"Streaming is not allowed for service [{call.integration.name}] and task "
                f"[{task_type}]. Supported tasks: [{supported}]",
                status=405,
            )
        deltas = call.integration.stream(call.endpoint, call.request, call.slots)
        try:
            first = await self._within(call.seconds, anext(deltas, None))
        except BaseException:
            await deltas.aclose()
            raise
        return continue_stream(first, deltas)

    async def _prepare_call(
        self,
        path_task_type: TaskType | None,
        inference_id: str,
        raw_body: bytes,
        time_limit: float | None,
    ) -> PreparedCall:
        body = schemas.decode_json_body(raw_body)
        request = schemas.load_inference_request(path_task_type or TaskType.ANY, body)
        endpoint = await self.load_endpoint(inference_id)
        task_type = endpoint.config.task_type
        self._observe(endpoint.config)
        if path_task_type not in (None, TaskType.ANY, task_type):
            raise BadRequest(
                f"Incompatible task_type, the requested type [{path_task_type}] does not match "
                f"the model type [{task_type}]"
            )
        integration = self._registry.get(endpoint.config.service)
        integration.validate_request(endpoint, request)
        # The query parameter wins over the body's `timeout`; ES's per-task default comes last.
        given = time_limit if time_limit is not None else request.timeout
        seconds = default_timeout(task_type) if given is None else given
        slots = self._slots(integration, endpoint)
        return PreparedCall(integration, endpoint, request, slots, seconds)

    def integration_for(self, endpoint: StoredEndpoint) -> tuple[Integration, SlotSource]:
        """The endpoint's integration and its rate-limit slots, for rooms beside this one (chat);
        what follows in the request is observed under the endpoint's own series."""
        self._observe(endpoint.config)
        integration = self._registry.get(endpoint.config.service)
        return integration, self._slots(integration, endpoint)

    async def within(self, seconds: float, work: Awaitable[T]) -> T:
        return await self._within(seconds, work)

    def serves(self, service: object) -> bool:
        """Whether `service` names one of esproxy's integrations (others belong to the cluster)."""
        return service in self._registry

    async def holds(self, inference_id: str) -> bool:
        try:
            await self._read(inference_id)
        except EndpointNotFound:
            return False
        return True

    async def load_endpoint(
        self, inference_id: str, *, allow_legacy: bool = False
    ) -> StoredEndpoint:
        """The endpoint as the store returns it now, parsed once per stored version.

        Only a record exactly as esproxy sealed it is used (`sealed_records.py`).
        """
        return (await self._load(inference_id, allow_legacy=allow_legacy))[1]

    async def _load(
        self, inference_id: str, *, allow_legacy: bool
    ) -> tuple[EndpointRecord, StoredEndpoint]:
        try:
            record = await self._read(inference_id)
        except EndpointNotFound:
            # Deleted, perhaps by another instance: its decrypted secrets need not stay, nor its
            # series.
            self._parsed.forget(inference_id)
            self._telemetry.forget(inference_id)
            raise
        endpoint = self._parsed.get(inference_id, record)
        if endpoint is None:
            try:
                endpoint = self._parse(record, allow_legacy)
            except KeyNotConfigured:
                # Sealed by a rotation of the key file that ran while this server did?
                if not await self._cipher.follow_key_file():
                    raise
                endpoint = self._parse(record, allow_legacy)
            if not is_legacy(endpoint):
                self._parsed.put(inference_id, record, endpoint)
        return record, endpoint

    async def _read(self, inference_id: str) -> EndpointRecord:
        """The stored record, shared with the store's cache when there is one: never change it."""
        if isinstance(self._store, CachedEndpointStore):
            return await self._store.get_shared(inference_id)
        return await self._store.get(inference_id)

    def effective_rate(self, config: EndpointConfig) -> int:
        """Requests per minute the endpoint's Bedrock calls are paced at now."""
        limit = self._registry.get(config.service).rate_limit(StoredEndpoint(config, secrets={}))
        return self._limiters.rate(limit.key) or limit.requests_per_minute

    def _observe(self, config: EndpointConfig) -> None:
        """Report what follows in this request under the endpoint's own series."""
        model = str(config.service_settings.get("model", ""))
        task_type = str(config.task_type)
        events.endpoint_found(
            self._telemetry.endpoint(config.inference_id, task_type, model), task_type
        )

    def _parse(self, record: EndpointRecord, allow_legacy: bool) -> StoredEndpoint:
        opener = open_any_record if allow_legacy else open_record
        secrets = opener(self._cipher, record)
        endpoint = StoredEndpoint(
            config=EndpointConfig.from_dict(record.config),
            secrets=secrets,
            internal={**record.internal, LEGACY_MARK: True}
            if record.sealed_secrets.startswith("v1.")
            else record.internal,
        )
        return self._registry.get(endpoint.config.service).parse_stored(endpoint)

    async def _ensure_absent(self, inference_id: str) -> None:
        if await self.holds(inference_id):
            raise EndpointAlreadyExists(inference_id)

    def _seal(self, endpoint: StoredEndpoint) -> EndpointRecord:
        internal = {k: v for k, v in endpoint.internal.items() if k != LEGACY_MARK}
        record = EndpointRecord(endpoint.inference_id, endpoint.config.to_dict(), internal)
        return seal_record(self._cipher, record, endpoint.secrets)

    def _slots(self, integration: Integration, endpoint: StoredEndpoint) -> SlotSource:
        limit = integration.rate_limit(endpoint)
        limiters = self._limiters

        def slot(tokens: int = 0) -> CallSlot:
            return limiters.slot(limit, tokens)

        return slot

    @staticmethod
    async def _within(seconds: float, work: Awaitable[T]) -> T:
        """Run `work` under the caller's deadline, which covers slot waits and Bedrock calls."""
        try:
            async with asyncio.timeout(seconds if seconds >= 0 else None) as scope:
                # Published so that retries never sleep into the caller's deadline.
                with deadline_at(scope.when()):
                    return await work
        except TimeoutError:
            raise RequestTimedOut(
                f"Request timed out waiting to be sent after [{render_time_value(seconds)}]"
            ) from None


@dataclass(frozen=True)
class PreparedCall:
    """A validated inference call, ready to run under its deadline."""

    integration: Integration
    endpoint: StoredEndpoint
    request: InferenceRequest
    slots: SlotSource
    seconds: float


async def continue_stream(
    first: str | None, rest: AsyncGenerator[str, None]
) -> AsyncGenerator[str, None]:
    async with aclosing(rest):
        if first is None:
            return
        yield first
        async for delta in rest:
            yield delta


def is_legacy(endpoint: StoredEndpoint) -> bool:
    return LEGACY_MARK in endpoint.internal


def check_requested_task_type(task_type: TaskType | None, config: EndpointConfig) -> None:
    if task_type not in (None, TaskType.ANY, config.task_type):
        raise BadRequest(
            f"Requested task type [{task_type}] does not match the inference endpoint's task "
            f"type [{config.task_type}]"
        )
