"""Admitting a model call: route it, check the signature, record it, then quota, latency and faults.

What a call answers is decided later, by the operation modules; this module only lets it through.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import unquote

from aiohttp import web

from esproxy.bedrock_emulator.errors import BedrockError
from esproxy.bedrock_emulator.faults import Fault
from esproxy.bedrock_emulator.model_ids import ModelRef, resolve_model
from esproxy.bedrock_emulator.request_log import RecordedRequest, decode_body
from esproxy.bedrock_emulator.signing import SignedCall, check_signature
from esproxy.bedrock_emulator.state import EMULATOR_STATE

OPERATIONS: Final = {
    "invoke": "InvokeModel",
    "converse": "Converse",
    "converse-stream": "ConverseStream",
}
# A `Hang` fault without `hang_ms` waits this long for the client to give up.
MAX_HANG_MS: Final = 600_000.0
DISCONNECT_POLL_S: Final = 0.05


class ClientGone(Exception):
    """The client hung up while a call was held back; there is nobody left to answer."""


@dataclass(frozen=True)
class ModelCall:
    """An admitted call: its operation, model and raw body, and the fault it drew, if any."""

    request_id: str
    operation: str
    model: ModelRef
    body: bytes = field(repr=False)
    started: float
    fault: Fault | None = None

    def elapsed_ms(self) -> int:
        return round((time.monotonic() - self.started) * 1000)


def parse_target(raw_path: str) -> tuple[str, str]:
    """`/model/{percent-encoded id}/{op}` -> (operation name, model id decoded once)."""
    prefix, _, rest = raw_path.partition("/model/")
    raw_model, _, action = rest.rpartition("/")
    operation = OPERATIONS.get(action)
    if prefix or not raw_model or operation is None:
        raise BedrockError("UnknownOperationException", f"Unknown operation for path {raw_path}")
    return operation, unquote(raw_model)


async def admit(request: web.Request, request_id: str, started: float) -> ModelCall:
    state = request.app[EMULATOR_STATE]
    operation, model_id = parse_target(request.rel_url.raw_path)
    body = await request.read()
    signed = SignedCall.of(request, body)
    check = check_signature(
        signed,
        state.settings.keys,
        state.settings.clock_skew_s,
        temporary=state.identities.temporary,
    )
    entry = RecordedRequest(
        operation, model_id, decode_body(body), check.signature_verified, check.access_key
    )
    state.requests.record(entry)
    if check.error is not None:
        raise check.error
    model = resolve_model(model_id)
    try:
        state.quotas.admit(check.access_key)
    except BedrockError:
        entry.throttled = True
        raise
    await asyncio.sleep(state.settings.latency_ms / 1000)
    fault = state.faults.take(operation, (model.model_id, model.base_id))
    if fault is not None:
        await suffer(request, fault)
    return ModelCall(request_id, operation, model, body, started, fault)


async def suffer(request: web.Request, fault: Fault) -> None:
    """Apply the part of a fault that happens before any answer: the hang and the error."""
    if fault.hangs and fault.after_events is None:
        await hold(request, MAX_HANG_MS if fault.hang_ms is None else fault.hang_ms)
        raise BedrockError("ModelTimeoutException")
    if fault.hang_ms is not None:
        await hold(request, fault.hang_ms)
    error = fault.error()
    if error is not None and fault.after_events is None:
        raise error


async def hold(request: web.Request, duration_ms: float) -> None:
    """Wait `duration_ms`, giving up early (ClientGone) once the client has disconnected."""
    deadline = time.monotonic() + duration_ms / 1000
    while (remaining := deadline - time.monotonic()) > 0:
        transport = request.transport
        if transport is None or transport.is_closing():
            raise ClientGone
        await asyncio.sleep(min(remaining, DISCONNECT_POLL_S))
