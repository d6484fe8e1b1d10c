"""Step 3: one index expression resolved against esproxy's reserved names, as ES resolves it.

What the cluster does, and what the guard does with it:
- `a,b`: each part on its own; an empty part (`,`, `_all,`, `%2C`) is unsure, since some APIs
  read an empty list as every index.
- `-name` after a wildcard excludes; it never adds an index, so it is skipped (the guard never
  subtracts).
- `remote:name` and `name::selector`: the name is what counts (a remote may be this cluster).
- `_all` and `*` patterns take hidden indices and aliases only with `expand_wildcards` `all` or
  `hidden`, or when the pattern and the name both start with a dot.
- `<static{date math}>` writes a concrete name whose every character the format may choose, so
  each `{...}` is any text and the result is matched without regard to hidden.
- Anything else is a name, reserved if it is one of the reserved names, starts with the reserved
  prefix, or is an alias of (or an index behind) one of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from esproxy.guard.names import ReservedNames
from esproxy.guard.target import Unsure


@dataclass(frozen=True)
class Reach:
    index: str  # the reserved index (or name) reached
    expression: str  # the part of the expression that reaches it
    alias: str | None = None


def resolve(expression: str, names: ReservedNames, expand_hidden: bool) -> Reach | None:
    """The first reserved index a comma-separated expression can reach, or None."""
    parts = expression.split(",")
    if any(not part.strip() for part in parts):
        raise Unsure(f"the index expression [{expression}] is empty or has an empty part")
    for part in parts:
        reach = resolve_one(part, names, expand_hidden)
        if reach is not None:
            return reach
    return None


def resolve_one(expression: str, names: ReservedNames, expand_hidden: bool) -> Reach | None:
    name = expression.strip().partition("::")[0]
    if name.startswith("-"):
        return None
    name = name.rpartition(":")[2]
    if name.startswith("<") and name.endswith(">"):
        return date_math(expression, name[1:-1], names)
    if name == "_all" or "*" in name:
        return wildcard(expression, "*" if name == "_all" else name, names, expand_hidden)
    if name in names.aliases:
        return Reach(names.aliases[name].index, expression, name)
    if names.is_reserved(name):
        return Reach(name, expression)
    return None


def wildcard(
    expression: str, pattern: str, names: ReservedNames, expand_hidden: bool
) -> Reach | None:
    matcher = glob(pattern)
    for index, hidden in names.indices.items():
        if matcher.fullmatch(index) and shown(pattern, index, hidden, expand_hidden):
            return Reach(index, expression)
    for alias, known in names.aliases.items():
        if matcher.fullmatch(alias) and shown(pattern, alias, known.hidden, expand_hidden):
            return Reach(known.index, expression, alias)
    return None


def shown(pattern: str, name: str, hidden: bool, expand_hidden: bool) -> bool:
    """Whether a wildcard takes in a matching index or alias.

    A visible alias is taken by any wildcard: OpenSearch then leaves out its hidden indices, but
    whether every Elasticsearch version does is not settled, so the guard assumes the worse.
    """
    return not hidden or expand_hidden or (pattern.startswith(".") and name.startswith("."))


def date_math(expression: str, inner: str, names: ReservedNames) -> Reach | None:
    """`<static{math{format}}>`: each braced part may write any text, a leading dot included."""
    start, end = inner.find("{"), inner.rfind("}")
    if "\\" in inner or (start < 0) != (end < 0) or end < start:
        raise Unsure(f"the date math [{expression}] cannot be read with certainty")
    pattern = inner if start < 0 else inner[:start] + "*" + inner[end + 1 :]
    if "{" in pattern or "}" in pattern:
        raise Unsure(f"the date math [{expression}] cannot be read with certainty")
    reached = names.named_by(glob(pattern), pattern)
    return None if reached is None else Reach(reached, expression)


@lru_cache(maxsize=1024)
def glob(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)
