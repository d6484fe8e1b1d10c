"""Every trick from issue #10, and more, replayed on raw sockets through the sidecar to the real
node: each is refused with the ES-shaped 403, and esproxy's index is the same afterwards.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from tests.guard.conftest import ENDPOINT, direct, index_state, request_bytes


def date_math(index: str) -> str:
    """`<{now{'index'}}>` URL-encoded: a format that writes the whole name, leading dot and all."""
    return quote("<{now{'" + index + "'}}>", safe="")


def mget_source(index: str) -> str:
    body = json.dumps({"docs": [{"_index": index, "_id": "titan"}]})
    return f"/_mget?source={quote(body, safe='')}&source_content_type=application/json"


UNHIDE = b'{"index":{"hidden":false}}'
WRITE = b'{"service":"amazonbedrock","model":"expensive"}'
MAPPING = b'{"properties":{"x":{"type":"keyword"}}}'

# (method, target, body): `{i}` is the reserved index, `{d}` date math writing it, `{m}` an
# _mget whose body is in the query string.
TRICKS = [
    # a fragment after the query: ES drops it, so the guard must too
    ("GET", "/*/_search?expand_wildcards=all#", b""),
    ("DELETE", "/*?expand_wildcards=all#", b""),
    ("GET", "/*/_search?expand_wildcards=all#&expand_wildcards=open", b""),
    # ?index= on routes with no index segment
    ("GET", "/_search?index={i}", b""),
    ("GET", "/_count?index={i}", b""),
    ("POST", "/_bulk?index={i}", b'{"delete":{"_id":"titan"}}\n'),
    ("POST", "/_close?index={i}", b""),
    ("PUT", "/_settings?index={i}", UNHIDE),
    ("POST", "/_delete_by_query?index={i}&q=*", b""),
    ("GET", "/_cat/indices?index={i}", b""),
    # empty expressions
    ("GET", "/,/_search?expand_wildcards=all", b""),
    ("GET", "/%2C/_search?expand_wildcards=all", b""),
    ("PUT", "/,/_mapping?expand_wildcards=all", MAPPING),
    ("POST", "/,/_delete_by_query?q=*&expand_wildcards=all", b""),
    # a first segment that starts with `_all,`
    ("DELETE", "/_all,?expand_wildcards=all", b""),
    ("PUT", "/_all,/_block/write?expand_wildcards=all", b""),
    ("POST", "/_all,/_close?expand_wildcards=all", b""),
    # date math that writes the leading dot
    ("GET", "/{d}/_search", b""),
    ("PUT", "/{d}/_doc/titan", WRITE),
    ("DELETE", "/{d}/_doc/titan", b""),
    ("POST", "/{d}/_update/titan", b'{"doc":{"model":"expensive"}}'),
    # un-hiding first, then plain wildcards
    ("PUT", "/_settings?index={i}", UNHIDE),
    ("PUT", "/{i}/_settings", UNHIDE),
    ("PUT", "/_all/_settings?expand_wildcards=all", UNHIDE),
    ("PUT", "/*/_settings?expand_wildcards=open,hidden", b'{"index.blocks.read_only":true}'),
    # a body in the query string
    ("GET", "{m}", b""),
    ("GET", "/_search?source=%7B%7D&source_content_type=application/json", b""),
    # templates that would shape a re-created index, and the delete that would come first
    ("PUT", "/_template/steal", b'{"index_patterns":["{i}*"],"aliases":{"stolen":{}}}'),
    ("PUT", "/_index_template/steal", b'{"index_patterns":[".esp*"],"priority":999}'),
    ("POST", "/_template/steal", b'{"template":".esproxy*"}'),
    ("DELETE", "/{i}", b""),
    ("DELETE", "/.esp*", b""),
    # and more
    ("GET", "/*/_search?a=b;expand_wildcards=all", b""),
    ("GET", "/*/_search?expand_wildcards=%61ll", b""),
    ("GET", "/*/_search?expand_wildcards=open&expand_wildcards=hidden", b""),
    ("GET", "/.*/_search", b""),
    ("GET", "/%2E{j}/_doc/titan", b""),
    ("GET", "/docs,{i}/_search?ignore_unavailable=true", b""),
    ("GET", "/*,-{i}/_search?expand_wildcards=all", b""),
    ("GET", "/remote:{i}/_search", b""),
    ("GET", "/{i}::failures/_search", b""),
    ("GET", "//x/{i}/_doc/titan", b""),
    ("GET", "/./{i}/_doc/titan", b""),
    ("GET", "/x/../{i}/_doc/titan", b""),
    ("GET", "/{i}#/_doc/titan", b""),
    ("GET", "/{i}%zz/_search", b""),
    ("GET", "/_search?q=%G0&index={i}", b""),
    ("POST", "/docs/_clone/{i}", b""),
    ("PUT", "/docs/_alias/{i}", b""),
    ("POST", "/_aliases", b'{"actions":[{"remove_index":{"index":"{i}"}}]}'),
    ("POST", "/_aliases", b'{"actions":[{"add":{"index":".esp*","alias":"peek"}}]}'),
    ("POST", "/_reindex", b'{"source":{"index":"{i}"},"dest":{"index":"stolen"}}'),
    ("POST", "/_reindex", b'{"source":{"index":"docs"},"dest":{"index":"{i}"}}'),
    ("GET", "/_cluster/state/metadata?indices={i}", b""),
    ("GET", "/_resolve/index/*?expand_wildcards=all", b""),
    ("POST", "/*/_forcemerge?expand_wildcards=all&max_num_segments=1", b""),
    ("POST", "/_open?index={i}", b""),
]


def fill(text: str, index: str) -> str:
    return (
        text.replace("{m}", mget_source(index))
        .replace("{d}", date_math(index))
        .replace("{j}", index[1:])
        .replace("{i}", index)
    )


async def test_every_trick_is_refused_and_changes_nothing(guarded, opensearch_url, index_name):
    """One sidecar for all of them (each test would otherwise start its own): every failing trick
    is listed, with what came back.
    """
    failures = []
    for method, target, body in TRICKS:
        before = await index_state(opensearch_url, index_name)
        payload = fill(body.decode(), index_name).encode()
        sent = fill(target, index_name)
        answer = await guarded.send(*request_bytes(method, sent, payload))
        problem = refusal_problem(answer)
        if problem is None and await index_state(opensearch_url, index_name) != before:
            problem = "the index changed"
        if problem is not None:
            failures.append(f"{method} {sent}: {problem}")
    assert not failures, "\n".join(failures)
    assert (await guarded.get(ENDPOINT)).status == 200


def refusal_problem(answer) -> str | None:
    if answer.status != 403:
        return f"status {answer.status}: {answer.body[:200]!r}"
    error = answer.json()["error"]
    if error["type"] != "security_exception" or error["root_cause"][0] != {
        "type": "security_exception",
        "reason": error["reason"],
    }:
        return f"not an ES-shaped refusal: {error}"
    if "] is reserved for esproxy and cannot be used through it: " not in error["reason"]:
        return f"an unexpected reason: {error['reason']}"
    return None


@pytest.mark.parametrize(
    ("options", "body"),
    [
        ({"chunked": True}, b'{"index_patterns":["{i}*"]}'),
        ({"gzipped": True}, b'{"index_patterns":["logs-*"]}'),  # unreadable, so refused
        ({"content_type": "application/yaml"}, b"index_patterns: ['logs-*']"),
        ({}, b'{"index_patterns":["x"],"aliases":{"' + b"a" * 70000 + b'":{}}}'),
    ],
)
async def test_template_bodies_it_cannot_read_are_refused(
    guarded, opensearch_url, index_name, options, body
):
    before = await index_state(opensearch_url, index_name)
    payload = fill(body.decode(), index_name).encode()
    answer = await guarded.send(*request_bytes("PUT", "/_template/steal", payload, **options))
    assert answer.status == 403, answer.body
    assert await index_state(opensearch_url, index_name) == before


async def test_after_a_refused_unhide_plain_wildcards_still_miss_the_index(
    guarded, opensearch_url, index_name
):
    refused = await guarded.send(*request_bytes("PUT", f"/_settings?index={index_name}", UNHIDE))
    assert refused.status == 403
    # `*name*`, not `*`: other tests may leave visible `.esproxy-test-*` indices on the node.
    pattern = f"*{index_name[1:]}*"
    answer = await guarded.send(*request_bytes("GET", f"/{pattern}/_search?size=100"))
    assert answer.status == 200, answer.body
    assert index_name not in {hit["_index"] for hit in answer.json()["hits"]["hits"]}


@pytest.mark.parametrize(
    ("method", "target", "body"),
    [
        ("PUT", "/_template/logs", b'{"index_patterns":["logs-*"]}'),
        ("PUT", "/_index_template/logs", b'{"index_patterns":["logs-*"]}'),
        ("PUT", "/_template/all", b'{"index_patterns":["*"],"order":0}'),
        ("POST", "/_aliases", b'{"actions":[{"add":{"index":"{docs}","alias":"{docs}-a"}}]}'),
        # (the test node has no reindex module, so `_reindex` bodies are checked in test_resolver)
        ("GET", "/{docs}*/_search?q=x#frag;expand_wildcards=all", b""),  # ES ends the query at `#`
        ("GET", "/{docs}/_search?q=n:1#fragment", b""),
        ("GET", "/{docs}/_search?expand_wildcards=open;q=n:1", b""),
        ("PUT", "/{docs}/_settings", b'{"index":{"number_of_replicas":0}}'),
        ("GET", "/%3C{docs}-%7Bnow%2Fd%7D%3E/_search?ignore_unavailable=true", b""),
    ],
)
async def test_ordinary_admin_requests_pass(guarded, opensearch_url, method, target, body):
    docs = f"docs-{guarded.port}"
    await direct(opensearch_url, "PUT", f"/{docs}", {"settings": {"number_of_replicas": 0}})
    await direct(opensearch_url, "PUT", f"/{docs}/_doc/1?refresh=true", {"n": 1})
    head, payload = request_bytes(
        method, target.replace("{docs}", docs), body.replace(b"{docs}", docs.encode())
    )
    answer = await guarded.send(head, payload)
    assert answer.status == 200, answer.body
    for template in ("_template/logs", "_index_template/logs", "_template/all"):
        await direct(opensearch_url, "DELETE", f"/{template}")
