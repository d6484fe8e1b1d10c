"""Keeps each endpoint's limiter saturated: CONCURRENCY callers per endpoint for SECONDS.

Each request is a one-input Titan embedding, i.e. exactly one Bedrock call. Prints one JSON line
with the start time (time.monotonic, comparable with bedrock_tap.py's) and statuses per endpoint.
    python rate_driver.py ESPROXY_URL CONCURRENCY SECONDS ID [ID ...]
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter

import aiohttp


async def main(url: str, concurrency: int, seconds: float, ids: list[str]) -> None:
    statuses: dict[str, Counter[str]] = {i: Counter() for i in ids}
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=timeout
    ) as session:
        started = time.monotonic()
        stop_at = started + seconds

        async def caller(inference_id: str, n: int) -> None:
            seq = 0
            while time.monotonic() < stop_at:
                seq += 1
                body = {"input": f"rate check {inference_id} {n} {seq}"}
                try:
                    async with session.post(
                        f"{url}/_inference/text_embedding/{inference_id}", json=body
                    ) as response:
                        await response.read()
                        statuses[inference_id][str(response.status)] += 1
                except (aiohttp.ClientError, TimeoutError) as error:
                    statuses[inference_id][type(error).__name__] += 1

        await asyncio.gather(*(caller(i, n) for i in ids for n in range(concurrency)))
    print(
        json.dumps(
            {
                "started": started,
                "seconds": seconds,
                "statuses": {i: dict(c) for i, c in statuses.items()},
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]))
