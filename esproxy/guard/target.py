"""Step 1: the request target split and decoded exactly as Elasticsearch's RestUtils does it.

Query parameters end at the first `#` anywhere in the target, are separated by `&` or `;`, and
decode `+` as a space; path segments do not. `%%` decodes to `%`. A malformed escape makes the
cluster answer 400, and the guard refuses it first rather than guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class Unsure(Exception):
    """The guard cannot tell what the cluster will make of a request, so it refuses it."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


@dataclass(frozen=True)
class Target:
    segments: tuple[str, ...]  # decoded, empty ones dropped
    params: dict[str, list[str]]  # every value of every parameter, in order


# Printable ASCII only: aiohttp refuses anything else, and a splice must not pass it on either.
_PLAIN = re.compile(r"[\x21-\x7e]*")
_ESCAPE = re.compile(r"%(%|[0-9A-Fa-f]{2})")


def parse_target(target: str) -> Target:
    if _PLAIN.fullmatch(target) is None:
        raise Unsure("the request target holds bytes outside printable ASCII")
    if target[:1] != "/" or target[:2] == "//":
        # `//name/...` is read as an authority by the cluster, and absolute forms differ by node.
        raise Unsure("the request target does not start with a single `/`")
    path, _, query = target.partition("?")
    if "#" in path:
        raise Unsure("the path holds a `#`, which clients never send and servers read apart")
    query = query.partition("#")[0]
    segments = tuple(decode(part, False) for part in path.split("/") if part)
    if "." in segments or ".." in segments:
        raise Unsure("the path has a `.` or `..` segment, which some servers resolve and some not")
    return Target(segments, parse_query(query))


def parse_query(query: str) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for pair in re.split("[&;]", query):
        if not pair:
            continue
        raw_name, _, raw_value = pair.partition("=")
        if not raw_name:
            raw_name, raw_value = raw_value, ""  # `=x` has no name: ES reads `x` as a name
        params.setdefault(decode(raw_name, True), []).append(decode(raw_value, True))
    return params


def decode(component: str, plus_as_space: bool) -> str:
    if plus_as_space:
        component = component.replace("+", " ")
    if "%" not in component:
        return component
    spans = _ESCAPE.split(component)
    if any("%" in literal for literal in spans[::2]):
        raise Unsure(f"[{component}] holds a malformed percent-escape")
    out = bytearray()
    for i, part in enumerate(spans):
        if i % 2 == 0:
            out += part.encode("ascii")
        else:
            out.append(0x25 if part == "%" else int(part, 16))
    return out.decode("utf-8", "replace")
