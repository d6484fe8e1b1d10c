"""Byte and bit vectors as the cluster's vector fields take them: esproxy's answers go through
forwarded `_bulk` into OpenSearch `knn_vector` fields of `data_type` byte and binary (the
equivalents of ES dense_vector `element_type` byte and bit), and a kNN query finds them."""

from __future__ import annotations

import json
import uuid

import pytest

KEYS = {"access_key": "<aws_access_key>", "secret_key": "<aws_secret_key>", "region": "us-east-1"}
DOCS = [
    "binary quantisation shrinks vectors",
    "the cat sat on the warm mat",
    "stock prices fell sharply today",
]
CASES = [
    # endpoint settings, knn_vector mapping, space type
    (
        {"provider": "cohere", "model": "cohere.embed-english-v3", "embedding_type": "int8"},
        {"data_type": "byte"},
        "l2",
    ),
    (
        {"provider": "cohere", "model": "cohere.embed-english-v3", "embedding_type": "uint8"},
        {"data_type": "byte"},
        "l2",
    ),
    (
        {"provider": "cohere", "model": "cohere.embed-english-v3", "embedding_type": "ubinary"},
        {"data_type": "binary"},
        "hamming",
    ),
    (
        {"provider": "cohere", "model": "cohere.embed-english-v3", "embedding_type": "binary"},
        {"data_type": "binary"},
        "hamming",
    ),
    (
        {
            "provider": "amazontitan",
            "model": "amazon.titan-embed-text-v2:0",
            "embedding_type": "binary",
            "dimensions": 256,
        },
        {"data_type": "binary"},
        "hamming",
    ),
]


async def call(proxy, method, path, body, content_type="application/json"):
    data = body if isinstance(body, bytes) else json.dumps(body)
    response = await proxy.request(method, path, data=data, headers={"Content-Type": content_type})
    answer = await response.json()
    assert response.status in (200, 201), answer
    return answer


@pytest.mark.parametrize(("service", "field", "space"), CASES)
async def test_returned_vectors_index_as_they_are(sidecar, service, field, space):
    endpoint = f"vectors-{uuid.uuid4().hex[:8]}"
    created = await call(
        sidecar,
        "PUT",
        f"/_inference/text_embedding/{endpoint}",
        {"service": "amazonbedrock", "service_settings": {**KEYS, **service}},
    )
    dims = created["service_settings"]["dimensions"]
    index = f"knn-{uuid.uuid4().hex[:8]}"
    mapping = {
        "type": "knn_vector",
        "dimension": dims,  # as the endpoint reports it: bits for bit vectors
        **field,
        "method": {"name": "hnsw", "engine": "lucene", "space_type": space},
    }
    await call(
        sidecar,
        "PUT",
        f"/{index}",
        {
            "settings": {"index": {"knn": True}},
            "mappings": {"properties": {"text": {"type": "keyword"}, "vector": mapping}},
        },
    )
    answer = await call(sidecar, "POST", f"/_inference/{endpoint}", {"input": DOCS})
    key = "text_embedding_bytes" if field["data_type"] == "byte" else "text_embedding_bits"
    vectors = [item["embedding"] for item in answer[key]]
    lines = []
    for number, (text, vector) in enumerate(zip(DOCS, vectors, strict=True)):
        lines.append(json.dumps({"index": {"_index": index, "_id": str(number)}}))
        lines.append(json.dumps({"text": text, "vector": vector}))
    bulk = await call(
        sidecar,
        "POST",
        "/_bulk?refresh=true",
        ("\n".join(lines) + "\n").encode(),
        "application/x-ndjson",
    )
    assert bulk["errors"] is False, bulk
    query_vector = (await call(sidecar, "POST", f"/_inference/{endpoint}", {"input": DOCS[1]}))[
        key
    ][0]["embedding"]
    found = await call(
        sidecar,
        "POST",
        f"/{index}/_search",
        {"size": 1, "query": {"knn": {"vector": {"vector": query_vector, "k": 1}}}},
    )
    assert found["hits"]["hits"][0]["_source"]["text"] == DOCS[1]
