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
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO, Final

import orjson

# Lines are handed to the writer thread in batches: each hand-over wakes the thread, and the
# thread competes with the event loop for the GIL, so fewer, larger batches cost less. But a batch
# is rendered on the loop, ~1 µs a line, and nothing else runs meanwhile: 4096 lines stalled every
# exchange in flight for ~4 ms, five times a second at 20k lines/s, which was the forwarding p99.
FLUSH_SECONDS: Final = 0.2
MAX_PENDING: Final = 256  # lines gathered before a batch is handed over without waiting
MAX_ID_CHARS: Final = 256  # longer X-Opaque-Id / traceparent values are cut
PATHS_KEPT: Final = 1024
# Bytes a JSON string cannot hold as they are (and non-ASCII, which a head carries as latin-1).
_NEEDS_ESCAPE = re.compile(rb'[\x00-\x1f"\\\x7f-\xff]')
_OPAQUE_ID = b"\r\nx-opaque-id:"
_TRACEPARENT = b"\r\ntraceparent:"


# A forwarded exchange waiting to become a line: (time, method, path, status, seconds, bytes in,
# bytes out, header lines). The splicer only appends one of these; lines are made per batch.
Entry = tuple[float, bytes, bytes, int, float, int, int, bytes]


class LineWriter:
    """Batches of lines written by a daemon thread to a binary stream, in order.

    Pending items are lines, or entries that `render` turns into lines when the batch is made.
    """

    def __init__(self, stream: BinaryIO, *, owned: bool = False) -> None:
        self._stream = stream
        self._owned = owned
        self._pending: list[bytes | Entry] = []
        self.render: Callable[[list[bytes | Entry]], bytes] = join_lines
        self._timer: asyncio.TimerHandle | None = None
        self._batches: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="esproxy-access-log", daemon=True)
        self._thread.start()

    def write(self, line: bytes | Entry) -> None:
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
            self._batches.put(self.render(self._pending))
            self._pending.clear()

    def _run(self) -> None:
        try:
            fd = self._stream.fileno()
        except (OSError, ValueError):
            fd = -1
        while (batch := self._batches.get()) is not None:
            try:
                if fd < 0:
                    self._stream.write(batch)
                    self._stream.flush()
                    continue
                view = memoryview(batch)
                while view:  # straight to the descriptor: no buffer copy, no flush call
                    view = view[os.write(fd, view) :]
            except (OSError, ValueError):
                pass  # a closed or broken log must not take requests down with it

    async def close(self) -> None:
        self.flush()
        self._batches.put(None)
        await asyncio.to_thread(self._thread.join)
        if self._owned:
            self._stream.close()


def join_lines(items: list[bytes | Entry]) -> bytes:
    return b"".join(item for item in items if isinstance(item, bytes))


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
        self._millis = -1
        self._stamp_bytes = b""
        self._paths: dict[bytes, bytes] = {}  # forwarded paths repeat: each is quoted once
        writer.render = self.render

    def forwarded(
        self,
        method: bytes,
        path: bytes,
        status: int,
        seconds: float,
        bytes_in: int,
        bytes_out: int,
        headers: bytes,
    ) -> None:
        """A spliced exchange, from the bytes of its head (`headers`: its CRLF-led header lines).

        The splicer's hot path: it only records the values; `render` makes the lines per batch.
        """
        self.writer.write(
            (time.time(), method, path, status, seconds, bytes_in, bytes_out, headers)
        )

    def render(self, items: list[bytes | Entry]) -> bytes:
        """A batch as bytes: lines as they are, entries formatted in one loop."""
        lines: list[bytes] = []
        add = lines.append
        paths = self._paths
        last_millis, text = -1, b""
        template = FORWARDED_JSON if self.json_lines else FORWARDED_TEXT
        for item in items:
            if isinstance(item, bytes):
                add(item)
                continue
            now, method, path, status, seconds, bytes_in, bytes_out, headers = item
            # One lowering and two finds: cheaper than any case-insensitive pre-check.
            lower = headers.lower()
            opaque_id = traceparent = b"null"
            if lower.find(_OPAQUE_ID) >= 0:
                opaque_id = header_json(headers, lower, _OPAQUE_ID)
            if lower.find(_TRACEPARENT) >= 0:
                traceparent = header_json(headers, lower, _TRACEPARENT)
            quoted = paths.get(path)
            if quoted is None:
                quoted = quote_path(path)
                if len(paths) >= PATHS_KEPT:
                    paths.clear()
                paths[path] = quoted
            if int(now * 1000) != last_millis:  # one time text per millisecond
                last_millis, text = int(now * 1000), self.stamp(now)
            millis, micros = divmod(int(seconds * 1_000_000), 1000)
            if self.json_lines:
                values = (
                    text,
                    method,
                    quoted,
                    status,
                    millis,
                    micros,
                    bytes_in,
                    bytes_out,
                    opaque_id,
                    traceparent,
                )
            else:
                values = (
                    text,
                    method,
                    quoted,
                    status,
                    millis,
                    micros,
                    bytes_in,
                    bytes_out,
                    b"" if opaque_id == b"null" else b" x_opaque_id=" + opaque_id,
                    b"" if traceparent == b"null" else b" traceparent=" + traceparent,
                )
            add(template % values)
        return b"".join(lines)

    def stamp(self, now: float) -> bytes:
        """`timestamp` as bytes, made once per millisecond."""
        millis = int(now * 1000)
        if millis != self._millis:
            self._millis = millis
            self._stamp_bytes = self.timestamp(now).encode()
        return self._stamp_bytes

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


FORWARDED_JSON: Final = (
    b'{"time":"%s","method":"%s","path":%s,"status":%d,"duration_ms":%d.%03d,'
    b'"bytes_in":%d,"bytes_out":%d,"forwarded":true,"inference_id":null,'
    b'"x_opaque_id":%s,"traceparent":%s,"bedrock_request_ids":[],"retries":0,'
    b'"rate_limit_wait_ms":0.0}\n'
)
FORWARDED_TEXT: Final = b"%s %s %s %d %d.%03dms in=%d out=%d forwarded%s%s\n"


def quote_path(path: bytes) -> bytes:
    """A request path as a JSON string (heads carry bytes; anything past ASCII is latin-1)."""
    if _NEEDS_ESCAPE.search(path) is None:
        return b'"%s"' % path
    return orjson.dumps(path.decode("latin-1"))


def header_json(headers: bytes, lower: bytes, name: bytes) -> bytes:
    """A header's first value as a JSON string (cut to MAX_ID_CHARS), or `null`."""
    at = lower.find(name)
    if at < 0:
        return b"null"
    start = at + len(name)
    end = headers.find(b"\r\n", start)
    value = headers[start : end if end >= 0 else len(headers)].strip(b" \t")
    return orjson.dumps(value[:MAX_ID_CHARS].decode("latin-1"))


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
