"""Per-request deadlines: Elasticsearch's defaults per task type and its way of printing them."""

from __future__ import annotations

from esproxy.inference.models import TaskType

DEFAULT_TIMEOUT_SECONDS = 30.0
# ES 9.5 gives generative tasks longer, since a completion can legitimately take minutes.
DEFAULT_TIMEOUTS = {TaskType.COMPLETION: 120.0, TaskType.CHAT_COMPLETION: 120.0}

_UNITS = (
    (86_400_000_000_000, "d"),
    (3_600_000_000_000, "h"),
    (60_000_000_000, "m"),
    (1_000_000_000, "s"),
    (1_000_000, "ms"),
    (1_000, "micros"),
)


def default_timeout(task_type: TaskType) -> float:
    return DEFAULT_TIMEOUTS.get(task_type, DEFAULT_TIMEOUT_SECONDS)


def render_time_value(seconds: float) -> str:
    """Print a duration as ES's `TimeValue.toString()` does: largest unit, one truncated decimal."""
    nanos = round(seconds * 1_000_000_000)
    value, suffix = float(nanos), "nanos"
    for unit, unit_suffix in _UNITS:
        if abs(nanos) >= unit:
            value, suffix = nanos / unit, unit_suffix
            break
    whole, _, fraction = repr(value).partition(".")
    if not fraction or fraction[0] == "0":
        return f"{whole}{suffix}"
    return f"{whole}.{fraction[0]}{suffix}"
