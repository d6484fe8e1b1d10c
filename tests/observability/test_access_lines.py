"""Access lines of forwarded exchanges, made a batch at a time: each line says exactly what a line
made on its own would say (fields, their order, the time to the millisecond, the ids of its own
head only), and esproxy's own lines keep their place among them."""

from __future__ import annotations

import asyncio
import calendar
import io
import json
import time
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from esproxy.observability.access_log import AccessLog, LineWriter
from esproxy.observability.metrics import Metrics

# 2026-12-06T12:00:00Z
NOON = calendar.timegm((2026, 12, 6, 12, 0, 0))
FIELDS = [
    "time",
    "method",
    "path",
    "status",
    "duration_ms",
    "bytes_in",
    "bytes_out",
    "forwarded",
    "inference_id",
    "x_opaque_id",
    "traceparent",
    "bedrock_request_ids",
    "retries",
    "rate_limit_wait_ms",
]
TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
HEADS = [
    b"\r\nContent-Type: application/json",
    b"\r\nX-Opaque-ID: job-7\r\nAccept: */*",
    b"",
    b"\r\ntraceparent: " + TRACE.encode() + b'\r\nx-opaque-id:  "quoted"\\ ',
    b"\r\nX-Opaque-Id: " + b"a" * 300,
    b"\r\nX-Not-Opaque-Id: no\r\nmy-traceparent: no",
]


# Entries carry perf_counter() readings; the log turns them into wall-clock times with this offset.
PERF_AT_NOON = 5000.0


def entry(i: int, head: bytes, path: bytes = b"/logs/_search") -> tuple[Any, ...]:
    # The time: 999 ms into a second then 1 ms into the next, so that both parts move.
    ended = PERF_AT_NOON + 0.9995 + i * 0.001
    started = ended - (0.0012344 + i * 0.001)
    return (ended, started, b"POST", path, 200 + i, 50 + i, 900 + i, head)


async def lines_of(tmp_path: Path, json_lines: bool, *entries: tuple[Any, ...] | str) -> list[str]:
    """The lines an AccessLog writes for `entries` (a str stands for one of esproxy's own)."""
    path = tmp_path / "access.log"
    access = AccessLog(LineWriter(path.open("ab"), owned=True), json_lines=json_lines)
    access.wall_offset = lambda: NOON - PERF_AT_NOON
    for item in entries:
        if isinstance(item, str):
            access.write(
                method="GET",
                path=item,
                status=200,
                seconds=0.5,
                bytes_in=0,
                bytes_out=2,
                opaque_id=None,
                traceparent=None,
            )
        else:
            access.forwarded(item)  # type: ignore[arg-type]
    await access.close()
    return path.read_text("utf-8").splitlines()


async def test_forwarded_json_lines_hold_each_exchange_and_only_its_own_ids(
    tmp_path: Path,
) -> None:
    lines = await lines_of(tmp_path, True, *(entry(i, head) for i, head in enumerate(HEADS)))
    parsed = [json.loads(line) for line in lines]
    assert all(list(line) == FIELDS for line in parsed)
    ids = [(line["x_opaque_id"], line["traceparent"]) for line in parsed]
    assert ids == [
        (None, None),
        ("job-7", None),
        (None, None),
        ('"quoted"\\', TRACE),
        ("a" * 256, None),
        (None, None),
    ]
    assert parsed[0] == {
        "time": "2026-12-06T12:00:00.999Z",
        "method": "POST",
        "path": "/logs/_search",
        "status": 200,
        "duration_ms": 1.234,
        "bytes_in": 50,
        "bytes_out": 900,
        "forwarded": True,
        "inference_id": None,
        "x_opaque_id": None,
        "traceparent": None,
        "bedrock_request_ids": [],
        "retries": 0,
        "rate_limit_wait_ms": 0.0,
    }
    assert [line["time"] for line in parsed[1:3]] == [
        "2026-12-06T12:00:01.000Z",
        "2026-12-06T12:00:01.001Z",
    ]
    assert [(line["status"], line["duration_ms"], line["bytes_out"]) for line in parsed[1:3]] == [
        (201, 2.234, 901),
        (202, 3.234, 902),
    ]


async def test_paths_that_json_must_escape_come_back_as_sent(tmp_path: Path) -> None:
    odd = [b'/a"b\\c', b"/caf\xe9", b"/tab\there", b"/a\x7f"]
    lines = await lines_of(tmp_path, True, *(entry(0, b"", path) for path in odd))
    assert [json.loads(line)["path"] for line in lines] == [p.decode("latin-1") for p in odd]


async def test_own_lines_keep_their_place_among_forwarded_ones(tmp_path: Path) -> None:
    lines = await lines_of(
        tmp_path,
        True,
        "/_inference/a",
        entry(0, b""),
        entry(1, b""),
        "/_inference/b",
        entry(2, b""),
    )
    parsed = [json.loads(line) for line in lines]
    assert [(line["path"], line["forwarded"]) for line in parsed] == [
        ("/_inference/a", False),
        ("/logs/_search", True),
        ("/logs/_search", True),
        ("/_inference/b", False),
        ("/logs/_search", True),
    ]


async def test_forwarded_text_lines(tmp_path: Path) -> None:
    lines = await lines_of(tmp_path, False, *(entry(i, head) for i, head in enumerate(HEADS[:4])))
    assert lines == [
        '2026-12-06T12:00:00.999Z POST "/logs/_search" 200 1.234ms in=50 out=900 forwarded',
        '2026-12-06T12:00:01.000Z POST "/logs/_search" 201 2.234ms in=51 out=901 forwarded'
        ' x_opaque_id="job-7"',
        '2026-12-06T12:00:01.001Z POST "/logs/_search" 202 3.234ms in=52 out=902 forwarded',
        '2026-12-06T12:00:01.002Z POST "/logs/_search" 203 4.234ms in=53 out=903 forwarded'
        f' x_opaque_id="\\"quoted\\"\\\\" traceparent="{TRACE}"',
    ]


async def test_forwarded_exchanges_are_counted_once_by_batch_and_before_a_scrape(
    tmp_path: Path,
) -> None:
    # The splicer reports a forwarded exchange to the access log only; the log counts it for the
    # metrics when it makes the batch's lines, or earlier when a scrape asks.
    metrics = Metrics(process=False)
    series = metrics.forward
    access = AccessLog(LineWriter((tmp_path / "a.log").open("ab"), owned=True), json_lines=True)
    access.counts = series
    series.catch_up = access.count_pending
    statuses = [200, 201, 404, 503, 302, 101, 600]
    for i, status in enumerate(statuses):
        access.forwarded((10.5, 10.0, b"GET", b"/", status, 10 + i, 100 + i, b""))  # type: ignore[arg-type]
        if i == 3:
            metrics.refresh()  # a scrape in the middle of a batch
            assert series.by_class == [0, 2, 0, 1, 1]
    access.make()
    metrics.refresh()
    assert series.by_class == [1, 2, 1, 1, 2]  # 600: counted as 5xx, as one at a time does
    assert series.bytes_in == sum(10 + i for i in range(len(statuses)))
    assert series.bytes_out == sum(100 + i for i in range(len(statuses)))
    access.forwarded((10.5, 10.0, b"GET", b"/", 200, 1, 2, b""))  # type: ignore[arg-type]
    await access.close()
    assert (series.by_class[1], series.bytes_in, series.bytes_out) == (3, 92, 723)


ENDS = st.floats(min_value=0.0, max_value=1e7, allow_nan=False)
TOOK = st.floats(min_value=0.0, max_value=1e4, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(timing=st.lists(st.tuples(ENDS, TOOK), min_size=1, max_size=20))
def test_batch_times_and_durations_are_what_one_entry_at_a_time_gives(
    timing: list[tuple[float, float]],
) -> None:
    # The batch works out wall-clock times and durations from perf_counter() readings, a column at
    # a time: each must be what `round((end - start) * 1e6)` and `int((end + offset) * 1000)`
    # give for one entry.
    offset = NOON - 2.5e6

    async def render() -> list[str]:
        access = AccessLog(LineWriter(io.BytesIO()), json_lines=False)
        access.wall_offset = lambda: offset
        values: list[object] = []
        for ended, took in timing:
            values.extend((ended, ended - took, b"GET", b"/", 200, 0, 0, b""))
        lines = access.render_entries(values, 0, len(timing)).decode().splitlines()
        await access.close()
        return lines

    lines = asyncio.run(render())
    for line, (ended, took) in zip(lines, timing, strict=True):
        micros = round((ended - (ended - took)) * 1e6)
        millis = int((ended + offset) * 1000.0)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(millis // 1000))
        expected = (
            f'{stamp}.{millis % 1000:03d}Z GET "/" 200 {micros // 1000}.{micros % 1000:03d}ms'
        )
        assert line.startswith(expected + " "), (line, expected)
