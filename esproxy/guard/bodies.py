"""Step 4: the small admin bodies the guard reads, because they name indices or index patterns.

Index templates (`_template`, `_index_template`) whose patterns match a reserved name would shape
a re-created index and could give it an alias; `_aliases` actions and `_reindex` name indices in
their bodies. These bodies are small, so they are read whole up to `MAX_BODY`; anything the guard
cannot read as JSON is refused. Bulk and multi-request bodies are never read: see
docs/security.md for what only the cluster's privileges can stop.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from esproxy.guard.expressions import Reach, glob, resolve
from esproxy.guard.names import ReservedNames
from esproxy.guard.target import Unsure

MAX_BODY = 65536


def check_body(api: str, body: bytes, names: ReservedNames) -> Reach | None:
    if not body.strip():
        return None
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        raise Unsure(f"the [{api}] body is not JSON the guard can read") from None
    if not isinstance(parsed, dict):
        raise Unsure(f"the [{api}] body is not a JSON object")
    if api in ("_template", "_index_template"):
        return check_template(parsed, names)
    if api == "_aliases":
        return check_alias_actions(parsed, names)
    return check_reindex(parsed, names)


def check_template(body: dict[str, Any], names: ReservedNames) -> Reach | None:
    declared = strings(body.get("index_patterns")) + strings(body.get("template"))
    for pattern in (part.strip() for listed in declared for part in listed.split(",")):
        # A global `*` template never applies to a hidden index, which esproxy's are.
        if pattern == "*":
            continue
        reached = names.named_by(glob(pattern), pattern)
        if reached is not None:
            return Reach(reached, f"index_patterns: {pattern}")
    nested = body.get("template")
    for aliases in (
        body.get("aliases"),
        nested.get("aliases") if isinstance(nested, dict) else None,
    ):
        for alias in aliases if isinstance(aliases, dict) else ():
            reach = resolve(alias, names, expand_hidden=True)
            if reach is not None:
                return Reach(reach.index, f"aliases: {alias}", reach.alias)
    return None


def check_alias_actions(body: dict[str, Any], names: ReservedNames) -> Reach | None:
    actions = body.get("actions")
    for action in actions if isinstance(actions, list) else ():
        for options in action.values() if isinstance(action, dict) else ():
            if not isinstance(options, dict):
                continue
            for key in ("index", "indices", "alias", "aliases"):
                for expression in strings(options.get(key)):
                    reach = resolve(expression, names, expand_hidden=True)
                    if reach is not None:
                        return reach
    return None


def check_reindex(body: dict[str, Any], names: ReservedNames) -> Reach | None:
    for part in ("source", "dest"):
        section = body.get(part)
        if not isinstance(section, dict):
            continue
        for expression in strings(section.get("index")):
            reach = resolve(expression, names, expand_hidden=True)
            if reach is not None:
                return reach
    return None


def strings(value: Any) -> list[str]:
    """A name or a list of names as the body gives them; anything else names nothing."""
    return list(_strings(value))


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        yield from (item for item in value if isinstance(item, str))
