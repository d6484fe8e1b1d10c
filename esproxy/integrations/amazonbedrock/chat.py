"""Unified chat requests as Bedrock Converse requests, and Converse answers as unified chat results.

Independent of any HTTP layer: `converse_chat_request` takes a parsed `ChatRequest` and returns
Converse arguments; `ChunkTranslator` turns ConverseStream events into `chat.completion.chunk`
dicts; `chat_completion` turns a Converse answer into one `chat.completion` dict. Everything a
person could fix in their request is refused here, before any call, with a 400.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from esproxy.errors import BadRequest
from esproxy.inference.unified_chat import ChatRequest, Message, Tool, ToolChoice
from esproxy.integrations.amazonbedrock.bodies import top_k_field
from esproxy.integrations.amazonbedrock.model_providers import ModelProvider

T = TypeVar("T")
API = "the Amazon Bedrock chat completion API"
CHUNK = "chat.completion.chunk"
COMPLETION = "chat.completion"
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "content_filtered": "content_filter",
    "guardrail_intervened": "content_filter",
}
EMPTY_SCHEMA: Mapping[str, Any] = {"type": "object", "properties": {}}


@dataclass(frozen=True)
class ToolSupport:
    """What a model takes in Converse's `toolConfig`: tools at all, and which `toolChoice`s."""

    tools: bool
    choices: frozenset[str] = frozenset()  # of "auto", "any", "tool"


NO_TOOLS = ToolSupport(tools=False)
AUTO_ONLY = ToolSupport(tools=True, choices=frozenset({"auto"}))
EVERY_CHOICE = ToolSupport(tools=True, choices=frozenset({"auto", "any", "tool"}))
# Bedrock's "supported models and model features" table, by model id fragment; first match wins.
TOOL_SUPPORT: Sequence[tuple[str, ToolSupport]] = (
    ("claude-instant", NO_TOOLS),
    ("claude-v2", NO_TOOLS),
    ("claude", EVERY_CHOICE),
    ("nova", EVERY_CHOICE),
    ("titan", NO_TOOLS),
    ("command-r", AUTO_ONLY),
    ("cohere", NO_TOOLS),
    ("mistral-large", EVERY_CHOICE),
    ("mistral-small", AUTO_ONLY),
    ("mistral", NO_TOOLS),
    ("llama3-1", AUTO_ONLY),
    ("llama3-2", AUTO_ONLY),
    ("llama3-3", AUTO_ONLY),
    ("llama4", AUTO_ONLY),
    ("llama", NO_TOOLS),
    ("jamba", AUTO_ONLY),
    ("ai21", NO_TOOLS),
)


def tool_support(model: str) -> ToolSupport:
    lowered = model.lower()
    return next((support for part, support in TOOL_SUPPORT if part in lowered), AUTO_ONLY)


@dataclass(frozen=True)
class ChatDefaults:
    """The endpoint's stored task settings, used where the request leaves a value out."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: float | None = None
    max_new_tokens: int | None = None


def converse_chat_request(
    request: ChatRequest,
    *,
    provider: ModelProvider,
    model: str,
    defaults: ChatDefaults = ChatDefaults(),
) -> dict[str, Any]:
    """Converse arguments (without `modelId`) for a unified chat request; 400s for what no
    Bedrock model could take, and for tools on a model that takes none."""
    tools = checked_tools(request.tools)
    system, messages = converse_messages(request.messages)
    converse: dict[str, Any] = {"messages": messages}
    if system:
        converse["system"] = system
    config = inference_config(request, defaults)
    if config:
        converse["inferenceConfig"] = config
    tool_config = converse_tool_config(tools, request.tool_choice, messages, model, provider)
    if tool_config is not None:
        converse["toolConfig"] = tool_config
    if defaults.top_k is not None and (extra := top_k_field(provider, defaults.top_k)):
        converse["additionalModelRequestFields"] = extra
    return converse


def inference_config(request: ChatRequest, defaults: ChatDefaults) -> dict[str, Any]:
    config: dict[str, Any] = {}
    max_tokens = first_set(request.max_completion_tokens, defaults.max_new_tokens)
    if max_tokens is not None:
        config["maxTokens"] = max_tokens
    temperature = first_set(request.temperature, defaults.temperature)
    if temperature is not None:
        config["temperature"] = temperature
    top_p = first_set(request.top_p, defaults.top_p)
    if top_p is not None:
        config["topP"] = top_p
    if request.stop:
        config["stopSequences"] = list(request.stop)
    return config


def first_set(*values: T | None) -> T | None:
    return next((value for value in values if value is not None), None)


def converse_messages(
    messages: Sequence[Message],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """System blocks, and Converse turns in which consecutive same-role messages are merged."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        if message.role == "system":
            if message.text:
                system.append({"text": message.text})
            continue
        role, blocks = converse_turn(index, message)
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        # Bedrock wants a turn's tool results before anything else in it.
        turn["content"].sort(key=lambda block: 0 if "toolResult" in block else 1)
    return system, turns


def converse_turn(index: int, message: Message) -> tuple[str, list[dict[str, Any]]]:
    if message.role == "user":
        return "user", text_blocks(index, message, required=True)
    if message.role == "assistant":
        calls = [
            tool_use_block(index, call.id, call.name, call.arguments, call.type)
            for call in message.tool_calls or ()
        ]
        return "assistant", text_blocks(index, message, required=not calls) + calls
    if message.role == "tool":
        if message.tool_call_id is None:
            raise BadRequest(f"Field [tool_call_id] is required in a tool message for {API}.")
        result = {"toolUseId": message.tool_call_id, "content": [{"text": message.text}]}
        return "user", [{"toolResult": result}]
    raise BadRequest(f"Unsupported role [{message.role}] for {API}.")


def text_blocks(index: int, message: Message, *, required: bool) -> list[dict[str, Any]]:
    if isinstance(message.content, tuple):
        for part in message.content:
            if part.type != "text":
                raise BadRequest(f"Unsupported content type [{part.type}] for {API}.")
        blocks = [{"text": part.text} for part in message.content if part.text]
    else:
        blocks = [{"text": message.content}] if message.content else []
    if required and not blocks:
        raise BadRequest(
            f"Message [{index}] with role [{message.role}] has no content; {API} needs text in "
            "every user message and in every assistant message without tool calls."
        )
    return blocks


def tool_use_block(
    index: int, call_id: str, name: str, arguments: str, kind: str
) -> dict[str, Any]:
    if kind != "function":
        raise BadRequest(f"Unsupported tool call type [{kind}] for {API}.")
    try:
        parsed = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise BadRequest(
            f"Field [arguments] of tool call [{call_id}] in message [{index}] must be a JSON "
            f"object encoded as a string for {API}."
        )
    return {"toolUse": {"toolUseId": call_id, "name": name, "input": parsed}}


def checked_tools(tools: Sequence[Tool] | None) -> Sequence[Tool]:
    for tool in tools or ():
        if tool.type != "function":
            raise BadRequest(f"Unsupported tool type [{tool.type}] for {API}.")
    return tools or ()


def converse_tool_config(
    tools: Sequence[Tool],
    choice: ToolChoice | None,
    messages: Sequence[Mapping[str, Any]],
    model: str,
    provider: ModelProvider,
) -> dict[str, Any] | None:
    mode = tool_choice_mode(choice, tools)
    history = any(
        "toolUse" in block or "toolResult" in block
        for message in messages
        for block in message["content"]
    )
    if not tools:
        if history:
            raise BadRequest(
                f"Field [tools] must define the functions that the conversation's tool calls "
                f"name; {API} needs them whenever messages hold tool calls or tool results."
            )
        return None
    support = tool_support(model)
    if not support.tools:
        raise BadRequest(
            f"Tools are not supported for model [{model}] (provider [{provider}]) by {API}; "
            "remove [tools] and [tool_choice], or use a model that supports tool use."
        )
    if mode == "none" and not history:
        return None  # no tools on offer, so the model answers in text
    config: dict[str, Any] = {"tools": [tool_spec(tool) for tool in tools]}
    converse_choice = converse_tool_choice(mode, choice, support, model)
    if converse_choice is not None:
        config["toolChoice"] = converse_choice
    return config


def tool_choice_mode(choice: ToolChoice | None, tools: Sequence[Tool]) -> str:
    """`auto`, `none`, `required` or `function`; 400 for anything else."""
    if choice is None:
        return "auto"
    if choice.value is not None:
        if choice.value not in ("auto", "none", "required"):
            raise BadRequest(f"Unsupported tool_choice value [{choice.value}] for {API}.")
        if choice.value == "required" and not tools:
            raise BadRequest(f"Field [tool_choice] is [required] but [tools] is empty, for {API}.")
        return choice.value
    if choice.type != "function":
        raise BadRequest(f"Unsupported tool_choice type [{choice.type}] for {API}.")
    names = [tool.name for tool in tools]
    if choice.function not in names:
        raise BadRequest(
            f"Field [tool_choice] names the function [{choice.function}], which is not defined "
            f"in [tools] {names}."
        )
    return "function"


def converse_tool_choice(
    mode: str, choice: ToolChoice | None, support: ToolSupport, model: str
) -> dict[str, Any] | None:
    if mode in ("auto", "none"):
        # `auto` is every model's default; naming it is allowed only where the model takes it.
        return {"auto": {}} if choice is not None and "auto" in support.choices else None
    wanted = "any" if mode == "required" else "tool"
    if wanted not in support.choices:
        shown = "required" if mode == "required" else "a named function"
        raise BadRequest(f"Field [tool_choice] cannot be {shown} for model [{model}] on {API}.")
    if wanted == "any":
        return {"any": {}}
    assert choice is not None and choice.function is not None
    return {"tool": {"name": choice.function}}


def tool_spec(tool: Tool) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": tool.name}
    if tool.description:
        spec["description"] = tool.description
    spec["inputSchema"] = {"json": dict(tool.parameters) if tool.parameters else dict(EMPTY_SCHEMA)}
    return {"toolSpec": spec}


# --- answers ------------------------------------------------------------------------------------


def finish_reason(stop_reason: object) -> str:
    return FINISH_REASONS.get(str(stop_reason), "stop")


def usage_of(usage: Mapping[str, Any] | None) -> dict[str, int]:
    usage = usage or {}
    prompt = int(usage.get("inputTokens", 0))
    completion = int(usage.get("outputTokens", 0))
    total = int(usage.get("totalTokens", prompt + completion))
    return {"completion_tokens": completion, "prompt_tokens": prompt, "total_tokens": total}


def chat_completion(
    response: Mapping[str, Any], *, completion_id: str, model: str
) -> dict[str, Any]:
    """A Converse answer as one `chat.completion` object, in ES's key order
    (`UnifiedChatCompletionResults`): fields without a value are left out, as ES leaves them."""
    content = response.get("output", {}).get("message", {}).get("content", [])
    texts = [block["text"] for block in content if isinstance(block.get("text"), str)]
    calls = [
        {
            "id": use.get("toolUseId"),
            "type": "function",
            "function": {
                "name": use.get("name"),
                "arguments": json.dumps(use.get("input", {}), separators=(",", ":")),
            },
        }
        for block in content
        if isinstance(use := block.get("toolUse"), dict)
    ]
    message: dict[str, Any] = {"role": "assistant"}
    if texts:
        message["content"] = "".join(texts)
    if calls:
        message["tool_calls"] = calls
    return {
        "id": completion_id,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason(response.get("stopReason")),
            }
        ],
        "model": model,
        "object": COMPLETION,
        "usage": usage_of(response.get("usage")),
    }


@dataclass
class ChunkTranslator:
    """ConverseStream events in, `chat.completion.chunk` objects out (none for some events).

    Tool calls are numbered in the order they start; their arguments arrive as partial JSON.
    """

    completion_id: str
    model: str
    _tool_index: dict[int, int] = field(default_factory=dict)

    def chunks(self, event: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        if "contentBlockDelta" in event:
            body = event["contentBlockDelta"]
            delta = body.get("delta", {})
            if isinstance(delta.get("text"), str):
                yield self._chunk({"content": delta["text"]})
            elif isinstance(delta.get("toolUse"), dict):
                index = self._tool_index.get(body.get("contentBlockIndex", 0), 0)
                call = {
                    "index": index,
                    "function": {"arguments": delta["toolUse"].get("input", "")},
                }
                yield self._chunk({"tool_calls": [{**call, "type": "function"}]})
        elif "messageStart" in event:
            yield self._chunk({"role": event["messageStart"].get("role", "assistant")})
        elif "contentBlockStart" in event:
            body = event["contentBlockStart"]
            use = body.get("start", {}).get("toolUse")
            if isinstance(use, dict):
                index = len(self._tool_index)
                self._tool_index[body.get("contentBlockIndex", 0)] = index
                call = {
                    "index": index,
                    "id": use.get("toolUseId"),
                    "function": {"name": use.get("name")},
                    "type": "function",
                }
                yield self._chunk({"tool_calls": [call]})
        elif "messageStop" in event:
            yield self._chunk({}, finish=finish_reason(event["messageStop"].get("stopReason")))
        elif "metadata" in event:
            yield {
                "id": self.completion_id,
                "choices": [],
                "model": self.model,
                "object": CHUNK,
                "usage": usage_of(event["metadata"].get("usage")),
            }

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice: dict[str, Any] = {"delta": delta}
        if finish is not None:
            choice["finish_reason"] = finish
        choice["index"] = 0
        return {"id": self.completion_id, "choices": [choice], "model": self.model, "object": CHUNK}
