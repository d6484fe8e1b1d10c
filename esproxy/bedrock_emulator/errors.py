"""Bedrock's error answers: exception names, HTTP statuses, default texts and the JSON response.

Model and request errors carry the `com.amazon.bedrock` namespace; authentication and routing errors
come from AWS's front door and carry `com.amazon.coral.service`, as real Bedrock does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Final

from aiohttp import web

BEDROCK_NAMESPACE: Final = "http://internal.amazon.com/coral/com.amazon.bedrock/"
FRONT_DOOR_NAMESPACE: Final = "http://internal.amazon.com/coral/com.amazon.coral.service/"

STATUS_BY_CODE: Final[Mapping[str, int]] = {
    "ValidationException": 400,
    "ServiceQuotaExceededException": 400,
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "ModelTimeoutException": 408,
    "ModelErrorException": 424,
    "ModelStreamErrorException": 424,
    "ThrottlingException": 429,
    "ModelNotReadyException": 429,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
    # front door
    "IncompleteSignatureException": 400,
    "InvalidSignatureException": 403,
    "UnrecognizedClientException": 403,
    "MissingAuthenticationTokenException": 403,
    "ExpiredTokenException": 403,
    "UnknownOperationException": 404,
}

FRONT_DOOR_CODES: Final = frozenset(
    {
        "IncompleteSignatureException",
        "InvalidSignatureException",
        "UnrecognizedClientException",
        "MissingAuthenticationTokenException",
        "ExpiredTokenException",
        "UnknownOperationException",
    }
)

CODE_BY_STATUS: Final[Mapping[int, str]] = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}

DEFAULT_MESSAGES: Final[Mapping[str, str]] = {
    "ThrottlingException": "Too many requests, please wait before trying again.",
    "ModelTimeoutException": (
        "Model has timed out in processing the request. Try your request again."
    ),
    "ModelNotReadyException": "Model is not ready to serve inference requests. Try again later.",
    "AccessDeniedException": "You don't have access to the model with the specified model ID.",
    "InternalServerException": "The server encountered an internal error while processing the "
    "request.",
    "ServiceUnavailableException": "Bedrock is unable to process your request.",
    "UnrecognizedClientException": "The security token included in the request is invalid.",
    "MissingAuthenticationTokenException": "Missing Authentication Token",
    "ExpiredTokenException": "The security token included in the request is expired",
}


def status_for(code: str) -> int:
    return STATUS_BY_CODE.get(code, 400)


def code_for(status: int) -> str:
    return CODE_BY_STATUS.get(
        status, "InternalServerException" if status >= 500 else "ValidationException"
    )


def default_message(code: str) -> str:
    return DEFAULT_MESSAGES.get(code, f"{code} raised by the Bedrock emulator.")


class BedrockError(Exception):
    """An error answered as Bedrock answers it: status, `x-amzn-ErrorType`, JSON `message`."""

    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        status: int | None = None,
        extra: Mapping[str, object] | None = None,
    ) -> None:
        self.code = code
        self.message = default_message(code) if message is None else message
        self.status = status_for(code) if status is None else status
        self.extra: Mapping[str, object] = extra or {}
        super().__init__(f"{code} ({self.status}): {self.message}")

    def body(self) -> dict[str, object]:
        return {"message": self.message, **self.extra}

    def to_response(self, request_id: str) -> web.Response:
        namespace = FRONT_DOOR_NAMESPACE if self.code in FRONT_DOOR_CODES else BEDROCK_NAMESPACE
        return web.Response(
            status=self.status,
            body=json.dumps(self.body()).encode(),
            headers={
                "Content-Type": "application/json",
                "x-amzn-RequestId": request_id,
                "x-amzn-ErrorType": f"{self.code}:{namespace}",
            },
        )


def validation_error(message: str) -> BedrockError:
    return BedrockError("ValidationException", message)


def malformed_input(problems: list[str]) -> BedrockError:
    """The native-body schema error; the validator concatenates its reasons without separators."""
    if not problems:
        return validation_error(
            "Malformed input request, please reformat your input and try again."
        )
    joined = "".join(problems)
    return validation_error(
        f"Malformed input request: {joined}, please reformat your input and try again."
    )


def constraint_error(violations: list[str]) -> BedrockError:
    """Coral's request-constraint error, e.g. for `inferenceConfig.temperature` above 1."""
    count = len(violations)
    noun = "error" if count == 1 else "errors"
    return validation_error(f"{count} validation {noun} detected: " + "; ".join(violations))
