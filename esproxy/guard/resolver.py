"""The guard itself: each forwarded request judged by the steps of this package, in order.

`check` reads the method and target alone and answers None (forward it), a refusal reason, or a
`BodyCheck` when a small admin body decides; `check_body` then reads that body. Decisions on the
target alone are remembered per (method, target) until the reserved names change, so the splice
fast path pays a dictionary lookup for the requests it sees again and again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from esproxy.guard.bodies import MAX_BODY, check_body
from esproxy.guard.expressions import Reach, resolve
from esproxy.guard.names import RESERVED_PREFIX, AliasOf, ReservedNames, learn
from esproxy.guard.routes import named_indices
from esproxy.guard.target import Target, Unsure, parse_target
from esproxy.upstream import UpstreamForwarder

STATES = frozenset({"open", "closed"})
JSON_TYPES = ("application/json", "application/vnd.elasticsearch+json")
MAX_REMEMBERED = 4096


@dataclass(frozen=True)
class BodyCheck:
    api: str  # the admin API whose body must be read before the request may go on


Decision = str | BodyCheck | None


class Guard:
    """Keeps callers away from esproxy's reserved indices (and every `.esproxy*` name)."""

    def __init__(self, names: Sequence[str], prefix: str = RESERVED_PREFIX) -> None:
        self.names = ReservedNames(names, prefix)
        self.decisions: dict[tuple[str, str], Decision] = {}

    def __repr__(self) -> str:
        return f"Guard({self.names!r})"

    @property
    def primary(self) -> str:
        return self.names.primary

    def update(self, indices: dict[str, bool], aliases: dict[str, AliasOf]) -> None:
        self.names.update(indices, aliases)
        self.decisions = {}

    async def refresh(self, forwarder: UpstreamForwarder, authorization: str | None) -> bool:
        learned = await learn(self.names, forwarder, authorization)
        self.decisions = {}
        return learned

    def check(self, method: str, target: str) -> Decision:
        key = (method, target)
        decisions = self.decisions
        if key in decisions:
            return decisions[key]
        decision = self.decide(method, target)
        if len(decisions) >= MAX_REMEMBERED:
            decisions.clear()
        decisions[key] = decision
        return decision

    def decide(self, method: str, target: str) -> Decision:
        try:
            parsed = parse_target(target)
            if "source" in parsed.params:
                raise Unsure("`?source=` carries a request body in the query string")
            named = named_indices(method, parsed)
            hidden = expands_hidden(parsed)
            for expression in named.expressions:
                reach = resolve(expression, self.names, hidden)
                if reach is not None:
                    return self.reached(reach, method, parsed)
        except Unsure as unsure:
            return self.unsure(unsure, method, target)
        return None if named.body is None else BodyCheck(named.body)

    def check_body(
        self,
        check: BodyCheck,
        method: str,
        target: str,
        body: bytes | None,
        content_type: str,
        content_encoding: str,
    ) -> str | None:
        """`body` is None when it was longer than `MAX_BODY`."""
        try:
            if body is None:
                raise Unsure(f"its body is longer than the {MAX_BODY} bytes the guard reads")
            if content_encoding.strip().lower() not in ("", "identity"):
                raise Unsure("its body is content-encoded, and the guard reads only plain JSON")
            if body.strip() and content_type.partition(";")[0].strip().lower() not in JSON_TYPES:
                raise Unsure("its body is not JSON, the only format the guard reads")
            reach = check_body(check.api, body, self.names)
        except Unsure as unsure:
            return self.unsure(unsure, method, target)
        return None if reach is None else self.reached(reach, method, parse_target(target))

    def reached(self, reach: Reach, method: str, target: Target) -> str:
        through = f" through its alias [{reach.alias}]" if reach.alias else ""
        path = "/" + "/".join(target.segments)
        return (
            f"index [{reach.index}] is reserved for esproxy and cannot be used through it: "
            f"[{reach.expression}] in [{method} {path}] would reach it{through}"
        )

    def unsure(self, unsure: Unsure, method: str, target: str) -> str:
        path = target.partition("?")[0]
        return (
            f"index [{self.primary}] is reserved for esproxy and cannot be used through it: "
            f"esproxy cannot be sure that [{method} {path}] stays away from it, because "
            f"{unsure.why}"
        )


def expands_hidden(target: Target) -> bool:
    """`all`, or `hidden` with `open` or `closed` (alone it matches nothing), in any value: ES
    versions differ on which of several values counts, so the guard takes them all together.
    """
    values = target.params.get("expand_wildcards", ())
    words = {word.strip().lower() for value in values for word in value.split(",")}
    return "all" in words or ("hidden" in words and not words.isdisjoint(STATES))
