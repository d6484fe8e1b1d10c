"""BedrockClients: cached bedrock-runtime clients and the three calls esproxy makes through them.

botocore and aiohttp exceptions stop here: callers see only ProviderError and ProviderUnavailable
(and, for identities without working credentials, the errors of `credentials.py`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import orjson
from aiobotocore.config import AioConfig  # type: ignore[import-untyped, unused-ignore]
from aiobotocore.session import AioSession  # type: ignore[import-untyped, unused-ignore]
from botocore.exceptions import (  # type: ignore[import-untyped, unused-ignore]
    BotoCoreError,
    ClientError,
    ParamValidationError,
)
from botocore.parsers import ResponseParserError  # type: ignore[import-untyped, unused-ignore]
from types_aiobotocore_bedrock_runtime import BedrockRuntimeClient

from esproxy.errors import ProviderError, ProviderUnavailable, ProxyError, snake_case
from esproxy.inference.rate_limits import current_deadline, report_usage
from esproxy.integrations.amazonbedrock import log_redaction, usage, vector_json
from esproxy.integrations.amazonbedrock.credentials import BedrockCredentials, Egress, Identity
from esproxy.integrations.amazonbedrock.endpoint_rules import keep_resolved_endpoints
from esproxy.integrations.amazonbedrock.serializing import use_lean_serializer
from esproxy.integrations.amazonbedrock.signing import use_lean_signer
from esproxy.integrations.amazonbedrock.user_agent import memoize_user_agent
from esproxy.observability import events

log = logging.getLogger(__name__)

# What an answered error becomes; codes not listed here answer 500.
STATUS_BY_CODE: Mapping[str, int] = {
    "ValidationException": 400,
    "AccessDeniedException": 403,
    "UnrecognizedClientException": 403,
    "InvalidSignatureException": 403,
    "IncompleteSignature": 403,
    "IncompleteSignatureException": 403,
    "InvalidClientTokenId": 403,
    "MissingAuthenticationTokenException": 403,
    "ExpiredTokenException": 403,
    "NotAuthorized": 403,
    "RequestExpired": 403,
    "ResourceNotFoundException": 404,
    "ModelTimeoutException": 408,
    "ModelErrorException": 424,
    "ModelStreamErrorException": 424,
    "ThrottlingException": 429,
    "ModelNotReadyException": 429,
    "ServiceQuotaExceededException": 429,
    "InternalServerException": 500,
    "InternalFailure": 500,
    "ServiceUnavailableException": 503,
    "ServiceUnavailable": 503,
}

# Failures that arrive before any answer does; each becomes ProviderUnavailable.
NO_ANSWER = (BotoCoreError, ResponseParserError, aiohttp.ClientError, OSError, TimeoutError)


class Account(Protocol):
    """Where and as whom to call Bedrock; `BedrockEndpoint` is one (and has an `identity` too)."""

    @property
    def region(self) -> str: ...
    @property
    def access_key(self) -> str | None: ...
    @property
    def secret_key(self) -> str | None: ...


def identity_of(account: Account) -> Identity:
    identity = getattr(account, "identity", None)
    if isinstance(identity, Identity):
        return identity
    return Identity(account.access_key, account.secret_key)


@dataclass(frozen=True)
class Failure:
    """ES's wording for one operation's failures."""

    answered: str
    unanswered: str


INVOKE_MODEL = Failure(
    "AmazonBedrock invoke model failure", "Amazon Bedrock invoke model call failed"
)
CONVERSE = Failure("AmazonBedrock converse failure", "Amazon Bedrock converse call failed")
STREAMING = Failure(
    "AmazonBedrock StreamingChatProcessor failure", "Amazon Bedrock converse call failed"
)


class BedrockClients:
    """One aiobotocore client per (region, identity), opened on first use and closed by `close()`.

    Endpoint keys sign directly; roles and the default chain sign with the snapshot that
    `credentials` keeps fresh, so no call ever waits for STS after the first.
    """

    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        max_pool_connections: int = 64,
        connect_timeout: float = 10.0,
        read_timeout: float = 120.0,
        credentials: BedrockCredentials | None = None,
    ) -> None:
        log_redaction.install()  # botocore's DEBUG logs would print each endpoint's access key
        self._owns_credentials = credentials is None
        self.credentials = credentials or BedrockCredentials(Egress(endpoint_url=endpoint_url))
        self._egress = self.credentials.egress
        self._config = AioConfig(
            proxies=self._egress.proxies(),
            # One attempt only: throttling and outages are answered honestly (429 with
            # Retry-After, 503) in one place, instead of being retried, slowly and out of our
            # rate limiter's sight, inside botocore. `total_max_attempts` counts the first try;
            # botocore's `max_attempts` would count retries only, so 1 would mean two tries.
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=max_pool_connections,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            # Pinned so that AWS_BEARER_TOKEN_BEDROCK in our environment cannot replace the
            # endpoint's own keys.
            signature_version="v4",
            # botocore reads its JSON service models from disk; do that in a worker thread.
            warm_up_loader_caches=True,
        )
        self._session = AioSession()
        self._stack = AsyncExitStack()
        self._clients: dict[str, BedrockRuntimeClient] = {}
        self._opening: dict[str, asyncio.Task[BedrockRuntimeClient]] = {}
        self._closed = False

    async def client_for(self, account: Account) -> BedrockRuntimeClient:
        """The cached client for these credentials; concurrent first calls share one client."""
        key = account_key(account)
        client = self._clients.get(key)
        if client is not None:
            return client
        if self._closed:
            raise RuntimeError("BedrockClients is closed")
        task = self._opening.get(key)
        if task is None:
            task = asyncio.create_task(self._open(key, account))
            task.add_done_callback(mark_retrieved)
            self._opening[key] = task
        # Shielded so that a caller's deadline never leaves a half-opened client behind.
        return await asyncio.shield(task)

    async def _open(self, key: str, account: Account) -> BedrockRuntimeClient:
        try:
            identity = identity_of(account)
            options: dict[str, Any] = {
                "region_name": account.region,
                "endpoint_url": self._egress.bedrock_url(account.region),
                "verify": self._egress.verify,
                "config": self._config,
            }
            if identity.has_keys and not identity.role_arn:
                session = self._session
                options.update(
                    aws_access_key_id=identity.access_key,
                    aws_secret_access_key=identity.secret_key,
                    aws_session_token=identity.session_token,
                )
            else:
                held = await self.credentials.held_for(identity, account.region)
                session = await self.credentials.session_for(held)
            client: BedrockRuntimeClient = await self._stack.enter_async_context(
                session.create_client("bedrock-runtime", **options)
            )
        finally:
            del self._opening[key]
        memoize_user_agent(client)
        use_lean_signer(client)
        use_lean_serializer(client)
        keep_resolved_endpoints(client)
        self._clients[key] = client
        return client

    async def close(self) -> None:
        self._closed = True
        for task in list(self._opening.values()):
            task.cancel()
        await asyncio.gather(*self._opening.values(), return_exceptions=True)
        await self._stack.aclose()
        self._clients.clear()
        if self._owns_credentials:
            await self.credentials.close()

    async def invoke_model(
        self, account: Account, model: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """InvokeModel with a model-native JSON body; returns the parsed JSON answer."""
        async with self._call("InvokeModel", model, INVOKE_MODEL, account) as call:
            client = await self.client_for(account)
            response = await client.invoke_model(
                modelId=model,
                body=orjson.dumps(body),
                contentType="application/json",
                accept="application/json",
            )
            call.request_id = usage.request_id_of(response)
            async with response["body"] as stream:
                raw = await stream.read()
        answer = vector_json.load_answer(raw)
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        counted = usage.invoke_model_usage(headers, answer)
        events.bedrock_tokens(*counted)
        report_usage(sum(counted) or None)  # the rate-limit slot's token budget
        return answer

    async def converse(
        self, account: Account, model: str, request: Mapping[str, Any]
    ) -> dict[str, Any]:
        async with self._call("Converse", model, CONVERSE, account) as call:
            client = await self.client_for(account)
            response = await client.converse(modelId=model, **request)
            call.request_id = usage.request_id_of(response)
        counted = usage.converse_usage(response.get("usage"))
        events.bedrock_tokens(*counted)
        report_usage(sum(counted) or None)
        return dict(response)

    async def converse_stream(
        self, account: Account, model: str, request: Mapping[str, Any]
    ) -> AsyncGenerator[str, None]:
        """The text deltas of a ConverseStream answer; other events are skipped, as in ES."""
        async with self._call("ConverseStream", model, CONVERSE, account) as call:
            client = await self.client_for(account)
            response = await client.converse_stream(modelId=model, **request)
            call.request_id = usage.request_id_of(response)
            stream = response["stream"]
            call.failure = STREAMING
            try:
                async for event in stream:
                    text = event.get("contentBlockDelta", {}).get("delta", {}).get("text")
                    if text is not None:
                        yield text
                    elif "metadata" in event:
                        counted = usage.converse_usage(event["metadata"].get("usage"))
                        events.bedrock_tokens(*counted)
                        report_usage(sum(counted) or None)
            finally:
                # Frees the connection when the consumer stops reading early.
                stream.close()

    async def converse_stream_events(
        self, account: Account, model: str, request: Mapping[str, Any]
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Every event of a ConverseStream answer, for unified chat (tool use, stop, usage)."""
        async with self._call("ConverseStream", model, CONVERSE, account) as call:
            client = await self.client_for(account)
            response = await client.converse_stream(modelId=model, **request)
            call.request_id = usage.request_id_of(response)
            stream = response["stream"]
            call.failure = STREAMING
            try:
                async for event in stream:
                    if "metadata" in event:
                        events.bedrock_tokens(*usage.converse_usage(event["metadata"].get("usage")))
                    yield dict(event)
            finally:
                stream.close()

    @asynccontextmanager
    async def _call(
        self, operation: str, model: str, failure: Failure, account: Account
    ) -> AsyncIterator[Call]:
        call = Call(failure)
        started = time.monotonic()
        status: int | str = 200
        outcome: str | None = events.OK
        try:
            yield call
        except ClientError as error:
            translated = with_rotation_hint(provider_error(error, call.failure.answered), account)
            status, outcome = translated.status, usage.outcome_of(translated)
            call.request_id = translated.request_id
            raise translated from error
        except ProxyError as error:  # no credentials: credentials.py said why
            status, outcome = error.status, usage.outcome_of(error)
            raise
        except ParamValidationError as error:
            # Caught by botocore before sending; Bedrock would answer it with a 400.
            status, outcome = 400, events.CLIENT_ERROR
            raise answered_error(
                call.failure.answered, "ValidationException", str(error), None, {}
            ) from error
        except NO_ANSWER as error:
            status = "no answer"
            unavailable = ProviderUnavailable(
                call.failure.unanswered,
                caused_by={"type": snake_case(type(error).__name__), "reason": str(error)},
            )
            outcome = usage.outcome_of(unavailable)
            raise unavailable from error
        except GeneratorExit:
            status = "closed by caller"
            raise
        except BaseException:
            status = "cancelled"
            # Cancelled by the caller's deadline: a timeout. Otherwise the caller went away, and
            # the call has no outcome to count.
            outcome = events.TIMEOUT if deadline_passed() else None
            raise
        finally:
            elapsed = time.monotonic() - started
            if outcome is not None:
                events.bedrock_call(operation, outcome, elapsed, call.request_id)
            elapsed_ms = elapsed * 1000
            log.info(
                "bedrock %s model=%s status=%s duration_ms=%.0f",
                operation,
                model,
                status,
                elapsed_ms,
            )


@dataclass
class Call:
    """One Bedrock call in flight; a stream switches `failure` once its events start."""

    failure: Failure
    request_id: str | None = None


def deadline_passed() -> bool:
    deadline = current_deadline()
    return deadline is not None and asyncio.get_running_loop().time() >= deadline


def provider_error(error: ClientError, reason: str) -> ProviderError:
    response: Mapping[str, Any] = error.response
    details = response.get("Error", {})
    metadata = response.get("ResponseMetadata", {})
    # Event-stream exceptions name their code in lower camel case, as the union member is named.
    code = str(details.get("Code") or "")
    code = code[:1].upper() + code[1:]
    message = str(details.get("Message") or response.get("message") or "")
    headers = metadata.get("HTTPHeaders", {})
    return answered_error(reason, code, message, metadata.get("RequestId"), headers)


def answered_error(
    reason: str, code: str, message: str, request_id: str | None, headers: Mapping[str, str]
) -> ProviderError:
    status = status_for(code)
    retry = {"Retry-After": retry_after(headers)} if status == 429 else None
    return ProviderError(
        f"{reason}: [{message}]",
        status=status,
        code=code,
        message=message,
        request_id=request_id,
        headers=retry,
    )


def status_for(code: str) -> int:
    if code in STATUS_BY_CODE:
        return STATUS_BY_CODE[code]
    # botocore uses the HTTP status as the code when a 5xx came without a readable body.
    if code in ("429", "503"):
        return int(code)
    return 500


def retry_after(headers: Mapping[str, str]) -> str:
    """Bedrock's own hint in seconds when it sent one, otherwise one second."""
    value = str(headers.get("retry-after", "")).strip()
    return value if value.isdigit() else "1"


def account_key(account: Account) -> str:
    """A cache key that identifies the credentials without holding or revealing them."""
    return f"{account.region}\0{identity_of(account).cache_key}"


def with_rotation_hint(error: ProviderError, account: Account) -> ProviderError:
    """An expired session token given as the endpoint's keys renews only by `_update`: say so."""
    identity = identity_of(account)
    if error.code != "ExpiredTokenException" or not identity.session_token or identity.role_arn:
        return error
    inference_id = getattr(account, "inference_id", None)
    target = f"_inference/{inference_id}/_update" if inference_id else "_inference/<id>/_update"
    return ProviderError(
        f"{error.reason}; the session token of this inference endpoint has expired: rotate its "
        f"[access_key], [secret_key] and [session_token] with PUT {target}",
        status=error.status,
        code=error.code,
        message=error.message,
        request_id=error.request_id,
        headers=error.headers,
    )


def mark_retrieved(task: asyncio.Task[Any]) -> None:
    # When every waiting caller was cancelled, nobody reads a failed opening; read it here so that
    # asyncio does not report it as never retrieved.
    if not task.cancelled():
        task.exception()
