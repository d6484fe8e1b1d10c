"""A/B of esproxy's Bedrock call path: a key endpoint against a role endpoint, in one process.

Run by scripts/bench/inference.py under the project's .venv, pinned to the contender's core:
`role_call_path.py EMULATOR_URL CALLS_PER_BLOCK BLOCKS`. Converse calls go one at a time through
esproxy's own `BedrockClients` (the HTTP front in front of it is the same for both kinds of
endpoint), in blocks that alternate key and role, so that load elsewhere on the machine falls on
both alike. Prints one JSON line: the median latency and the CPU per call of each, and the
differences. The role's credentials come from the emulator's STS (AWS_ENDPOINT_URL_STS) once, then
from the held snapshot: nothing on the call path asks STS.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass

from esproxy.integrations.amazonbedrock.client import BedrockClients
from esproxy.integrations.amazonbedrock.credentials import BedrockCredentials, Egress, Identity

MODEL = "amazon.titan-text-premier-v1:0"
ROLE = "arn:aws:iam::123456789012:role/bench"
REQUEST = {
    "messages": [{"role": "user", "content": [{"text": "What is Elastic? One sentence."}]}],
    "inferenceConfig": {"maxTokens": 64},
}


@dataclass(frozen=True)
class Account:
    identity: Identity
    region: str = "us-east-1"

    @property
    def access_key(self) -> str | None:
        return self.identity.access_key

    @property
    def secret_key(self) -> str | None:
        return self.identity.secret_key


async def run(emulator: str, per_block: int, blocks: int) -> dict[str, float]:
    os.environ["AWS_ENDPOINT_URL_STS"] = emulator  # the emulator answers STS on its port too
    clients = BedrockClients(credentials=BedrockCredentials(Egress(endpoint_url=emulator)))
    accounts = {
        "key": Account(Identity("AKIDBENCH", "bench-secret")),
        "role": Account(Identity("AKIDBENCH", "bench-secret", role_arn=ROLE)),
    }
    latency: dict[str, list[float]] = {name: [] for name in accounts}
    cpu: dict[str, list[float]] = {name: [] for name in accounts}
    try:
        for account in accounts.values():  # warm: clients, the role's first AssumeRole
            for _ in range(20):
                await clients.converse(account, MODEL, REQUEST)
        for block in range(blocks):
            order = list(accounts) if block % 2 == 0 else list(reversed(accounts))
            for name in order:
                started_cpu = time.process_time()
                for _ in range(per_block):
                    started = time.perf_counter()
                    await clients.converse(accounts[name], MODEL, REQUEST)
                    latency[name].append((time.perf_counter() - started) * 1000)
                cpu[name].append((time.process_time() - started_cpu) * 1000 / per_block)
    finally:
        await clients.close()
    result = {
        "calls_each": per_block * blocks,
        "key_p50_ms": statistics.median(latency["key"]),
        "role_p50_ms": statistics.median(latency["role"]),
        "key_cpu_ms_per_call": statistics.median(cpu["key"]),
        "role_cpu_ms_per_call": statistics.median(cpu["role"]),
    }
    result["role_added_p50_ms"] = result["role_p50_ms"] - result["key_p50_ms"]
    result["role_added_cpu_ms_per_call"] = (
        result["role_cpu_ms_per_call"] - result["key_cpu_ms_per_call"]
    )
    return result


if __name__ == "__main__":
    outcome = asyncio.run(run(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
    print(json.dumps(outcome))
