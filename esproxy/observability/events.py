"""How the other rooms report what they do, without knowing who listens (or importing prometheus).

Two seams:
- `EndpointRecorder` / `ForwardRecorder`: typed sinks that app.py hands to the components that
  need them (the inference service gets a `Telemetry`, the forwarding paths a `ForwardRecorder`).
- `RequestRecord`: one per HTTP request esproxy answers, published in a context variable by the
  access middleware. Code deep in a call (the rate limiter, retries, the Bedrock client) reports
  through the module functions below, which add to the record of the request in flight and to its
  endpoint's series. Outside a request (or with observability off) they do nothing.

A new series needs a method here (with a no-op default in `NullEndpointRecorder`) and its
implementation in `metrics.py`; see docs/observability.md.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Final, Protocol

# Bedrock call outcomes, as `esproxy_bedrock_calls_total{outcome}` names them.
OK: Final = "ok"
THROTTLED: Final = "throttled"
CLIENT_ERROR: Final = "client_error"
SERVER_ERROR: Final = "server_error"
TIMEOUT: Final = "timeout"
RETRIED: Final = "retried"
OUTCOMES: Final = (OK, THROTTLED, CLIENT_ERROR, SERVER_ERROR, TIMEOUT, RETRIED)

# Why a forwarded request failed, as `esproxy_upstream_errors_total{reason}` names it.
CONNECT: Final = "connect"
CONNECT_TIMEOUT: Final = "connect_timeout"
READ_TIMEOUT: Final = "read_timeout"
CLOSED: Final = "closed"
INVALID_ANSWER: Final = "invalid_answer"
UPSTREAM_REASONS: Final = (CONNECT, CONNECT_TIMEOUT, READ_TIMEOUT, CLOSED, INVALID_ANSWER)

# How a client connection passed between the splicer and esproxy's own handler, as
# `esproxy_connection_handoffs_total{kind}` names it: lent for esproxy's APIs, taken back for
# forwarding, or kept by the handler for good (what the splicer does not frame).
LENT: Final = "lent"
TAKEN_BACK: Final = "taken_back"
KEPT: Final = "kept"
HANDOFFS: Final = (LENT, TAKEN_BACK, KEPT)


class EndpointRecorder(Protocol):
    """The series of one stored inference endpoint."""

    def rate_limit_waited(self, seconds: float) -> None: ...

    def bedrock_call(self, operation: str, outcome: str, seconds: float) -> None: ...

    def bedrock_retried(self, operation: str) -> None: ...

    def bedrock_tokens(self, input_tokens: int, output_tokens: int) -> None: ...


class Telemetry(Protocol):
    """What the inference service reports: which endpoints exist, and each one's recorder."""

    def endpoint(self, inference_id: str, task_type: str, model: str) -> EndpointRecorder: ...

    def forget(self, inference_id: str) -> None: ...


class ForwardRecorder(Protocol):
    """What both forwarding paths (spliced and aiohttp) report. With the access log on, the splicer
    hands its exchanges to the log only, which reports them here a batch at a time
    (`forwarded_batch`: the statuses and sizes of many exchanges, as columns)."""

    def forwarded(self, status: int, bytes_in: int, bytes_out: int) -> None: ...

    def forwarded_batch(
        self, statuses: list[int], bytes_in: list[int], bytes_out: list[int]
    ) -> None: ...

    def upstream_error(self, reason: str) -> None: ...

    def handoff(self, kind: str) -> None: ...


class NullEndpointRecorder:
    def rate_limit_waited(self, seconds: float) -> None:
        pass

    def bedrock_call(self, operation: str, outcome: str, seconds: float) -> None:
        pass

    def bedrock_retried(self, operation: str) -> None:
        pass

    def bedrock_tokens(self, input_tokens: int, output_tokens: int) -> None:
        pass


NULL_ENDPOINT: Final = NullEndpointRecorder()


class NoTelemetry:
    def endpoint(self, inference_id: str, task_type: str, model: str) -> EndpointRecorder:
        return NULL_ENDPOINT

    def forget(self, inference_id: str) -> None:
        pass


class NoForwardRecording:
    def forwarded(self, status: int, bytes_in: int, bytes_out: int) -> None:
        pass

    def forwarded_batch(
        self, statuses: list[int], bytes_in: list[int], bytes_out: list[int]
    ) -> None:
        pass

    def upstream_error(self, reason: str) -> None:
        pass

    def handoff(self, kind: str) -> None:
        pass


class RequestRecord:
    """What one request did, for its access-log line and its inference series.

    `inference` is set when the request is an inference call (POST `_inference/...`), whether or
    not its endpoint exists; `endpoint` once the service found it stored.
    """

    __slots__ = (
        "bedrock_request_ids",
        "endpoint",
        "forwarded",
        "inference",
        "inference_id",
        "input_tokens",
        "output_tokens",
        "rate_limit_wait",
        "retries",
        "task_type",
    )

    def __init__(self) -> None:
        self.inference = False
        self.forwarded = False  # answered by the cluster, through the aiohttp forwarder
        self.inference_id: str | None = None
        self.task_type: str | None = None
        self.endpoint: EndpointRecorder = NULL_ENDPOINT
        self.bedrock_request_ids: list[str] = []
        self.retries = 0
        self.rate_limit_wait = 0.0
        # Bedrock's own counts, summed over the request's calls (the OpenAI routes report them).
        self.input_tokens = 0
        self.output_tokens = 0


_current: ContextVar[RequestRecord | None] = ContextVar("esproxy_request_record", default=None)


def start_request() -> RequestRecord:
    """A fresh record for the request the current task serves (called by the access middleware)."""
    record = RequestRecord()
    _current.set(record)
    return record


def current_request() -> RequestRecord | None:
    return _current.get()


def forwarded() -> None:
    record = _current.get()
    if record is not None:
        record.forwarded = True


def inference_started(inference_id: str) -> None:
    record = _current.get()
    if record is not None:
        record.inference = True
        record.inference_id = inference_id


def endpoint_found(endpoint: EndpointRecorder, task_type: str) -> None:
    record = _current.get()
    if record is not None:
        record.endpoint = endpoint
        record.task_type = task_type


def rate_limit_waited(seconds: float) -> None:
    record = _current.get()
    if record is not None:
        record.rate_limit_wait += seconds
        record.endpoint.rate_limit_waited(seconds)


def bedrock_call(operation: str, outcome: str, seconds: float, request_id: str | None) -> None:
    record = _current.get()
    if record is not None:
        if request_id:
            record.bedrock_request_ids.append(request_id)
        record.endpoint.bedrock_call(operation, outcome, seconds)


def bedrock_retry(operation: str) -> None:
    record = _current.get()
    if record is not None:
        record.retries += 1
        record.endpoint.bedrock_retried(operation)


def bedrock_tokens(input_tokens: int, output_tokens: int) -> None:
    record = _current.get()
    if record is not None:
        record.input_tokens += input_tokens
        record.output_tokens += output_tokens
        record.endpoint.bedrock_tokens(input_tokens, output_tokens)
