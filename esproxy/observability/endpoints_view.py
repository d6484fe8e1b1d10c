"""`GET /_esproxy/endpoints`: a `_cat`-style table of the stored endpoints and how they fare.

`?v` adds the header row, `?format=json` answers the same rows as JSON objects (values as strings,
as `_cat` gives them). Requests, throttles and percentiles cover the last five minutes of this
instance; tokens are this instance's totals since it started.
"""

from __future__ import annotations

from aiohttp import web

from esproxy.app_keys import INFERENCE_SERVICE
from esproxy.observability.metrics import Metrics
from esproxy.observability.web import METRICS_KEY, require_details_access
from esproxy.web.responses import json_response

COLUMNS = (
    "id",
    "task_type",
    "model",
    "rate_per_min",
    "requests_5m",
    "throttles_5m",
    "p50_ms",
    "p99_ms",
    "input_tokens",
    "output_tokens",
)
NUMERIC = frozenset(COLUMNS[3:])


async def list_endpoints(request: web.Request) -> web.Response:
    await require_details_access(request)
    service = request.app[INFERENCE_SERVICE]
    metrics = request.app.get(METRICS_KEY)
    configs = await service.get_endpoints(None, None)
    if metrics is not None:
        metrics.settle()  # the answers booked a moment late count as the scrape's do
    rows = [
        endpoint_row(
            config.inference_id,
            str(config.task_type),
            str(config.service_settings.get("model", "")),
            service.effective_rate(config),
            metrics,
        )
        for config in sorted(configs, key=lambda c: c.inference_id)
    ]
    if request.query.get("format") == "json":
        return json_response(rows, pretty="pretty" in request.query)
    return web.Response(
        text=render_table(rows, header="v" in request.query),
        headers={"Content-Type": "text/plain; charset=UTF-8"},
    )


def endpoint_row(
    inference_id: str, task_type: str, model: str, rate: int, metrics: Metrics | None
) -> dict[str, str]:
    series = None if metrics is None else metrics.known(inference_id)
    requests = throttles = input_tokens = output_tokens = 0
    p50 = p99 = None
    if series is not None:
        requests, throttles, p50, p99 = series.recent.summary()
        input_tokens, output_tokens = series.input_total, series.output_total
    return {
        "id": inference_id,
        "task_type": task_type,
        "model": model,
        "rate_per_min": str(rate),
        "requests_5m": str(requests),
        "throttles_5m": str(throttles),
        "p50_ms": milliseconds(p50),
        "p99_ms": milliseconds(p99),
        "input_tokens": str(input_tokens),
        "output_tokens": str(output_tokens),
    }


def milliseconds(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def render_table(rows: list[dict[str, str]], *, header: bool) -> str:
    """Columns padded to their widest cell, numbers right-aligned, as `_cat` lays them out."""
    titles = dict(zip(COLUMNS, COLUMNS, strict=True))
    shown = [titles, *rows] if header else rows
    widths = {c: max((len(line[c]) for line in shown), default=0) for c in COLUMNS}
    out = []
    for line in shown:
        numbers = line is not titles
        cells = [
            line[c].rjust(widths[c]) if numbers and c in NUMERIC else line[c].ljust(widths[c])
            for c in COLUMNS
        ]
        out.append(" ".join(cells).rstrip() + "\n")
    return "".join(out)
