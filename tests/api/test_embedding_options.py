"""The embedding options end to end: PUT, the probe, what reaches the emulator, and the answers."""

from __future__ import annotations

import json

import pytest

from esproxy.bedrock_emulator.embeddings import embed, to_bits, to_int8
from tests.user_examples import JSON_HEADERS

KEYS = {"access_key": "<aws_access_key>", "secret_key": "<aws_secret_key>", "region": "us-east-1"}
TITAN_V2 = {"provider": "amazontitan", "model": "amazon.titan-embed-text-v2:0"}
TITAN_V1 = {"provider": "amazontitan", "model": "amazon.titan-embed-text-v1"}
COHERE_V3 = {"provider": "cohere", "model": "cohere.embed-english-v3"}
TEXT = "byte vectors take a quarter of the space"


async def put(proxy, inference_id, **service):
    body = {"service": "amazonbedrock", "service_settings": {**KEYS, **service}}
    response = await proxy.put(
        f"/_inference/text_embedding/{inference_id}", data=json.dumps(body), headers=JSON_HEADERS
    )
    return response.status, await response.json()


async def infer(proxy, inference_id, texts, **extra):
    response = await proxy.post(
        f"/_inference/text_embedding/{inference_id}",
        data=json.dumps({"input": texts, **extra}),
        headers=JSON_HEADERS,
    )
    assert response.status == 200, await response.text()
    return await response.json()


def invoke_bodies(calls):
    return [call["body"] for call in calls if call["operation"] == "InvokeModel"]


def signed(values):
    return [v - 256 if v > 127 else v for v in values]


def packed(bits):
    return signed([int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8)])


async def test_titan_v2_dimensions_and_normalize_reach_bedrock(proxy, emulator_calls):
    status, body = await put(proxy, "small", **TITAN_V2, dimensions=256, normalize=False)
    assert status == 200, body
    service = body["service_settings"]
    assert (service["dimensions"], service["normalize"], service["similarity"]) == (
        256,
        False,
        "cosine",
    )
    assert "element_type" not in service
    answer = await infer(proxy, "small", [TEXT])
    vector = answer["text_embedding"][0]["embedding"]
    assert len(vector) == 256
    assert vector == pytest.approx(embed(TEXT, 256, normalize=False))
    sent = invoke_bodies(await emulator_calls())
    assert sent[-1] == {"inputText": TEXT, "dimensions": 256, "normalize": False}
    # The PUT probe asked for the same dimensions, and GET shows what it recorded.
    assert sent[0]["dimensions"] == 256
    got = await (await proxy.get("/_inference/small")).json()
    assert got["endpoints"][0]["service_settings"]["dimensions"] == 256


async def test_titan_v2_binary_answers_packed_bits_as_es_does(proxy, emulator_calls):
    status, body = await put(proxy, "bits", **TITAN_V2, dimensions=512, embedding_type="binary")
    assert status == 200, body
    service = body["service_settings"]
    assert service["embedding_type"] == "binary"
    assert (service["element_type"], service["dimensions"]) == ("bit", 512)
    assert service["similarity"] == "l2_norm"
    answer = await infer(proxy, "bits", [TEXT, "another"])
    assert list(answer) == ["text_embedding_bits"]
    vectors = [item["embedding"] for item in answer["text_embedding_bits"]]
    assert [len(v) for v in vectors] == [64, 64]
    assert vectors[0] == packed(to_bits(embed(TEXT, 512)))
    assert invoke_bodies(await emulator_calls())[-1]["embeddingTypes"] == ["binary"]


@pytest.mark.parametrize(
    ("kind", "element_type", "length", "dimensions"),
    [
        ("int8", "byte", 1024, 1024),
        ("uint8", "byte", 1024, 1024),
        ("binary", "bit", 128, 1024),
        ("ubinary", "bit", 128, 1024),
        ("float", None, 1024, 1024),
    ],
)
async def test_cohere_embedding_types(
    proxy, emulator_calls, kind, element_type, length, dimensions
):
    status, body = await put(proxy, f"cohere-{kind}", **COHERE_V3, embedding_type=kind)
    assert status == 200, body
    service = body["service_settings"]
    assert service.get("element_type") == element_type
    assert service["dimensions"] == dimensions
    answer = await infer(proxy, f"cohere-{kind}", [TEXT])
    key = {"byte": "text_embedding_bytes", "bit": "text_embedding_bits"}.get(
        element_type, "text_embedding"
    )
    assert list(answer) == [key]
    vector = answer[key][0]["embedding"]
    assert len(vector) == length
    floats = embed(TEXT, 1024)
    if kind == "int8":
        assert vector == to_int8(floats)
    if kind in ("binary", "ubinary"):
        assert vector == packed(to_bits(floats))
    if kind == "uint8":
        assert all(-128 <= v <= 127 for v in vector)
        assert max(abs(u - i) for u, i in zip(vector, to_int8(floats), strict=True)) <= 1
    sent = invoke_bodies(await emulator_calls())[-1]
    assert sent.get("embedding_types") == (None if kind == "float" else [kind])


@pytest.mark.parametrize(
    ("service", "reason"),
    [
        (
            {**TITAN_V1, "dimensions": 256},
            "[service_settings] does not allow the setting [dimensions] for model "
            "[amazon.titan-embed-text-v1]: only Titan Text Embeddings V2 "
            "(amazon.titan-embed-text-v2:0) takes it, as one of [256, 512, 1024]",
        ),
        (
            {**TITAN_V2, "dimensions": 300},
            "[service_settings] Invalid value [300] received. [dimensions] must be one of "
            "[256, 512, 1024] for model [amazon.titan-embed-text-v2:0]",
        ),
        (
            {**TITAN_V2, "embedding_type": "int8"},
            "[service_settings] Invalid value [int8] received. [embedding_type] must be one of "
            "[binary, float] for model [amazon.titan-embed-text-v2:0]",
        ),
        (
            {**TITAN_V1, "embedding_type": "binary"},
            "[service_settings] Invalid value [binary] received. [embedding_type] must be [float] "
            "for model [amazon.titan-embed-text-v1]: [binary] needs Titan Text Embeddings V2 "
            "(amazon.titan-embed-text-v2:0); [binary, int8, ubinary, uint8] need Cohere Embed v3 "
            "or v4 (cohere.embed-english-v3, cohere.embed-multilingual-v3, cohere.embed-v4:0)",
        ),
        (
            {"provider": "cohere", "model": "cohere.embed-english-v2", "embedding_type": "binary"},
            "[service_settings] Invalid value [binary] received. [embedding_type] must be [float] "
            "for model [cohere.embed-english-v2]: [binary] needs Titan Text Embeddings V2 "
            "(amazon.titan-embed-text-v2:0); [binary, int8, ubinary, uint8] need Cohere Embed v3 "
            "or v4 (cohere.embed-english-v3, cohere.embed-multilingual-v3, cohere.embed-v4:0)",
        ),
        (
            {**COHERE_V3, "normalize": True},
            "[service_settings] does not allow the setting [normalize] for model "
            "[cohere.embed-english-v3]: only Titan Text Embeddings V2 "
            "(amazon.titan-embed-text-v2:0) takes it",
        ),
        (
            {**COHERE_V3, "embedding_type": "bits"},
            "[service_settings] Invalid value [bits] received. [embedding_type] must be one of "
            "[binary, float, int8, ubinary, uint8]",
        ),
    ],
)
async def test_invalid_combinations_get_a_400_naming_the_allowed_values(
    proxy, emulator_calls, service, reason
):
    status, body = await put(proxy, "bad", **service)
    assert status == 400
    assert body["error"]["type"] == "validation_exception"
    assert body["error"]["reason"] == f"Validation Failed: 1: {reason};"
    assert await emulator_calls() == []  # refused before any probe
    assert (await proxy.get("/_inference/bad")).status == 404


async def test_element_type_is_reported_not_accepted(proxy):
    status, body = await put(proxy, "bad", **COHERE_V3, element_type="byte")
    assert status == 400
    assert "element_type=byte" in body["error"]["reason"]
