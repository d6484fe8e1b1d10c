"""ES's common parameters on esproxy's own answers: `filter_path`, `format=yaml`, `pretty`, and
no `Server` or `Date` header. The real OpenSearch node is the oracle for filter_path and YAML.
"""

from __future__ import annotations

import json
import uuid

import aiohttp
import pytest
import yaml

from esproxy.web.filter_path import apply_filter_path
from esproxy.web.yaml_output import to_yaml
from tests.user_examples import JSON_HEADERS, TITAN_COMPLETION, TITAN_EMBEDDINGS

EMBEDDINGS = "/_inference/text_embedding/embed"
COMPLETION = "/_inference/completion/chat"


@pytest.fixture
async def endpoints(proxy):
    for path, body in ((EMBEDDINGS, TITAN_EMBEDDINGS), (COMPLETION, TITAN_COMPLETION)):
        response = await proxy.put(path, data=json.dumps(body), headers=JSON_HEADERS)
        assert response.status == 200, await response.text()
    return proxy


def model_of(config):
    return config["service_settings"]["model"]


async def get_json(proxy, target):
    response = await proxy.get(target)
    assert response.status == 200, await response.text()
    return await response.json()


async def test_filter_path_keeps_what_the_paths_name(endpoints):
    assert await get_json(endpoints, "/_inference?filter_path=endpoints.inference_id") == {
        "endpoints": [{"inference_id": "chat"}, {"inference_id": "embed"}]
    }
    assert await get_json(endpoints, "/_inference/embed?filter_path=**.dimensions") == {
        "endpoints": [{"service_settings": {"dimensions": 1024}}]
    }
    assert await get_json(
        endpoints, "/_inference?filter_path=endpoints.*_id,endpoints.service_settings.model"
    ) == {
        "endpoints": [
            {"inference_id": "chat", "service_settings": {"model": model_of(TITAN_COMPLETION)}},
            {"inference_id": "embed", "service_settings": {"model": model_of(TITAN_EMBEDDINGS)}},
        ]
    }
    # Several parameters add up, as ES reads them.
    both = "/_inference/chat?filter_path=endpoints.task_type&filter_path=endpoints.service"
    assert await get_json(endpoints, both) == {
        "endpoints": [{"task_type": "completion", "service": "amazonbedrock"}]
    }
    assert await get_json(endpoints, "/_inference?filter_path=nothing.here") == {}


async def test_filter_path_exclusions(endpoints):
    full = await get_json(endpoints, "/_inference/chat")
    dropped = await get_json(endpoints, "/_inference/chat?filter_path=-endpoints.service_settings")
    assert "service_settings" in full["endpoints"][0]
    expected = {k: v for k, v in full["endpoints"][0].items() if k != "service_settings"}
    assert dropped == {"endpoints": [expected]}
    # Exclusions first, then inclusions.
    mixed = "/_inference/chat?filter_path=-**.model,endpoints.service_settings"
    settings = {k: v for k, v in full["endpoints"][0]["service_settings"].items() if k != "model"}
    assert await get_json(endpoints, mixed) == {"endpoints": [{"service_settings": settings}]}


async def test_filter_path_applies_to_inference_answers_but_not_to_errors(endpoints):
    answer = await endpoints.post(
        EMBEDDINGS + "?filter_path=text_embedding.embedding",
        data=json.dumps({"input": ["a", "b"]}),
        headers=JSON_HEADERS,
    )
    body = await answer.json()
    assert [len(item["embedding"]) for item in body["text_embedding"]] == [1024, 1024]
    missing = await endpoints.get("/_inference/nope?filter_path=status")
    assert missing.status == 404
    assert (await missing.json())["error"]["type"] == "resource_not_found_exception"


async def test_format_yaml(endpoints):
    response = await endpoints.get("/_inference/chat?format=yaml")
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/yaml"
    text = await response.text()
    assert text.startswith('---\nendpoints:\n- inference_id: "chat"\n')
    assert yaml.safe_load(text) == await get_json(endpoints, "/_inference/chat")
    accepted = await endpoints.get("/_inference/chat", headers={"Accept": "application/yaml"})
    assert await accepted.text() == text
    filtered = await endpoints.get("/_inference?format=yaml&filter_path=endpoints.inference_id")
    assert (
        await filtered.text()
        == '---\nendpoints:\n- inference_id: "chat"\n- inference_id: "embed"\n'
    )
    error = await endpoints.get("/_inference/nope?format=yaml")
    assert error.status == 404
    assert yaml.safe_load(await error.text())["error"]["type"] == "resource_not_found_exception"
    vectors = await endpoints.post(
        EMBEDDINGS + "?format=yaml", data='{"input": "a"}', headers=JSON_HEADERS
    )
    assert len(yaml.safe_load(await vectors.text())["text_embedding"][0]["embedding"]) == 1024


async def test_unsupported_formats_are_refused_and_human_and_error_trace_are_accepted(endpoints):
    refused = await endpoints.get("/_inference?format=cbor")
    assert refused.status == 406
    assert await refused.json() == {
        "error": "format [cbor] is not supported by esproxy; use json or yaml",
        "status": 406,
    }
    for query in ("human", "human=true", "error_trace=true", "pretty&human"):
        assert (await endpoints.get(f"/_inference/chat?{query}")).status == 200


@pytest.mark.parametrize(
    "target",
    ["/_inference", "/_inference/nope", "/_esproxy/health", "/_esproxy/ready", "/", "/x/_search"],
)
async def test_own_answers_carry_no_server_or_date_header(proxy, target):
    response = await proxy.get(target)
    assert "Server" not in response.headers
    assert "Date" not in response.headers
    assert response.headers["X-elastic-product"] == "Elasticsearch"


async def test_streams_carry_no_server_or_date_header(endpoints):
    response = await endpoints.post(
        COMPLETION + "/_stream", data='{"input": "hi"}', headers=JSON_HEADERS
    )
    await response.read()
    assert response.status == 200
    assert "Server" not in response.headers and "Date" not in response.headers


@pytest.mark.parametrize("target", ["/_esproxy/helth", "/_esproxy", "/_esproxy/ready/x"])
async def test_the_esproxy_prefix_is_reserved(proxy, target):
    response = await proxy.get(target)
    assert response.status == 400
    assert await response.json() == {
        "error": f"no handler found for uri [{target}] and method [GET]",
        "status": 400,
    }
    wrong = await proxy.post("/_esproxy/health")
    assert wrong.status == 405
    assert wrong.headers["Allow"] == "GET"


# -- the real node as the oracle ---------------------------------------------------------------

FILTERS = [
    "_source",
    "_source.user.name",
    "_source.user.*",
    "_source.*.name",
    "**.name",
    "**",
    "_index,_source.tags",
    "-_source",
    "-_source.user.name",
    "-**.name",
    "-_source.user,_source",
    "_source.nothing",
    "_source.tags.name",
    "*",
    "_s*ce.us*r.n*e",
    "_source.tags",
    "-_source.tags.name",
    "_source.empty,_source.list",
    "-_source.empty",
    "_source.**.city",
    "_source.**",
    "-_source.user.**",
    "found,_id,",
]


@pytest.fixture
async def document(opensearch_url):
    index = f"filter-{uuid.uuid4().hex[:8]}"
    source = {
        "user": {"name": "kim", "age": 40, "address": {"name": "home", "city": "Oslo"}},
        "tags": [{"name": "a", "n": 1}, {"name": "b"}, "plain"],
        "empty": {},
        "list": [],
        "title": 'Quote " and ü and \\ and a long line ' + "x" * 120,
        "ratio": 0.25,
        "flag": True,
        "none": None,
    }
    async with aiohttp.ClientSession() as session:
        # Not indexed, only kept: the source may mix types as a response body does.
        mapping = {"mappings": {"enabled": False}}
        async with session.put(f"{opensearch_url}/{index}", json=mapping) as response:
            assert response.status == 200, await response.text()
        url = f"{opensearch_url}/{index}/_doc/1?refresh=true"
        async with session.put(url, json=source) as response:
            assert response.status == 201, await response.text()
        yield session, f"{opensearch_url}/{index}/_doc/1"
        async with session.delete(f"{opensearch_url}/{index}"):
            pass


@pytest.mark.parametrize("paths", FILTERS)
async def test_filter_path_matches_the_clusters_own(document, paths):
    session, url = document
    async with session.get(url) as response:
        full = await response.json()
    async with session.get(url, params={"filter_path": paths}) as response:
        expected = await response.json()
    assert apply_filter_path(full, [paths]) == expected


async def test_yaml_matches_the_clusters_own(document):
    session, url = document
    async with session.get(url) as response:
        full = await response.json()
    async with session.get(url, params={"format": "yaml"}) as response:
        expected = await response.text()
    assert to_yaml(full).decode() == expected
