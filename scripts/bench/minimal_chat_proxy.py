"""The floor for a streamed-chat proxy on this machine: an aiohttp server that turns the unified
chat body into one aiobotocore ConverseStream call and writes each text event as ES's unified
stream does, and nothing else (no validation, endpoints, limits, auth, metrics, log or splicer).
A reference for the first-delta budget (timed in every paced run of `scripts/bench/inference`),
not a product: whatever esproxy adds beyond it is esproxy's own work. It imports nothing of
esproxy's on purpose, so its framing constants are its own.
    python minimal_chat_proxy.py PORT EMULATOR_URL
"""

from __future__ import annotations

import sys
from typing import Any

import orjson
import uvloop
from aiohttp import web
from bedrock_direct import CHAT_MODEL, open_client

MESSAGE = "\ufeffevent: message\ndata: ".encode()
DONE = MESSAGE + b"[DONE]\n\n"


def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {
        "id": "floor",
        "choices": [{"delta": delta, "finish_reason": finish, "index": 0}],
        "model": CHAT_MODEL,
        "object": "chat.completion.chunk",
    }
    return MESSAGE + orjson.dumps(body) + b"\n\n"


def main(port: int, emulator: str) -> None:
    async def client_ctx(app: web.Application) -> Any:
        async with open_client(emulator) as client:
            app["client"] = client
            yield

    async def stream(request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        messages = [
            {"role": m["role"], "content": [{"text": m["content"]}]} for m in body["messages"]
        ]
        answer = await request.app["client"].converse_stream(
            modelId=CHAT_MODEL,
            messages=messages,
            inferenceConfig={"maxTokens": body.get("max_completion_tokens", 64)},
        )
        response = web.StreamResponse(
            headers={
                "X-Elastic-Product": "Elasticsearch",
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
            }
        )
        await response.prepare(request)
        async for event in answer["stream"]:
            if "messageStart" in event:
                await response.write(chunk({"role": "assistant"}))
            elif "contentBlockDelta" in event:
                await response.write(
                    chunk({"content": event["contentBlockDelta"]["delta"]["text"]})
                )
            elif "messageStop" in event:
                await response.write(chunk({}, event["messageStop"]["stopReason"]))
        await response.write(DONE)
        await response.write_eof()
        return response

    app = web.Application()
    app.cleanup_ctx.append(client_ctx)
    app.router.add_post("/{tail:.*}", stream)
    web.run_app(
        app, host="127.0.0.1", port=port, access_log=None, print=None, loop=uvloop.new_event_loop()
    )


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
