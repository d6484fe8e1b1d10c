"""The guard read from targets alone: which expressions reach esproxy's indices, which do not.

These are the resolver's own steps on known cases; tests/guard/test_tricks.py replays attacks
through the sidecar against the real node, and test_differential.py fuzzes against it.
"""

from __future__ import annotations

import pytest

from esproxy.guard import BodyCheck, Guard
from esproxy.guard.names import AliasOf
from esproxy.guard.routes import named_indices
from esproxy.guard.target import Unsure, parse_target

INDEX = ".esproxy-inference"
NAMES = (INDEX, ".esproxy-leases", ".esproxy-embedding-cache")


@pytest.fixture
def reserved():
    return Guard(NAMES)


@pytest.fixture
def aliased():
    guard = Guard(NAMES)
    guard.update(
        {INDEX: True},
        {"endpoints": AliasOf(INDEX, False), "hidden-endpoints": AliasOf(INDEX, True)},
    )
    return guard


def refused(guard, target, method="GET"):
    return guard.check(method, target)


def index_expressions(path, method="GET"):
    named = named_indices(method, parse_target(path)).expressions
    return [part for expression in named for part in expression.split(",")]


@pytest.mark.parametrize(
    ("path", "expressions"),
    [
        ("/.esproxy-inference/_search", [INDEX]),
        ("/%2Eesproxy-inference/_doc/1", [INDEX]),
        ("/a,b%2Cc/_count", ["a", "b", "c"]),
        ("/_all,/_search", ["_all", ""]),
        ("/_search?index=a,b", ["a", "b"]),
        ("/docs/_clone/copy", ["docs", "copy"]),
        ("/_all/_search", ["_all"]),
        ("/_search", ["_all"]),
        ("/_nodes/stats", []),
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
        ("/*/_search?expand_wildcards=hidden", False),  # alone it matches nothing
        ("/*/_search?expand_wildcards=closed,hidden", True),
        ("/*/_search?expand_wildcards=open", False),
        ("/_all/_search", False),
        ("/_all/_search?expand_wildcards=all", True),
        ("/_search?expand_wildcards=all", True),
        ("/_search", False),
        ("/remote:.esproxy-inference/_search", True),
        ("/.esproxy-inference::failures/_search", True),
        ("/%3C.esproxy-inference%7Bnow%2Fd%7D%3E/_search", True),
        ("/*,-.esproxy-inference/_search?expand_wildcards=all", True),
        ("/.esproxy-inference-other/_search", True),  # every `.esproxy*` name is reserved
        ("/./.esproxy-inference/_doc/1", True),
        ("/docs/%2E%2E/_search", True),
        ("/docs/_search", False),
        ("/_cat/indices", False),
        ("/_cat/indices?expand_wildcards=all", True),
        ("/_cat/indices/.esproxy*", True),
        ("/_bulk", False),  # bulk bodies are not read: the documented gap
        ("/*/_search?expand_wildcards=open;expand_wildcards=all", True),
        ("/*/_search?expand_wildcards=all#", True),
        ("/*/_search?expand_wildcards=open#&expand_wildcards=all", False),
        ("/*/_search?expand_wildcards=%61ll", True),
        ("/_search?index=.esproxy-inference", True),
        ("/_cat/indices?index=.esproxy-leases", True),
        ("/_cluster/state/metadata?indices=.esproxy-inference", True),
        ("/,/_search", True),
        ("/%2C/_search", True),
        ("/_all,?expand_wildcards=all", True),
        ("/_all,/_block/write?expand_wildcards=all", True),
        ("/%3C%7Bnow%7B%27.esproxy-inference%27%7D%7D%3E/_search", True),
        ("/%3Clogs-%7Bnow%2Fd%7D%3E/_search", False),
        ("/.esproxy-anything/_doc/1", True),
        ("/esproxy-inference/_search", False),
        ("/_mget?source=%7B%7D&source_content_type=application/json", True),
        ("/docs/_search?q=a%zz", True),
        ("//x/.esproxy-inference/_doc/1", True),
        ("/docs#x/_doc/1", True),
        ("/docs/_clone/.esproxy-inference", True),
        ("/docs/_alias/.esproxy-leases", True),
        ("/*/_search?expand_wildcards=none", False),
    ],
)
def test_refusals(reserved, target, reached):
    refusal = refused(reserved, target)
    assert isinstance(refusal, str | None)
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
    reason = aliased.check("POST", "/end*/_search?q=x")
    assert reason == (
        "index [.esproxy-inference] is reserved for esproxy and cannot be used through it: "
        "[end*] in [POST /end*/_search] would reach it through its alias [endpoints]"
    )


def test_a_configured_alias_guards_its_concrete_index():
    guard = Guard(("esproxy",))  # [storage] index may itself be an alias
    guard.update({"idx-000001": True}, {"esproxy": AliasOf("idx-000001", False)})
    assert guard.check("GET", "/idx-000001/_search") is not None
    assert guard.check("GET", "/esproxy/_search") is not None
    assert guard.check("GET", "/idx-000002/_search") is None


def test_a_removed_alias_is_forgotten_at_the_next_refresh(aliased):
    assert aliased.check("GET", "/endpoints/_search") is not None
    aliased.update({INDEX: True}, {})
    assert aliased.check("GET", "/endpoints/_search") is None


def test_an_unhidden_index_is_reached_by_plain_wildcards(reserved):
    assert reserved.check("GET", "/*/_search") is None
    reserved.update({INDEX: False}, {})
    assert reserved.check("GET", "/*/_search") is not None


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("/,/_search", "empty"),
        ("/docs/_search?q=%4", "malformed percent-escape"),
        ("/%3C%7Bnow%3E/_search", "date math"),
        ("/_search?source=x", "?source="),
        ("/docs#/_search", "#"),
    ],
)
def test_unsure_refusals_say_why(reserved, target, why):
    reason = reserved.check("GET", target)
    assert reason.startswith(f"index [{INDEX}] is reserved for esproxy")
    assert why in reason


@pytest.mark.parametrize(
    ("method", "target", "api"),
    [
        ("PUT", "/_template/t", "_template"),
        ("POST", "/_index_template/t", "_index_template"),
        ("POST", "/_aliases", "_aliases"),
        ("POST", "/_reindex", "_reindex"),
        ("PUT", "/docs/_alias/a", "_alias"),
    ],
)
def test_admin_bodies_are_read(reserved, method, target, api):
    decision = reserved.check(method, target)
    if api == "_alias":
        assert decision is None
    else:
        assert decision == BodyCheck(api)


@pytest.mark.parametrize(
    ("api", "body", "refused_"),
    [
        ("_template", b'{"index_patterns": [".esproxy-inference*"]}', True),
        ("_template", b'{"index_patterns": ".esp*"}', True),
        ("_template", b'{"template": ".esproxy*"}', True),
        ("_template", b'{"index_patterns": ["*"]}', False),
        ("_template", b'{"index_patterns": ["logs-*"]}', False),
        ("_index_template", b'{"index_patterns": ["*inference"]}', True),
        (
            "_index_template",
            b'{"index_patterns": ["x"], "template": {"aliases": {".esproxy-x": {}}}}',
            True,
        ),
        ("_aliases", b'{"actions": [{"remove_index": {"index": ".esproxy-inference"}}]}', True),
        ("_aliases", b'{"actions": [{"add": {"indices": ["docs", ".esp*"], "alias": "a"}}]}', True),
        ("_aliases", b'{"actions": [{"add": {"index": "docs", "alias": "a"}}]}', False),
        ("_reindex", b'{"source": {"index": ".esproxy-inference"}, "dest": {"index": "x"}}', True),
        ("_reindex", b'{"source": {"index": "x"}, "dest": {"index": ".esproxy-leases"}}', True),
        ("_reindex", b'{"source": {"index": "x"}, "dest": {"index": "y"}}', False),
        ("_reindex", b"not json", True),
        ("_reindex", b"[]", True),
    ],
)
def test_admin_bodies(reserved, api, body, refused_):
    reason = reserved.check_body(BodyCheck(api), "POST", "/x", body, "application/json", "")
    assert (reason is not None) == refused_, reason


def test_bodies_the_guard_cannot_read_are_refused(reserved):
    check = BodyCheck("_template")
    body = b'{"index_patterns": ["logs-*"]}'
    assert reserved.check_body(check, "PUT", "/_template/t", body, "application/json", "") is None
    assert reserved.check_body(check, "PUT", "/_template/t", None, "application/json", "")
    assert reserved.check_body(check, "PUT", "/_template/t", body, "application/yaml", "")
    assert reserved.check_body(check, "PUT", "/_template/t", body, "application/json", "gzip")


def test_target_parsing_matches_the_cluster():
    target = parse_target("/a%2Cb/_search?x=1;y=a+b&z&=w&%%=v#&expand_wildcards=all")
    assert target.segments == ("a,b", "_search")
    assert target.params == {"x": ["1"], "y": ["a b"], "z": [""], "w": [""], "%": ["v"]}
    with pytest.raises(Unsure):
        parse_target("/a?b=%G1")
