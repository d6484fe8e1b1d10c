"""The emulator's own control API under `/_emulator`: queue and clear faults, read the request logs.

These answers are the emulator's, not Bedrock's: plain JSON, errors as `{"error": "..."}` with 400.
"""

from __future__ import annotations

import json

from aiohttp import web

from esproxy.bedrock_emulator.faults import FaultSpecError, parse_fault
from esproxy.bedrock_emulator.state import EMULATOR_STATE


async def add_faults(request: web.Request) -> web.Response:
    """Body: one fault object, or a list of them, queued in order."""
    try:
        spec = json.loads(await request.read())
        specs = spec if isinstance(spec, list) else [spec]
        faults = [parse_fault(item) for item in specs]
    except (ValueError, FaultSpecError) as error:
        return web.json_response({"error": str(error)}, status=400)
    book = request.app[EMULATOR_STATE].faults
    for fault in faults:
        book.add(fault)
    return list_faults_of(request)


async def list_faults(request: web.Request) -> web.Response:
    return list_faults_of(request)


async def clear_faults(request: web.Request) -> web.Response:
    request.app[EMULATOR_STATE].faults.clear()
    return list_faults_of(request)


def list_faults_of(request: web.Request) -> web.Response:
    pending = request.app[EMULATOR_STATE].faults.pending()
    return web.json_response({"faults": [fault.to_json() for fault in pending]})


async def list_requests(request: web.Request) -> web.Response:
    return web.json_response(request.app[EMULATOR_STATE].requests.to_json())


async def clear_requests(request: web.Request) -> web.Response:
    log = request.app[EMULATOR_STATE].requests
    log.clear()
    return web.json_response(log.to_json())


async def list_sts_requests(request: web.Request) -> web.Response:
    return web.json_response(request.app[EMULATOR_STATE].sts_requests.to_json())


async def clear_sts_requests(request: web.Request) -> web.Response:
    log = request.app[EMULATOR_STATE].sts_requests
    log.clear()
    return web.json_response(log.to_json())


async def stream_counts(request: web.Request) -> web.Response:
    return web.json_response(request.app[EMULATOR_STATE].streams.to_json())


async def show_usage(request: web.Request) -> web.Response:
    return web.json_response(request.app[EMULATOR_STATE].usage.to_json())


def add_control_routes(app: web.Application) -> None:
    app.router.add_get("/_emulator/streams", stream_counts)
    app.router.add_post("/_emulator/faults", add_faults)
    app.router.add_get("/_emulator/faults", list_faults)
    app.router.add_delete("/_emulator/faults", clear_faults)
    app.router.add_get("/_emulator/requests", list_requests)
    app.router.add_delete("/_emulator/requests", clear_requests)
    app.router.add_get("/_emulator/usage", show_usage)
    # STS calls, kept apart so that the model-call log reads as before.
    app.router.add_get("/_emulator/sts-requests", list_sts_requests)
    app.router.add_delete("/_emulator/sts-requests", clear_sts_requests)
