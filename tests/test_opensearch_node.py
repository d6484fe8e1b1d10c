"""Smoke test of the real OpenSearch upstream (tests/opensearch_node.py), over real HTTP."""

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.opensearch_node import OpenSearchNode, OpenSearchNodeError


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def index(opensearch_url: str, http: aiohttp.ClientSession) -> AsyncIterator[str]:
    """A fresh index with no replicas (the single-node cluster stays green); deleted afterwards."""
    name = f"smoke-{uuid.uuid4().hex[:12]}"
    body = {"settings": {"number_of_shards": 1, "number_of_replicas": 0}}
    async with http.put(f"{opensearch_url}/{name}", json=body) as resp:
        assert resp.status == 200, await resp.text()
    yield name
    async with http.delete(f"{opensearch_url}/{name}") as resp:
        assert resp.status == 200, await resp.text()


async def test_root_reports_opensearch_2_19_6(opensearch_url, http):
    async with http.get(f"{opensearch_url}/") as resp:
        assert resp.status == 200
        info = await resp.json()
        # OpenSearch never sends Elasticsearch's product header.
        assert "X-Elastic-Product" not in resp.headers
    assert info["version"]["distribution"] == "opensearch"
    assert info["version"]["number"] == "2.19.6"


async def test_create_refresh_search_and_duplicate_create(opensearch_url, http, index):
    doc_url = f"{opensearch_url}/{index}/_doc/doc-1"
    doc = {"title": "hello opensearch"}

    async with http.put(doc_url, params={"op_type": "create"}, json=doc) as resp:
        assert resp.status == 201, await resp.text()
        created = await resp.json()
    assert created["result"] == "created"
    assert created["_primary_term"] == 1

    async with http.post(f"{opensearch_url}/{index}/_refresh") as resp:
        assert resp.status == 200, await resp.text()

    query = {"query": {"match": {"title": "hello"}}}
    async with http.post(f"{opensearch_url}/{index}/_search", json=query) as resp:
        assert resp.status == 200, await resp.text()
        hits = (await resp.json())["hits"]
    assert hits["total"] == {"value": 1, "relation": "eq"}
    assert [(h["_id"], h["_source"]) for h in hits["hits"]] == [("doc-1", doc)]

    async with http.put(doc_url, params={"op_type": "create"}, json=doc) as resp:
        assert resp.status == 409
        error = await resp.json()
    assert error["error"]["type"] == "version_conflict_engine_exception"


async def test_head_of_missing_index_is_404(opensearch_url, http):
    async with http.head(f"{opensearch_url}/no-such-index-{uuid.uuid4().hex}") as resp:
        assert resp.status == 404


def test_missing_build_is_a_clear_error(tmp_path: Path):
    node = OpenSearchNode(launcher_args=tmp_path / "launcher.args")
    with pytest.raises(OpenSearchNodeError, match="run scripts/setup-opensearch"), node:
        pass
