"""ConverseStream: the answer as event-stream frames, one HTTP chunk each, written as they are made.

A fault with `after_events` replaces the rest of the stream with one exception frame, or, for
`Hang`, holds the stream open without another byte until the client goes away.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Final

from aiohttp import web

from esproxy.bedrock_emulator.calls import ModelCall
from esproxy.bedrock_emulator.completions import Completion
from esproxy.bedrock_emulator.event_stream import encode_error, encode_event, encode_exception
from esproxy.bedrock_emulator.faults import Fault
from esproxy.bedrock_emulator.operations import answer_conversation
from esproxy.bedrock_emulator.state import EMULATOR_STATE

EVENT_STREAM: Final = "application/vnd.amazon.eventstream"
HOLD: Final = b""  # marks where a hanging stream stops sending
# The exception members of ConverseStreamOutput; any other code goes out as an unmodelled error.
STREAM_EXCEPTIONS: Final = frozenset(
    {
        "internalServerException",
        "modelStreamErrorException",
        "validationException",
        "throttlingException",
        "serviceUnavailableException",
    }
)


async def converse_stream(request: web.Request, call: ModelCall) -> web.StreamResponse:
    completion = answer_conversation(call)  # validation errors still go out as plain HTTP errors
    settings = request.app[EMULATOR_STATE].settings
    delay_s, burst = settings.stream_delay_ms / 1000, settings.stream_burst
    response = web.StreamResponse(
        headers={"Content-Type": EVENT_STREAM, "x-amzn-RequestId": call.request_id}
    )
    await response.prepare(request)
    counts = request.app[EMULATOR_STATE].streams
    counts.open += 1
    finished = False
    try:
        for index, frame in enumerate(stream_frames(completion, call)):
            if index >= burst:
                await asyncio.sleep(delay_s)
            if frame is HOLD:
                await wait_for_disconnect(request)
                return response
            await response.write(frame)
        if call.fault is None or call.fault.after_events is None:  # the metadata event went out
            usage = request.app[EMULATOR_STATE].usage
            usage.record(call.model.model_id, completion.input_tokens, completion.output_tokens)
        await response.write_eof()
        finished = True
    except ConnectionError:
        pass  # the client stopped reading; nothing more to send
    finally:
        counts.open -= 1
        if finished:
            counts.finished += 1
        else:
            counts.abandoned += 1
    return response


async def wait_for_disconnect(request: web.Request) -> None:
    # Polling, because a silent stream has no write to fail and no event fires when the client
    # leaves.
    while request.transport is not None and not request.transport.is_closing():  # noqa: ASYNC110
        await asyncio.sleep(0.05)


def stream_frames(completion: Completion, call: ModelCall) -> Iterator[bytes]:
    fault = call.fault
    limit = fault.after_events if fault is not None else None
    for index, frame in enumerate(event_frames(completion, call)):
        if index == limit and fault is not None:
            yield HOLD if fault.hangs else exception_frame(fault)
            return
        yield frame
    if limit is not None and fault is not None:
        yield exception_frame(fault)


def event_frames(completion: Completion, call: ModelCall) -> Iterator[bytes]:
    """messageStart, text deltas, contentBlockStop, messageStop, metadata, made lazily so that the
    metadata latency covers the whole stream. Text blocks get no contentBlockStart, as on Bedrock.
    """
    yield encode_event("messageStart", {"role": "assistant"})
    if completion.tool_use is not None:
        use = completion.tool_use
        start = {"toolUse": {"toolUseId": use.tool_use_id, "name": use.name}}
        yield encode_event("contentBlockStart", {"contentBlockIndex": 0, "start": start})
        for piece in use.input_pieces():
            delta = {"toolUse": {"input": piece}}
            yield encode_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": delta})
    for piece in completion.deltas():
        yield encode_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}})
    yield encode_event("contentBlockStop", {"contentBlockIndex": 0})
    yield encode_event("messageStop", {"stopReason": completion.stop_reason})
    metadata = {"usage": completion.usage(), "metrics": {"latencyMs": call.elapsed_ms()}}
    yield encode_event("metadata", metadata)


def exception_frame(fault: Fault) -> bytes:
    code = fault.code or "InternalServerException"
    member = code[:1].lower() + code[1:]
    if member not in STREAM_EXCEPTIONS:
        return encode_error(code, fault.message)
    body: dict[str, object] = {"message": fault.message}
    if member == "modelStreamErrorException":
        body.update(originalStatusCode=fault.status, originalMessage=fault.message)
    return encode_exception(member, body)
