"""Direct aiobotocore load on the Bedrock emulator: the practical limit esproxy is compared with.

Runs under the project's .venv (same aiobotocore as esproxy, same client settings: one attempt,
64 pooled connections). Each request does what esproxy does for one `_inference` call: 16 Titan
InvokeModel calls at once, one Cohere InvokeModel with 96 texts, one Converse, or one
ConverseStream read to its end (`chat_stream`, which also times the first text delta); answers
are read and parsed. Prints one JSON line: requests, rps, errors, latency percentiles in ms (and
`first_delta_ms` for streams), and the CPU this process spent per request.
    python bedrock_direct.py URL WORKLOAD CONCURRENCY SECONDS
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

TEXTS = [f"passage {i}: the sky above the port was the color of television" for i in range(96)]
QUESTION = "What is Elastic? Answer in one sentence."
CHAT_MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {k: float("nan") for k in ("mean", "p50", "p90", "p99", "p999", "max")}
    s = sorted(values)

    def at(q: float) -> float:
        return s[min(len(s) - 1, int(q * len(s)))]

    return {
        "mean": sum(s) / len(s),
        "p50": at(0.5),
        "p90": at(0.9),
        "p99": at(0.99),
        "p999": at(0.999),
        "max": s[-1],
    }


def open_client(url: str) -> Any:
    """A Bedrock Runtime client on the emulator with esproxy's client settings (an async context
    manager); minimal_chat_proxy.py uses it too."""
    config = AioConfig(
        retries={"total_max_attempts": 1, "mode": "standard"},
        max_pool_connections=64,
        signature_version="v4",
    )
    return AioSession().create_client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="AKIDBENCH",
        aws_secret_access_key="bench-secret",
        config=config,
    )


async def main(url: str, workload: str, concurrency: int, seconds: float) -> None:
    async with open_client(url) as client:

        async def invoke(model: str, body: dict[str, Any]) -> Any:
            response = await client.invoke_model(
                modelId=model,
                body=orjson.dumps(body),
                contentType="application/json",
                accept="application/json",
            )
            async with response["body"] as stream:
                return orjson.loads(await stream.read())

        async def titan16() -> None:
            await asyncio.gather(
                *(invoke("amazon.titan-embed-text-v2:0", {"inputText": t}) for t in TEXTS[:16])
            )

        async def cohere96() -> None:
            await invoke(
                "cohere.embed-english-v3", {"texts": TEXTS, "input_type": "search_document"}
            )

        async def completion() -> None:
            await client.converse(
                modelId="amazon.titan-text-premier-v1:0",
                messages=[{"role": "user", "content": [{"text": QUESTION}]}],
                inferenceConfig={"maxTokens": 64},
            )

        first_deltas: list[float] = []

        async def chat_stream() -> None:
            started = time.perf_counter()
            response = await client.converse_stream(
                modelId=CHAT_MODEL,
                messages=[{"role": "user", "content": [{"text": QUESTION}]}],
                inferenceConfig={"maxTokens": 64},
            )
            first = True
            async for event in response["stream"]:
                if first and "contentBlockDelta" in event:
                    first_deltas.append((time.perf_counter() - started) * 1000)
                    first = False

        call: Callable[[], Awaitable[None]] = {
            "titan16": titan16,
            "cohere96": cohere96,
            "completion": completion,
            "chat_stream": chat_stream,
        }[workload]
        for _ in range(3):  # warm up: connections, botocore's loaders
            await call()
        first_deltas.clear()
        latencies: list[float] = []
        errors = 0
        stop_at = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                try:
                    await call()
                except Exception:
                    errors += 1
                    continue
                latencies.append((time.perf_counter() - started) * 1000)

        began, cpu_began = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu_began
    print(
        json.dumps(
            {
                "requests": len(latencies),
                "rps": len(latencies) / elapsed,
                "errors": errors,
                "latency_ms": percentiles(latencies),
                "connections": concurrency,
                "duration_s": elapsed,
                "cpu_ms_per_request": cpu * 1000 / len(latencies) if latencies else None,
                **({"first_delta_ms": percentiles(first_deltas)} if first_deltas else {}),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
