"""Drive one installed elasticsearch-py through every `inference` call and print what a user sees.

Usage: `<client venv>/bin/python drive_python.py URL`. Imports only the standard library and
`elasticsearch`, so the same file runs under the 8.x and the 9.x client. Each step prints either
`{"ok": body, ...}` or `{"error": {class, status, message, body}, ...}` together with the status,
`X-Elastic-Product` and `Content-Type` of the response it came from. Exceptions a user would not
expect from a step (connection errors, bad JSON) end the run with a non-zero exit instead.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import elasticsearch
from elasticsearch import ApiError, Elasticsearch, TransportError

# Above esproxy's own 120 s completion timeout, so its error reaches the caller first.
REQUEST_TIMEOUT = 150
BEDROCK = {
    "access_key": "<aws_access_key>",
    "secret_key": "<aws_secret_key>",
    "region": "us-east-1",
    "provider": "amazontitan",
}
EMBEDDINGS = {
    "service": "amazonbedrock",
    "service_settings": {**BEDROCK, "model": "amazon.titan-embed-text-v2:0"},
}
COMPLETION = {
    "service": "amazonbedrock",
    "service_settings": {**BEDROCK, "model": "amazon.titan-text-premier-v1:0"},
}
# The second key pair the test's emulator accepts.
ROTATED_KEYS = {"access_key": "<rotated_access_key>", "secret_key": "<rotated_secret_key>"}
JSON_HEADERS = {"accept": "application/json", "content-type": "application/json"}
COMPAT_7 = "application/vnd.elasticsearch+json; compatible-with=7"


def shrink(body: Any) -> Any:
    """Vectors become their lengths: the output stays readable and the shape stays checkable."""
    if isinstance(body, dict):
        return {
            key: len(value) if key == "embedding" and isinstance(value, list) else shrink(value)
            for key, value in body.items()
        }
    if isinstance(body, list):
        return [shrink(item) for item in body]
    return body


def headers_of(meta: Any) -> dict[str, Any]:
    return {
        "status": meta.status,
        "product": meta.headers.get("x-elastic-product"),
        "content_type": meta.headers.get("content-type"),
        "opaque_id": meta.headers.get("x-opaque-id"),
    }


def run(steps: dict[str, Any], name: str, call: Callable[[], Any]) -> None:
    try:
        response = call()
    except ApiError as error:  # UnsupportedProductError is one too
        steps[name] = {
            "error": {
                "class": type(error).__name__,
                "status": error.meta.status,
                "message": error.message,
                "body": error.body,
                "str": str(error),
            },
            **headers_of(error.meta),
        }
        return
    if not hasattr(response, "meta"):  # ping() answers only True or False
        steps[name] = {"ok": response}
        return
    steps[name] = {"ok": shrink(response.body), **headers_of(response.meta)}


def main(url: str) -> dict[str, Any]:
    def client(**options: Any) -> Elasticsearch:
        # The configuration the README recommends. Sniffing stays off (the default). 429 is not
        # retried: esproxy answers Bedrock throttling and its own timeouts with it, and the client
        # would re-send those calls at once.
        return Elasticsearch(
            url, request_timeout=REQUEST_TIMEOUT, retry_on_status=(502, 503, 504), **options
        )

    es = client()
    inference = es.inference
    steps: dict[str, Any] = {}
    # A fresh client's first answer is product-checked, so ping() proves HEAD carries the header.
    run(steps, "ping", es.ping)
    run(steps, "info", es.info)
    run(steps, "get_empty", inference.get)

    run(
        steps,
        "put",
        lambda: inference.put(
            task_type="text_embedding", inference_id="embed", inference_config=EMBEDDINGS
        ),
    )
    run(
        steps,
        "put_amazonbedrock",
        lambda: inference.put_amazonbedrock(
            task_type="completion",
            amazonbedrock_inference_id="chat",
            service="amazonbedrock",
            service_settings=COMPLETION["service_settings"],
            task_settings={"max_new_tokens": 64},
        ),
    )
    run(
        steps,
        "put_exists",
        lambda: inference.put(
            task_type="text_embedding", inference_id="embed", inference_config=EMBEDDINGS
        ),
    )
    bad = {**COMPLETION, "task_settings": {"temperature": 1}}
    run(
        steps,
        "put_bad_settings",
        lambda: inference.put(task_type="completion", inference_id="bad", inference_config=bad),
    )
    run(
        steps,
        "put_unsupported_task",
        lambda: inference.put(task_type="rerank", inference_id="bad", inference_config=COMPLETION),
    )

    run(steps, "get_all", inference.get)
    run(steps, "get_one", lambda: inference.get(inference_id="embed"))
    run(steps, "get_task", lambda: inference.get(task_type="completion"))
    run(steps, "head_endpoint", lambda: es.perform_request("HEAD", "/_inference/embed"))
    run(steps, "head_missing", lambda: es.perform_request("HEAD", "/_inference/missing"))

    run(
        steps,
        "text_embedding",
        lambda: inference.text_embedding(inference_id="embed", input=["a", "b", "c"]),
    )
    run(
        steps,
        "inference",
        lambda: inference.inference(task_type="text_embedding", inference_id="embed", input="one"),
    )
    run(
        steps,
        "completion",
        lambda: inference.completion(inference_id="chat", input="What is Elastic?"),
    )
    run(
        steps,
        "infer_wrong_task_type",
        lambda: inference.text_embedding(inference_id="chat", input="x"),
    )
    # The client's own request-id option, on an answer and on an error.
    traced = es.options(opaque_id="trace-ok-1").inference
    run(steps, "completion_opaque_id", lambda: traced.completion(inference_id="chat", input="x"))
    traced = es.options(opaque_id="trace-error-2").inference
    run(
        steps,
        "error_opaque_id",
        lambda: traced.text_embedding(inference_id="chat", input="x"),
    )

    # elasticsearch-py has no streaming method; users call the route and get the SSE text whole.
    # A fresh client again, so the SSE answer is the one that gets product-checked.
    def stream(inference_id: str) -> Any:
        return client().perform_request(
            "POST",
            f"/_inference/completion/{inference_id}/_stream",
            body={"input": "tell me a story"},
            headers=JSON_HEADERS,
        )

    run(steps, "stream", lambda: stream("chat"))
    run(steps, "stream_missing", lambda: stream("missing"))

    def update(inference_id: str, task_type: str, config: dict[str, Any]) -> Any:
        return inference.update(
            inference_id=inference_id, task_type=task_type, inference_config=config
        )

    rate = {"service_settings": {"rate_limit": {"requests_per_minute": 600}}}
    run(steps, "update_rate_limit", lambda: update("embed", "text_embedding", rate))
    run(
        steps,
        "update_keys",
        lambda: update("embed", "text_embedding", {"service_settings": ROTATED_KEYS}),
    )
    half = {"service_settings": {"access_key": ROTATED_KEYS["access_key"]}}
    run(steps, "update_half_pair", lambda: update("embed", "text_embedding", half))
    run(steps, "update_wrong_task_type", lambda: update("embed", "completion", rate))
    run(
        steps,
        "text_embedding_after_update",
        lambda: inference.text_embedding(inference_id="embed", input="rotated"),
    )
    run(steps, "get_after_update", lambda: inference.get(inference_id="embed"))

    # An explicit compat-7 media type passes the client's rewrite untouched.
    compat7 = {"accept": COMPAT_7, "content-type": COMPAT_7}
    run(
        steps,
        "compat7",
        lambda: es.perform_request(
            "POST", "/_inference/embed", body={"input": "seven"}, headers=compat7
        ),
    )

    zipped = client(http_compress=True).inference
    run(
        steps,
        "gzip_put",
        lambda: zipped.put(
            task_type="text_embedding", inference_id="zipped", inference_config=EMBEDDINGS
        ),
    )
    run(
        steps,
        "gzip_text_embedding",
        lambda: zipped.text_embedding(inference_id="zipped", input=["gzip", "body"]),
    )

    run(steps, "delete", lambda: inference.delete(inference_id="chat"))
    run(steps, "get_deleted", lambda: inference.get(inference_id="chat"))
    run(steps, "delete_missing", lambda: inference.delete(inference_id="chat"))
    run(steps, "completion_missing", lambda: inference.completion(inference_id="chat", input="x"))

    # Sniffing replaces the client's node list with the cluster's publish addresses; esproxy
    # rewrites them to its own, so a sniffing client must still have only the proxy.
    def sniffed_nodes() -> Any:
        try:
            sniffer = client(sniff_on_start=True)
        except TransportError as error:  # SniffingError, or the sniff call's own failure
            return {"error": type(error).__name__}
        return sorted(
            {f"{n.config.host}:{n.config.port}" for n in sniffer.transport.node_pool.all()}
        )

    run(steps, "sniff_on_start", sniffed_nodes)
    # Not an inference call: esproxy forwards it, and a HEAD 404 must stay a 404 (False).
    run(steps, "indices_exists", lambda: es.indices.exists(index="no-such-index"))
    forwarded = es.options(opaque_id="trace-forward-3").indices
    run(steps, "forwarded_opaque_id", lambda: forwarded.exists(index="no-such-index"))
    return {"client": f"elasticsearch-py {elasticsearch.__versionstr__}", "steps": steps}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1]), indent=1))
