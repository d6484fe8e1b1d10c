"""What Bedrock says a call cost and was called: token counts and request ids from its own answers.

Never estimated: a count Bedrock did not send is not counted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from esproxy.errors import ProviderError, ProviderUnavailable, ProxyError
from esproxy.observability import events

INPUT_HEADER = "x-amzn-bedrock-input-token-count"
OUTPUT_HEADER = "x-amzn-bedrock-output-token-count"


def converse_usage(usage: Any) -> tuple[int, int]:
    """Converse and ConverseStream `usage`: `inputTokens` and `outputTokens`."""
    if not isinstance(usage, Mapping):
        return 0, 0
    return whole(usage.get("inputTokens")), whole(usage.get("outputTokens"))


def invoke_model_usage(headers: Mapping[str, Any], body: Mapping[str, Any]) -> tuple[int, int]:
    """InvokeModel: Bedrock's token-count headers (every model), else the model's own fields
    (Titan `inputTextTokenCount`, Cohere `meta.billed_units`)."""
    input_tokens = whole(headers.get(INPUT_HEADER))
    output_tokens = whole(headers.get(OUTPUT_HEADER))
    if input_tokens or output_tokens:
        return input_tokens, output_tokens
    if "inputTextTokenCount" in body:
        return whole(body.get("inputTextTokenCount")), 0
    meta = body.get("meta")
    billed = meta.get("billed_units") if isinstance(meta, Mapping) else None
    if isinstance(billed, Mapping):
        return whole(billed.get("input_tokens")), whole(billed.get("output_tokens"))
    return 0, 0


def whole(value: Any) -> int:
    try:
        count = int(value)
    except (TypeError, ValueError):
        return 0
    return max(count, 0)


def request_id_of(response: Mapping[str, Any]) -> str | None:
    metadata = response.get("ResponseMetadata")
    if isinstance(metadata, Mapping):
        found = metadata.get("RequestId")
        return str(found) if found else None
    return None


def outcome_of(error: ProxyError) -> str:
    """A failed call's outcome for `esproxy_bedrock_calls_total`."""
    if isinstance(error, ProviderError):
        if error.status == 429:
            return events.THROTTLED
        if error.status == 408 or error.code == "ModelTimeoutException":
            return events.TIMEOUT
        return events.CLIENT_ERROR if error.status < 500 else events.SERVER_ERROR
    if isinstance(error, ProviderUnavailable):
        cause = error.caused_by
        kind = cause.get("type") if isinstance(cause, Mapping) else None
        if isinstance(kind, str) and "timeout" in kind:
            return events.TIMEOUT
    return events.SERVER_ERROR
