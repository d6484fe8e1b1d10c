"""A known mix of traffic, then the scrape: every counter and histogram count is exact.

The mix, with `[bedrock] max_retries = 1`: successes on a Titan embedding and a Titan completion
endpoint, a throttle that one retry absorbs, throttles that outlast the retry, a Bedrock call that
hangs past the caller's timeout, a streamed completion, a request refused before any call, and two
requests forwarded to the OpenSearch node over a raw socket (so their bytes are known exactly).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from esproxy.observability.prices import DEFAULT_PRICES
from tests.emulator_control import add_fault, control
from tests.observability.conftest import log_lines, matching, scrape, value
from tests.observability.test_access_lines import FIELDS as LINE_FIELDS
from tests.user_examples import JSON_HEADERS, TITAN_COMPLETION, TITAN_EMBEDDINGS

EMBED_MODEL = "amazon.titan-embed-text-v2:0"
CHAT_MODEL = "amazon.titan-text-premier-v1:0"
FIELDS = set(LINE_FIELDS)  # the access log's fields, in order in test_access_lines


def with_rate(body: dict[str, Any]) -> str:
    body = json.loads(json.dumps(body))
    body["service_settings"]["rate_limit"] = {"requests_per_minute": 60000}
    return json.dumps(body)


async def post(client: TestClient, path: str, body: Any, **headers: str) -> tuple[int, str]:
    response = await client.post(path, data=json.dumps(body), headers={**JSON_HEADERS, **headers})
    return response.status, await response.text()


async def raw_exchange(client: TestClient, request: bytes) -> bytes:
    """One request on its own connection, and every byte of the answer until the close."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(request)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    return answer


async def send_mix(client: TestClient, emulator: TestServer) -> dict[str, Any]:
    """The traffic; returns what the test needs to know about the forwarded exchanges."""
    for path, body in (
        ("/_inference/text_embedding/vectors", TITAN_EMBEDDINGS),
        ("/_inference/completion/chat", TITAN_COMPLETION),
    ):
        response = await client.put(path, data=with_rate(body), headers=JSON_HEADERS)
        assert response.status == 200, await response.text()
    for i in range(3):  # Titan embeds one text per call: two calls each
        assert (await post(client, "/_inference/vectors", {"input": [f"a {i}", f"b {i}"]}))[
            0
        ] == 200
    for i in range(2):
        assert (await post(client, "/_inference/chat", {"input": f"question {i}"}))[0] == 200
    await add_fault(emulator, code="ThrottlingException", operation="Converse", count=1)
    assert (await post(client, "/_inference/chat", {"input": "again"}))[0] == 200
    await add_fault(emulator, code="ThrottlingException", operation="InvokeModel", count=2)
    status, text = await post(client, "/_inference/vectors", {"input": "throttled"})
    assert status == 429, text
    await add_fault(emulator, code="Hang", operation="Converse", count=1)
    status, text = await post(client, "/_inference/chat?timeout=1s", {"input": "slow"})
    assert status == 429 and "timeout_exception" in text, text
    status, text = await post(client, "/_inference/chat/_stream", {"input": "a story"})
    assert status == 200 and "event: message" in text, text
    status, text = await post(client, "/_inference/chat", {"input": 5, "extra": 1})
    assert status == 400, text
    health = b"GET /_cluster/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    missing = (
        b"PUT /esproxy-no-such-index/_doc/1?refresh=false HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n"
        b"X-Opaque-Id: fwd-1\r\n"
        b"traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n{]"
    )
    answers = [await raw_exchange(client, health), await raw_exchange(client, missing)]
    assert answers[0].startswith(b"HTTP/1.1 200"), answers[0][:200]
    assert answers[1].startswith(b"HTTP/1.1 4"), answers[1][:200]
    return {
        "bytes_in": len(health) + len(missing),
        "bytes_out": sum(len(answer) for answer in answers),
        "missing_bytes": len(missing),
    }


async def test_every_series_is_exact_after_a_known_mix(
    observed: TestClient, emulator: TestServer, access_log_path: Path
) -> None:
    forwarded = await send_mix(observed, emulator)
    s = await scrape(observed)

    calls = "esproxy_bedrock_calls_total"
    expected_calls = {
        ("vectors", "InvokeModel", "ok"): 7,  # the PUT probe, then 3 x 2 texts
        ("vectors", "InvokeModel", "throttled"): 2,
        ("vectors", "InvokeModel", "retried"): 1,
        ("chat", "Converse", "ok"): 4,  # probe, 2 successes, the retried one
        ("chat", "Converse", "throttled"): 1,
        ("chat", "Converse", "retried"): 1,
        ("chat", "Converse", "timeout"): 1,
        ("chat", "ConverseStream", "ok"): 1,
    }
    found = {
        (dict(k)["inference_id"], dict(k)["operation"], dict(k)["outcome"]): v
        for k, v in matching(s, calls).items()
    }
    assert found == expected_calls

    requests = "esproxy_inference_requests_total"
    found = {
        (dict(k)["inference_id"], dict(k)["task_type"], dict(k)["status"]): v
        for k, v in matching(s, requests).items()
    }
    assert found == {
        ("vectors", "text_embedding", "200"): 3,
        ("vectors", "text_embedding", "429"): 1,
        ("chat", "completion", "200"): 4,  # 2, the retried one and the stream
        ("chat", "completion", "429"): 1,
        ("chat", "completion", "400"): 1,
    }

    duration = "esproxy_inference_request_duration_seconds_count"
    assert value(s, duration, inference_id="vectors", task_type="text_embedding") == 4
    assert value(s, duration, inference_id="chat", task_type="completion") == 6
    call_duration = "esproxy_bedrock_call_duration_seconds_count"
    assert value(s, call_duration, inference_id="vectors", operation="InvokeModel") == 9
    assert value(s, call_duration, inference_id="chat", operation="Converse") == 6
    assert value(s, call_duration, inference_id="chat", operation="ConverseStream") == 1
    # One rate-limit slot per attempt.
    wait = "esproxy_rate_limit_wait_seconds_count"
    assert value(s, wait, inference_id="vectors") == 9
    assert value(s, wait, inference_id="chat") == 7
    assert value(s, "esproxy_rate_limit_queue_depth", inference_id="vectors") == 0
    assert value(s, "esproxy_rate_limit_queue_depth", inference_id="chat") == 0
    # Alone, this process paces each endpoint at its configured rate (60000), cut for the
    # throttling both endpoints met in the mix.
    pace = "esproxy_rate_limit_effective_requests_per_minute"
    assert 0 < value(s, pace, inference_id="vectors") < 60000
    assert 0 < value(s, pace, inference_id="chat") < 60000

    usage = (await control(emulator, "GET", "/_emulator/usage"))["models"]
    tokens = "esproxy_bedrock_tokens_total"
    assert usage[EMBED_MODEL]["input_tokens"] > 0 and usage[CHAT_MODEL]["output_tokens"] > 0
    assert (
        value(s, tokens, inference_id="vectors", direction="input")
        == (usage[EMBED_MODEL]["input_tokens"])
    )
    assert value(s, tokens, inference_id="vectors", direction="output") == 0
    assert (
        value(s, tokens, inference_id="chat", direction="input")
        == (usage[CHAT_MODEL]["input_tokens"])
    )
    assert (
        value(s, tokens, inference_id="chat", direction="output")
        == (usage[CHAT_MODEL]["output_tokens"])
    )
    cost = "esproxy_bedrock_estimated_cost_usd_total"
    chat_price = DEFAULT_PRICES[CHAT_MODEL]
    expected_chat_cost = (
        usage[CHAT_MODEL]["input_tokens"] * chat_price.input_per_1k_tokens
        + usage[CHAT_MODEL]["output_tokens"] * chat_price.output_per_1k_tokens
    ) / 1000
    assert abs((value(s, cost, inference_id="chat") or 0) - expected_chat_cost) < 1e-12
    embed_price = DEFAULT_PRICES[EMBED_MODEL].input_per_1k_tokens
    expected_embed_cost = usage[EMBED_MODEL]["input_tokens"] * embed_price / 1000
    assert abs((value(s, cost, inference_id="vectors") or 0) - expected_embed_cost) < 1e-12

    # Forwarded: spliced exchanges, counted by status class and bytes as they crossed the socket.
    fwd = "esproxy_forwarded_requests_total"
    assert value(s, fwd, status_class="2xx") == 1
    assert value(s, fwd, status_class="4xx") == 1
    assert value(s, fwd, status_class="5xx") == 0
    assert value(s, "esproxy_forwarded_request_bytes_total") == forwarded["bytes_in"]
    assert value(s, "esproxy_forwarded_response_bytes_total") == forwarded["bytes_out"]
    assert all(v == 0 for v in matching(s, "esproxy_upstream_errors_total").values())
    nodes = matching(s, "esproxy_upstream_node_up")
    assert list(nodes.values()) == [1.0]
    assert value(s, "process_cpu_seconds_total") is not None
    assert value(s, "process_resident_memory_bytes") is not None

    # The access log: one JSON line per request, forwarded ones included.
    lines = await log_lines(access_log_path, 15)  # 12 _inference calls, the scrape, 2 forwarded
    assert len(lines) == 15
    for line in lines:
        assert set(line) == FIELDS, line
        assert "?" not in line["path"]
    forwarded_lines = [line for line in lines if line["forwarded"]]
    assert [(line["method"], line["path"]) for line in forwarded_lines] == [
        ("GET", "/_cluster/health"),
        ("PUT", "/esproxy-no-such-index/_doc/1"),
    ]
    assert forwarded_lines[1]["x_opaque_id"] == "fwd-1"
    assert forwarded_lines[1]["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c")
    assert forwarded_lines[1]["bytes_in"] == forwarded["missing_bytes"]
    # Timed finer than uvloop's whole-millisecond clock: a spliced exchange takes well under 1 ms.
    assert all(line["duration_ms"] > 0 for line in forwarded_lines)
    assert any(line["duration_ms"] != round(line["duration_ms"]) for line in forwarded_lines)
    retried = [line for line in lines if line["retries"]]
    assert [(line["inference_id"], line["status"]) for line in retried] == [
        ("chat", 200),
        ("vectors", 429),
    ]
    assert all(len(line["bedrock_request_ids"]) == 2 for line in retried)
    streamed = [line for line in lines if line["path"] == "/_inference/chat/_stream"]
    assert len(streamed) == 1 and streamed[0]["status"] == 200
    assert len(streamed[0]["bedrock_request_ids"]) == 1


async def test_requests_the_app_forwards_count_and_log_as_forwarded(
    observed: TestClient, access_log_path: Path
) -> None:
    """`_nodes/http` is forwarded by aiohttp (its addresses are rewritten), not spliced."""
    response = await observed.get("/_nodes/http", headers={"X-Opaque-Id": "sniff-1"})
    body = await response.read()
    assert response.status == 200
    assert response.headers["X-Opaque-Id"] == "sniff-1"
    s = await scrape(observed)
    assert value(s, "esproxy_forwarded_requests_total", status_class="2xx") == 1
    assert value(s, "esproxy_forwarded_response_bytes_total") == len(body)  # body only here
    [line, _] = await log_lines(access_log_path, 2)  # and the scrape's
    assert (line["path"], line["forwarded"], line["status"]) == ("/_nodes/http", True, 200)
    assert line["x_opaque_id"] == "sniff-1" and line["bytes_out"] == len(body)


async def test_connections_lent_taken_back_and_kept_are_counted(observed: TestClient) -> None:
    handoffs = "esproxy_connection_handoffs_total"
    before = matching(await scrape(observed), handoffs)  # its connection stays lent from here
    reader, writer = await asyncio.open_connection("127.0.0.1", observed.port)
    host = b"Host: esproxy.test\r\n\r\n"
    inference, health = b"GET /_inference/_all HTTP/1.1\r\n" + host, b"GET / HTTP/1.1\r\n" + host
    chunked = (
        b"POST /_count HTTP/1.1\r\nHost: esproxy.test\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    )
    writer.write(inference + health + inference + health + inference + chunked)
    for _ in range(6):
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200 OK"), head
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
    writer.close()
    await writer.wait_closed()
    after = matching(await scrape(observed), handoffs)
    counted = {dict(labels)["kind"]: after[labels] - before[labels] for labels in after}
    assert counted == {"lent": 3, "taken_back": 2, "kept": 1}
