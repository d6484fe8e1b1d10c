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


# -- exact reasons, edge cases and the resolver's smaller steps (found by scripts/mutate) --------

REFUSED = f"index [{INDEX}] is reserved for esproxy and cannot be used through it: "
UNSURE = REFUSED + "esproxy cannot be sure that [{method} {path}] stays away from it, because "


@pytest.mark.parametrize(
    ("target", "path", "why"),
    [
        ("/d\x7fx", "/d\x7fx", "the request target holds bytes outside printable ASCII"),
        ("//x/y", "//x/y", "the request target does not start with a single `/`"),
        ("http://h/x", "http://h/x", "the request target does not start with a single `/`"),
        (
            "/a#b/_doc",
            "/a#b/_doc",
            "the path holds a `#`, which clients never send and servers read apart",
        ),
        (
            "/a/../b",
            "/a/../b",
            "the path has a `.` or `..` segment, which some servers resolve and some not",
        ),
        ("/a?q=%41x%zz", "/a", "[%41x%zz] holds a malformed percent-escape"),
        ("/a?source=1", "/a", "`?source=` carries a request body in the query string"),
        (
            "/a,,b/_search",
            "/a,,b/_search",
            "the index expression [a,,b] is empty or has an empty part",
        ),
        (
            "/%3Ca%7Bnow%3E/_search",
            "/%3Ca%7Bnow%3E/_search",
            "the date math [<a{now>] cannot be read with certainty",
        ),
    ],
)
def test_unsure_reasons_are_exact(reserved, target, path, why):
    assert reserved.check("GET", target) == UNSURE.format(method="GET", path=path) + why


@pytest.mark.parametrize(
    ("inner", "refused_"),
    [
        ("a}b{c}", "unsure"),
        ("{a}b{", "unsure"),
        ("a\\{b}", "unsure"),
        ("}a", "unsure"),
        ("{now}x", ".esproxy*"),  # `*x` may be `.esproxyx`
        ("x{now}", False),
        (".esproxy-x{now/d}", ".esproxy*"),
        ("{now/d}.esproxy", ".esproxy*"),
        (".es{now/d}", INDEX),  # a configured name matches first
        ("{now{'.esproxy-inference'}}", INDEX),
        ("logs-{now/d}", False),
        ("end{now}", INDEX),  # an alias
        (".esproxy-leases", ".esproxy-leases"),
        ("logs", False),
    ],
)
def test_date_math(aliased, inner, refused_):
    encoded = inner.replace("/", "%2F").replace("{", "%7B").replace("}", "%7D")
    target = f"/<{encoded}>/_search"
    reason = aliased.check("GET", target.replace("<", "%3C").replace(">", "%3E"))
    if refused_ == "unsure":
        assert "cannot be read with certainty" in reason
    elif refused_:
        assert reason == (
            f"index [{refused_}] is reserved for esproxy and cannot be used through it: "
            f"[<{inner}>] in [GET /<{inner}>/_search] would reach it"
        )
    else:
        assert reason is None


def test_refusals_name_the_method_path_expression_and_alias(aliased):
    assert aliased.check("DELETE", "/docs,.esproxy-leases?x=1") == (
        "index [.esproxy-leases] is reserved for esproxy and cannot be used through it: "
        "[.esproxy-leases] in [DELETE /docs,.esproxy-leases] would reach it"
    )
    assert aliased.check("GET", "/*/_search") == (
        f"index [{INDEX}] is reserved for esproxy and cannot be used through it: "
        "[*] in [GET /*/_search] would reach it through its alias [endpoints]"
    )


@pytest.mark.parametrize(
    ("pattern", "starts"),
    [
        (".esproxyabc", True), ("x.esproxy", False), (".es*", True), ("*", True),
        (".esproxy-a*", True), (".esq*", False), ("a*.esproxy", False), (".esp*x*", True),
    ],
)  # fmt: skip
def test_patterns_that_may_name_the_reserved_prefix(pattern, starts):
    from esproxy.guard.names import may_start_with

    assert may_start_with(pattern, ".esproxy") is starts


def test_configured_indices_count_as_hidden_when_the_cluster_has_not_got_them(reserved):
    reserved.update({}, {})
    assert reserved.check("GET", "/*/_search") is None
    assert reserved.check("GET", "/*/_search?expand_wildcards=all") is not None
    assert reserved.check("GET", "/.esp*/_search") is not None


def test_a_hidden_alias_is_taken_by_a_dot_pattern():
    guard = Guard(NAMES)
    guard.update({INDEX: True}, {".hidden-alias": AliasOf(INDEX, True)})
    reason = guard.check("GET", "/.h*/_search")
    assert reason.endswith(
        "[.h*] in [GET /.h*/_search] would reach it through its alias [.hidden-alias]"
    )


@pytest.mark.parametrize(
    ("target", "expressions"),
    [
        ("/docs/_alias", ["docs"]),
        ("/_cluster/health", []),
        ("/_search?indices=a", ["a"]),
        ("/a+b/_doc/c+d", ["a+b"]),
        ("/_search?index=a+b", ["a b"]),
        ("/_cat/indices?index=x", ["x"]),
        ("/_cat/shards", ["_all"]),
        ("/_cat/health?expand_wildcards=all", []),
    ],
)
def test_more_expressions(target, expressions):
    assert index_expressions(target) == expressions


def test_query_names_decode_like_values():
    assert parse_target("/a?x+y=1&%78=2").params == {"x y": ["1"], "x": ["2"]}


def test_invalid_utf8_decodes_as_the_cluster_does(reserved):
    assert parse_target("/a%ff/_doc/1").segments == ("a\ufffd", "_doc", "1")
    assert reserved.check("GET", "/docs/_search?q=%ff") is None


@pytest.mark.parametrize(
    ("method", "target", "decision"),
    [
        ("PUT", "/docs/_aliases/a", BodyCheck("_aliases")),
        ("POST", "/_index_template/_simulate_index/x", None),
        ("POST", "/_index_template/_simulate", None),
        ("PUT", "/_template", None),
        ("GET", "/_template/t", None),
        ("PUT", "/_component_template/c", None),
    ],
)
def test_which_bodies_are_read(reserved, method, target, decision):
    assert reserved.check(method, target) == decision


@pytest.mark.parametrize(
    ("content_type", "encoding", "refused_"),
    [
        ("application/json; charset=UTF-8", "", False),
        ("application/vnd.elasticsearch+json;compatible-with=9", "", False),
        ("Application/JSON", " Identity ", False),
        ("application/json", "gzip", True),
        ("application/json", "GZIP", True),
        ("text/plain", "", True),
    ],
)
def test_body_formats(reserved, content_type, encoding, refused_):
    check = BodyCheck("_template")
    body = b'{"index_patterns": ["logs-*"]}'
    reason = reserved.check_body(check, "PUT", "/_template/t", body, content_type, encoding)
    assert (reason is not None) is refused_
    empty = reserved.check_body(check, "PUT", "/_template/t", b"", "text/plain", "")
    assert empty is None


@pytest.mark.parametrize(
    ("api", "body", "reason"),
    [
        ("_template", b"[1]", "the [_template] body is not a JSON object"),
        ("_template", b"{", "the [_template] body is not JSON the guard can read"),
        ("_template", None, "its body is longer than the 65536 bytes the guard reads"),
    ],
)
def test_body_reasons_are_exact(reserved, api, body, reason):
    got = reserved.check_body(BodyCheck(api), "PUT", "/_template/t", body, "application/json", "")
    assert got == UNSURE.format(method="PUT", path="/_template/t") + reason


@pytest.mark.parametrize(
    ("api", "body", "refused_"),
    [
        ("_template", b'{"index_patterns": ["logs-*", "*"]}', False),
        ("_template", b'{"index_patterns": ["*", ".esp*"]}', True),
        ("_template", b'{"index_patterns": "logs-*,.esproxy-x"}', True),
        ("_template", b'{"index_patterns": ["x"], "aliases": {"endpoints": {}}}', True),
        ("_template", b'{"index_patterns": ["x"], "aliases": {"other": {}}}', False),
        ("_template", b'{"index_patterns": ["x"], "aliases": {"*": {}}}', True),
        (
            "_aliases",
            b'{"actions": [1, {"add": 2}, {"add": {"index": "docs", "alias": ".esp*"}}]}',
            True,
        ),
        (
            "_aliases",
            b'{"actions": [{"add": {"index": "docs", "aliases": ["a", "endpoints"]}}]}',
            True,
        ),
        ("_aliases", b'{"actions": [{"add": {"index": "*", "alias": "all"}}]}', True),
        ("_aliases", b'{"actions": {"add": {"index": ".esproxy-x"}}}', False),
        ("_aliases", b'{"actions": 5}', False),  # the cluster refuses it
        ("_reindex", b'{"source": 1, "dest": {"index": ".esproxy-x"}}', True),
        ("_reindex", b'{"source": {"index": ["a", "*"]}, "dest": {"index": "b"}}', True),
    ],
)
def test_more_admin_bodies(aliased, api, body, refused_):
    reason = aliased.check_body(BodyCheck(api), "POST", "/x", body, "application/json", "")
    assert (reason is not None) == refused_, reason


def test_decisions_are_remembered_until_the_names_change():
    guard = Guard(NAMES)
    assert guard.check("GET", "/x/_search") is None
    assert guard.check("GET", "/*/_search") is None
    assert len(guard.decisions) == 2
    guard.update({INDEX: False}, {})
    assert guard.decisions == {}
    assert guard.check("GET", "/*/_search") is not None
    for n in range(5000):
        guard.check("GET", f"/docs-{n}/_search")
    assert len(guard.decisions) <= 4096
    assert guard.check("GET", "/.esproxy-x/_search") is not None
    assert guard.check("GET", "/.esproxy-x/_search") is not None


def test_a_custom_prefix():
    guard = Guard(("mine",), prefix=".corp")
    assert guard.check("GET", "/.corp-x/_search") is not None
    assert guard.check("GET", "/.esproxy-x/_search") is None


def test_at_least_one_reserved_name():
    with pytest.raises(ValueError, match=r"^the guard needs at least one reserved index name$"):
        Guard(())


@pytest.mark.parametrize(
    ("target", "expressions"),
    [("/_aliases/x", ["x"]), ("/_resolve/index", []), ("/_resolve", [])],
)
def test_api_paths_without_their_names(target, expressions):
    assert index_expressions(target) == expressions


def test_empty_query_pairs_are_skipped(reserved):
    assert parse_target("/a?x=1&&;=y&z=2").params == {"x": ["1"], "y": [""], "z": ["2"]}
    assert parse_target("/a?x=1=2").params == {"x": ["1=2"]}  # the first `=` splits, as in ES
    assert reserved.check("GET", "/*/_search?x=1&&expand_wildcards=all") is not None


@pytest.mark.parametrize(
    ("api", "body"),
    [
        ("_aliases", b'{"actions": [{"add": {"index": "*", "alias": "a"}}]}'),
        ("_aliases", b'{"actions": [{"add": 2, "remove_index": {"index": ".esproxy-x"}}]}'),
        ("_reindex", b'{"source": {"index": "*"}, "dest": {"index": "b"}}'),
    ],
)
def test_body_wildcards_count_hidden_indices(reserved, api, body):
    assert reserved.check_body(BodyCheck(api), "POST", "/x", body, "application/json", "")


@pytest.mark.parametrize(
    ("method", "target", "body", "reason"),
    [
        (
            "PUT",
            "/_template/t",
            b'{"index_patterns": [".esproxy-inference*"]}',
            f"index [{INDEX}] is reserved for esproxy and cannot be used through it: "
            "[index_patterns: .esproxy-inference*] in [PUT /_template/t] would reach it",
        ),
        (
            "PUT",
            "/_index_template/t",
            b'{"index_patterns": ["x"], "template": {"aliases": {"endpoints": {}}}}',
            f"index [{INDEX}] is reserved for esproxy and cannot be used through it: "
            "[aliases: endpoints] in [PUT /_index_template/t] would reach it through its alias "
            "[endpoints]",
        ),
        (
            "POST",
            "/_reindex",
            b'{"source": {"index": "*"}, "dest": {"index": "b"}}',
            f"index [{INDEX}] is reserved for esproxy and cannot be used through it: "
            "[*] in [POST /_reindex] would reach it",
        ),
        (
            "POST",
            "/_aliases",
            b'{"actions": [{"add": {"index": "docs", "alias": "hidden-endpoints"}}]}',
            f"index [{INDEX}] is reserved for esproxy and cannot be used through it: "
            "[hidden-endpoints] in [POST /_aliases] would reach it through its alias "
            "[hidden-endpoints]",
        ),
    ],
)
def test_body_reasons_name_what_reaches(aliased, method, target, body, reason):
    api = aliased.check(method, target)
    assert aliased.check_body(api, method, target, body, "application/json", "") == reason


@pytest.mark.parametrize(
    ("encoding", "content_type", "why"),
    [
        (
            "gzip",
            "application/json",
            "its body is content-encoded, and the guard reads only plain JSON",
        ),
        ("", "application/cbor", "its body is not JSON, the only format the guard reads"),
    ],
)
def test_unreadable_body_reasons_are_exact(reserved, encoding, content_type, why):
    got = reserved.check_body(
        BodyCheck("_aliases"), "POST", "/_aliases", b"{}", content_type, encoding
    )
    assert got == UNSURE.format(method="POST", path="/_aliases") + why


def test_explicit_names_and_wildcards_name_the_index_they_reach(aliased):
    assert aliased.check("GET", "/hidden-endpoints/_doc/1") == (
        f"index [{INDEX}] is reserved for esproxy and cannot be used through it: "
        "[hidden-endpoints] in [GET /hidden-endpoints/_doc/1] would reach it through its alias "
        "[hidden-endpoints]"
    )
    assert aliased.check("GET", "/.esproxy-inf*/_count") == (
        f"index [{INDEX}] is reserved for esproxy and cannot be used through it: "
        "[.esproxy-inf*] in [GET /.esproxy-inf*/_count] would reach it"
    )
