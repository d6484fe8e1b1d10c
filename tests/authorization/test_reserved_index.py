"""ReservedIndex read from URLs alone: which expressions reach esproxy's index, and which do not."""

from __future__ import annotations

import pytest
from multidict import MultiDict

from esproxy.reserved_index import ReservedIndex, index_expressions

INDEX = ".esproxy-inference"


@pytest.fixture
def reserved():
    return ReservedIndex(INDEX)


@pytest.fixture
def aliased():
    reserved = ReservedIndex(INDEX)
    reserved.update({INDEX}, {"endpoints": False, "hidden-endpoints": True})
    return reserved


def refused(reserved, target):
    _, _, query = target.partition("?")
    params = MultiDict(part.split("=", 1) for part in query.split("&") if part)
    return reserved.refusal("GET", target, params)


@pytest.mark.parametrize(
    ("path", "expressions"),
    [
        ("/.esproxy-inference/_search", [INDEX]),
        ("/%2Eesproxy-inference/_doc/1", [INDEX]),
        ("/a,b%2Cc/_count", ["a", "b", "c"]),
        ("//./.esproxy-inference", [INDEX]),
        ("/_all/_search", ["_all"]),
        ("/_search", ["_all"]),
        ("/_cat/indices", ["_all"]),
        ("/_cat/indices/.esproxy*", [".esproxy*"]),
        ("/_cat/health", []),
        ("/_alias/endpoints", ["endpoints"]),
        ("/_cluster/health/.esproxy-inference", [INDEX]),
        ("/_cluster/state/metadata/.esproxy-inference", [INDEX]),
        ("/_resolve/index/.esp*", [".esp*"]),
        ("/_nodes/stats", []),
        ("/_inference/completion/x", []),
        ("/_esproxy/health", []),
        ("/", []),
    ],
)
def test_index_expressions_in_paths(path, expressions):
    assert index_expressions(path) == expressions


@pytest.mark.parametrize(
    ("target", "reached"),
    [
        ("/.esproxy-inference/_search", True),
        ("/.esproxy-inference", True),
        ("/docs,.esproxy-inference/_search", True),
        ("/.esproxy*/_search", True),  # a pattern starting with a dot reaches hidden dot-indices
        ("/.*/_count", True),
        ("/*/_search", False),
        ("/*/_search?expand_wildcards=all", True),
        ("/*/_search?expand_wildcards=open,hidden", True),
        ("/*/_search?expand_wildcards=open", False),
        ("/_all/_search", False),
        ("/_all/_search?expand_wildcards=all", True),
        ("/_search?expand_wildcards=all", True),
        ("/_search", False),
        ("/remote:.esproxy-inference/_search", True),
        ("/.esproxy-inference::failures/_search", True),
        ("/%3C.esproxy-inference%7Bnow%2Fd%7D%3E/_search", True),
        ("/*,-.esproxy-inference/_search?expand_wildcards=all", True),
        ("/.esproxy-inference-other/_search", False),
        ("/docs/_search", False),
        ("/_cat/indices", False),
        ("/_cat/indices?expand_wildcards=all", True),
        ("/_cat/indices/.esproxy*", True),
        ("/_bulk", False),  # bodies are not read: the documented gap
    ],
)
def test_refusals(reserved, target, reached):
    refusal = refused(reserved, target)
    assert (refusal is not None) == reached, refusal


@pytest.mark.parametrize(
    ("target", "reached"),
    [
        ("/endpoints/_search", True),
        ("/endpoints,docs/_search", True),
        ("/end*/_search", True),
        ("/*/_search", True),  # a visible alias: assume wildcards take its hidden index along
        ("/hidden-endpoints/_search", True),
        ("/hidden-*/_search", False),  # a hidden alias, like a hidden index
        ("/hidden-*/_search?expand_wildcards=all", True),
        ("/_alias/endpoints", True),
    ],
)
def test_refusals_through_aliases(aliased, target, reached):
    refusal = refused(aliased, target)
    assert (refusal is not None) == reached, refusal


def test_the_reason_names_the_index_the_expression_and_the_alias(aliased):
    reason = aliased.refusal("POST", "/end*/_search?q=x", MultiDict())
    assert reason == (
        "index [.esproxy-inference] is reserved for esproxy and cannot be used through it: "
        "[end*] in [POST /end*/_search] would reach it through its alias [endpoints]"
    )


def test_a_configured_alias_guards_its_concrete_index():
    reserved = ReservedIndex("esproxy")  # [storage] index may itself be an alias
    reserved.update({".esproxy-000001"}, {"esproxy": False})
    assert reserved.refusal("GET", "/.esproxy-000001/_search", MultiDict()) is not None
    assert reserved.refusal("GET", "/esproxy/_search", MultiDict()) is not None
