"""Run `python -m esproxy ...` with a proposed change applied from outside, to measure it before
anyone edits esproxy/ (the benchmarks' experiment flags use this launcher). Each knob is an
environment variable; none set means esproxy exactly as it is.

- BENCH_EXP_UVLOOP=1: uvloop's event loop (uvloop from .cache/bench/uvloop, never the project's
  venv).
- BENCH_EXP_READ_BUFSIZE=N: the server's per-request read buffer (aiohttp's `read_bufsize`,
  64 KiB by default) through esproxy.app.SERVER_KWARGS, as the proposed one-line change would.
- BENCH_EXP_SMALL_BODY=N: forwarded request bodies of at most N bytes (Content-Length) are read
  whole first and passed as bytes, so aiohttp sends them with the headers in one write instead
  of streaming them through an AsyncIterablePayload; larger or chunked bodies still stream.
- BENCH_EXP_SMALL_ANSWER=N: upstream answers with a Content-Length of at most N bytes are read
  whole and sent as one web.Response (one write), instead of prepare/write/write_eof.
- BENCH_EXP_STATIC_UA=1: each Bedrock client keeps the User-Agent it was created with, instead of
  botocore rebuilding it before every call (its `rebuild_and_replace_user_agent_handler`).
- BENCH_EXP_LIMITER=1: the proposed limiter_for_rate, whose bursts cannot push a sliding minute
  over `requests_per_minute` (see proposed_limiter_for_rate below).
"""

import asyncio
import os
import runpy
import sys
from pathlib import Path

if os.environ.get("BENCH_EXP_UVLOOP") == "1":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".cache" / "bench" / "uvloop"))
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

if os.environ.get("BENCH_EXP_READ_BUFSIZE"):
    import esproxy.app

    esproxy.app.SERVER_KWARGS["read_bufsize"] = int(os.environ["BENCH_EXP_READ_BUFSIZE"])

if os.environ.get("BENCH_EXP_SMALL_BODY"):
    from esproxy.upstream import UpstreamForwarder

    limit = int(os.environ["BENCH_EXP_SMALL_BODY"])
    original = UpstreamForwarder.forward

    async def forward(self, request, body=None):  # type: ignore[no-untyped-def]
        length = request.content_length
        if body is None and length is not None and 0 < length <= limit:
            body = await request.read()
        return await original(self, request, body)

    UpstreamForwarder.forward = forward  # type: ignore[method-assign]

if os.environ.get("BENCH_EXP_SMALL_ANSWER"):
    import aiohttp
    from aiohttp import web

    from esproxy.upstream import UpstreamForwarder, end_to_end

    answer_limit = int(os.environ["BENCH_EXP_SMALL_ANSWER"])
    original_relay = UpstreamForwarder.relay

    async def relay(self, request, node, upstream):  # type: ignore[no-untyped-def]
        length = upstream.content_length
        if length is None or length > answer_limit or request.method == "HEAD":
            return await original_relay(self, request, node, upstream)
        try:
            body = await upstream.read()
        except (aiohttp.ClientError, OSError) as error:
            raise self.translate(node, error) from None
        headers = end_to_end(upstream.headers)
        headers.popall("Content-Length", None)  # aiohttp sets it from the body
        return web.Response(
            status=upstream.status, reason=upstream.reason, headers=headers, body=body
        )

    UpstreamForwarder.relay = relay  # type: ignore[method-assign]

if os.environ.get("BENCH_EXP_STATIC_UA") == "1":
    from esproxy.integrations.amazonbedrock.client import BedrockClients

    original_open = BedrockClients._open

    async def open_static_ua(self, key, account):  # type: ignore[no-untyped-def]
        client = await original_open(self, key, account)
        service_id = client.meta.service_model.service_id.hyphenize()
        client.meta.events.unregister(
            f"request-created.{service_id}",
            client._user_agent_creator.rebuild_and_replace_user_agent_handler,
        )
        return client

    BedrockClients._open = open_static_ua  # type: ignore[method-assign]

if os.environ.get("BENCH_EXP_LIMITER") == "1":
    from aiolimiter import AsyncLimiter

    import esproxy.inference.rate_limits as rate_limits

    def proposed_limiter_for_rate(requests_per_minute: int, minute: float = 60.0) -> AsyncLimiter:
        # A leaky bucket holding b calls and leaking r per minute admits at most b + r calls in
        # any minute. Today b = a second's share and r = rpm, so a sliding minute (how Bedrock
        # counts its quota) can see rpm + b calls. Here r = rpm - b: never more than rpm. b stays
        # at least 2, so that a late timer wake-up is absorbed instead of lost (with b = 1 the
        # rate falls 1-2% short), and small: a tenth of a second's share.
        burst = max(2, requests_per_minute // 600) if requests_per_minute >= 4 else 1
        per_minute = max(requests_per_minute - burst, 0.99)
        return AsyncLimiter(burst, burst * minute / per_minute)

    rate_limits.limiter_for_rate = proposed_limiter_for_rate

sys.argv[0] = "esproxy"
runpy.run_module("esproxy", run_name="__main__", alter_sys=True)
