"""The access log: one line per request, as text or JSON, written off the event loop.

A line holds what an operator needs to follow a request (method, path without its query, status,
duration, bytes, the endpoint, the caller's X-Opaque-Id and traceparent, Bedrock's request ids,
retries and the rate-limit wait) and nothing that could hold a secret: no query string, no body, no
header other than those two ids.

Lines are gathered on the event loop and handed in batches to one writer thread, so a slow disk or
a full pipe never stalls requests. esproxy's own requests cost one `orjson.dumps` each; forwarded
requests, the hot path, cost one clock read and one list `extend` on the splicer's side: their
lines are made, and their forwarded-request counters counted, a whole batch at a time (see
docs/benchmarks.md, "Observability").
"""

from __future__ import annotations

import asyncio
import os
import queue
import re
import sys
import threading
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from itertools import accumulate, chain, repeat
from operator import add, floordiv, mod, mul, sub
from pathlib import Path
from typing import Any, BinaryIO, Final

import orjson

from esproxy.observability.events import ForwardRecorder

# Lines are handed to the writer thread every FLUSH_SECONDS: each hand-over wakes the thread, which
# competes with the event loop for the GIL, so fewer, larger hand-overs cost less. But lines are
# made on the loop, and nothing else runs meanwhile: a 4096-line batch stalled every exchange in
# flight for ~4 ms (the forwarding p99, see docs/benchmarks.md), so they are made ~BATCH_ENTRIES
# at a time.
FLUSH_SECONDS: Final = 0.2
BATCH_ENTRIES: Final = 256
MIN_TICK_SECONDS: Final = 0.005
MAX_PENDING: Final = 256  # esproxy's own lines gathered before they are made without waiting
MAX_ID_CHARS: Final = 256  # longer X-Opaque-Id / traceparent values are cut
FRAGMENTS_KEPT: Final = 1024
STAMPS_KEPT: Final = 4096
# Bytes a JSON string cannot hold as they are (and non-ASCII, which a head carries as latin-1).
_NEEDS_ESCAPE = re.compile(rb'[\x00-\x1f"\\\x7f-\xff]')
_OPAQUE_ID = b"\r\nx-opaque-id:"
_TRACEPARENT = b"\r\ntraceparent:"
# Either name in any letter case (and a few non-names, which then read as absent): a search of the
# batch's header lines as they are, cheaper than lowering them all first.
_ID_NAME = re.compile(rb"\r\n[xXtT][-rR][oOaA][pPcC][aAeE][qQpP][uUaA][eErR][-eE][iInN][dDtT]:")

# A forwarded exchange, as the splicer hands it over: (perf_counter() at its end, perf_counter() at
# its head, method, path, status, bytes in, bytes out, header lines). Only the end is read on the
# splicer's path; the wall-clock time and the duration are worked out a batch at a time.
# `AccessLog.forwarded` keeps the values in one flat list: each column of a batch is then a slice,
# and no per-request container lives on until the batch (one holding an object the garbage
# collector tracks made it run ~3x as often).
Entry = tuple[float, float, bytes, bytes, int, int, int, bytes]
WIDTH: Final = 8  # values per entry


def wall_offset() -> float:
    """What turns a `perf_counter()` reading into a `time.time()` one, as of now."""
    return time.time() - time.perf_counter()


class LineWriter:
    """Batches of lines written by a daemon thread to a binary stream, in order."""

    def __init__(self, stream: BinaryIO, *, owned: bool = False) -> None:
        self._stream = stream
        self._owned = owned
        self._batches: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="esproxy-access-log", daemon=True)
        self._thread.start()

    def put(self, batch: bytes) -> None:
        self._batches.put(batch)

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
    """Gathers lines and forwarded exchanges on the event loop, makes lines ~BATCH_ENTRIES at a
    time and hands them to the writer every FLUSH_SECONDS (made in a running loop: its timer
    starts at once)."""

    def __init__(self, writer: LineWriter, *, json_lines: bool) -> None:
        self.writer = writer
        self.json_lines = json_lines
        self._second = -1
        self._stamp = ""
        self._values: list[object] = []  # forwarded entries, WIDTH values each
        self._lines: list[tuple[int, bytes]] = []  # esproxy's own lines, each before entry i
        # The splicer's hot path: one C call, no Python frame (see `Entry`).
        self.forwarded: Callable[[Entry], None] = self._values.extend
        # Where the forwarded exchanges are counted (the metrics), a batch at a time: the splicer
        # reports them here only. `_counted` entries of the batch already are.
        self.counts: ForwardRecorder | None = None
        self._counted = 0
        self.wall_offset: Callable[[], float] = wall_offset
        self._stamps = Stamps()
        self._fragments = Fragments(json_lines)
        self._template = FORWARDED_JSON if json_lines else FORWARDED_TEXT
        self._no_ids = self._fragments.ids(b"null", b"null")
        self._made: list[bytes] = []  # lines made, not yet handed to the writer
        self._loop = asyncio.get_running_loop()
        self._hand_over_at = self._loop.time() + FLUSH_SECONDS
        self._interval = MIN_TICK_SECONDS  # grows to FLUSH_SECONDS while nothing comes
        self._timer: asyncio.TimerHandle | None = None
        self._tick()

    def _tick(self) -> None:
        """Make lines from what has gathered, the next tick timed for ~BATCH_ENTRIES (the
        splicer's path has no room for a count check); hand them over every FLUSH_SECONDS. An idle
        esproxy ticks 5 times a second."""
        count = len(self._values) // WIDTH
        self.make()
        now = self._loop.time()
        if now >= self._hand_over_at - MIN_TICK_SECONDS:  # slack: uvloop's clock is in ms
            self.hand_over()
            self._hand_over_at = now + FLUSH_SECONDS
        wanted = self._interval * BATCH_ENTRIES / count if count else FLUSH_SECONDS
        self._interval = min(FLUSH_SECONDS, max(MIN_TICK_SECONDS, wanted))
        self._timer = self._loop.call_later(self._interval, self._tick)

    def make(self) -> None:
        values, lines = self._values, self._lines
        if values or lines:
            self.count_pending()
            self._made.append(self.render(values, lines))
            values.clear()  # in place: the splicer holds its `extend`
            lines.clear()
            self._counted = 0

    def count_pending(self) -> None:
        """Report the exchanges gathered and not yet counted to `counts` (before a scrape, too)."""
        values, first = self._values, self._counted
        end = len(values) // WIDTH
        if end > first and self.counts is not None:
            start = first * WIDTH
            self.counts.forwarded_batch(
                values[start + 4 : end * WIDTH : WIDTH],  # type: ignore[arg-type]
                values[start + 5 : end * WIDTH : WIDTH],  # type: ignore[arg-type]
                values[start + 6 : end * WIDTH : WIDTH],  # type: ignore[arg-type]
            )
        self._counted = end

    def hand_over(self) -> None:
        if self._made:
            self.writer.put(b"".join(self._made))
            self._made.clear()

    def flush(self) -> None:
        self.make()
        self.hand_over()

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.flush()
        await self.writer.close()

    def render(self, values: list[object], lines: list[tuple[int, bytes]]) -> bytes:
        """A batch as bytes: esproxy's own lines in place among the forwarded entries."""
        parts: list[bytes] = []
        done = 0
        for index, line in lines:
            if index > done:
                parts.append(self.render_entries(values, done, index))
                done = index
            parts.append(line)
        count = len(values) // WIDTH
        if count > done:
            parts.append(self.render_entries(values, done, count))
        return b"".join(parts)

    def render_entries(self, values: list[object], first: int, end: int) -> bytes:
        """Entries first..end-1 as lines, all at once: each column is a slice of the flat list and
        goes through C-level maps (the same float operations as one entry at a time); the lines
        are one `%` of the template repeated."""
        if len(self._stamps) > STAMPS_KEPT:
            self._stamps.clear()
        if len(self._fragments) > FRAGMENTS_KEPT:
            self._fragments.clear()

        def column(k: int) -> list[Any]:
            return values[first * WIDTH + k : end * WIDTH : WIDTH]

        count = end - first
        ended = column(0)
        micros = list(map(round, map(mul, map(sub, ended, column(1)), repeat(1e6))))
        millis = map(int, map(mul, map(add, ended, repeat(self.wall_offset())), repeat(1000.0)))
        rows = zip(
            map(self._stamps.__getitem__, millis),
            map(self._fragments.__getitem__, zip(column(2), column(3), column(4), strict=True)),
            map(floordiv, micros, repeat(1000)),
            map(mod, micros, repeat(1000)),
            column(5),
            column(6),
            self.ids(column(7)),
            strict=True,
        )
        return (self._template * count) % tuple(chain.from_iterable(rows))

    def ids(self, heads: list[bytes]) -> Iterable[bytes]:
        """The id part of each line. One search over the whole batch's header lines; only the
        heads that may hold an id are read one by one."""
        at = [found.start() for found in _ID_NAME.finditer(b"\n".join(heads))]
        if not at:
            return repeat(self._no_ids, len(heads))
        ids = [self._no_ids] * len(heads)
        ends = list(accumulate(len(head) + 1 for head in heads))  # +1: the joining newline
        for index in {bisect_right(ends, i) for i in at}:
            head = heads[index]
            lowered = head.lower()
            ids[index] = self._fragments.ids(
                header_json(head, lowered, _OPAQUE_ID), header_json(head, lowered, _TRACEPARENT)
            )
        return ids

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
        ended: float | None = None,
    ) -> None:
        """One line of esproxy's own; `ended` is when the answer ended (now if not given)."""
        if opaque_id is not None and len(opaque_id) > MAX_ID_CHARS:
            opaque_id = opaque_id[:MAX_ID_CHARS]
        if traceparent is not None and len(traceparent) > MAX_ID_CHARS:
            traceparent = traceparent[:MAX_ID_CHARS]
        fields = {
            "time": self.timestamp(time.time() if ended is None else ended),
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
        line = orjson.dumps(fields) + b"\n" if self.json_lines else text_line(fields)
        lines = self._lines
        lines.append((len(self._values) // WIDTH, line))
        if len(lines) >= MAX_PENDING:
            self.make()


# A forwarded line: time, then the fragment of its (method, path, status), the duration in
# milliseconds with 3 decimals, bytes in and out, then the ids part (see `Fragments`).
FORWARDED_JSON: Final = b'{"time":"%s%s%d.%03d,"bytes_in":%d,"bytes_out":%d%s'
FORWARDED_TEXT: Final = b"%s%s%d.%03dms in=%d out=%d forwarded%s"


class Stamps(dict[int, bytes]):
    """Milliseconds since the epoch -> ISO 8601 UTC text; the seconds part made once per second."""

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._prefix = b""

    def __missing__(self, millis: int) -> bytes:
        second, part = divmod(millis, 1000)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)).encode()
        stamp = b"%s.%03dZ" % (self._prefix, part)
        self[millis] = stamp
        return stamp


class Fragments(dict[tuple[bytes, bytes, int], bytes]):
    """(method, path, status) -> the line's text between the time and the duration, quoted once:
    forwarded requests repeat a few combinations."""

    def __init__(self, json_lines: bool) -> None:
        super().__init__()
        self.json_lines = json_lines

    def __missing__(self, key: tuple[bytes, bytes, int]) -> bytes:
        method, path, status = key
        if self.json_lines:
            fragment = b'","method":"%s","path":%s,"status":%d,"duration_ms":' % (
                method,
                quote_path(path),
                status,
            )
        else:
            fragment = b" %s %s %d " % (method, quote_path(path), status)
        self[key] = fragment
        return fragment

    def ids(self, opaque_id: bytes, traceparent: bytes) -> bytes:
        """The end of a line from its two ids (JSON strings, or `null`)."""
        if self.json_lines:
            return (
                b',"forwarded":true,"inference_id":null,"x_opaque_id":%s,"traceparent":%s,'
                b'"bedrock_request_ids":[],"retries":0,"rate_limit_wait_ms":0.0}\n'
                % (opaque_id, traceparent)
            )
        return b"%s%s\n" % (
            b"" if opaque_id == b"null" else b" x_opaque_id=" + opaque_id,
            b"" if traceparent == b"null" else b" traceparent=" + traceparent,
        )


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
