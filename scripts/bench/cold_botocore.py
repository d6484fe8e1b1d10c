"""What each stage of botocore's ConverseStream call costs on a cold core, as shipped and with
esproxy's client changes (the kept User-Agent, LeanSigV4Auth, LeanRestJSONSerializer, the kept
endpoint): each stage timed once after the loop has idled 25 ms, as a request at concurrency 1
finds the core, then at once a second time (hot). No network: the client points at a closed port
and nothing is sent. Run on esproxy's core, from the project's venv:

    taskset -c 1 .venv/bin/python scripts/bench/cold_botocore.py
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.awsrequest import create_request_object  # type: ignore[import-untyped]

from esproxy.integrations.amazonbedrock.endpoint_rules import keep_resolved_endpoints
from esproxy.integrations.amazonbedrock.serializing import use_lean_serializer
from esproxy.integrations.amazonbedrock.signing import use_lean_signer
from esproxy.integrations.amazonbedrock.user_agent import memoize_user_agent

URL = "http://127.0.0.1:9"
PARAMS = {
    "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
    "messages": [{"role": "user", "content": [{"text": "What is Elastic? One sentence."}]}],
    "inferenceConfig": {"maxTokens": 64},
}
ROUNDS = 150
IDLE = 0.025


async def stage_times(client: Any) -> dict[str, tuple[float, float]]:
    operation = client.meta.service_model.operation_model("ConverseStream")

    def context() -> dict[str, Any]:
        return {
            "client_region": client.meta.region_name,
            "client_config": client.meta.config,
            "has_streaming_input": False,
            "auth_type": operation.resolved_auth_type,
        }

    async def emit_params() -> None:
        await client._emit_api_params(dict(PARAMS), operation, context())

    async def ruleset() -> None:
        await client._resolve_endpoint_ruleset(operation, dict(PARAMS), context())

    async def serialize() -> None:  # botocore's validation, then the serializer
        await client._convert_to_request_dict(dict(PARAMS), operation, URL, context=context())

    async def sign() -> float:  # timed inside: the request is built first
        request_dict = await client._convert_to_request_dict(
            dict(PARAMS), operation, URL, context=context()
        )
        request = create_request_object(request_dict)
        started = time.perf_counter()
        await client._request_signer.sign(operation.name, request)
        return time.perf_counter() - started

    stages: dict[str, Callable[[], Awaitable[Any]]] = {
        "emit params": emit_params,
        "ruleset": ruleset,
        "serialize": serialize,
        "sign": sign,
    }
    times = {}
    for name, stage in stages.items():
        cold, hot = [], []
        for _ in range(ROUNDS):
            await asyncio.sleep(IDLE)
            for sample in (cold, hot):
                started = time.perf_counter()
                inner = await stage()
                sample.append((inner if inner is not None else time.perf_counter() - started) * 1e6)
        times[name] = (statistics.median(cold), statistics.median(hot))
    return times


async def main() -> None:
    config = AioConfig(
        retries={"total_max_attempts": 1, "mode": "standard"}, signature_version="v4"
    )
    results = {}
    for variant in ("botocore", "esproxy"):
        async with AioSession().create_client(
            "bedrock-runtime",
            region_name="us-east-1",
            endpoint_url=URL,
            aws_access_key_id="AKIDBENCH",
            aws_secret_access_key="bench-secret",
            config=config,
        ) as client:
            if variant == "esproxy":
                memoize_user_agent(client)
                use_lean_signer(client)
                use_lean_serializer(client)
                keep_resolved_endpoints(client)
            results[variant] = await stage_times(client)
    print(f"µs, medians of {ROUNDS}; cold = after {IDLE * 1000:.0f} ms idle, hot = at once after")
    print(f"{'stage':12} {'botocore cold':>14} {'hot':>6} {'esproxy cold':>13} {'hot':>6}")
    for stage, (cold, hot) in results["botocore"].items():
        lean_cold, lean_hot = results["esproxy"][stage]
        print(f"{stage:12} {cold:14.0f} {hot:6.0f} {lean_cold:13.0f} {lean_hot:6.0f}")


if __name__ == "__main__":
    asyncio.run(main())
