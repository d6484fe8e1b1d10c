"""The same request straight to OpenSearch and through the forwarder: same status, headers, bytes.

Where a request changes state, each side gets its own index, named so both names have one length.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import re
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient

from tests.upstream.conftest import JSON, Exchange, base_of, exchange

NDJSON = {"Content-Type": "application/x-ndjson"}
INDEX_SETTINGS = orjson.dumps({"settings": {"number_of_shards": 1, "number_of_replicas": 0}})
BULK_FILTER = "filter_path=errors,items.*.status,items.*.result,items.*._id"
SEARCH = "/_search?filter_path=hits.total,hits.hits._id,hits.hits._source&sort=n:asc"


class Sides:
    """Sends a request straight to the node and through esproxy, and compares the answers."""

    def __init__(self, direct: aiohttp.ClientSession, node: str, forwarder: TestClient[Any, Any]):
        self.direct, self.node, self.forwarder = direct, node, forwarder

    async def straight(self, method: str, path: str, **kwargs: Any) -> Exchange:
        return await exchange(self.direct, self.node, method, path, **kwargs)

    async def proxied(self, method: str, path: str, **kwargs: Any) -> Exchange:
        return await exchange(
            self.forwarder.session, base_of(self.forwarder), method, path, **kwargs
        )

    async def same(self, method: str, path: str, **kwargs: Any) -> Exchange:
        """Both answers to an identical request, which must be identical."""
        straight = await self.straight(method, path, **kwargs)
        assert await self.proxied(method, path, **kwargs) == straight
        return straight

    async def alike(self, method: str, path: str, **kwargs: Any) -> Exchange:
        """`path` holds `{index}`: `-d` straight, `-p` proxied; answers equal but for that name."""
        straight = await self.straight(method, path.format(index=f"{INDEX}-d"), **kwargs)
        proxied = await self.proxied(method, path.format(index=f"{INDEX}-p"), **kwargs)
        assert proxied == with_index(straight, f"{INDEX}-d", f"{INDEX}-p")
        return proxied


INDEX = "fwd-identity"


def with_index(answer: Exchange, old: str, new: str) -> Exchange:
    body = answer.body.replace(old.encode(), new.encode())
    return Exchange(answer.status, answer.headers, body)


def bulk_body(count: int) -> bytes:
    lines = []
    for n in range(count):
        lines.append(orjson.dumps({"index": {"_id": f"doc-{n}"}}))
        lines.append(orjson.dumps({"n": n, "title": f"quick brown fox {n}", "tags": ["a", "b"]}))
    return b"\n".join(lines) + b"\n"


async def test_requests_and_answers_are_byte_identical(
    direct: aiohttp.ClientSession, opensearch_url: str, forwarder: TestClient[Any, Any]
) -> None:
    sides = Sides(direct, opensearch_url, forwarder)
    created = await sides.alike("PUT", "/{index}", data=INDEX_SETTINGS, headers=JSON)
    assert created.status == 200

    bulk = await sides.alike(
        "POST", f"/{{index}}/_bulk?refresh=true&{BULK_FILTER}", data=bulk_body(50), headers=NDJSON
    )
    assert (bulk.status, orjson.loads(bulk.body)["errors"]) == (200, False)

    gzipped = {**NDJSON, "Content-Encoding": "gzip"}
    bulk = await sides.alike(
        "POST",
        f"/{{index}}/_bulk?refresh=true&{BULK_FILTER}",
        data=gzip.compress(bulk_body(60)),
        headers=gzipped,
    )
    assert (bulk.status, len(orjson.loads(bulk.body)["items"])) == (200, 60)

    found = await sides.alike("GET", "/{index}" + SEARCH + "&q=title:qu*&size=3")
    assert orjson.loads(found.body)["hits"]["total"] == {"value": 60, "relation": "eq"}
    query = orjson.dumps({"query": {"range": {"n": {"gte": 57}}}})
    found = await sides.alike("POST", "/{index}" + SEARCH, data=query, headers=JSON)
    assert [hit["_id"] for hit in orjson.loads(found.body)["hits"]["hits"]] == [
        "doc-57",
        "doc-58",
        "doc-59",
    ]

    exists = await sides.alike("HEAD", "/{index}")
    assert (exists.status, exists.body) == (200, b"")

    unchanged = await sides.same("GET", f"/{INDEX}-d/_doc/doc-3")
    assert orjson.loads(unchanged.body)["_source"]["n"] == 3


async def test_head_on_a_missing_index_keeps_404_and_content_length(
    direct: aiohttp.ClientSession, opensearch_url: str, forwarder: TestClient[Any, Any]
) -> None:
    missing = await Sides(direct, opensearch_url, forwarder).same("HEAD", "/fwd-no-such-index")
    assert (missing.status, missing.body) == (404, b"")
    assert int(missing.header("Content-Length") or 0) > 0  # the length a GET's body would have


async def test_errors_pass_through_as_the_node_wrote_them(
    direct: aiohttp.ClientSession, opensearch_url: str, forwarder: TestClient[Any, Any]
) -> None:
    sides = Sides(direct, opensearch_url, forwarder)
    not_found = await sides.same("GET", "/fwd-no-such-index/_doc/1")
    assert not_found.status == 404
    assert orjson.loads(not_found.body)["error"]["type"] == "index_not_found_exception"

    bad_name = await sides.same("PUT", "/Fwd-Upper", data=INDEX_SETTINGS, headers=JSON)
    assert bad_name.status == 400
    assert orjson.loads(bad_name.body)["error"]["type"] == "invalid_index_name_exception"

    bad_json = await sides.same("POST", "/fwd-no-such-index/_search", data=b"{", headers=JSON)
    assert bad_json.status in (400, 500)

    no_handler = await sides.same("DELETE", "/_cluster/health")
    assert no_handler.status == 405


async def test_odd_encodings_in_path_and_query_reach_the_node_unchanged(
    direct: aiohttp.ClientSession, opensearch_url: str, forwarder: TestClient[Any, Any]
) -> None:
    sides = Sides(direct, opensearch_url, forwarder)
    for index in ("fwd-odd-a", "fwd-odd-b"):
        await sides.straight("PUT", f"/{index}", data=INDEX_SETTINGS, headers=JSON)
    # `%2F` decoded on the way would make `/_doc/a/b...`: another route, and an error.
    odd_id = "a%2Fb%20c%25d%2Be"
    stored = await sides.proxied(
        "PUT", f"/fwd-odd-a/_doc/{odd_id}?refresh=true", data=b'{"n": 1}', headers=JSON
    )
    assert stored.status == 201, stored.body
    fetched = await sides.same("GET", f"/fwd-odd-a/_doc/{odd_id}?_source_includes=n%2Cx")
    assert orjson.loads(fetched.body)["_id"] == "a/b c%d+e"

    both = await sides.same("GET", "/fwd-odd-a%2Cfwd-odd-b/_search?filter_path=hits.total&q=n:1")
    assert orjson.loads(both.body) == {"hits": {"total": {"value": 1, "relation": "eq"}}}
    listed = await sides.same("GET", "/_cat/indices/fwd-odd-*?h=index&s=index")
    assert listed.body == b"fwd-odd-a\nfwd-odd-b\n"


async def test_gzip_answers_come_back_still_compressed(
    direct: aiohttp.ClientSession, opensearch_url: str, forwarder: TestClient[Any, Any]
) -> None:
    sides = Sides(direct, opensearch_url, forwarder)
    answer = await sides.same(
        "GET", "/?filter_path=version.number,tagline", headers={"Accept-Encoding": "gzip"}
    )
    assert answer.header("Content-Encoding") == "gzip"
    assert int(answer.header("Content-Length") or 0) == len(answer.body)
    assert orjson.loads(gzip.decompress(answer.body))["version"] == {"number": "2.19.6"}


async def test_x_opaque_id_is_echoed(
    direct: aiohttp.ClientSession, opensearch_url: str, forwarder: TestClient[Any, Any]
) -> None:
    answer = await Sides(direct, opensearch_url, forwarder).same(
        "GET", "/_cluster/health?filter_path=status", headers={"X-Opaque-Id": "esproxy-job-7"}
    )
    assert answer.header("X-Opaque-Id") == "esproxy-job-7"


async def test_absolute_form_targets_and_expect_continue_are_forwarded(
    forwarder: TestClient[Any, Any],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", forwarder.port)
    writer.write(
        b"GET http://esproxy.example/_cluster/health?filter_path=cluster_name HTTP/1.1\r\n"
        b"Host: esproxy.example\r\nConnection: close\r\n\r\n"
    )
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.endswith(b'{"cluster_name":"esproxy-test"}')

    response = await forwarder.post(
        "/fwd-expect/_doc?refresh=true", data=b'{"n": 1}', headers=JSON, expect100=True
    )
    assert response.status == 201


async def test_each_forwarded_request_logs_one_debug_line(
    forwarder: TestClient[Any, Any], opensearch_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="esproxy.upstream")
    await forwarder.get("/_cluster/health?filter_path=status")
    (line,) = [r for r in caplog.records if r.name == "esproxy.upstream"]
    assert line.levelno == logging.DEBUG
    pattern = (
        rf"GET /_cluster/health\?filter_path=status -> 200 in \d+\.\d\d ms from {opensearch_url}"
    )
    assert re.fullmatch(pattern, line.getMessage())
