"""POST inference over HTTP: embeddings and completions from the emulator through real SigV4."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.user_examples import JSON_HEADERS, TITAN_COMPLETION, TITAN_EMBEDDINGS

EMBEDDINGS = "/_inference/text_embedding/amazon_bedrock_embeddings"
COMPLETION = "/_inference/completion/amazon_bedrock_completion"


@pytest.fixture
async def endpoints(proxy):
    for path, body in ((EMBEDDINGS, TITAN_EMBEDDINGS), (COMPLETION, TITAN_COMPLETION)):
        response = await proxy.put(path, data=json.dumps(body), headers=JSON_HEADERS)
        assert response.status == 200, await response.text()
    return proxy


async def post(proxy, path, body, **kwargs):
    return await proxy.post(path, data=json.dumps(body), headers=JSON_HEADERS, **kwargs)


def is_shortest_float32(value: float) -> bool:
    """True when the value printed is the shortest text of some float32, as ES prints vectors."""
    return float(str(np.float32(value))) == value


async def test_three_titan_inputs_give_three_1024_float_vectors_in_order(endpoints):
    texts = ["first text about cats", "second text about dogs", "third text about fish"]
    response = await post(endpoints, EMBEDDINGS, {"input": texts})
    assert response.status == 200
    vectors = [item["embedding"] for item in (await response.json())["text_embedding"]]
    assert [len(v) for v in vectors] == [1024, 1024, 1024]
    assert all(is_shortest_float32(x) for v in vectors for x in v)
    for text, vector in zip(texts, vectors, strict=True):
        single = await post(endpoints, EMBEDDINGS, {"input": text})
        assert (await single.json())["text_embedding"][0]["embedding"] == vector


async def test_similar_texts_get_similar_vectors(endpoints):
    texts = ["the quick brown fox", "a quick brown fox jumps", "quarterly tax report"]
    body = await (await post(endpoints, EMBEDDINGS, {"input": texts})).json()
    a, b, c = (item["embedding"] for item in body["text_embedding"])

    def cosine(x, y):
        dot = sum(p * q for p, q in zip(x, y, strict=True))
        return dot / math.sqrt(sum(p * p for p in x) * sum(q * q for q in y))

    assert cosine(a, b) > cosine(a, c)


async def test_generic_route_without_task_type(endpoints):
    response = await post(endpoints, "/_inference/amazon_bedrock_embeddings", {"input": ["x"]})
    assert response.status == 200
    assert len((await response.json())["text_embedding"]) == 1


async def test_completion_returns_text_and_sends_max_tokens_64(endpoints, emulator_calls):
    response = await post(endpoints, COMPLETION, {"input": "What is Elastic?"})
    assert response.status == 200
    body = await response.json()
    assert list(body) == ["completion"]
    assert isinstance(body["completion"][0]["result"], str) and body["completion"][0]["result"]
    converse = [c for c in await emulator_calls() if c["operation"] == "Converse"][-1]
    assert converse["body"]["inferenceConfig"] == {"maxTokens": 64}
    assert converse["body"]["messages"] == [
        {"role": "user", "content": [{"text": "What is Elastic?"}]}
    ]


async def test_request_task_settings_override_for_one_call(endpoints, emulator_calls):
    body = {"input": "hi", "task_settings": {"temperature": 0.5, "max_new_tokens": 8}}
    assert (await post(endpoints, COMPLETION, body)).status == 200
    converse = [c for c in await emulator_calls() if c["operation"] == "Converse"][-1]
    assert converse["body"]["inferenceConfig"] == {"temperature": 0.5, "maxTokens": 8}


async def test_wrong_task_type_in_path(endpoints):
    response = await post(
        endpoints, "/_inference/completion/amazon_bedrock_embeddings", {"input": "x"}
    )
    assert response.status == 400
    assert (await response.json())["error"]["reason"] == (
        "Incompatible task_type, the requested type [completion] does not match the model type "
        "[text_embedding]"
    )


async def test_unknown_endpoint(endpoints):
    response = await post(endpoints, "/_inference/completion/nope", {"input": "x"})
    assert response.status == 404
    assert (await response.json())["error"]["reason"] == "Inference endpoint not found [nope]"


async def test_timeout_gives_es_timeout_error(start_proxy, settings_for, emulator):
    proxy = await start_proxy()
    path = "/_inference/completion/slow"
    assert (
        await proxy.put(path, data=json.dumps(TITAN_COMPLETION), headers=JSON_HEADERS)
    ).status == 200
    async with proxy.session.post(
        emulator.make_url("/_emulator/faults"),
        json={"status": 200, "code": "Hang", "message": "hang", "count": 1, "hang_ms": 3000},
    ) as fault:
        assert fault.status < 300
    response = await post(proxy, path + "?timeout=200ms", {"input": "x"})
    assert response.status == 429
    body = await response.json()
    assert body["error"]["type"] == "timeout_exception"
    assert body["error"]["reason"] == "Request timed out waiting to be sent after [200ms]"


async def test_empty_body_is_required(endpoints):
    response = await endpoints.post(COMPLETION, headers=JSON_HEADERS)
    assert response.status == 400
    body = await response.json()
    assert (body["error"]["type"], body["error"]["reason"]) == (
        "parse_exception",
        "request body is required",
    )


async def test_bad_inputs_get_es_messages(endpoints):
    response = await post(endpoints, COMPLETION, {"input": []})
    assert response.status == 400
    assert (await response.json())["error"]["reason"] == (
        "Validation Failed: 1: Field [input] cannot be an empty array;"
    )


async def test_a_body_nested_too_deep_gets_jacksons_exact_text(endpoints):
    body = '{"input": ' + "[" * 5000 + "]" * 5000 + "}"
    response = await endpoints.post(COMPLETION, data=body, headers=JSON_HEADERS)
    assert response.status == 400
    reason = (
        "Document nesting depth exceeds the maximum allowed (1000, from "
        "`StreamReadConstraints.getMaxNestingDepth()`)"
    )
    cause = {"type": "x_content_parse_exception", "reason": reason}
    assert await response.json() == {"error": {"root_cause": [cause], **cause}, "status": 400}
