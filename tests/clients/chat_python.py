"""A whole tool-calling loop through one installed elasticsearch-py, printed as JSON.

Usage: `<client venv>/bin/python chat_python.py URL`. Standard library and `elasticsearch` only,
so it runs under the 8.19 and the 9.x client alike. Neither line has a chat method
(`chat_completion_unified` exists only in the JavaScript and Java clients), so the loop uses the
closest public methods: `inference.put` to create the endpoint, `inference.inference` with
`task_type="chat_completion"` and the unified body for each turn (ES 9.4's non-streaming chat),
and `perform_request` for the `_stream` variant of the first turn.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import elasticsearch
from elasticsearch import Elasticsearch

ENDPOINT = {
    "service": "amazonbedrock",
    "service_settings": {
        "access_key": "<aws_access_key>",
        "secret_key": "<aws_secret_key>",
        "region": "us-east-1",
        "provider": "anthropic",
        "model": "anthropic.claude-3-5-sonnet-20240620-v1:0",
    },
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
QUESTION = {"role": "user", "content": "What is the weather in Paris?"}
TOOL_RESULT = "18 degrees and sunny"


def main(url: str) -> dict[str, Any]:
    es = Elasticsearch(url, request_timeout=150)
    out: dict[str, Any] = {"version": elasticsearch.__versionstr__}
    created = es.inference.put(
        task_type="chat_completion", inference_id="assistant", inference_config=ENDPOINT
    )
    out["put"] = created.body

    def turn(messages: list[dict[str, Any]]) -> dict[str, Any]:
        response = es.inference.inference(
            task_type="chat_completion",
            inference_id="assistant",
            body={"messages": messages, "tools": TOOLS},
        )
        assert response.meta.headers.get("x-elastic-product") == "Elasticsearch"
        return dict(response.body)

    first = turn([QUESTION])
    out["ask"] = first
    message = first["choices"][0]["message"]
    call = message["tool_calls"][0]
    history = [
        QUESTION,
        {"role": "assistant", "content": message.get("content", ""), "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": TOOL_RESULT},
    ]
    out["answer"] = turn(history)

    streamed = es.perform_request(
        "POST",
        "/_inference/chat_completion/assistant/_stream",
        body={"messages": [QUESTION], "tools": TOOLS},
        headers={"accept": "application/json", "content-type": "application/json"},
    )
    raw = streamed.body
    out["stream"] = raw.decode() if isinstance(raw, bytes) else str(raw)
    out["stream_content_type"] = streamed.meta.headers.get("content-type")
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
