"""Streamed chat load over HTTP: time to the first content delta, and to the end of the stream.

Runs under the project's .venv. Each request posts BODY to URL and reads the server-sent events as
they arrive; the first event whose data holds a non-empty `"content"` delta (ES's unified chunks
and OpenAI's alike) marks the first delta. Prints one JSON line: requests, rps, errors, latency and
first_delta_ms percentiles in ms.
    python stream_driver.py URL BODY_JSON HEADER CONCURRENCY SECONDS [CLIENT]   (HEADER may be "")

CLIENT `raw` (the default) is a bare HTTP/1.1 client on asyncio streams: the request's bytes are
made once, and the answer's chunked framing is read by hand, so the client adds little more than
its two system calls, as wrk does for the throughput runs. `aiohttp` is aiohttp's client, which
adds tenths of a millisecond of its own Python work per request (building the request, parsing
the answer), more on a busy core: a measure of that client as much as of the server.
With STREAM_DRIVER_TIMES=FILE the raw client also writes each request's perf_counter() at its
start and at its first delta, to line up with stamps taken inside the server (the same clock).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

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


class RawClient:
    """One keep-alive HTTP/1.1 connection; answers must be chunked or carry a Content-Length."""

    def __init__(self, url: str, body: str, header: str) -> None:
        parsed = urlsplit(url)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        data = body.encode()
        lines = [
            f"POST {parsed.path or '/'}{'?' + parsed.query if parsed.query else ''} HTTP/1.1",
            f"Host: {parsed.netloc}",
            "Content-Type: application/json",
            f"Content-Length: {len(data)}",
            *([header] if header else []),
        ]
        self.request = ("\r\n".join(lines) + "\r\n\r\n").encode() + data
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def one(self) -> tuple[int, float | None]:
        """Status, and perf_counter() when the first content delta was read."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.reader, self.writer
        assert reader is not None
        writer.write(self.request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lowered = head.lower()
        first = None
        pending = b""
        if b"transfer-encoding: chunked" in lowered:
            while True:
                size = int((await reader.readuntil(b"\r\n"))[:-2].split(b";")[0], 16)
                data = await reader.readexactly(size + 2)
                if size == 0:
                    break
                if first is None:
                    *lines, pending = (pending + data[:-2]).split(b"\n")
                    if any(line.startswith(b"data:") and has_content(line) for line in lines):
                        first = time.perf_counter()
        else:
            at = lowered.find(b"content-length:")
            length = int(lowered[at + 15 : lowered.find(b"\r\n", at)]) if at >= 0 else 0
            await reader.readexactly(length)
        if b"connection: close" in lowered:
            writer.close()
            self.writer = None
        return status, first


async def main_raw(url: str, body: str, header: str, concurrency: int, seconds: float) -> None:
    latencies: list[float] = []
    first_deltas: list[float] = []
    stamps: list[tuple[float, float | None]] = []  # perf_counter() at each start and first delta
    errors = 0

    async def worker(client: RawClient, stop_at: float) -> None:
        nonlocal errors
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            status, first = await client.one()
            stamps.append((started, first))
            if status != 200:
                errors += 1
                continue
            latencies.append((time.perf_counter() - started) * 1000)
            if first is not None:
                first_deltas.append((first - started) * 1000)

    clients = [RawClient(url, body, header) for _ in range(concurrency)]
    for client in clients:  # warm up the connections
        for _ in range(3):
            await client.one()
    began = time.perf_counter()
    await asyncio.gather(*(worker(c, began + seconds) for c in clients))
    elapsed = time.perf_counter() - began
    report(latencies, first_deltas, errors, concurrency, elapsed)
    if times := os.environ.get("STREAM_DRIVER_TIMES"):  # for stage timing against the server's
        await asyncio.to_thread(Path(times).write_text, json.dumps(stamps))


def report(
    latencies: list[float], first_deltas: list[float], errors: int, conc: int, elapsed: float
) -> None:
    print(
        json.dumps(
            {
                "requests": len(latencies),
                "rps": len(latencies) / elapsed,
                "errors": errors,
                "latency_ms": percentiles(latencies),
                "first_delta_ms": percentiles(first_deltas),
                "connections": conc,
                "duration_s": elapsed,
            }
        )
    )


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
    report(latencies, first_deltas, errors, concurrency, elapsed)


if __name__ == "__main__":
    url, body, header, conc, secs = sys.argv[1:6]
    client = sys.argv[6] if len(sys.argv) > 6 else "raw"
    run = {"raw": main_raw, "aiohttp": main}[client]
    asyncio.run(run(url, body, header, int(conc), float(secs)))
