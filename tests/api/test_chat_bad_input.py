"""Bad `chat_completion` requests: ES's 400s, never a 500, never a Bedrock call.

Pinned cases assert the exact reasons; Hypothesis then mutates a valid tool-calling request
anywhere (wrong JSON types, unknown keys, dropped keys, odd roles and tool choices) and checks
that every answer is a well-formed success or a well-formed 4xx in the shape its stage uses.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.chat_examples import CHAT_ENDPOINT, QUESTION, WEATHER_TOOL, parse_events
from tests.user_examples import JSON_HEADERS

CHAT = "/_inference/chat_completion/assistant"
STREAM = f"{CHAT}/_stream"
PROPERTY = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
API = "for the Amazon Bedrock chat completion API."


@pytest.fixture
async def chat(proxy):
    body = json.loads(json.dumps(CHAT_ENDPOINT))
    body["service_settings"]["rate_limit"] = {"requests_per_minute": 60_000}
    response = await proxy.put(
        "/_inference/chat_completion/assistant", data=json.dumps(body), headers=JSON_HEADERS
    )
    assert response.status == 200, await response.text()
    return proxy


async def calls(proxy, emulator) -> int:
    async with proxy.session.get(emulator.make_url("/_emulator/requests")) as response:
        return len((await response.json())["requests"])


async def post(proxy, path: str, body: Any) -> tuple[int, Any]:
    text = body if isinstance(body, str) else json.dumps(body)
    response = await proxy.post(path, data=text, headers=JSON_HEADERS)
    raw = await response.text()
    assert response.headers["X-Elastic-Product"] == "Elasticsearch"
    if response.headers["Content-Type"] == "text/event-stream":
        return response.status, parse_events(raw)
    return response.status, json.loads(raw)


def unified(document: Any) -> dict[str, Any]:
    """The unified error: one SSE error event on `_stream`, the JSON body otherwise."""
    if isinstance(document, list):
        [(event, data)] = document
        assert event == "error"
        document = json.loads(data)
    assert set(document) == {"error"}
    error = document["error"]
    assert set(error) <= {"code", "message", "param", "type"}
    assert error["code"] == "bad_request"
    return dict(error)


def es_error(document: Any, status: int = 400) -> dict[str, Any]:
    if isinstance(document, list):
        [(event, data)] = document
        assert event == "error"
        document = json.loads(data)
    assert set(document) == {"error", "status"} and document["status"] == status
    assert document["error"]["root_cause"]
    return dict(document["error"])


def with_messages(*messages: Any, **extra: Any) -> dict[str, Any]:
    return {"messages": list(messages), **extra}


ASSISTANT_CALL = {
    "role": "assistant",
    "tool_calls": [
        {"id": "call-1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    ],
}

# (body, the reason, how it is shaped: "unified" after parsing, "parse"/"validation" before)
PINNED = [
    ({}, "Required [messages]", "parse"),
    (
        {"messages": []},
        "Validation Failed: 1: Field [messages] cannot be an empty array;",
        "validation",
    ),
    (
        with_messages({"role": "robot", "content": "hi"}),
        f"Unsupported role [robot] {API}",
        "unified",
    ),
    (
        with_messages(
            QUESTION, ASSISTANT_CALL, {"role": "tool", "content": "sunny"}, tools=[WEATHER_TOOL]
        ),
        f"Field [tool_call_id] is required in a tool message {API}",
        "unified",
    ),
    (
        with_messages(QUESTION, tools=[{**WEATHER_TOOL, "type": "retrieval"}]),
        f"Unsupported tool type [retrieval] {API}",
        "unified",
    ),
    (
        with_messages(
            QUESTION,
            tools=[WEATHER_TOOL],
            tool_choice={"type": "function", "function": {"name": "get_time"}},
        ),
        "Field [tool_choice] names the function [get_time], which is not defined in [tools] "
        "['get_weather'].",
        "unified",
    ),
    (
        with_messages(QUESTION, tools=[WEATHER_TOOL], tool_choice="sometimes"),
        f"Unsupported tool_choice value [sometimes] {API}",
        "unified",
    ),
    (
        with_messages(
            QUESTION,
            {
                **ASSISTANT_CALL,
                "tool_calls": [
                    {
                        **ASSISTANT_CALL["tool_calls"][0],
                        "function": {"name": "get_weather", "arguments": "[1]"},
                    }
                ],
            },
            tools=[WEATHER_TOOL],
        ),
        "Field [arguments] of tool call [call-1] in message [1] must be a JSON object encoded "
        f"as a string {API}",
        "unified",
    ),
    (
        with_messages({"role": "user", "content": ""}),
        "Message [0] with role [user] has no content; the Amazon Bedrock chat completion API "
        "needs text in every user message and in every assistant message without tool calls.",
        "unified",
    ),
    (
        with_messages(
            QUESTION, ASSISTANT_CALL, {"role": "tool", "tool_call_id": "call-1", "content": "x"}
        ),
        "Field [tools] must define the functions that the conversation's tool calls name; the "
        "Amazon Bedrock chat completion API needs them whenever messages hold tool calls or "
        "tool results.",
        "unified",
    ),
]


@pytest.mark.parametrize("path", [STREAM, CHAT])
@pytest.mark.parametrize(("body", "reason", "stage"), PINNED)
async def test_pinned_bad_requests(chat, emulator, path, body, reason, stage):
    before = await calls(chat, emulator)
    status, document = await post(chat, path, body)
    assert status == 400
    if stage == "unified" and path == STREAM:
        assert unified(document)["message"] == reason
    elif stage == "unified":  # ES's ordinary inference action answers the non-streaming call
        assert es_error(document)["reason"] == reason
    else:
        if stage == "parse":
            assert not isinstance(document, list)  # the REST layer's plain answer
        assert es_error(document)["reason"] == reason
    assert await calls(chat, emulator) == before


async def test_non_string_arguments_is_a_parse_error(chat, emulator):
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}
    body = with_messages(QUESTION, {"role": "assistant", "tool_calls": [call]})
    before = await calls(chat, emulator)
    for path in (STREAM, CHAT):
        status, document = await post(chat, path, body)
        assert status == 400
        error = es_error(document)
        assert error["type"] == "x_content_parse_exception"
        assert (
            error["reason"] == "[1:14] [UnifiedCompletionRequest] failed to parse field [messages]"
        )
        reasons = []
        cause = error
        while "caused_by" in cause:
            cause = cause["caused_by"]
            reasons.append(cause["reason"])
        assert reasons[-1] == (
            "[1:14] [tool_call_function_field] arguments doesn't support values of type: "
            "START_OBJECT"
        )
    assert await calls(chat, emulator) == before


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            '{"messages": "hi"}',
            "[1:14] [UnifiedCompletionRequest] messages doesn't support values of type: "
            "VALUE_STRING",
        ),
        (
            '{"messages": [], "colour": 1}',
            "[1:18] [UnifiedCompletionRequest] unknown field [colour]",
        ),
        (
            '{"messages": [{"content": "x"}]}',
            "[1:14] [UnifiedCompletionRequest] failed to parse field [messages]",
        ),
        (
            '{"messages": [{"role": "user", "content": 5}]}',
            "[1:14] [UnifiedCompletionRequest] failed to parse field [messages]",
        ),
        (
            '{"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}',
            "[1:65] [UnifiedCompletionRequest] failed to parse field [temperature]",
        ),
        (
            '{"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]}',
            "[1:59] [UnifiedCompletionRequest] failed to parse field [tools]",
        ),
        ("[]", "[1:1] Expected START_OBJECT but was: START_ARRAY"),
        (
            '{"messages": [{"role": "user", "content": "x"}], '
            '"max_completion_tokens": 99999999999999999999}',
            "[1:75] [UnifiedCompletionRequest] failed to parse field [max_completion_tokens]",
        ),
    ],
)
async def test_wrong_json_types_are_parse_errors(chat, body, reason):
    status, document = await post(chat, STREAM, body)
    assert status == 400 and not isinstance(document, list)
    assert es_error(document)["reason"] == reason


# --- Hypothesis: mutations of a valid tool loop request -----------------------------------------

VALID = with_messages(
    {"role": "system", "content": "Be brief."},
    QUESTION,
    ASSISTANT_CALL,
    {"role": "tool", "tool_call_id": "call-1", "content": [{"type": "text", "text": "sunny"}]},
    tools=[WEATHER_TOOL],
    tool_choice="auto",
    max_completion_tokens=100,
    temperature=0.5,
    top_p=0.9,
    stop=["END"],
    model="ignored",
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**40), max_value=2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(
        ["user", "assistant", "tool", "system", "function", "auto", "none", "required", "text"]
    )
)
# Two levels of nesting are enough to put every JSON type where another belongs.
flat = st.lists(scalars, max_size=3) | st.dictionaries(st.text(max_size=8), scalars, max_size=3)
values = (
    scalars
    | flat
    | st.lists(flat, max_size=2)
    | st.dictionaries(st.text(max_size=8), flat, max_size=2)
)


def paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*path, index))
    return found


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = json.loads(json.dumps(value))
    node = copy
    for key in path[:-1]:
        node = node[key]
    if new is DROP:
        if isinstance(node, dict):
            del node[path[-1]]
        else:
            node.pop(path[-1])
    else:
        node[path[-1]] = new
    return copy


DROP = object()


@st.composite
def mutated_requests(draw: st.DrawFn) -> Any:
    body: Any = VALID
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(paths(body)))
        if draw(st.booleans()) and path:
            body = replaced(body, path, DROP)
        else:
            body = replaced(body, path, draw(values))
    return body


@PROPERTY
@given(body=mutated_requests(), streamed=st.booleans())
async def test_mutated_requests_never_fail_with_a_500(chat, body, streamed):
    status, document = await post(chat, STREAM if streamed else CHAT, body)
    assert status < 500, document
    if status >= 400:
        if isinstance(document, list):
            [(event, data)] = document
            assert event == "error"
            document = json.loads(data)
        error = document["error"]
        assert isinstance(error, dict)
        assert isinstance(error.get("reason", error.get("message")), str)
    elif streamed:
        assert document[-1] == ("message", "[DONE]")
        assert all(
            json.loads(data)["object"] == "chat.completion.chunk" for _, data in document[:-1]
        )
    else:
        assert document["object"] == "chat.completion"
