"""Elasticsearch's unified chat completion request (`chat_completion`), read as ES reads it.

ES declares the body with ObjectParsers (`UnifiedCompletionRequest` and its nested parsers); this
module accepts the same JSON tokens per field and words its failures the same way: an unknown
field, a value of an unsupported token type, a missing required field, each wrapped in a
`failed to parse field [...]` per level. Locations name where the top-level field's value begins
(ES points at the nested token itself). The result is provider-neutral: integrations map it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from esproxy.errors import BadRequest, BodyParseError, ProxyError, RequestValidationFailed
from esproxy.inference.json_bodies import JsonBody, Location, decode_json_body, parse_failure
from esproxy.inference.schemas import json_token

T = TypeVar("T")

ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class TextPart:
    text: str
    type: str


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str
    type: str = "function"


@dataclass(frozen=True)
class Message:
    """`content` is a string, a tuple of text parts, or None."""

    role: str
    content: str | tuple[TextPart, ...] | None = None
    tool_call_id: str | None = None
    tool_calls: tuple[ToolCall, ...] | None = None

    @property
    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


@dataclass(frozen=True)
class Tool:
    type: str
    name: str
    description: str | None = None
    parameters: Mapping[str, Any] | None = None
    strict: bool | None = None


@dataclass(frozen=True)
class ToolChoice:
    """`auto`, `none`, `required` (or any other string, refused later), or a named function."""

    value: str | None = None
    function: str | None = None
    type: str | None = None


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[Message, ...]
    model: str | None = None
    max_completion_tokens: int | None = None
    stop: tuple[str, ...] | None = None
    temperature: float | None = None
    tool_choice: ToolChoice | None = None
    tools: tuple[Tool, ...] | None = None
    top_p: float | None = None


# The validation ES runs before the request reaches a service (`UnifiedCompletionAction.Request`).
EMPTY_MESSAGES = "Field [messages] cannot be an empty array"


class FieldError(Exception):
    """A failure inside one parser, before it is wrapped with where it happened."""

    def __init__(self, error: ProxyError, key: str | None = None) -> None:
        super().__init__(error.reason)
        self.error = error
        self.key = key  # the field of the reader that failed, when a field did


def parse_chat_request(raw: bytes) -> ChatRequest:
    """The body of a `chat_completion` call; ES's parse errors for anything it would refuse."""
    body = decode_json_body(raw)
    try:
        return read_request(body)
    except FieldError as failed:
        raise failed.error from None


def check_chat_request(request: ChatRequest) -> None:
    """`UnifiedCompletionAction.Request.validate`."""
    if not request.messages:
        raise RequestValidationFailed([EMPTY_MESSAGES])


# --- the parsers, one per ES ObjectParser -------------------------------------------------------

Reader = Callable[[str, Any], Any]


class ObjectReader:
    """One ObjectParser: its name, its fields (name -> (accepted tokens, reader)), the required."""

    def __init__(
        self,
        name: str,
        fields: Mapping[str, tuple[frozenset[str], Reader]],
        required: Sequence[str],
    ) -> None:
        self.name = name
        self.fields = fields
        self.required = required

    def read(self, value: Any, where: Location | None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise FieldError(
                parse_failure(
                    f"[{self.name}] Expected START_OBJECT but was: {json_token(value)}", where
                )
            )
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key not in self.fields:
                raise FieldError(parse_failure(f"[{self.name}] unknown field [{key}]", where), key)
            tokens, reader = self.fields[key]
            token = json_token(item)
            if token not in tokens:
                raise FieldError(
                    parse_failure(
                        f"[{self.name}] {key} doesn't support values of type: {token}", where
                    ),
                    key,
                )
            try:
                out[key] = reader(key, item) if item is not None else None
            except FieldError as inner:
                error = parse_failure(f"[{self.name}] failed to parse field [{key}]", where)
                error.caused_by = inner.error
                raise FieldError(error, key) from None
        missing = [name for name in self.required if name not in out]
        if missing:
            raise FieldError(
                BadRequest(
                    f"Required [{', '.join(missing)}]", error_type="illegal_argument_exception"
                )
            )
        return out


STRING = frozenset({"VALUE_STRING"})
NUMBER = frozenset({"VALUE_NUMBER", "VALUE_STRING"})
BOOLEAN = frozenset({"VALUE_BOOLEAN", "VALUE_STRING"})
OBJECT = frozenset({"START_OBJECT"})
OBJECT_ARRAY = frozenset({"START_OBJECT", "START_ARRAY"})
STRING_ARRAY = frozenset({"START_ARRAY", "VALUE_STRING"})
OBJECT_OR_STRING = frozenset({"START_OBJECT", "VALUE_STRING"})
VALUE_ARRAY = frozenset(
    {"START_ARRAY", "VALUE_STRING", "VALUE_NUMBER", "VALUE_BOOLEAN", "VALUE_NULL"}
)


def read_string(_: str, value: Any) -> str:
    return str(value)


LONG_RANGE = (-(2**63), 2**63 - 1)


def read_long(_: str, value: Any) -> int:
    if isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            raise FieldError(
                BadRequest(f'For input string: "{value}"', error_type="number_format_exception")
            ) from None
    else:
        number = int(value)
    low, high = LONG_RANGE
    if not low <= number <= high:
        raise FieldError(
            parse_failure(f"Numeric value ({value}) out of range of long ({low} - {high})")
        )
    return number


def read_float(_: str, value: Any) -> float:
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise FieldError(
                BadRequest(f'For input string: "{value}"', error_type="number_format_exception")
            ) from None
    return float(value)


def read_boolean(_: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return bool(value == "true")
    raise FieldError(
        BadRequest(
            f"Failed to parse value [{value}] as only [true] or [false] are allowed.",
            error_type="illegal_argument_exception",
        )
    )


def read_string_array(_: str, value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, dict | list) or item is None:
            token = json_token(item)
            raise FieldError(
                BadRequest(f"Can't get text on a {token}", error_type="illegal_state_exception")
            )
        out.append(item if isinstance(item, str) else render_scalar(item))
    return tuple(out)


def render_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def object_array(reader: ObjectReader, build: Callable[[dict[str, Any]], T]) -> Reader:
    def read(_: str, value: Any) -> tuple[T, ...]:
        items = value if isinstance(value, list) else [value]
        return tuple(build(reader.read(item, None)) for item in items)

    return read


def object_field(reader: ObjectReader, build: Callable[[dict[str, Any]], T]) -> Reader:
    return lambda _, value: build(reader.read(value, None))


def read_parameters(_: str, value: Any) -> Mapping[str, Any]:
    return dict(value)


def read_objects(_: str, value: Any) -> tuple[Mapping[str, Any], ...]:
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, dict):
            raise FieldError(parse_failure(f"Expected START_OBJECT but was: {json_token(item)}"))
    return tuple(items)


def read_content(_: str, value: Any) -> str | tuple[TextPart, ...]:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = (CONTENT_OBJECT.read(item, None) for item in value)
        return tuple(TextPart(text=part.get("text") or "", type=part["type"]) for part in parts)
    raise FieldError(
        parse_failure(
            "Expected an array start token or a value string token but found token "
            f"[{json_token(value)}]"
        )
    )


def read_tool_choice(_: str, value: Any) -> ToolChoice:
    if isinstance(value, str):
        return ToolChoice(value=value)
    read = TOOL_CHOICE_OBJECT.read(value, None)
    return ToolChoice(type=read["type"], function=read["function"])


CONTENT_OBJECT = ObjectReader(
    "ContentObject",
    {
        "text": (STRING, read_string),
        "type": (STRING, read_string),
        # Media parts (ES 9.5): read so that they can be refused by name, not as unknown keys.
        "image_url": (OBJECT, read_parameters),
        "file": (OBJECT, read_parameters),
    },
    ("type",),
)
TOOL_CALL_FUNCTION = ObjectReader(
    "tool_call_function_field",
    {"arguments": (STRING, read_string), "name": (STRING, read_string)},
    ("arguments", "name"),
)
TOOL_CALL = ObjectReader(
    "ToolCall",
    {
        "id": (STRING, read_string),
        "function": (OBJECT, object_field(TOOL_CALL_FUNCTION, lambda f: f)),
        "type": (STRING, read_string),
    },
    ("id", "function", "type"),
)
MESSAGE = ObjectReader(
    "Message",
    {
        "content": (VALUE_ARRAY, read_content),
        "role": (STRING, read_string),
        "tool_call_id": (STRING, read_string),
        "tool_calls": (
            OBJECT_ARRAY,
            object_array(
                TOOL_CALL,
                lambda c: ToolCall(
                    id=c["id"],
                    name=c["function"]["name"],
                    arguments=c["function"]["arguments"],
                    type=c["type"],
                ),
            ),
        ),
        # Reasoning traces from earlier turns (ES 9.5); Converse has no place for them.
        "reasoning": (STRING, read_string),
        "reasoning_details": (OBJECT_ARRAY, read_objects),
    },
    ("role",),
)
TOOL_CHOICE_FUNCTION = ObjectReader(
    "tool_choice_function_field", {"name": (STRING, read_string)}, ("name",)
)
TOOL_CHOICE_OBJECT = ObjectReader(
    "ToolChoiceObject",
    {
        "type": (STRING, read_string),
        "function": (OBJECT, object_field(TOOL_CHOICE_FUNCTION, lambda f: f["name"])),
    },
    ("type", "function"),
)
TOOL_FUNCTION = ObjectReader(
    "tool_function_field",
    {
        "description": (STRING, read_string),
        "name": (STRING, read_string),
        "parameters": (OBJECT, read_parameters),
        "strict": (BOOLEAN, read_boolean),
    },
    ("name",),
)
TOOL = ObjectReader(
    "Tool",
    {
        "type": (STRING, read_string),
        "function": (OBJECT, object_field(TOOL_FUNCTION, lambda f: f)),
    },
    ("type", "function"),
)
REQUEST = ObjectReader(
    "UnifiedCompletionRequest",
    {
        "messages": (
            OBJECT_ARRAY,
            object_array(
                MESSAGE,
                lambda m: Message(
                    role=m["role"],
                    content=m.get("content"),
                    tool_call_id=m.get("tool_call_id"),
                    tool_calls=m.get("tool_calls"),
                ),
            ),
        ),
        "model": (STRING, read_string),
        "max_completion_tokens": (NUMBER, read_long),
        "stop": (STRING_ARRAY, read_string_array),
        "temperature": (NUMBER, read_float),
        "tool_choice": (OBJECT_OR_STRING, read_tool_choice),
        "tools": (
            OBJECT_ARRAY,
            object_array(
                TOOL,
                lambda t: Tool(
                    type=t["type"],
                    name=t["function"]["name"],
                    description=t["function"].get("description"),
                    parameters=t["function"].get("parameters"),
                    strict=t["function"].get("strict"),
                ),
            ),
        ),
        "top_p": (NUMBER, read_float),
        # Accepted as ES accepts them; Bedrock's Converse API has no equivalent to send them to.
        "reasoning": (OBJECT, read_parameters),
        "cache_control": (OBJECT, read_parameters),
        "session_id": (STRING, read_string),
    },
    ("messages",),
)


def read_request(body: JsonBody) -> ChatRequest:
    try:
        fields = REQUEST.read(dict(body), None)
    except FieldError as failed:
        raise FieldError(locate_error(failed, body)) from None
    return ChatRequest(
        messages=fields["messages"],
        model=fields.get("model"),
        max_completion_tokens=fields.get("max_completion_tokens"),
        stop=fields.get("stop"),
        temperature=fields.get("temperature"),
        tool_choice=fields.get("tool_choice"),
        tools=fields.get("tools"),
        top_p=fields.get("top_p"),
    )


def locate_error(failed: FieldError, body: JsonBody) -> ProxyError:
    """Give the top-level failure (and the chain under it) the location of the field involved."""
    error, key = failed.error, failed.key
    if key is None or key not in body or not isinstance(error, BodyParseError):
        return error
    where = body.key_location(key) if "unknown field" in error.reason else body.value_location(key)
    located: ProxyError = error
    while isinstance(located, BodyParseError):
        if not located.reason.startswith("["):
            break
        if not located.reason.startswith(f"[{where}]") and located.reason[1:2].isalpha():
            located.reason = f"[{where}] {located.reason}"
            located.args = (located.reason,)
        if not isinstance(located.caused_by, ProxyError):
            break
        located = located.caused_by
    return error
