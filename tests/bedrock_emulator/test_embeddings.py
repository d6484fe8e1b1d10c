"""InvokeModel for Titan and Cohere embedding models, through real aiobotocore clients."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from esproxy.bedrock_emulator.embeddings import embed
from tests.bedrock_emulator.harness import COHERE_EN, TITAN_TEXT, TITAN_V1, TITAN_V2, cosine


async def invoke(client, model_id, body):
    response = await client.invoke_model(modelId=model_id, body=json.dumps(body))
    return response, json.loads(await response["body"].read())


def norm(vector):
    return math.sqrt(sum(value * value for value in vector))


async def test_titan_v1_answers_1536_floats_and_token_headers(bedrock):
    response, body = await invoke(bedrock, TITAN_V1, {"inputText": "Hello, search world"})
    assert len(body["embedding"]) == 1536
    assert all(isinstance(value, float) for value in body["embedding"])
    assert body["inputTextTokenCount"] == 4
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-bedrock-input-token-count"] == "4"
    assert int(headers["x-amzn-bedrock-invocation-latency"]) >= 0
    assert response["contentType"] == "application/json"
    assert response["ResponseMetadata"]["RequestId"]


async def test_titan_v1_accepts_only_input_text(bedrock):
    with pytest.raises(bedrock.exceptions.ValidationException) as caught:
        await invoke(bedrock, TITAN_V1, {"inputText": "x", "dimensions": 256})
    assert caught.value.response["Error"]["Message"] == (
        "Malformed input request: #: extraneous key [dimensions] is not permitted, "
        "please reformat your input and try again."
    )


async def test_titan_v2_defaults_to_1024_normalized(bedrock):
    _, body = await invoke(bedrock, TITAN_V2, {"inputText": "vector search"})
    assert len(body["embedding"]) == 1024
    assert norm(body["embedding"]) == pytest.approx(1.0)
    assert body["embeddingsByType"] == {"float": body["embedding"]}


@pytest.mark.parametrize("dimensions", [256, 512, 1024])
async def test_titan_v2_honours_dimensions(bedrock, dimensions):
    _, body = await invoke(bedrock, TITAN_V2, {"inputText": "hi there", "dimensions": dimensions})
    assert len(body["embedding"]) == dimensions


async def test_titan_v2_rejects_other_dimensions(bedrock):
    with pytest.raises(bedrock.exceptions.ValidationException) as caught:
        await invoke(bedrock, TITAN_V2, {"inputText": "x", "dimensions": 300})
    assert caught.value.response["Error"]["Message"] == (
        "Malformed input request: #/dimensions: 300 is not a valid enum value, "
        "please reformat your input and try again."
    )
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


async def test_titan_v2_without_normalize_and_with_binary(bedrock):
    request = {"inputText": "one two two", "normalize": False, "embeddingTypes": ["binary"]}
    _, body = await invoke(bedrock, TITAN_V2, request)
    assert norm(body["embedding"]) > 1.5
    assert set(body["embeddingsByType"]) == {"binary"}
    assert body["embeddingsByType"]["binary"] == [int(v > 0) for v in body["embedding"]]


async def test_titan_requires_input_text_and_caps_its_length(bedrock):
    with pytest.raises(bedrock.exceptions.ValidationException) as caught:
        await invoke(bedrock, TITAN_V2, {})
    assert "#: required key [inputText] not found" in str(caught.value)
    with pytest.raises(bedrock.exceptions.ValidationException) as caught:
        await invoke(bedrock, TITAN_V2, {"inputText": "a" * 50_001})
    assert "expected maxLength: 50000, actual: 50001" in str(caught.value)


async def test_same_text_gives_the_same_vector(bedrock):
    _, first = await invoke(bedrock, TITAN_V2, {"inputText": "The quick brown fox"})
    _, second = await invoke(bedrock, TITAN_V2, {"inputText": "the QUICK brown fox!"})
    assert first["embedding"] == second["embedding"]


async def test_texts_sharing_words_are_closer(bedrock):
    texts = ["the quick brown fox jumps", "a quick brown dog sleeps", "stock market report today"]
    vectors = [(await invoke(bedrock, TITAN_V2, {"inputText": t}))[1]["embedding"] for t in texts]
    assert cosine(vectors[0], vectors[1]) > 0.3
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.2


def test_vectors_do_not_depend_on_the_process_hash_seed():
    script = "from esproxy.bedrock_emulator.embeddings import embed; print(embed('fox den', 64))"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert outputs == {f"{embed('fox den', 64)}\n"}


async def test_cohere_embeds_a_batch(bedrock):
    request = {"texts": ["first text", "second text"], "input_type": "search_document"}
    response, body = await invoke(bedrock, COHERE_EN, request)
    assert body["response_type"] == "embeddings_floats"
    assert body["texts"] == ["first text", "second text"]
    assert [len(vector) for vector in body["embeddings"]] == [1024, 1024]
    assert body["id"]
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-bedrock-input-token-count"] == "4"


async def test_cohere_query_and_document_vectors_match(bedrock):
    texts = ["kNN search demo"]
    _, query = await invoke(bedrock, COHERE_EN, {"texts": texts, "input_type": "search_query"})
    _, doc = await invoke(
        bedrock, "cohere.embed-multilingual-v3", {"texts": texts, "input_type": "search_document"}
    )
    assert query["embeddings"] == doc["embeddings"]


async def test_cohere_embedding_types(bedrock):
    request = {
        "texts": ["typed"],
        "input_type": "clustering",
        "truncate": "END",
        "embedding_types": ["float", "int8", "ubinary"],
    }
    _, body = await invoke(bedrock, COHERE_EN, request)
    assert body["response_type"] == "embeddings_by_type"
    assert set(body["embeddings"]) == {"float", "int8", "ubinary"}
    assert len(body["embeddings"]["int8"][0]) == 1024
    assert len(body["embeddings"]["ubinary"][0]) == 128
    assert all(-128 <= value <= 127 for value in body["embeddings"]["int8"][0])


async def test_cohere_rejects_more_than_96_texts(bedrock):
    request = {"texts": ["t"] * 97, "input_type": "search_document"}
    with pytest.raises(bedrock.exceptions.ValidationException) as caught:
        await invoke(bedrock, COHERE_EN, request)
    assert caught.value.response["Error"]["Message"] == (
        "Malformed input request: #/texts: expected maximum item count: 96, found: 97, "
        "please reformat your input and try again."
    )


async def test_cohere_requires_input_type_and_short_texts(bedrock):
    with pytest.raises(bedrock.exceptions.ValidationException) as caught:
        await invoke(bedrock, COHERE_EN, {"texts": ["x" * 2049]})
    assert caught.value.response["Error"]["Message"] == (
        "Malformed input request: #/texts/0: expected maxLength: 2048, actual: 2049"
        "#: required key [input_type] not found, please reformat your input and try again."
    )


async def test_invoke_model_serves_only_embedding_models(bedrock):
    with pytest.raises(bedrock.exceptions.ValidationException) as caught:
        await invoke(bedrock, TITAN_TEXT, {"inputText": "hi"})
    assert "Converse" in str(caught.value)
    with pytest.raises(bedrock.exceptions.ValidationException) as caught:
        await invoke(bedrock, "amazon.titan-embed-image-v9", {"inputText": "hi"})
    assert caught.value.response["Error"]["Message"] == "The provided model identifier is invalid."


async def test_body_without_json_is_a_validation_error(bedrock):
    with pytest.raises(bedrock.exceptions.ValidationException) as caught:
        await bedrock.invoke_model(modelId=TITAN_V2, body=b"not json")
    assert caught.value.response["Error"]["Message"] == (
        "Malformed input request, please reformat your input and try again."
    )
