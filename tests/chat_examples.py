"""A chat_completion endpoint, a tool and a question shared by the chat tests, and SSE parsing."""

from __future__ import annotations

CLAUDE = "anthropic.claude-3-5-sonnet-20240620-v1:0"
CHAT_ENDPOINT = {
    "service": "amazonbedrock",
    "service_settings": {
        "access_key": "<aws_access_key>",
        "secret_key": "<aws_secret_key>",
        "region": "us-east-1",
        "provider": "anthropic",
        "model": CLAUDE,
    },
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
        },
    },
}
QUESTION = {"role": "user", "content": "What is the weather in Paris?"}
BOM = "\ufeff"


def parse_events(text: str) -> list[tuple[str, str]]:
    """ES's server-sent events: (event, data) pairs, each block opened by a BOM."""
    events = []
    for block in text.split("\n\n"):
        if not block:
            continue
        assert block.startswith(BOM), block
        event, data = block[len(BOM) :].split("\n")
        events.append((event.removeprefix("event: "), data.removeprefix("data: ")))
    return events
