"""Streamed chat load over HTTP: time to the first content delta, and to the end of the stream.

Runs under the project's .venv (aiohttp). Each request posts BODY to URL and reads the server-sent
events as they arrive; the first event whose data holds a non-empty `"content"` delta (ES's unified
chunks and OpenAI's alike) marks the first delta. Prints one JSON line: requests, rps, errors,
latency and first_delta_ms percentiles in ms.
    python stream_driver.py URL BODY_JSON HEADER CONCURRENCY SECONDS   (HEADER may be "")
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp
from bedrock_direct import percentiles

CONTENT = (b'"content":"', b'"content": "')


def has_content(line: bytes) -> bool:
    """A data line with a non-empty content delta."""
    for marker in CONTENT:
        at = line.find(marker)
        if at >= 0 and line[at + len(marker) : at + len(marker) + 1] != b'"':
            return True
    return False


async def main(url: str, body: str, header: str, concurrency: int, seconds: float) -> None:
    headers = {"Content-Type": "application/json"}
    if header:
        name, _, value = header.partition(": ")
        headers[name] = value
    latencies: list[float] = []
    first_deltas: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(record: bool) -> None:
            nonlocal errors
            started = time.perf_counter()
            first = None
            async with session.post(url, data=body, headers=headers) as response:
                if response.status != 200:
                    errors += record
                    await response.read()
                    return
                async for line in response.content:
                    if first is None and line.startswith(b"data:") and has_content(line):
                        first = (time.perf_counter() - started) * 1000
            if record:
                latencies.append((time.perf_counter() - started) * 1000)
                if first is not None:
                    first_deltas.append(first)

        for _ in range(3):  # warm up the connections
            await one(record=False)
        stop_at = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < stop_at:
                await one(record=True)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    print(
        json.dumps(
            {
                "requests": len(latencies),
                "rps": len(latencies) / elapsed,
                "errors": errors,
                "latency_ms": percentiles(latencies),
                "first_delta_ms": percentiles(first_deltas),
                "connections": concurrency,
                "duration_s": elapsed,
            }
        )
    )


if __name__ == "__main__":
    url, body, header, conc, secs = sys.argv[1:6]
    asyncio.run(main(url, body, header, int(conc), float(secs)))
