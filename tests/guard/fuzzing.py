"""The differential fuzzer's parts: request strategies from the index-expression grammar and the
red-team cases, and the real node as the oracle for what an expression resolves to.

Shared by tests/guard/test_differential.py (bounded) and scripts/bench/guard-fuzz (long).
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

from esproxy.guard import Guard
from esproxy.guard.names import lookup_path, read_answer


@dataclass(frozen=True)
class Case:
    method: str
    target: str  # what the guard judges, as a client would send it
    oracle: str  # the read-only request whose answer lists what the expression reaches
    ordinary: bool  # built only from everyday expressions, where false refusals are counted


@dataclass
class FuzzNode:
    """The node's fixture indices: one reserved, with a hidden alias, and decoys around it."""

    url: str
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def reserved(self) -> str:
        return f".esproxy-fuzz-{self.tag}"

    def create(self) -> None:
        t = self.tag
        hidden = {"index": {"hidden": True, "number_of_replicas": 0}}
        visible = {"index": {"number_of_replicas": 0}}
        for name, settings in (
            (self.reserved, hidden),
            (f"esproxy-{t}", visible),
            (f".esp-{t}", hidden),
            (f".es-proxy-{t}", visible),
            (f"fuzzdocs-{t}", visible),
            (f"fuzzdocs-{t}-h", hidden),
        ):
            call(self.url, "PUT", f"/{name}", {"settings": settings})
            call(self.url, "PUT", f"/{name}/_doc/1?refresh=true", {"n": 1})
        actions = [
            {"add": {"index": self.reserved, "alias": f"fuzz-secret-{t}", "is_hidden": True}},
            {"add": {"index": f"fuzzdocs-{t}", "alias": f"fuzz-public-{t}"}},
        ]
        call(self.url, "POST", "/_aliases", {"actions": actions})

    def guard(self) -> Guard:
        """A guard for the reserved index that has learned the node as esproxy's would."""
        guard = Guard((self.reserved,))
        status, found = call(self.url, "GET", lookup_path(guard.names))
        assert status == 200, found
        guard.update(*read_answer(found))
        return guard

    def pieces(self) -> list[str]:
        return [".", "esproxy", "esp", "-", "fuzz", self.tag, "secret", "public", "docs",
                "fuzzdocs", "*", "h", "es", "proxy", "other", "inference"]  # fmt: skip

    def ordinary_pieces(self) -> list[str]:
        return ["-", "fuzz", self.tag, "public", "docs", "fuzzdocs", "*", "h", "other", "logs"]

    def names(self) -> list[str]:
        t = self.tag
        return [self.reserved, f"{self.reserved}*", f"fuzz-secret-{t}", "fuzz-secret-*",
                ".esp*", ".esproxy*", "*", ".*", "_all", f"*{t}", f"*{t}*", f".esp-{t}",
                f"esproxy-{t}", f".es-proxy-{t}", f"fuzzdocs-{t}", f"fuzz-public-{t}",
                f"fuzzdocs-{t}-h", "*-h", f"{self.reserved}-other", ".esproxy"]  # fmt: skip

    def includes_reserved(self, oracle: str) -> bool:
        status, found = cached_call(self.url, oracle)
        if status != 200:
            return False  # the cluster refuses the expression itself
        if "aggregations" in found:  # _search?index=, whose every index holds a document
            buckets = found["aggregations"]["indices"]["buckets"]
            return any(is_reserved(bucket["key"], self) for bucket in buckets)
        if any(is_reserved(entry["name"], self) for entry in found.get("indices", [])):
            return True
        return any(
            any(is_reserved(index, self) for index in entry.get("indices", []))
            for entry in found.get("aliases", [])
        )


def either_state(oracle: str) -> str:
    """The oracle's request with each `expand_wildcards` state word standing for both states. The
    guard does not track whether the reserved index is open or closed (docs/security.md), so for
    it `closed,hidden` reaches the reserved index as `open,closed,hidden` does; the node, which
    knows the index is open, says it does not. Only for ordinary cases: plain `&`-joined queries."""
    path, _, query = oracle.partition("?")
    params = []
    for param in query.split("&"):
        name, _, value = param.partition("=")
        if name == "expand_wildcards" and {"open", "closed"} & set(value.split(",")):
            value = ",".join(dict.fromkeys([*value.split(","), "open", "closed"]))
        params.append(f"{name}={value}" if value else name)
    return f"{path}?{'&'.join(params)}" if query else path


def is_reserved(name: str, node: FuzzNode) -> bool:
    return name.startswith(".esproxy") or name == node.reserved


def call(url: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")


SEARCH_INDICES = b'{"size":0,"aggs":{"indices":{"terms":{"field":"_index","size":10000}}}}'


@lru_cache(maxsize=65536)
def cached_call(url: str, path: str) -> tuple[int, Any]:
    """The oracle's question on one kept-alive connection (it asks thousands of small ones)."""
    search = path.startswith("/_search")
    headers = {"Content-Type": "application/json"} if search else {}
    for attempt in (1, 2):
        connection = connection_to(url)
        try:
            connection.request(
                "POST" if search else "GET",
                path,
                body=SEARCH_INDICES if search else None,
                headers=headers,
            )
            response = connection.getresponse()
            body = response.read()
            break
        except (OSError, http.client.HTTPException):
            connection.close()
            connection_to.cache_clear()  # the node closed it (after a 400): open another
            if attempt == 2:
                raise
    if response.status != 200:
        return response.status, body.decode("utf-8", "replace")
    return response.status, json.loads(body)


@lru_cache(maxsize=4)
def connection_to(url: str) -> http.client.HTTPConnection:
    host, _, port = url.removeprefix("http://").partition(":")
    return http.client.HTTPConnection(host, int(port), timeout=30)


# -- strategies -----------------------------------------------------------------------------

EXPANSIONS = ["open", "closed", "hidden", "all", "none", "open,hidden", "open,closed",
              "closed,hidden", "all,open", "open,closed,hidden"]  # fmt: skip
PATH_TEMPLATES = [
    ("GET", "/{e}/_search"), ("POST", "/{e}/_search"), ("GET", "/{e}/_count"),
    ("GET", "/{e}"), ("HEAD", "/{e}"), ("DELETE", "/{e}"), ("PUT", "/{e}/_doc/1"),
    ("GET", "/{e}/_doc/1"), ("DELETE", "/{e}/_doc/1"), ("PUT", "/{e}/_settings"),
    ("PUT", "/{e}/_mapping"), ("POST", "/{e}/_close"), ("GET", "/_cat/indices/{e}"),
    ("GET", "/_resolve/index/{e}"), ("GET", "/_cluster/health/{e}"),
]  # fmt: skip
QUERY_TEMPLATES = [("GET", "/_search"), ("POST", "/_count"), ("GET", "/_cat/indices"),
                   ("PUT", "/_settings"), ("POST", "/_close")]  # fmt: skip


def encode_some(draw: st.DrawFn, text: str, safe_in_query: bool) -> str:
    """Percent-encode some characters, as an attacker might, and keep the rest raw."""
    out = []
    for char in text:
        must = char in "<>{}'\" " or (safe_in_query and char in "+&;#=")
        if must or draw(st.integers(0, 9)) == 0:
            out.append("".join(f"%{byte:02X}" for byte in char.encode()))
        else:
            out.append(char)
    return "".join(out)


@st.composite
def expression_parts(draw: st.DrawFn, node: FuzzNode, ordinary: bool) -> str:
    pieces = node.ordinary_pieces() if ordinary else node.pieces()
    built = st.lists(st.sampled_from(pieces), min_size=1, max_size=5).map("".join)
    if ordinary:
        return draw(built.filter(lambda name: not name.startswith("-")))
    name = draw(st.one_of(built, st.sampled_from(node.names())))
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return f"<{name.replace('*', '')}{{now/d}}>"
    if kind == 1:
        return "<{now{'" + name + "'}}>"
    if kind == 2:
        return "-" + name
    return name


@st.composite
def expressions(draw: st.DrawFn, node: FuzzNode, ordinary: bool) -> str:
    parts = draw(st.lists(expression_parts(node, ordinary), min_size=1, max_size=3))
    if not ordinary and draw(st.integers(0, 9)) == 0:
        parts.insert(draw(st.integers(0, len(parts))), "")  # an empty part
    return ",".join(parts)


@st.composite
def queries(draw: st.DrawFn, ordinary: bool) -> str:
    params = []
    for value in draw(st.lists(st.sampled_from(EXPANSIONS), max_size=1 if ordinary else 3)):
        shown = value if ordinary else encode_some(draw, value, True)
        params.append(f"expand_wildcards={shown}")
    if draw(st.booleans()):
        params.append("pretty")
    separator = "&" if ordinary else draw(st.sampled_from(["&", ";"]))
    query = separator.join(params)
    if not ordinary and query and draw(st.integers(0, 4)) == 0:
        at = draw(st.integers(0, len(query)))
        query = query[:at] + "#" + query[at:]
    return query


@st.composite
def cases(draw: st.DrawFn, node: FuzzNode) -> Case:
    ordinary = draw(st.booleans())
    expression = draw(expressions(node, ordinary))
    query = draw(queries(ordinary))
    if draw(st.integers(0, 3)) == 0:
        method, path = draw(st.sampled_from(QUERY_TEMPLATES))
        value = expression if ordinary else encode_some(draw, expression, True)
        value = value.replace("<", "%3C").replace(">", "%3E").replace("{", "%7B")
        value = value.replace("}", "%7D").replace("'", "%27")
        joined = f"index={value}" + (f"&{query}" if query else "")
        return Case(
            method,
            f"{path}?{joined}",
            f"/_search?ignore_unavailable=true&{joined}",
            ordinary,
        )
    method, template = draw(st.sampled_from(PATH_TEMPLATES))
    raw = quote(expression, safe="*,-_:") if ordinary else encode_some(draw, expression, False)
    suffix = f"?{query}" if query else ""
    return Case(
        method,
        template.replace("{e}", raw) + suffix,
        f"/_resolve/index/{raw}{suffix}",
        ordinary,
    )
