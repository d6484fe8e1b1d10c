"""The reserved names, and what the cluster says lies behind them: concrete indices and aliases.

Each configured name is taken to be an existing hidden index, as esproxy creates it, unless the
cluster says otherwise; settings that would un-hide it never pass the guard. Each refresh replaces
what was learned, so a removed alias stops being refused after one refresh.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
from multidict import CIMultiDict

from esproxy.errors import UpstreamUnavailable
from esproxy.upstream import UpstreamForwarder

log = logging.getLogger(__name__)

RESERVED_PREFIX = ".esproxy"


@dataclass(frozen=True)
class AliasOf:
    index: str  # the reserved index it points at
    hidden: bool


class ReservedNames:
    def __init__(self, names: Sequence[str], prefix: str = RESERVED_PREFIX) -> None:
        if not names:
            raise ValueError("the guard needs at least one reserved index name")
        self.configured = tuple(dict.fromkeys(names))
        self.primary = self.configured[0]
        self.prefix = prefix
        self.indices: dict[str, bool] = dict.fromkeys(self.configured, True)  # name -> hidden
        self.aliases: dict[str, AliasOf] = {}

    def __repr__(self) -> str:
        return (
            f"ReservedNames({list(self.configured)!r}, indices={sorted(self.indices)!r}, "
            f"aliases={sorted(self.aliases)!r})"
        )

    def update(self, indices: dict[str, bool], aliases: dict[str, AliasOf]) -> None:
        # A configured index not there yet may be created any moment, hidden, by esproxy itself.
        self.indices = {**dict.fromkeys(self.configured, True), **indices}
        self.aliases = aliases

    def is_reserved(self, name: str) -> bool:
        """Whether naming `name` outright (no wildcard) reaches or could create a reserved index."""
        return (
            name in self.indices
            or name in self.configured
            or (bool(self.prefix) and name.startswith(self.prefix))
        )

    def named_by(self, matcher: re.Pattern[str], pattern: str) -> str | None:
        """A reserved name a concrete name matching `pattern` could be, hidden or not."""
        for name in (*self.configured, *self.indices):
            if matcher.fullmatch(name):
                return name
        for alias, known in self.aliases.items():
            if matcher.fullmatch(alias):
                return known.index
        if self.prefix and may_start_with(pattern, self.prefix):
            return self.prefix + "*"
        return None


def may_start_with(pattern: str, prefix: str) -> bool:
    """Whether some name matching the `*` pattern starts with `prefix`."""
    head, star, _ = pattern.partition("*")
    if not star:
        return pattern.startswith(prefix)
    return head.startswith(prefix) or prefix.startswith(head)


def lookup_path(names: ReservedNames) -> str:
    expression = ",".join(quote(name, safe="") for name in names.configured)
    if names.prefix:
        expression += "," + quote(names.prefix, safe="") + "*"
    return (
        f"/{expression}?expand_wildcards=all&ignore_unavailable=true&allow_no_indices=true"
        "&filter_path=*.aliases,*.settings.index.hidden"
    )


async def learn(
    names: ReservedNames, forwarder: UpstreamForwarder, authorization: str | None
) -> bool:
    """Ask the cluster which indices and aliases lie behind the reserved names; False if unknown."""
    headers = CIMultiDict({"Accept": "application/json", "Accept-Encoding": "identity"})
    if authorization:
        headers["Authorization"] = authorization
    try:
        node, response = await forwarder.send("GET", lookup_path(names), headers, None)
        async with response:
            status = response.status
            found = await response.json(content_type=None) if status == 200 else None
    except (UpstreamUnavailable, aiohttp.ClientError, OSError, ValueError) as error:
        log.warning("cannot look up esproxy's reserved indices and their aliases: %s", error)
        return False
    if not isinstance(found, dict):
        log.warning("cannot look up esproxy's reserved indices: the cluster answered [%d]", status)
        return False
    indices, aliases = read_answer(found)
    names.update(indices, aliases)
    log.debug("reserved indices at [%s]: %s, aliases %s", node.url, indices, sorted(aliases))
    return True


def read_answer(found: dict[str, Any]) -> tuple[dict[str, bool], dict[str, AliasOf]]:
    indices: dict[str, bool] = {}
    aliases: dict[str, AliasOf] = {}
    for index, entry in found.items():
        entry = entry if isinstance(entry, dict) else {}
        settings = entry.get("settings")
        hidden = dig(settings, "index", "hidden")
        # Unreadable is taken as visible: wildcards then refuse more, never less.
        indices[index] = str(hidden).lower() == "true"
        for alias, options in (entry.get("aliases") or {}).items():
            alias_hidden = isinstance(options, dict) and options.get("is_hidden") is True
            aliases[alias] = AliasOf(index, alias_hidden)
    return indices, aliases


def dig(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value
