"""The requests Elasticsearch's own `openai` service sends, and answers its parsers would take.

Transcribed from elastic/elasticsearch (x-pack/plugin/inference, services/openai): the body is
OpenAiEmbeddingsRequestEntity's (`input`, `model`, then `user` and `dimensions` only when set),
the headers are Content-Type and `Authorization: Bearer`, as Apache's async client sends them.
OpenAiEmbeddingsResponseEntity reads `data[].embedding` (a float array or base64 float32) in array
order and ignores every other field; ErrorMessageResponseEntity reads `error.message`.
"""

from __future__ import annotations

import base64
import json
import struct

import numpy as np

from tests.openai_bridge.conftest import COMPLETION_ID, EMBEDDINGS_ID, es_embeddings

ROUTE = "/_esproxy/openai/v1/embeddings"


def es_headers(key: str, length: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {key}",
        "Content-Length": str(length),
        "Connection": "Keep-Alive",
        "User-Agent": "Apache-HttpAsyncClient/5.2.1 (Java/21.0.5)",
    }


def parse_like_elasticsearch(raw: bytes) -> list[list[float]]:
    """What OpenAiEmbeddingsResponseEntity makes of an answer: one float32 vector per entry."""
    document = json.loads(raw)
    vectors = []
    for entry in document["data"]:
        embedding = entry["embedding"]
        if isinstance(embedding, str):
            packed = base64.b64decode(embedding, validate=True)
            assert len(packed) % 4 == 0
            vectors.append(list(struct.unpack(f"<{len(packed) // 4}f", packed)))
        else:
            assert all(isinstance(value, (int, float)) for value in embedding)
            vectors.append([struct.unpack("<f", struct.pack("<f", v))[0] for v in embedding])
    return vectors


async def post_as_elasticsearch(client, key: str, body: bytes):
    return await client.post(ROUTE, data=body, headers=es_headers(key, len(body)))


async def test_an_ingest_batch_as_elasticsearch_sends_it(bridged, bridge_key, api_key):
    texts = ["first chunk of a document", "second chunk", "third chunk"]
    # ES writes its body with Jackson, field order as in the request entity, no spaces.
    body = json.dumps({"input": texts, "model": EMBEDDINGS_ID}, separators=(",", ":")).encode()
    response = await post_as_elasticsearch(bridged, bridge_key, body)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/json")
    vectors = parse_like_elasticsearch(await response.read())
    expected = await es_embeddings(bridged, api_key, texts)
    assert np.array_equal(np.asarray(vectors, "<f4"), np.asarray(expected, "<f4"))


async def test_user_and_dimensions_set_by_the_user_are_taken(bridged, bridge_key):
    # With `dimensions` in its service settings (as `esproxy bridge create` writes them), ES sends
    # them on every call, and `user` when its task settings name one.
    body = json.dumps(
        {"input": ["a query"], "model": EMBEDDINGS_ID, "user": "kibana", "dimensions": 1024},
        separators=(",", ":"),
    ).encode()
    response = await post_as_elasticsearch(bridged, bridge_key, body)
    assert response.status == 200
    [vector] = parse_like_elasticsearch(await response.read())
    assert len(vector) == 1024


async def test_errors_carry_the_message_elasticsearch_reads(bridged, bridge_key):
    body = json.dumps({"input": ["x"], "model": "missing"}, separators=(",", ":")).encode()
    response = await post_as_elasticsearch(bridged, "esb.bad.key", body)
    # ES's OpenAiResponseHandler treats 401 as final (no retry) and reports `error.message`.
    assert response.status == 401
    message = json.loads(await response.read())["error"]["message"]
    assert isinstance(message, str) and "API key" in message


def completion_body(stream: bool) -> bytes:
    """OpenAiUnifiedChatCompletionRequestEntity for ES's `completion` task: one user message."""
    body: dict[str, object] = {
        "messages": [{"content": "What is Elastic?", "role": "user"}],
        "model": COMPLETION_ID,
        "n": 1,
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body, separators=(",", ":")).encode()


async def test_a_completion_as_elasticsearch_sends_it(bridged, api_key):
    body = completion_body(stream=False)
    response = await bridged.post(
        "/_esproxy/openai/v1/chat/completions", data=body, headers=es_headers(api_key, len(body))
    )
    assert response.status == 200
    # OpenAiChatCompletionResponseEntity: choices[].message.content, a string.
    choices = json.loads(await response.read())["choices"]
    assert [type(choice["message"]["content"]) for choice in choices] == [str]


async def test_a_streamed_completion_as_elasticsearch_reads_it(bridged, api_key):
    body = completion_body(stream=True)
    response = await bridged.post(
        "/_esproxy/openai/v1/chat/completions", data=body, headers=es_headers(api_key, len(body))
    )
    assert response.status == 200
    events = [e for e in (await response.text()).split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    texts = []
    for event in events[:-1]:
        # OpenAiStreamingProcessor needs `choices` in every event and reads delta.content.
        choices = json.loads(event.removeprefix("data: "))["choices"]
        texts += [c["delta"]["content"] for c in choices if "content" in c["delta"]]
    plain = await bridged.post(
        f"/_inference/completion/{COMPLETION_ID}",
        data=json.dumps({"input": "What is Elastic?"}),
        headers={"Content-Type": "application/json", "Authorization": f"ApiKey {api_key}"},
    )
    assert "".join(texts) == (await plain.json())["completion"][0]["result"]
