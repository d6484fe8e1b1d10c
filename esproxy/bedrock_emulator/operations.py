"""The non-streaming operations: InvokeModel (embedding models) and Converse (chat models)."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from esproxy.bedrock_emulator.calls import ModelCall
from esproxy.bedrock_emulator.completions import Completion, complete
from esproxy.bedrock_emulator.conversations import read_conversation
from esproxy.bedrock_emulator.embedding_models import invoke_embedding
from esproxy.bedrock_emulator.model_ids import require_chat_model, require_embedding_model
from esproxy.bedrock_emulator.state import EMULATOR_STATE


async def invoke_model(request: web.Request, call: ModelCall) -> web.StreamResponse:
    family = require_embedding_model(call.model)
    # Hashing and serialising up to 96 vectors takes milliseconds: keep it off the event loop.
    result = await asyncio.to_thread(invoke_embedding, family, call.body)
    request.app[EMULATOR_STATE].usage.record(call.model.model_id, result.input_tokens, 0)
    return web.Response(
        body=result.body,
        headers={
            "Content-Type": "application/json",
            "x-amzn-RequestId": call.request_id,
            "X-Amzn-Bedrock-Invocation-Latency": str(call.elapsed_ms()),
            "X-Amzn-Bedrock-Input-Token-Count": str(result.input_tokens),
        },
    )


async def converse(request: web.Request, call: ModelCall) -> web.StreamResponse:
    completion = answer_conversation(call)
    usage = request.app[EMULATOR_STATE].usage
    usage.record(call.model.model_id, completion.input_tokens, completion.output_tokens)
    content: list[dict[str, object]] = [{"text": completion.text}]
    if completion.tool_use is not None:
        use = completion.tool_use
        content = [
            {"toolUse": {"toolUseId": use.tool_use_id, "name": use.name, "input": use.input}}
        ]
    body = {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": completion.stop_reason,
        "usage": completion.usage(),
        "metrics": {"latencyMs": call.elapsed_ms()},
    }
    return web.Response(
        body=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "x-amzn-RequestId": call.request_id},
    )


def answer_conversation(call: ModelCall) -> Completion:
    require_chat_model(call.model)
    return complete(call.model, read_conversation(call.model, call.body))
