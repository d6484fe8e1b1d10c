"""The emulator's vector forms: dimensions, normalize and every embedding type, deterministically;
equal inputs give equal vectors in every form, and the quantised forms agree with the float form."""

from __future__ import annotations

import json
import math

import pytest

from tests.bedrock_emulator.harness import COHERE_EN, TITAN_V2

TEXTS = ["binary vectors are small", "int8 vectors are smaller than floats", "a third text"]
COHERE_TYPES = ["float", "int8", "uint8", "binary", "ubinary"]


async def invoke(client, model_id, body):
    response = await client.invoke_model(modelId=model_id, body=json.dumps(body))
    return json.loads(await response["body"].read())


def bits_of(packed, signed):
    """The bits of packed bytes, most significant first."""
    return [
        ((byte + 256 if signed and byte < 0 else byte) >> (7 - i)) & 1
        for byte in packed
        for i in range(8)
    ]


async def cohere_all_types(bedrock, texts):
    request = {"texts": texts, "input_type": "search_document", "embedding_types": COHERE_TYPES}
    return (await invoke(bedrock, COHERE_EN, request))["embeddings"]


async def test_cohere_quantised_forms_agree_with_the_float_form(bedrock):
    forms = await cohere_all_types(bedrock, TEXTS)
    for index in range(len(TEXTS)):
        floats = forms["float"][index]
        assert forms["int8"][index] == [max(-128, min(127, round(v * 127))) for v in floats]
        assert all(0 <= v <= 255 for v in forms["uint8"][index])
        # uint8 is int8 moved up by 128, within one step of rounding.
        assert all(
            abs((u - 128) - i) <= 1
            for u, i in zip(forms["uint8"][index], forms["int8"][index], strict=True)
        )
        positive = [int(v > 0) for v in floats]
        assert bits_of(forms["ubinary"][index], signed=False) == positive
        assert bits_of(forms["binary"][index], signed=True) == positive
        assert len(forms["binary"][index]) == len(floats) // 8


async def test_cohere_each_form_alone_equals_the_same_form_asked_together(bedrock):
    together = await cohere_all_types(bedrock, TEXTS)
    for kind in COHERE_TYPES:
        alone = await invoke(
            bedrock,
            COHERE_EN,
            {"texts": TEXTS, "input_type": "search_document", "embedding_types": [kind]},
        )
        assert alone["embeddings"] == {kind: together[kind]}


async def test_equal_inputs_give_equal_vectors_in_every_form(bedrock):
    first = await cohere_all_types(bedrock, [TEXTS[0], TEXTS[0]])
    again = await cohere_all_types(bedrock, [TEXTS[0]])
    for kind in COHERE_TYPES:
        assert first[kind][0] == first[kind][1] == again[kind][0]
    request = {"inputText": TEXTS[1], "dimensions": 256, "embeddingTypes": ["float", "binary"]}
    assert await invoke(bedrock, TITAN_V2, request) == await invoke(bedrock, TITAN_V2, request)


@pytest.mark.parametrize("dimensions", [256, 512, 1024])
async def test_titan_binary_is_one_bit_per_dimension_of_the_float_form(bedrock, dimensions):
    request = {
        "inputText": TEXTS[1],
        "dimensions": dimensions,
        "embeddingTypes": ["float", "binary"],
    }
    body = await invoke(bedrock, TITAN_V2, request)
    floats, binary = body["embeddingsByType"]["float"], body["embeddingsByType"]["binary"]
    assert len(floats) == len(binary) == dimensions
    assert binary == [int(v > 0) for v in floats]
    assert body["embedding"] == floats


async def test_titan_normalize_false_is_the_same_direction_unscaled(bedrock):
    text = "one two two three three three"
    unit = (await invoke(bedrock, TITAN_V2, {"inputText": text, "dimensions": 512}))["embedding"]
    raw = await invoke(
        bedrock, TITAN_V2, {"inputText": text, "dimensions": 512, "normalize": False}
    )
    length = math.sqrt(sum(v * v for v in raw["embedding"]))
    assert length > 1.5
    assert [v / length for v in raw["embedding"]] == pytest.approx(unit)
