"""Tool use in Converse requests: reading `toolConfig`, Bedrock's checks, and the emulator's choice.

The emulated model is predictable on purpose, so tests can assert exact calls: when tools are on
offer and the last turn is the user's own words (not tool results), it calls one tool (the one
`toolChoice` names, or else the tool whose name and description share the most words with the
question, name words counting twice; the first on a tie) with an input built from the tool's
JSON schema. After tool results it answers in text that quotes them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from esproxy.bedrock_emulator.errors import malformed_input, validation_error
from esproxy.bedrock_emulator.model_ids import ModelRef
from esproxy.bedrock_emulator.tokens import words

# Models without tool use on Bedrock, by id fragment.
NO_TOOL_MODELS: Final = (
    "claude-instant",
    "claude-v2",
    "titan-text",
    "command-text",
    "command-light",
    "mistral-7b",
    "mixtral",
    "llama2",
    "llama3-8b",
    "llama3-70b",
    "j2-",
)
NO_TOOL_USE = "This model doesn't support tool use."
TOOL_CONFIG_NEEDED = (
    "The toolConfig field must be defined when using toolUse and toolResult content blocks."
)
ARGUMENT_PIECE: Final = 8  # characters of input JSON per streamed toolUse delta


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    schema: Mapping[str, Any]


@dataclass(frozen=True)
class ToolConfig:
    tools: tuple[ToolSpec, ...]
    choice: str  # auto, any or tool
    named: str | None = None


@dataclass(frozen=True)
class ToolUse:
    tool_use_id: str
    name: str
    input: Mapping[str, Any]

    @property
    def input_json(self) -> str:
        return json.dumps(self.input, separators=(",", ":"))

    def input_pieces(self) -> list[str]:
        text = self.input_json
        return [text[i : i + ARGUMENT_PIECE] for i in range(0, len(text), ARGUMENT_PIECE)] or [""]


def supports_tools(model: ModelRef) -> bool:
    return not any(part in model.base_id for part in NO_TOOL_MODELS)


def read_tool_config(model: ModelRef, raw: object) -> ToolConfig | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("tools"), list):
        raise malformed_input([])
    if not raw["tools"]:
        raise validation_error(
            "1 validation error detected: Value '[]' at 'toolConfig.tools' failed to satisfy "
            "constraint: Member must have length greater than or equal to 1"
        )
    if not supports_tools(model):
        raise validation_error(NO_TOOL_USE)
    tools = tuple(read_tool(tool) for tool in raw["tools"])
    choice, named = read_choice(raw.get("toolChoice"), tools)
    return ToolConfig(tools=tools, choice=choice, named=named)


def read_tool(raw: object) -> ToolSpec:
    spec = raw.get("toolSpec") if isinstance(raw, dict) else None
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise malformed_input([])
    schema = spec.get("inputSchema")
    if not isinstance(schema, dict) or not isinstance(schema.get("json"), dict):
        raise malformed_input([])
    return ToolSpec(spec["name"], str(spec.get("description") or ""), schema["json"])


def read_choice(raw: object, tools: Sequence[ToolSpec]) -> tuple[str, str | None]:
    if raw is None:
        return "auto", None
    if not isinstance(raw, dict) or len(raw) != 1:
        raise malformed_input([])
    ((kind, body),) = raw.items()
    if kind not in ("auto", "any", "tool") or not isinstance(body, dict):
        raise malformed_input([])
    if kind != "tool":
        return kind, None
    name = body.get("name")
    if name not in [tool.name for tool in tools]:
        raise validation_error(
            f"The tool {name} specified in toolChoice is not defined in toolConfig.tools."
        )
    return kind, str(name)


def check_tool_turns(messages: Sequence[Mapping[str, Any]], config: ToolConfig | None) -> None:
    """Bedrock's pairing rules: tool blocks need a toolConfig, and each toolResult answers a
    toolUse of the assistant turn right before it."""
    previous_uses: set[str] = set()
    for index, message in enumerate(messages):
        blocks = [block for block in message.get("content", []) if isinstance(block, dict)]
        uses = {
            str(b["toolUse"].get("toolUseId")) for b in blocks if isinstance(b.get("toolUse"), dict)
        }
        results = [
            str(b["toolResult"].get("toolUseId"))
            for b in blocks
            if isinstance(b.get("toolResult"), dict)
        ]
        if (uses or results) and config is None:
            raise validation_error(TOOL_CONFIG_NEEDED)
        if results and (len(results) > len(previous_uses) or not set(results) <= previous_uses):
            raise validation_error(
                f"The number of toolResult blocks at messages.{index}.content exceeds the number "
                "of toolUse blocks of previous turn."
            )
        previous_uses = uses if message.get("role") == "assistant" else set()


def choose_tool_use(config: ToolConfig | None, question: str | None, seed: str) -> ToolUse | None:
    """The call the emulated model makes, or None when it answers in text."""
    if config is None or question is None:
        return None
    if config.named is not None:
        tool = next(tool for tool in config.tools if tool.name == config.named)
    else:
        asked = set(words(question))
        tool = max(config.tools, key=lambda t: relevance(t, asked))
    digest = hashlib.sha256(f"{seed}\n{tool.name}".encode()).hexdigest()
    return ToolUse(f"tooluse_{digest[:22]}", tool.name, example_input(tool.schema, question))


def relevance(tool: ToolSpec, asked: set[str]) -> int:
    """Words shared with the question; a word of the tool's name counts twice."""
    named = set(words(tool.name.replace("_", " ")))
    return 2 * len(asked & named) + len(asked & set(words(tool.description)))


def example_input(schema: Mapping[str, Any], question: str) -> dict[str, Any]:
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return {}
    required = schema.get("required")
    names = [n for n in properties if not isinstance(required, list) or n in required]
    return {name: example_value(properties[name], question) for name in names}


def example_value(schema: object, question: str) -> Any:
    if not isinstance(schema, dict):
        return question
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "array":
        return [example_value(schema.get("items"), question)]
    if kind == "object":
        return example_input(schema, question)
    return " ".join(words(question)[-1:]) or "value"
