"""Stage stamps of esproxy's streamed-chat path, applied from outside by esproxy_experiment.py
(BENCH_EXP_STAMPS=FILE). For one request at a time (concurrency 1): each stage's first
`perf_counter` after the splicer's first read of a POST, in ms, one JSON line per request
appended to FILE when its response ends. `first_delta_stamps.py` runs and summarizes them.

The wrappers cost a few µs each, so the stamps read a little late; compare stages, not totals.
BENCH_EXP_STAMP_ONLY=a,b keeps only the stages named; BENCH_EXP_CALLS=FILE also lists, in FILE,
every Python call of the 30th request from its first middleware to the botocore call.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
import time
from typing import Any

_stamps: dict[str, float] = {}
_t0 = 0.0
_out: Any = None
_CALLS_FILE = os.environ.get("BENCH_EXP_CALLS")
_AFTER_FILE = os.environ.get("BENCH_EXP_AFTER_EOF")
_answers = 0
_calls: list[str] | None = None
_traced = 0


def stamp(stage: str) -> None:
    if _t0 and stage not in _stamps:
        _stamps[stage] = (time.perf_counter() - _t0) * 1000
        if _CALLS_FILE:
            trace_calls(stage, _CALLS_FILE)


def trace_calls(stage: str, path: str) -> None:
    """The Python calls of the 30th request from its first middleware to the botocore call."""
    global _calls, _traced
    if stage == "middlewares":
        _traced += 1
        if _traced == 30:
            _calls = []

            def profile(frame: Any, event: str, arg: Any) -> None:
                if event in ("call", "c_call") and _calls is not None:
                    code = frame.f_code
                    name = arg.__qualname__ if event == "c_call" else code.co_qualname
                    where = (
                        "C" if event == "c_call" else f"{code.co_filename}:{code.co_firstlineno}"
                    )
                    _calls.append(f"{name} {where}")

            sys.setprofile(profile)
    elif stage == "botocore call" and _calls is not None:
        sys.setprofile(None)
        with open(path, "w") as out:
            out.write("\n".join(_calls) + "\n")
        _calls = None


def _flush() -> None:
    global _t0
    if _t0 and _out is not None:
        # "@"-keys are no stages: the first read's perf_counter() in s, to line up with the
        # client's own clock (stream_driver.py's STREAM_DRIVER_TIMES), and the answer's end in ms.
        _stamps["@t0"] = _t0
        _stamps["@eof"] = (time.perf_counter() - _t0) * 1000
        _out.write(json.dumps(_stamps) + "\n")
        _out.flush()
    _stamps.clear()
    _t0 = 0.0


def trace_after_eof() -> None:
    """BENCH_EXP_AFTER_EOF=FILE: the Python calls from the 30th answer's end to the next read,
    each with its ms since the end and its depth: what the loop does before it reads again."""
    global _answers, _calls
    _answers += 1
    if _answers != 30:
        return
    _calls = []
    began = time.perf_counter()
    depth = 0

    def profile(frame: Any, event: str, arg: Any) -> None:
        nonlocal depth
        if _calls is None:
            return
        if event in ("call", "c_call"):
            code = frame.f_code
            name = arg.__qualname__ if event == "c_call" else code.co_qualname
            where = "C" if event == "c_call" else f"{code.co_filename}:{code.co_firstlineno}"
            ms = (time.perf_counter() - began) * 1000
            _calls.append(f"{ms:8.3f} {'  ' * min(depth, 30)}{name} {where}")
            depth += 1
        elif event in ("return", "c_return", "c_exception"):
            depth = max(0, depth - 1)

    sys.setprofile(profile)


def end_trace_after_eof() -> None:
    global _calls
    if _AFTER_FILE and _calls is not None and _answers >= 30:
        sys.setprofile(None)
        with open(_AFTER_FILE, "a") as out:  # the floor's first, then esproxy's
            out.write(f"# {' '.join(sys.argv)}\n" + "\n".join(_calls) + "\n")
        _calls = None


def _begin() -> None:
    global _t0
    end_trace_after_eof()
    _stamps.clear()
    _t0 = time.perf_counter()


_ONLY = {s for s in os.environ.get("BENCH_EXP_STAMP_ONLY", "").split(",") if s}


def around(owner: Any, name: str, stage: str, *, after: str | None = None) -> None:
    """Stamp `stage` when `owner.name` is called (and `after` when a coroutine's await ends)."""
    if _ONLY and stage not in _ONLY and after not in _ONLY:
        return
    original = getattr(owner, name)
    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def wrapped_async(*args: Any, **kwargs: Any) -> Any:
            stamp(stage)
            result = await original(*args, **kwargs)
            if after:
                stamp(after)
            return result

        setattr(owner, name, wrapped_async)
    else:

        @functools.wraps(original)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            stamp(stage)
            return original(*args, **kwargs)

        setattr(owner, name, wrapped)


def install(path: str) -> None:
    global _out
    _out = open(path, "a")  # noqa: SIM115 (open for the process's life)

    from aiohttp import web_protocol

    import esproxy.app as app_module
    from esproxy.inference.chat_service import ChatService
    from esproxy.integrations.amazonbedrock import chat
    from esproxy.integrations.amazonbedrock.client import BedrockClients
    from esproxy.splice.client_connection import ClientConnection
    from esproxy.web import chat_handlers
    from esproxy.web.responses import OwnStreamResponse

    received = ClientConnection.data_received

    def data_received(self: Any, data: bytes) -> None:
        if data.startswith(b"POST"):
            _begin()
        received(self, data)

    ClientConnection.data_received = data_received  # type: ignore[method-assign]

    fed = web_protocol.RequestHandler.data_received

    def aiohttp_fed(self: Any, data: bytes) -> None:
        if not _t0 and data.startswith(b"POST"):
            _begin()  # no splicer in front: aiohttp reads the socket itself
        stamp("aiohttp fed")
        fed(self, data)

    web_protocol.RequestHandler.data_received = aiohttp_fed  # type: ignore[method-assign]
    middleware = app_module.error_middleware

    async def error_middleware(request: Any, handler: Any) -> Any:
        stamp("middlewares")
        return await middleware(request, handler)

    error_middleware.__middleware_version__ = 1  # type: ignore[attr-defined]
    app_module.error_middleware = error_middleware  # type: ignore[assignment]
    around(chat_handlers, "stream_chat_completion", "chat handler")
    around(ChatService, "chat_stream", "chat service")
    around(ChatService, "_prepare", "endpoint", after="endpoint checked")
    around(chat, "converse_chat_request", "converse request")
    around(BedrockClients, "client_for", "client", after="client held")

    around(chat.ChunkTranslator, "chunks", "first event")
    from esproxy.web.lending import LendableHandler

    install_aiohttp(LendableHandler)
    from esproxy.inference.rate_limits import Slot
    from esproxy.inference.service import InferenceService
    from esproxy.integrations.amazonbedrock import integration

    around(integration, "completion_id", "completion id")
    around(chat, "ChunkTranslator", "translator")
    around(InferenceService, "within", "within")
    around(Slot, "__aenter__", "slot", after="slot held")
    install_botocore()
    install_response(OwnStreamResponse)


def install_aiohttp(handler_type: Any) -> None:
    """aiohttp's steps from the bytes to the first middleware."""
    from aiohttp import web_app, web_request, web_urldispatcher

    around(web_request.BaseRequest, "__init__", "request made")
    around(handler_type, "_handle_request", "handle request")
    around(web_app.Application, "_handle", "app handle")
    around(web_urldispatcher.UrlDispatcher, "resolve", "resolve", after="resolved")


def install_botocore() -> None:
    from aiobotocore.client import AioBaseClient
    from aiobotocore.endpoint import AioEndpoint
    from aiobotocore.httpsession import AIOHTTPSession
    from aiobotocore.signers import AioRequestSigner

    around(AioBaseClient, "_make_api_call", "botocore call")
    around(AioBaseClient, "_emit_api_params", "emit params", after="params emitted")
    around(AioBaseClient, "_resolve_endpoint_ruleset", "ruleset", after="ruleset resolved")
    around(AioBaseClient, "_convert_to_request_dict", "serialize", after="serialized")
    around(AioBaseClient, "_make_request", "make request")
    around(AioRequestSigner, "sign", "sign", after="signed")
    around(AioEndpoint, "_send", "endpoint send")
    around(AIOHTTPSession, "send", "http send", after="bedrock head")


def install_floor(path: str) -> None:
    """The same stamps, where they apply, for minimal_chat_proxy.py (which has no splicer)."""
    global _out
    _out = open(path, "a")  # noqa: SIM115 (open for the process's life)
    from aiohttp import web, web_protocol

    fed = web_protocol.RequestHandler.data_received

    def aiohttp_fed(self: Any, data: bytes) -> None:
        if not _t0 and data.startswith(b"POST"):
            _begin()
        stamp("aiohttp fed")
        fed(self, data)

    web_protocol.RequestHandler.data_received = aiohttp_fed  # type: ignore[method-assign]
    request_read = web.BaseRequest.read

    async def read(self: Any) -> bytes:
        stamp("chat handler")
        return await request_read(self)

    web.BaseRequest.read = read  # type: ignore[method-assign]
    install_aiohttp(web_protocol.RequestHandler)
    install_botocore()
    install_response(web.StreamResponse)


def install_response(response_type: Any) -> None:
    prepare, write, write_eof = (
        response_type.prepare,
        response_type.write,
        response_type.write_eof,
    )

    async def prepare_stamped(self: Any, request: Any) -> Any:
        stamp("response prepare")
        return await prepare(self, request)

    async def write_stamped(self: Any, data: Any) -> None:
        stamp("role written" if "role written" not in _stamps else "delta written")
        await write(self, data)

    async def write_eof_stamped(self: Any, data: bytes = b"") -> None:
        await write_eof(self, data)
        answered = bool(_t0)  # aiohttp calls write_eof once more, after the handler returns
        _flush()
        if _AFTER_FILE and answered:
            trace_after_eof()

    response_type.prepare = prepare_stamped
    response_type.write = write_stamped
    response_type.write_eof = write_eof_stamped
