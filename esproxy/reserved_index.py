"""ReservedIndex: which forwarded requests would reach esproxy's own index, read from the URL alone.

Index names in request bodies (`_bulk`, `_mget`, `_msearch`, `_reindex`, `_aliases`, ES|QL, ...)
are not seen: forwarding never buffers bodies. The cluster's own privileges are the real fence.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote, unquote

import aiohttp
from multidict import CIMultiDict, MultiMapping

from esproxy.errors import UpstreamUnavailable
from esproxy.upstream import UpstreamForwarder

log = logging.getLogger(__name__)

# APIs that act on every index when the path names none, as if it named `_all`.
ALL_WHEN_UNNAMED = frozenset(
    {
        "_search", "_msearch", "_count", "_field_caps", "_validate", "_mapping", "_mappings",
        "_settings", "_stats", "_segments", "_refresh", "_flush", "_forcemerge", "_cache",
        "_recovery", "_shard_stores", "_search_shards", "_open", "_close", "_upgrade",
        "_rank_eval", "_knn_search", "_async_search", "_disk_usage", "_alias", "_aliases",
    }
)  # fmt: skip
# `_cat` APIs that take an index expression as their third path segment.
CAT_INDEXED = frozenset({"indices", "shards", "segments", "count", "recovery", "aliases"})
HIDDEN_EXPANSIONS = frozenset({"all", "hidden"})


@dataclass(frozen=True)
class Reach:
    index: str
    expression: str
    alias: str | None = None


class ReservedIndex:
    """The index (and, once looked up, its concrete names and aliases) no caller may name."""

    def __init__(self, index: str, always: Iterable[str] = ()) -> None:
        self.index = index
        # Reserved even while the cluster does not have them (before creation, after a loss).
        self.always = frozenset({index, *always})
        self.concrete: frozenset[str] = self.always
        self.aliases: dict[str, bool] = {}  # alias name -> whether it is hidden

    def __repr__(self) -> str:
        return f"ReservedIndex({self.index!r}, aliases={sorted(self.aliases)!r})"

    def update(self, concrete: Iterable[str], aliases: Mapping[str, bool]) -> None:
        self.concrete = frozenset({*self.always, *concrete})
        self.aliases = dict(aliases)

    def refusal(self, method: str, target: str, query: MultiMapping[str]) -> str | None:
        """Why a request to `target` (raw path and query) must not be forwarded, or None."""
        path = target.partition("?")[0]
        hidden = expands_hidden(query)
        for expression in index_expressions(path):
            reach = self.reach(expression, hidden)
            if reach is not None:
                return describe(reach, method, path)
        return None

    def reach(self, expression: str, hidden: bool) -> Reach | None:
        name = bare_name(expression)
        if name is None:
            return None
        pattern = name_pattern("*" if name == "_all" else name)
        for index in sorted(self.concrete):
            if pattern.fullmatch(index) and shown(name, index, True, hidden):
                return Reach(index, expression)
        for alias, is_hidden in sorted(self.aliases.items()):
            if pattern.fullmatch(alias) and shown(name, alias, is_hidden, hidden):
                return Reach(self.index, expression, alias)
        return None


def shown(name: str, target: str, is_hidden: bool, expand_hidden: bool) -> bool:
    """Whether the expression `name` takes in a matching index or alias `target`.

    Wildcards take a hidden one only when asked to, or when both start with a dot. A visible alias
    is taken by any wildcard: OpenSearch then leaves out its hidden indices, but whether every
    Elasticsearch version does is not settled, so the guard assumes the worse.
    """
    if "*" not in name and name != "_all":
        return True
    return not is_hidden or expand_hidden or (name.startswith(".") and target.startswith("."))


def index_expressions(path: str) -> list[str]:
    """The comma-separated index expressions a raw path names, decoded as the cluster will."""
    segments = [unquote(part) for part in path.split("/") if part and part not in (".", "..")]
    if not segments:
        return []
    first = segments[0]
    if not first.startswith("_") or first == "_all":
        return first.split(",")
    named = named_in_api_path(segments)
    if named is not None:
        return named.split(",")
    return ["_all"] if first in ALL_WHEN_UNNAMED else []


def named_in_api_path(segments: Sequence[str]) -> str | None:
    """The index part of `_cat/{api}/{index}`, `_alias/{name}` and their kin, if given."""
    first, rest = segments[0], segments[1:]
    if first == "_cat" and rest and rest[0] in CAT_INDEXED:
        return rest[1] if len(rest) > 1 else "_all"
    if first in ("_alias", "_aliases") and rest:
        return rest[0]
    if first == "_resolve" and len(rest) > 1:
        return rest[1]
    if first == "_cluster" and rest[:1] == ["health"] and len(rest) > 1:
        return rest[1]
    if first == "_cluster" and rest[:1] == ["state"] and len(rest) > 2:
        return rest[2]
    return None


def bare_name(expression: str) -> str | None:
    """The index-name part of one expression; None for an exclusion, which never adds an index.

    Selectors (`name::failures`) and remote cluster prefixes (`remote:name`, which may point back
    at this cluster) are dropped; date math (`<name-{now/d}>`) becomes a pattern.
    """
    name = expression.strip().partition("::")[0]
    if not name or name.startswith("-"):
        return None
    name = name.rpartition(":")[2]
    if name.startswith("<") and name.endswith(">"):
        name = re.sub(r"\{.*\}", "*", name[1:-1])
    return name


@lru_cache(maxsize=256)
def name_pattern(name: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in name.split("*")))


def expands_hidden(query: MultiMapping[str]) -> bool:
    values = query.getall("expand_wildcards", ())
    words = {word.strip().lower() for value in values for word in value.split(",")}
    return bool(words & HIDDEN_EXPANSIONS)


def describe(reach: Reach, method: str, path: str) -> str:
    through = f" through its alias [{reach.alias}]" if reach.alias else ""
    return (
        f"index [{reach.index}] is reserved for esproxy and cannot be used through it: "
        f"[{reach.expression}] in [{method} {unquote(path)}] would reach it{through}"
    )


async def lookup_names(
    forwarder: UpstreamForwarder, index: str, authorization: str | None
) -> tuple[set[str], dict[str, bool]] | None:
    """The concrete indices behind `index` and their aliases (name -> hidden); None if unknown."""
    headers = CIMultiDict({"Accept": "application/json", "Accept-Encoding": "identity"})
    if authorization:
        headers["Authorization"] = authorization
    path = f"/{quote(index, safe='')}/_alias"
    try:
        node, response = await forwarder.send("GET", path, headers, None)
        async with response:
            status = response.status
            found = await response.json(content_type=None) if status == 200 else None
    except (UpstreamUnavailable, aiohttp.ClientError, OSError, ValueError) as error:
        log.warning("cannot look up the aliases of index [%s]: %s", index, error)
        return None
    if status == 404:
        return set(), {}
    if not isinstance(found, dict):
        log.warning("cannot look up the aliases of index [%s]: status [%d]", index, status)
        return None
    aliases = {
        alias: isinstance(options, dict) and options.get("is_hidden") is True
        for entry in found.values()
        if isinstance(entry, dict) and isinstance(entry.get("aliases"), dict)
        for alias, options in entry["aliases"].items()
    }
    log.debug("index [%s] at [%s] has aliases %s", index, node.url, sorted(aliases))
    return set(found), aliases
