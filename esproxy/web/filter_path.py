"""Elasticsearch's `?filter_path=`: keep (or, with `-`, drop) the fields a list of paths names.

Paths are dot-separated field names, comma-separated in one parameter; `*` inside a name matches
any run of characters, and a `**` segment any number of levels. Arrays are transparent: a path
goes through them to every element. When both kinds are given, exclusions apply first, then
inclusions, as ES documents. An object or array that a path goes into and leaves empty is
dropped; the top level stays an object. tests/api/test_rendering.py checks all this against the
real node's own filter_path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

Path = tuple[str, ...]
_MISSING = object()


def parse_filter_paths(values: Iterable[str]) -> tuple[list[Path], list[Path]]:
    """(inclusions, exclusions) from every `filter_path` value, each a comma-separated list."""
    included: list[Path] = []
    excluded: list[Path] = []
    for value in values:
        for raw in value.split(","):
            text = raw.strip()
            exclude = text.startswith("-")
            text = text.removeprefix("-").strip()
            if not text:
                continue
            path = tuple(part for part in text.split(".") if part)
            if path:
                (excluded if exclude else included).append(path)
    return included, excluded


def apply_filter_path(body: Any, values: Sequence[str]) -> Any:
    included, excluded = parse_filter_paths(values)
    if excluded:
        body = exclude(body, excluded)
    if included:
        kept = include(body, included)
        body = {} if kept is _MISSING else kept
    return body


def include(value: Any, paths: list[Path]) -> Any:
    """The parts of `value` the paths reach; `_MISSING` when they reach nothing."""
    if isinstance(value, dict):
        kept: dict[Any, Any] = {}
        for key, item in value.items():
            rest = advance(str(key), paths)
            if () in rest:
                kept[key] = item
            elif rest:
                inner = include(item, rest)
                if inner is not _MISSING:
                    kept[key] = inner
        return kept if kept else _MISSING
    if isinstance(value, (list, tuple)):
        items = [include(item, paths) for item in value]
        found = [item for item in items if item is not _MISSING]
        return found if found else _MISSING
    return _MISSING  # a scalar where the paths still want deeper fields


def exclude(value: Any, paths: list[Path]) -> Any:
    """`value` without what the paths reach. An object or array a path goes into is dropped if
    nothing is left of it, even when it was empty to begin with, as ES does."""
    if isinstance(value, dict):
        kept: dict[Any, Any] = {}
        for key, item in value.items():
            rest = advance(str(key), paths)
            if () in rest:
                continue
            if rest:
                item = exclude(item, rest)
                if is_empty(item):
                    continue
            kept[key] = item
        return kept
    if isinstance(value, (list, tuple)):
        items = (exclude(item, paths) for item in value)
        return [item for item in items if not is_empty(item)]
    return value  # scalars, and numeric arrays (vectors): no field names inside


def is_empty(value: Any) -> bool:
    return isinstance(value, (dict, list, tuple)) and not value


def advance(key: str, paths: list[Path]) -> list[Path]:
    """What is left of each path after it matches `key`; `()` means the path ends on `key`."""
    rest: list[Path] = []
    for path in paths:
        rest.extend(after(key, path))
    return rest


def after(key: str, path: Path) -> list[Path]:
    if not path:
        return []
    head, tail = path[0], path[1:]
    if head == "**":
        # `**` takes this level and stays, or takes no level and lets the rest match here.
        found: list[Path] = [path] if tail else [()]
        found.extend(after(key, tail))
        return found
    return [tail] if matches(head, key) else []


def matches(pattern: str, key: str) -> bool:
    if "*" not in pattern:
        return pattern == key
    return wildcard(pattern).fullmatch(key) is not None


@lru_cache(maxsize=256)
def wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)
