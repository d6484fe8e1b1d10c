"""The HTTP surface around the endpoints: fallbacks, media types, root and no-upstream answers."""

from __future__ import annotations

import asyncio
import gzip
import json

import pytest

from tests.user_examples import JSON_HEADERS, TITAN_COMPLETION

COMPAT_9 = "application/vnd.elasticsearch+json; compatible-with=9"


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        (
            "PATCH",
            "/_inference/my-id",
            405,
            "Incorrect HTTP method for uri [/_inference/my-id] and method [PATCH], "
            "allowed: [GET, POST, PUT, DELETE]",
        ),
        (
            "POST",
            "/_inference",
            405,
            "Incorrect HTTP method for uri [/_inference] and method [POST], allowed: [GET]",
        ),
        (
            "GET",
            "/_inference/a/b/c/d",
            400,
            "no handler found for uri [/_inference/a/b/c/d] and method [GET]",
        ),
    ],
)
async def test_unknown_inference_requests_are_answered_not_forwarded(
    proxy, method, path, status, error
):
    response = await proxy.request(method, path)
    assert response.status == status
    assert await response.json() == {"error": error, "status": status}
    assert response.headers["X-Elastic-Product"] == "Elasticsearch"


async def test_unknown_task_type_in_path(proxy):
    response = await proxy.get("/_inference/bad/my-id")
    assert response.status == 400
    assert (await response.json())["error"]["reason"] == "Unknown task_type [bad]"


async def test_unrecognized_query_parameter_is_rejected_with_a_hint(proxy):
    response = await proxy.get("/_inference?timout=1s")
    assert response.status == 400
    body = await response.json()
    assert body["error"]["type"] == "illegal_argument_exception"
    assert body["error"]["reason"] == (
        "request [/_inference] contains unrecognized parameter: [timout]"
    )


async def test_compat_media_type_is_answered_in_kind(proxy):
    headers = {"Accept": COMPAT_9, "Content-Type": COMPAT_9}
    response = await proxy.put(
        "/_inference/completion/compat", data=json.dumps(TITAN_COMPLETION), headers=headers
    )
    assert response.status == 200
    assert (
        response.headers["Content-Type"] == "application/vnd.elasticsearch+json;compatible-with=9"
    )
    missing = await proxy.get("/_inference/nope", headers={"Accept": COMPAT_9})
    assert missing.headers["Content-Type"] == "application/vnd.elasticsearch+json;compatible-with=9"


async def test_gzip_request_bodies_are_accepted(proxy):
    body = gzip.compress(json.dumps(TITAN_COMPLETION).encode())
    headers = {**JSON_HEADERS, "Content-Encoding": "gzip"}
    response = await proxy.put("/_inference/completion/zipped", data=body, headers=headers)
    assert response.status == 200


async def test_truncated_gzip_is_a_400(proxy):
    body = gzip.compress(json.dumps(TITAN_COMPLETION).encode())[:-12]
    headers = {**JSON_HEADERS, "Content-Encoding": "gzip"}
    response = await proxy.put("/_inference/completion/zipped", data=body, headers=headers)
    assert response.status == 400
    assert (await proxy.get("/_inference/zipped")).status == 404


async def test_missing_content_type_is_es_406(proxy):
    response = await proxy.put(
        "/_inference/completion/x",
        data=json.dumps(TITAN_COMPLETION).encode(),
        headers={"Content-Type": "text/plain"},
    )
    assert response.status == 406
    assert await response.json() == {
        "error": "Content-Type header [text/plain] is not supported",
        "status": 406,
    }


async def test_root_answers_like_elasticsearch_without_upstream(proxy):
    response = await proxy.get("/")
    assert response.status == 200
    assert response.headers["X-Elastic-Product"] == "Elasticsearch"
    body = await response.json()
    assert body["tagline"] == "You Know, for Search"
    assert body["version"]["number"].startswith("9.")
    head = await proxy.head("/")
    assert head.status == 200
    assert head.headers["X-Elastic-Product"] == "Elasticsearch"


async def test_other_paths_say_no_upstream_is_configured(proxy):
    response = await proxy.get("/my-index/_search")
    assert response.status == 400
    body = await response.json()
    assert body["status"] == 400
    assert "no upstream cluster is configured" in body["error"]["reason"]
    assert response.headers["X-Elastic-Product"] == "Elasticsearch"


async def test_pretty_output_is_jackson_style_like_es(proxy):
    response = await proxy.get("/_inference?pretty")
    assert await response.text() == '{\n  "endpoints" : [ ]\n}\n'
    response = await proxy.get("/_inference/nope?pretty")
    assert (await response.text()).startswith(
        '{\n  "error" : {\n    "root_cause" : [\n      {\n        "type" : "resource_not_found'
    )


async def test_a_stalled_body_gets_a_408_and_frees_the_handler(start_proxy, settings_for):
    proxy = await start_proxy(settings_for(ESPROXY_SERVER_BODY_TIMEOUT_SECONDS="0.5"))
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    writer.write(
        b"PUT /_inference/completion/slow HTTP/1.1\r\nHost: x\r\n"
        b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"serv'
    )
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(4096), 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408")
    assert b'"status":408' in answer
    assert (await proxy.get("/_inference/slow")).status == 404
