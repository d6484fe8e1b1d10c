"""create_emulator_app: the emulator's aiohttp application, its routes and the per-call dispatch."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web

from esproxy.bedrock_emulator.calls import ClientGone, ModelCall, admit
from esproxy.bedrock_emulator.control import add_control_routes
from esproxy.bedrock_emulator.errors import BedrockError
from esproxy.bedrock_emulator.operations import converse, invoke_model
from esproxy.bedrock_emulator.settings import EmulatorSettings
from esproxy.bedrock_emulator.state import EMULATOR_STATE, EmulatorState
from esproxy.bedrock_emulator.streaming import converse_stream
from esproxy.bedrock_emulator.sts import handle_sts

log = logging.getLogger(__name__)

Operation = Callable[[web.Request, ModelCall], Awaitable[web.StreamResponse]]
HANDLERS: Final[dict[str, Operation]] = {
    "InvokeModel": invoke_model,
    "Converse": converse,
    "ConverseStream": converse_stream,
}
# InvokeModel bodies may be up to 25,000,000 bytes on Bedrock.
MAX_BODY_BYTES: Final = 26_000_000


def create_emulator_app(settings: EmulatorSettings) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[EMULATOR_STATE] = EmulatorState.from_settings(settings)
    add_control_routes(app)
    app.router.add_post("/model/{tail:.+}", handle_model_call)
    app.router.add_post("/", handle_sts)  # STS answers here too, for a one-port setup
    app.router.add_route("*", "/{tail:.*}", unknown_operation)
    return app


def create_sts_app(emulator: web.Application) -> web.Application:
    """STS on a port of its own (for `AWS_ENDPOINT_URL_STS`), sharing `emulator`'s identities."""
    app = web.Application(client_max_size=1024 * 1024)
    app[EMULATOR_STATE] = emulator[EMULATOR_STATE]
    add_control_routes(app)
    app.router.add_route("*", "/", handle_sts)
    return app


async def handle_model_call(request: web.Request) -> web.StreamResponse:
    request_id = str(uuid.uuid4())
    started = time.monotonic()
    operation = "?"
    try:
        call = await admit(request, request_id, started)
        operation = call.operation
        response = await HANDLERS[call.operation](request, call)
    except BedrockError as error:
        response = error.to_response(request_id)
    except ClientGone:
        response = web.Response(status=499)  # never sent: the client has already gone
    duration_ms = (time.monotonic() - started) * 1000
    log.info(
        "%s %s -> %d in %.0f ms", operation, request.rel_url.raw_path, response.status, duration_ms
    )
    return response


async def unknown_operation(request: web.Request) -> web.Response:
    error = BedrockError(
        "UnknownOperationException",
        f"Unknown operation {request.method} {request.rel_url.raw_path}",
    )
    return error.to_response(str(uuid.uuid4()))
