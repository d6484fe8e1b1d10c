"""The node pool's turn-taking and back-off, and which answers sniffing clients get rewritten."""

from __future__ import annotations

import json

import orjson
import pytest
from yarl import URL

from esproxy.upstream_nodes import (
    NodePool,
    UpstreamNode,
    is_nodes_info,
    publish_address,
    rewrite_http_addresses,
)
from tests.fake_clock import Clock

A, B, C = "http://10.0.0.1:9200", "http://10.0.0.2:9200", "http://10.0.0.3:9200"


@pytest.fixture
def clock() -> Clock:
    return Clock()


def urls_of(pool: NodePool, count: int) -> list[str]:
    return [pool.select().url for _ in range(count)]


def test_node_url_loses_credentials_and_trailing_slash() -> None:
    node = UpstreamNode.parse("https://esproxy:secret@es.internal:9243/prefix/")
    assert (node.url, node.host) == ("https://es.internal:9243/prefix", "es.internal:9243")


def test_nodes_take_turns() -> None:
    assert urls_of(NodePool([A, B, C]), 6) == [A, B, C, A, B, C]


def test_a_dead_node_is_skipped_until_its_backoff_ends(clock: Clock) -> None:
    pool = NodePool([A, B], clock)
    pool.mark_dead(pool.nodes[0])
    assert urls_of(pool, 3) == [B, B, B]
    clock.now += 1.0
    assert set(urls_of(pool, 2)) == {A, B}


def test_backoff_doubles_per_failure_up_to_a_cap(clock: Clock) -> None:
    pool = NodePool([A, B], clock)
    node = pool.nodes[0]
    backoffs = []
    for _ in range(7):
        pool.mark_dead(node)
        backoffs.append(node.dead_until - clock.now)
    assert backoffs == [1, 2, 4, 8, 16, 30, 30]
    pool.mark_alive(node)
    assert (node.failures, node.is_dead(clock.now)) == (0, False)


def test_when_every_node_is_dead_the_first_to_recover_is_tried(clock: Clock) -> None:
    pool = NodePool([A, B], clock)
    pool.mark_dead(pool.nodes[0])
    pool.mark_dead(pool.nodes[0])  # A is out for 2 s, B for 1 s
    pool.mark_dead(pool.nodes[1])
    assert urls_of(pool, 2) == [B, B]


def test_a_single_node_is_always_tried(clock: Clock) -> None:
    pool = NodePool([A], clock)
    pool.mark_dead(pool.nodes[0])
    assert pool.select().url == A


def test_a_pool_needs_a_node() -> None:
    with pytest.raises(ValueError):
        NodePool([])


@pytest.mark.parametrize(
    "path",
    [
        "/_nodes",
        "/_nodes/",
        "/_nodes/http",
        "/_nodes/_all/http",
        "/_nodes/_local/http",
        "/_nodes/node-1,node-2/http,jvm",
        "/_nodes/_local",
        "/_nodes/http?filter_path=nodes.*.http&pretty",
        "/_nodes?pretty",
    ],
)
def test_node_info_paths_are_rewritten(path: str) -> None:
    assert is_nodes_info("GET", path)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("HEAD", "/_nodes/http"),
        ("POST", "/_nodes/reload_secure_settings"),
        ("GET", "/_nodes/stats"),
        ("GET", "/_nodes/stats/http"),
        ("GET", "/_nodes/_local/stats"),
        ("GET", "/_nodes/usage"),
        ("GET", "/_nodes/hot_threads"),
        ("GET", "/_nodes/_local/hot_threads"),
        ("GET", "/_nodes/a/b/c"),
        ("GET", "/_nodesx"),
        ("GET", "/my-index/_nodes"),
        ("GET", "/_cat/nodes"),
    ],
)
def test_other_paths_are_left_alone(method: str, path: str) -> None:
    assert not is_nodes_info(method, path)


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://127.0.0.1:9200/_nodes", "127.0.0.1:9200"),
        ("http://esproxy.local/_nodes", "esproxy.local:80"),
        ("https://esproxy.local/_nodes", "esproxy.local:443"),
        ("http://[::1]:9201/_nodes", "[::1]:9201"),
    ],
)
def test_publish_address_is_where_the_client_reached_esproxy(url: str, address: str) -> None:
    assert publish_address(URL(url)) == address


NODES_INFO = {
    "_nodes": {"total": 2, "successful": 2, "failed": 0},
    "cluster_name": "prod",
    "nodes": {
        "n1": {
            "name": "es-1",
            "transport_address": "10.0.0.1:9300",
            "transport": {"bound_address": ["10.0.0.1:9300"], "publish_address": "10.0.0.1:9300"},
            "http": {
                "bound_address": ["10.0.0.1:9200", "[::1]:9200"],
                "publish_address": "es-1.internal/10.0.0.1:9200",
                "max_content_length_in_bytes": 104857600,
            },
        },
        "n2": {"name": "es-2", "http": {"publish_address": "10.0.0.2:9200"}},
    },
}


def test_http_addresses_point_at_esproxy_and_nothing_else_changes() -> None:
    rewritten = rewrite_http_addresses(orjson.dumps(NODES_INFO), "proxy:9200", pretty=False)
    assert rewritten is not None
    expected = json.loads(json.dumps(NODES_INFO))
    expected["nodes"]["n1"]["http"]["bound_address"] = ["proxy:9200"]
    expected["nodes"]["n1"]["http"]["publish_address"] = "proxy:9200"
    expected["nodes"]["n2"]["http"]["publish_address"] = "proxy:9200"
    assert orjson.loads(rewritten) == expected
    assert b"\n" not in rewritten


def test_pretty_answers_stay_pretty() -> None:
    rewritten = rewrite_http_addresses(orjson.dumps(NODES_INFO), "proxy:9200", pretty=True)
    assert rewritten is not None and rewritten.startswith(b'{\n  "_nodes"')


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"error": "boom"}',
        b'{"nodes": {"n1": {"name": "es-1", "jvm": {"version": "21"}}}}',
        b'{"nodes": {"n1": "odd"}}',
    ],
)
def test_answers_without_http_addresses_are_not_rewritten(body: bytes) -> None:
    assert rewrite_http_addresses(body, "proxy:9200", pretty=False) is None
