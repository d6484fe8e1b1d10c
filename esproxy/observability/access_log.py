"""The access log: one line per request, as text or JSON, written off the event loop.

A line holds what an operator needs to follow a request (method, path without its query, status,
duration, bytes, the endpoint, the caller's X-Opaque-Id and traceparent, Bedrock's request ids,
retries and the rate-limit wait) and nothing that could hold a secret: no query string, no body, no
header other than those two ids.

Lines are gathered on the event loop and handed in batches to one writer thread, so a slow disk or
a full pipe never stalls requests; a line costs one `orjson.dumps` and a list append.
"""

from __future__ import annotations

import asyncio
import queue
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, Final

import orjson

FLUSH_SECONDS: Final = 0.05
MAX_PENDING: Final = 1024  # lines gathered before a batch is handed over without waiting
MAX_ID_CHARS: Final = 256  # longer X-Opaque-Id / traceparent values are cut


class LineWriter:
    """Batches of bytes written by a daemon thread to a binary stream, in order."""

    def __init__(self, stream: BinaryIO, *, owned: bool = False) -> None:
        self._stream = stream
        self._owned = owned
        self._pending: list[bytes] = []
        self._timer: asyncio.TimerHandle | None = None
        self._batches: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="esproxy-access-log", daemon=True)
        self._thread.start()

    def write(self, line: bytes) -> None:
        pending = self._pending
        pending.append(line)
        if len(pending) >= MAX_PENDING:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending:
            self._batches.put(b"".join(self._pending))
            self._pending.clear()

    def _run(self) -> None:
        while (batch := self._batches.get()) is not None:
            try:
                self._stream.write(batch)
                self._stream.flush()
            except (OSError, ValueError):
                pass  # a closed or broken log must not take requests down with it

    async def close(self) -> None:
        self.flush()
        self._batches.put(None)
        await asyncio.to_thread(self._thread.join)
        if self._owned:
            self._stream.close()


def open_writer(destination: str) -> LineWriter:
    """`-` is standard output; anything else a file appended to."""
    if destination == "-":
        return LineWriter(sys.stdout.buffer)
    path = Path(destination)
    return LineWriter(path.open("ab"), owned=True)


class AccessLog:
    def __init__(self, writer: LineWriter, *, json_lines: bool) -> None:
        self.writer = writer
        self.json_lines = json_lines
        self._second = -1
        self._stamp = ""

    def timestamp(self, now: float) -> str:
        """ISO 8601 UTC with milliseconds; the seconds part is formatted once per second."""
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int((now - second) * 1000):03d}Z"

    def write(
        self,
        *,
        method: str,
        path: str,
        status: int,
        seconds: float,
        bytes_in: int,
        bytes_out: int,
        opaque_id: str | None,
        traceparent: str | None,
        inference_id: str | None = None,
        bedrock_request_ids: Sequence[str] = (),
        retries: int = 0,
        rate_limit_wait: float = 0.0,
        forwarded: bool = False,
    ) -> None:
        if opaque_id is not None and len(opaque_id) > MAX_ID_CHARS:
            opaque_id = opaque_id[:MAX_ID_CHARS]
        if traceparent is not None and len(traceparent) > MAX_ID_CHARS:
            traceparent = traceparent[:MAX_ID_CHARS]
        fields = {
            "time": self.timestamp(time.time()),
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "bytes_in": bytes_in,
            "bytes_out": bytes_out,
            "forwarded": forwarded,
            "inference_id": inference_id,
            "x_opaque_id": opaque_id,
            "traceparent": traceparent,
            "bedrock_request_ids": list(bedrock_request_ids),
            "retries": retries,
            "rate_limit_wait_ms": round(rate_limit_wait * 1000, 3),
        }
        if self.json_lines:
            self.writer.write(orjson.dumps(fields) + b"\n")
        else:
            self.writer.write(text_line(fields))


def text_line(fields: dict[str, object]) -> bytes:
    """`time method path status duration in/out` then the set ids as key=value; values a client
    chose are JSON-quoted, so no value can forge a line or a field."""
    head = (
        f"{fields['time']} {fields['method']} {orjson.dumps(fields['path']).decode()} "
        f"{fields['status']} {fields['duration_ms']}ms in={fields['bytes_in']} "
        f"out={fields['bytes_out']}"
    )
    parts = [head]
    if fields["forwarded"]:
        parts.append("forwarded")
    for key in ("inference_id", "x_opaque_id", "traceparent"):
        value = fields[key]
        if value is not None:
            parts.append(f"{key}={orjson.dumps(value).decode()}")
    ids = fields["bedrock_request_ids"]
    if ids:
        parts.append(f"bedrock_request_ids={','.join(ids)}")  # type: ignore[arg-type]
    if fields["retries"]:
        parts.append(f"retries={fields['retries']}")
    if fields["rate_limit_wait_ms"]:
        parts.append(f"rate_limit_wait_ms={fields['rate_limit_wait_ms']}")
    return (" ".join(parts) + "\n").encode()
