"""Label cardinality, the `_cat`-style endpoints view, the separate metrics address and the
switches, against esproxy alone (no cluster) and the emulator."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient, TestServer

from esproxy.settings import Settings
from tests.emulator_control import add_fault
from tests.observability.conftest import log_lines, matching, parse, scrape, value
from tests.ports import free_port
from tests.user_examples import JSON_HEADERS, TITAN_COMPLETION, TITAN_EMBEDDINGS


async def put(client: TestClient, path: str, body: dict[str, Any]) -> None:
    response = await client.put(path, data=json.dumps(body), headers=JSON_HEADERS)
    assert response.status == 200, await response.text()


async def infer(client: TestClient, inference_id: str, text: str = "x") -> int:
    response = await client.post(
        f"/_inference/{inference_id}", data=json.dumps({"input": text}), headers=JSON_HEADERS
    )
    await response.read()
    return response.status


def ids_in(samples: dict[Any, float]) -> set[str]:
    return {dict(labels).get("inference_id", "") for (_, labels) in samples} - {""}


async def test_only_stored_endpoints_get_a_label_and_deleted_ones_lose_theirs(proxy, emulator):
    await put(proxy, "/_inference/completion/chat", TITAN_COMPLETION)
    await put(proxy, "/_inference/text_embedding/vectors", TITAN_EMBEDDINGS)
    assert await infer(proxy, "chat") == 200
    assert await infer(proxy, "vectors") == 200
    for unknown in ("nope-1", "nope-2", "nope-3"):
        assert await infer(proxy, unknown) == 404
    # A PUT whose probe Bedrock refuses stores nothing, so it keeps no series either.
    await add_fault(emulator, code="AccessDeniedException", operation="Converse")
    response = await proxy.put(
        "/_inference/completion/refused", data=json.dumps(TITAN_COMPLETION), headers=JSON_HEADERS
    )
    assert response.status == 400
    samples = await scrape(proxy)
    assert ids_in(samples) == {"chat", "vectors", "_other"}
    others = matching(samples, "esproxy_inference_requests_total", inference_id="_other")
    assert list(others.values()) == [3.0]
    assert dict(next(iter(others)))["status"] == "404"

    response = await proxy.delete("/_inference/chat")
    assert response.status == 200
    samples = await scrape(proxy)
    assert ids_in(samples) == {"vectors", "_other"}
    # Made again under the same id, it starts from zero.
    await put(proxy, "/_inference/completion/chat", TITAN_COMPLETION)
    samples = await scrape(proxy)
    assert value(samples, "esproxy_bedrock_calls_total", **chat_ok()) == 1  # the probe
    assert not matching(samples, "esproxy_inference_requests_total", inference_id="chat")


FORGER = 'job " retries=9'


def chat_ok() -> dict[str, str]:
    return {"inference_id": "chat", "operation": "Converse", "outcome": "ok"}


async def test_endpoints_view_as_a_table_and_as_json(proxy, emulator):
    body = json.loads(json.dumps(TITAN_COMPLETION))
    body["service_settings"]["rate_limit"] = {"requests_per_minute": 1200}
    await put(proxy, "/_inference/completion/chat", body)
    await put(proxy, "/_inference/text_embedding/vectors", TITAN_EMBEDDINGS)
    for _ in range(3):
        assert await infer(proxy, "chat") == 200
    await add_fault(emulator, code="ThrottlingException", operation="Converse")
    assert await infer(proxy, "chat") == 200  # retried

    response = await proxy.get("/_esproxy/endpoints?format=json")
    assert response.status == 200
    rows = await response.json()
    assert [row["id"] for row in rows] == ["chat", "vectors"]
    chat, vectors = rows
    assert chat["task_type"] == "completion"
    assert chat["model"] == "amazon.titan-text-premier-v1:0"
    assert chat["rate_per_min"] == "1200"
    assert chat["requests_5m"] == "4"
    assert chat["throttles_5m"] == "1"
    assert float(chat["p50_ms"]) <= float(chat["p99_ms"])
    assert int(chat["input_tokens"]) > 0 and int(chat["output_tokens"]) > 0
    # Bedrock's default for Titan embeddings on the amazonbedrock service, as ES documents it.
    assert vectors["rate_per_min"] == "240"
    assert vectors["requests_5m"] == "0" and vectors["p50_ms"] == "-"
    assert int(vectors["input_tokens"]) > 0  # the PUT probe

    response = await proxy.get("/_esproxy/endpoints?v")
    assert response.headers["Content-Type"].startswith("text/plain")
    header, *lines = (await response.text()).splitlines()
    assert header.split() == list(rows[0])
    assert [line.split() for line in lines] == [list(row.values()) for row in rows]
    # Columns line up: every value ends (numbers) or starts (text) where its header does.
    assert len({len(line) for line in [header, *lines]}) <= 2
    response = await proxy.get("/_esproxy/endpoints")  # without `v`: the rows alone
    assert [line.split() for line in (await response.text()).splitlines()] == [
        list(row.values()) for row in rows
    ]


async def test_metrics_on_a_separate_address(
    start_proxy: Callable[..., Any], settings_for: Callable[..., Settings]
) -> None:
    port = free_port()
    client = await start_proxy(settings_for(ESPROXY_METRICS_LISTEN=f"127.0.0.1:{port}"))
    await put(client, "/_inference/completion/chat", TITAN_COMPLETION)
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        assert response.status == 200
        samples = parse(await response.text())
    assert value(samples, "esproxy_bedrock_calls_total", **chat_ok()) == 1
    main = await scrape(client)
    assert value(main, "esproxy_bedrock_calls_total", **chat_ok()) == 1


async def test_switched_off(
    start_proxy: Callable[..., Any], settings_for: Callable[..., Settings], tmp_path: Path
) -> None:
    log = tmp_path / "access.log"
    client = await start_proxy(
        settings_for(
            ESPROXY_METRICS_ENABLED="false",
            ESPROXY_LOG_ACCESS="false",
            ESPROXY_LOG_ACCESS_FILE=str(log),
        )
    )
    await put(client, "/_inference/completion/chat", TITAN_COMPLETION)
    response = await client.get("/_esproxy/metrics")
    assert response.status == 404
    # X-Opaque-Id is Elasticsearch behaviour, not observability: it stays on.
    response = await client.get("/_inference/chat", headers={"X-Opaque-Id": "still-here"})
    assert response.headers["X-Opaque-Id"] == "still-here"
    await client.close()
    assert not log.exists()


async def test_text_access_log(
    start_proxy: Callable[..., Any], settings_for: Callable[..., Settings], tmp_path: Path
) -> None:
    log = tmp_path / "access.log"
    client = await start_proxy(settings_for(ESPROXY_LOG_ACCESS_FILE=str(log)))
    await put(client, "/_inference/completion/chat", TITAN_COMPLETION)
    response = await client.post(
        "/_inference/chat?timeout=30s",
        data=json.dumps({"input": "x"}),
        headers={**JSON_HEADERS, "X-Opaque-Id": FORGER, "traceparent": "00-abc-def-01"},
    )
    assert response.status == 200
    assert response.headers["X-Opaque-Id"] == FORGER
    await client.close()
    lines = log.read_text().splitlines()
    assert len(lines) == 2
    put_line, post_line = lines
    assert ' PUT "/_inference/completion/chat" 200 ' in put_line
    assert ' POST "/_inference/chat" 200 ' in post_line
    assert 'inference_id="chat"' in post_line
    # Quoted, so that a client's value cannot pass for another field.
    quoted = 'x_opaque_id="job \\" retries=9"'
    assert quoted in post_line and "retries=" not in post_line.replace(quoted, "")
    assert 'traceparent="00-abc-def-01"' in post_line
    assert "bedrock_request_ids=" in post_line and "timeout" not in post_line


async def test_json_log_fields_of_an_inference_call(
    start_proxy: Callable[..., Any],
    settings_for: Callable[..., Settings],
    tmp_path: Path,
    emulator: TestServer,
) -> None:
    log = tmp_path / "access.log"
    client = await start_proxy(
        settings_for(ESPROXY_LOG_ACCESS_FILE=str(log), ESPROXY_LOG_FORMAT="json")
    )
    await put(client, "/_inference/completion/chat", TITAN_COMPLETION)
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    response = await client.post(
        "/_inference/chat",
        data=json.dumps({"input": "x"}),
        headers={**JSON_HEADERS, "X-Opaque-Id": "job-7", "traceparent": traceparent},
    )
    body = await response.read()
    [_, line] = await log_lines(log, 2)
    assert line["method"] == "POST" and line["path"] == "/_inference/chat"
    assert line["status"] == 200 and line["forwarded"] is False
    assert line["bytes_in"] == len(json.dumps({"input": "x"}))
    assert line["bytes_out"] == len(body)
    assert line["duration_ms"] > 0
    assert line["inference_id"] == "chat"
    assert line["x_opaque_id"] == "job-7" and line["traceparent"] == traceparent
    [request_id] = line["bedrock_request_ids"]
    assert len(request_id) == 36  # the emulator's x-amzn-RequestId, a UUID
    assert line["retries"] == 0 and line["rate_limit_wait_ms"] >= 0


async def test_metrics_and_endpoints_follow_the_ready_details_rule(
    start_proxy: Callable[..., Any], settings_for: Callable[..., Settings]
) -> None:
    """With API keys, only a caller `GET _inference` admits reads them; `[metrics] listen` is
    for the private network and asks nothing."""
    from esproxy.authorization.api_keys import generate_api_key, hash_api_key

    key = generate_api_key()
    port = free_port()
    client = await start_proxy(
        settings_for(
            ESPROXY_AUTH_MODE="api_keys",
            ESPROXY_AUTH_API_KEYS=hash_api_key(key),
            ESPROXY_METRICS_LISTEN=f"127.0.0.1:{port}",
        )
    )
    for path in ("/_esproxy/metrics", "/_esproxy/endpoints?v"):
        response = await client.get(path)
        assert response.status in (401, 403), await response.text()
        assert "esproxy_" not in await response.text()
        response = await client.get(path, headers={"Authorization": f"ApiKey {key}"})
        assert response.status == 200, await response.text()
    response = await client.get("/_esproxy/ready")
    assert response.status == 200
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        assert response.status == 200
