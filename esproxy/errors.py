"""esproxy's one error tree, and the Elasticsearch-shaped JSON each error renders to.

Foreign exceptions (botocore, aiohttp client, marshmallow, sqlite3) are translated into this tree
at the module that meets them; handlers never catch, and `web/middlewares.py` renders the rest.

    ProxyError                       status  ES error type
    ├── BadRequest                   400     status_exception (or the type given)
    │   ├── ValidationFailed         400     validation_exception "Validation Failed: 1: ..;"
    │   ├── RequestValidationFailed  400     action_request_validation_exception
    │   ├── EndpointAlreadyExists    400     resource_already_exists_exception
    │   ├── BodyParseError           400     parse_exception / x_content_parse_exception
    │   └── MalformedRequest         400     illegal_argument_exception (HTTP parse errors), or
    │                                        too_long_http_line_exception / _header_exception
    ├── SecurityError                403     security_exception (ElasticsearchSecurityException)
    │   ├── AuthenticationFailed     401     with WWW-Authenticate challenges, as in ES's body
    │   └── AccessDenied             403
    ├── EndpointNotFound             404     resource_not_found_exception
    ├── StatusError                  any     status_exception (ElasticsearchStatusException)
    ├── RequestTimedOut              429     timeout_exception
    ├── QueueFull                    429     es_rejected_execution_exception
    ├── ProviderError                mapped  exception: Bedrock answered with an error
    ├── ProviderUnavailable          502     exception: Bedrock gave no answer
    ├── UpstreamUnavailable          502     exception: the cluster gave no answer
    │   ├── UpstreamTimeout          504
    │   └── AuthorizationUnavailable 503     the cluster could not be asked about a caller
    ├── NoUpstream                   400     exception: no cluster is configured
    ├── StoreUnavailable             503     exception: the endpoint store cannot be reached
    │   ├── StoreMisconfigured       500     illegal_state_exception: its index is not esproxy's
    │   └── EndpointChanged          409     version_conflict_engine_exception: a conditional
    │                                        write lost to another writer
    └── SecretsUnreadable            500     exception: stored secrets cannot be decrypted
        ├── KeyNotConfigured         500     sealed with a key esproxy was not given
        ├── EndpointModified         500     illegal_state_exception: changed outside esproxy
        └── ConfigNotAuthenticated   500     illegal_state_exception: a legacy record

`PlainError` renders Elasticsearch's string form (`{"error": "...", "status": N}`), which ES uses
for "no handler found" and "Incorrect HTTP method" answers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any


class ProxyError(Exception):
    """An error with an HTTP status, an ES error type and a reason a person can act on."""

    status: int = 500
    error_type: str = "exception"

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        error_type: str | None = None,
        caused_by: ProxyError | Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        if status is not None:
            self.status = status
        if error_type is not None:
            self.error_type = error_type
        self.caused_by = caused_by
        self.headers: Mapping[str, str] = headers or {}

    def to_cause(self) -> dict[str, Any]:
        """The `{type, reason[, caused_by]}` object ES nests under `error` and `caused_by`."""
        cause: dict[str, Any] = {"type": self.error_type, "reason": self.reason}
        if self.caused_by is not None:
            cause["caused_by"] = (
                self.caused_by.to_cause()
                if isinstance(self.caused_by, ProxyError)
                else dict(self.caused_by)
            )
        return cause

    def to_body(self) -> dict[str, Any]:
        error = {"root_cause": [{"type": self.error_type, "reason": self.reason}]}
        error.update(self.to_cause())
        return {"error": error, "status": self.status}


class PlainError(ProxyError):
    """ES's bare-string error body, e.g. for unknown routes and wrong methods."""

    def to_body(self) -> dict[str, Any]:
        return {"error": self.reason, "status": self.status}


class BadRequest(ProxyError):
    status = 400
    error_type = "status_exception"


class ValidationFailed(BadRequest):
    """ES's `ValidationException`: every message collected, numbered in one reason."""

    error_type = "validation_exception"

    def __init__(self, messages: Sequence[str]) -> None:
        self.messages = list(messages)
        super().__init__(render_validation(self.messages))


class RequestValidationFailed(ValidationFailed):
    error_type = "action_request_validation_exception"


class EndpointAlreadyExists(BadRequest):
    error_type = "resource_already_exists_exception"

    def __init__(self, inference_id: str) -> None:
        super().__init__(f"Inference endpoint [{inference_id}] already exists")


class BodyParseError(BadRequest):
    error_type = "parse_exception"


class MalformedRequest(BadRequest):
    """A request aiohttp's HTTP parser refused. ES answers its HTTP decoder's failures with a 400
    named for the decoder's exception: Netty's `TooLongHttpLineException` for a long request line,
    `TooLongHttpHeaderException` for long headers, mostly `IllegalArgumentException` otherwise."""

    error_type = "illegal_argument_exception"


class SecurityError(ProxyError):
    """ES's security exception: `challenges` and `metadata` render in the body as ES renders them.

    Challenges go out as one comma-joined `WWW-Authenticate` line (RFC 9110 allows it; ES sends
    one line per challenge) and as the `header` list ES puts in its error body.
    """

    status = 403
    error_type = "security_exception"

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        challenges: Sequence[str] = (),
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        headers = {"WWW-Authenticate": ", ".join(challenges)} if challenges else None
        super().__init__(reason, status=status, headers=headers)
        self.challenges = tuple(challenges)
        self.metadata = dict(metadata or {})

    def to_cause(self) -> dict[str, Any]:
        cause = {**super().to_cause(), **self.metadata}
        if self.challenges:
            cause["header"] = {"WWW-Authenticate": list(self.challenges)}
        return cause

    def to_body(self) -> dict[str, Any]:
        return {
            "error": {"root_cause": [self.to_cause()], **self.to_cause()},
            "status": self.status,
        }


class AuthenticationFailed(SecurityError):
    status = 401


class AccessDenied(SecurityError):
    status = 403


class EndpointNotFound(ProxyError):
    status = 404
    error_type = "resource_not_found_exception"

    def __init__(self, inference_id: str) -> None:
        self.inference_id = inference_id
        super().__init__(f"Inference endpoint not found [{inference_id}]")


class StatusError(ProxyError):
    error_type = "status_exception"


class RequestTimedOut(ProxyError):
    # ES's newer ElasticsearchTimeoutException answers 429 so that clients back off and retry.
    status = 429
    error_type = "timeout_exception"


class QueueFull(ProxyError):
    status = 429
    error_type = "es_rejected_execution_exception"


class ProviderError(ProxyError):
    """Bedrock answered with an error; keeps its code, request id and retry hints."""

    def __init__(
        self,
        reason: str,
        *,
        status: int,
        code: str,
        message: str,
        request_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.request_id = request_id
        cause: dict[str, Any] = {"type": snake_case(code), "reason": message}
        if request_id:
            cause["request_id"] = request_id
        super().__init__(reason, status=status, caused_by=cause, headers=headers)


class ProviderUnavailable(ProxyError):
    status = 502


class UpstreamUnavailable(ProxyError):
    status = 502


class UpstreamTimeout(UpstreamUnavailable):
    status = 504


class AuthorizationUnavailable(UpstreamUnavailable):
    status = 503


class NoUpstream(ProxyError):
    # 400 is final for every client and keeps the node alive: elastic-transport retries 502 and
    # puts the node in timeout for any 5xx, 501 included.
    status = 400


class StoreUnavailable(ProxyError):
    status = 503


class CacheUnavailable(ProxyError):
    """The embedding cache's shared tier in the cluster did not answer as expected."""

    status = 503


class StoreMisconfigured(StoreUnavailable):
    """The store answers, but what it holds is not esproxy's (e.g. a foreign index): retrying does
    not help, an operator must act, so it is a 500 that clients do not retry."""

    status = 500
    error_type = "illegal_state_exception"


class EndpointChanged(StoreUnavailable):
    """A compare-and-swap replace found another version than the one its caller read."""

    status = 409
    error_type = "version_conflict_engine_exception"

    def __init__(self, inference_id: str) -> None:
        self.inference_id = inference_id
        super().__init__(
            f"Inference endpoint [{inference_id}] was changed by another writer meanwhile; "
            "read it again and retry"
        )


class SecretsUnreadable(ProxyError):
    status = 500


class KeyNotConfigured(SecretsUnreadable):
    pass


class EndpointModified(SecretsUnreadable):
    error_type = "illegal_state_exception"


class ConfigNotAuthenticated(SecretsUnreadable):
    error_type = "illegal_state_exception"


def unified_error_body(error: ProxyError) -> dict[str, Any]:
    """ES's unified chat error shape (`UnifiedChatCompletionException`): the status's name as
    `code`, the reason as `message`, the ES error type as `type`."""
    return {
        "error": {
            "code": HTTPStatus(error.status).name.lower(),
            "message": error.reason,
            "type": error.error_type,
        }
    }


def render_validation(messages: Sequence[str]) -> str:
    numbered = "".join(f"{i}: {message};" for i, message in enumerate(messages, start=1))
    return f"Validation Failed: {numbered}"


def snake_case(name: str) -> str:
    """`ThrottlingException` -> `throttling_exception`, as ES derives types from class names."""
    out: list[str] = []
    for i, char in enumerate(name):
        if char.isupper() and i and not name[i - 1].isupper():
            out.append("_")
        out.append(char.lower())
    return "".join(out)


class LeasesUnavailable(ProxyError):
    """The lease index in the cluster cannot be written or read; pacing keeps its last shares."""

    status = 503


class BridgeRequestError(BadRequest):
    """A malformed request to the OpenAI-compatible routes; `param` names the field, as there."""

    def __init__(self, reason: str, *, param: str | None = None, status: int | None = None) -> None:
        super().__init__(reason, status=status)
        self.param = param
