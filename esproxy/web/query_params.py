"""Query-string rules for esproxy's own routes: ES rejects parameters a route does not know."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from esproxy.errors import BadRequest
from esproxy.inference import schemas
from esproxy.inference.java_text import lucene_similarity

# Parameters every Elasticsearch REST route accepts.
COMMON = frozenset({"pretty", "human", "error_trace", "filter_path", "format"})


def check_params(request: web.Request, allowed: Iterable[str]) -> None:
    known = COMMON | set(allowed)
    unknown = [name for name in request.query if name not in known]
    if not unknown:
        return
    listed = ", ".join(f"[{name}]{suggest(name, known)}" for name in unknown)
    noun = "parameter" if len(unknown) == 1 else "parameters"
    raise BadRequest(
        f"request [{request.path}] contains unrecognized {noun}: {listed}",
        error_type="illegal_argument_exception",
    )


def suggest(name: str, known: Iterable[str]) -> str:
    """ES's hint: candidates within Lucene's normalized Levenshtein similarity above 0.7."""
    close = sorted(k for k in known if lucene_similarity(name, k) > 0.7)
    if not close:
        return ""
    if len(close) == 1:
        return f" -> did you mean [{close[0]}]?"
    return f" -> did you mean any of {close}?".replace("'", "")


def timeout_param(request: web.Request) -> float | None:
    value = request.query.get("timeout")
    return None if value is None else schemas.parse_time_value("timeout", value)


def bool_param(request: web.Request, name: str) -> bool:
    value = request.query.get(name)
    return False if value is None else schemas.parse_bool_param(name, value)
