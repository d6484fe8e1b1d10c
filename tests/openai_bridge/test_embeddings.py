"""The embeddings route through the official OpenAI SDK and LangChain, against the emulator."""

from __future__ import annotations

import base64

import numpy as np
import openai
import pytest
from langchain_openai import OpenAIEmbeddings

from tests.openai_bridge.conftest import EMBEDDINGS_ID, es_embeddings


@pytest.fixture
async def sdk(base_url, bridge_key):
    async with openai.AsyncOpenAI(base_url=base_url, api_key=bridge_key, max_retries=0) as client:
        yield client


TEXTS = ["The sky above the port", "was the color of television", "tuned to a dead channel"]


def float32(vectors: list[list[float]]) -> np.ndarray:
    return np.asarray(vectors, dtype=np.float32)


async def test_the_sdk_gets_the_vectors_of_the_inference_api(bridged, sdk, api_key, emulator_usage):
    before = (await emulator_usage())["amazon.titan-embed-text-v2:0"]["input_tokens"]  # the probe
    # The SDK asks for base64 unless told otherwise, and decodes it itself.
    answer = await sdk.embeddings.create(model=EMBEDDINGS_ID, input=TEXTS)
    reported = await emulator_usage()
    expected = await es_embeddings(bridged, api_key, TEXTS)
    assert answer.object == "list"
    assert answer.model == EMBEDDINGS_ID
    assert [item.index for item in answer.data] == [0, 1, 2]
    assert np.array_equal(float32([item.embedding for item in answer.data]), float32(expected))
    assert answer.usage.prompt_tokens == answer.usage.total_tokens
    # Bedrock's own counts, as the emulator reported them for these calls.
    assert (
        answer.usage.prompt_tokens
        == reported["amazon.titan-embed-text-v2:0"]["input_tokens"] - before
    )


async def test_float_and_base64_encodings_carry_the_same_float32_values(sdk):
    as_float = await sdk.embeddings.create(
        model=EMBEDDINGS_ID, input=TEXTS[0], encoding_format="float"
    )
    raw = await sdk.embeddings.with_raw_response.create(
        model=EMBEDDINGS_ID, input=[TEXTS[0]], encoding_format="base64"
    )
    packed = raw.http_response.json()["data"][0]["embedding"]
    decoded = np.frombuffer(base64.b64decode(packed), dtype="<f4")
    assert np.array_equal(decoded, float32([as_float.data[0].embedding])[0])


async def test_langchain_embeds_a_document_list(bridged, sdk, base_url, bridge_key, api_key):
    embedder = OpenAIEmbeddings(
        model=EMBEDDINGS_ID,
        base_url=base_url,
        api_key=bridge_key,
        # The SDK client of the fixture, so that its connections close with the test's loop.
        async_client=sdk.embeddings,
        # Token counting would need OpenAI's tokenizer files; esproxy's models count their own.
        check_embedding_ctx_length=False,
        max_retries=0,
    )
    vectors = await embedder.aembed_documents(TEXTS)
    assert np.array_equal(float32(vectors), float32(await es_embeddings(bridged, api_key, TEXTS)))


async def test_dimensions_equal_to_the_endpoints_are_accepted(bridged, sdk, bridge_key):
    configured = await bridged.get(
        f"/_inference/{EMBEDDINGS_ID}",
        headers={"Authorization": f"Bearer {bridge_key}"},
    )
    assert configured.status == 401  # a bridge key opens the OpenAI routes, not `_inference`
    answer = await sdk.embeddings.create(model=EMBEDDINGS_ID, input=TEXTS[0], dimensions=1024)
    assert len(answer.data[0].embedding) == 1024
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk.embeddings.create(model=EMBEDDINGS_ID, input=TEXTS[0], dimensions=256)
    assert refused.value.body["param"] == "dimensions"
    assert "1024" in refused.value.body["message"]
