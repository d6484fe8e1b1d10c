"""Reading a Converse / ConverseStream request body: Bedrock's constraint and conversation checks.

The result keeps only what the emulator answers from: texts, token budget and stop sequences.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from esproxy.bedrock_emulator.errors import constraint_error, malformed_input, validation_error
from esproxy.bedrock_emulator.model_ids import ModelRef
from esproxy.bedrock_emulator.tool_use import ToolConfig, check_tool_turns, read_tool_config

ROLES: Final = ("user", "assistant")
MAX_STOP_SEQUENCES: Final = 2500
MAX_RESPONSE_FIELD_PATHS: Final = 10
# Providers whose native schema has no top-level `top_k`; Bedrock relays the model's complaint.
NO_TOP_K: Final = frozenset({"amazon", "ai21", "cohere", "meta"})
MUST_START_WITH_USER = (
    "A conversation must start with a user message. Try again with a conversation that starts with "
    "a user message."
)
MUST_ALTERNATE = (
    "A conversation must alternate between user and assistant roles. Make sure the conversation "
    "alternates between user and assistant roles and try again."
)


@dataclass(frozen=True)
class Conversation:
    """The parts of a Converse request that shape the emulator's answer."""

    system: tuple[str, ...]
    turns: tuple[tuple[str, str], ...]
    max_tokens: int | None
    stop_sequences: tuple[str, ...]
    tool_config: ToolConfig | None = None
    # The last turn's tool results (texts), when it is a user turn holding any.
    tool_results: tuple[str, ...] = ()

    @property
    def prompt(self) -> str:
        return "\n".join([*self.system, *(text for _, text in self.turns)])

    @property
    def question(self) -> str | None:
        """The user's own words when the conversation ends on them (not on tool results)."""
        if not self.turns or self.turns[-1][0] != "user" or self.tool_results:
            return None
        return self.turns[-1][1]

    @property
    def last_user_text(self) -> str:
        return next((text for role, text in reversed(self.turns) if role == "user"), "")


def read_conversation(model: ModelRef, raw_body: bytes) -> Conversation:
    request = load_request(raw_body)
    config = as_object(request.get("inferenceConfig", {}))
    check_constraints(request, config)
    check_additional_fields(model, as_object(request.get("additionalModelRequestFields", {})))
    messages = as_list(request.get("messages", []))
    turns = read_turns(messages)
    tool_config = read_tool_config(model, request.get("toolConfig"))
    check_tool_turns([as_object(message) for message in messages], tool_config)
    last = as_list(as_object(messages[-1]).get("content", []))
    results = tuple(
        block_text(as_object(block["toolResult"]).get("content", []))
        if isinstance(block, dict) and isinstance(block.get("toolResult"), dict)
        else ""
        for block in last
        if isinstance(block, dict) and "toolResult" in block
    )
    max_tokens = config.get("maxTokens")
    return Conversation(
        tool_config=tool_config,
        tool_results=results if turns[-1][0] == "user" else (),
        system=tuple(block_text(as_object(block)) for block in as_list(request.get("system", []))),
        turns=turns,
        max_tokens=max_tokens if isinstance(max_tokens, int) else None,
        stop_sequences=tuple(str(stop) for stop in as_list(config.get("stopSequences", []))),
    )


def load_request(raw_body: bytes) -> dict[str, object]:
    try:
        return as_object(json.loads(raw_body or b"{}"))
    except (UnicodeDecodeError, ValueError):
        raise malformed_input([]) from None


def as_object(value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise malformed_input([])
    return value


def as_list(value: object) -> list[object]:
    if not isinstance(value, list):
        raise malformed_input([])
    return value


def check_constraints(request: dict[str, object], config: dict[str, object]) -> None:
    violations = [
        *number_violations(config, "maxTokens", 1, None),
        *number_violations(config, "temperature", 0, 1),
        *number_violations(config, "topP", 0, 1),
        *stop_sequence_violations(config.get("stopSequences", [])),
        *role_violations(as_list(request.get("messages", []))),
    ]
    paths = as_list(request.get("additionalModelResponseFieldPaths", []))
    if len(paths) > MAX_RESPONSE_FIELD_PATHS:
        violations.append(
            f"Value '{paths}' at 'additionalModelResponseFieldPaths' failed to satisfy constraint: "
            f"Member must have length less than or equal to {MAX_RESPONSE_FIELD_PATHS}"
        )
    if violations:
        raise constraint_error(violations)


def number_violations(config: dict[str, object], key: str, low: int, high: int | None) -> list[str]:
    if key not in config:
        return []
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise malformed_input([])
    shown = value if key == "maxTokens" else float(value)
    where = f"Value '{shown}' at 'inferenceConfig.{key}' failed to satisfy constraint: Member must"
    if value < low:
        return [f"{where} have value greater than or equal to {low}"]
    if high is not None and value > high:
        return [f"{where} have value less than or equal to {high}"]
    return []


def stop_sequence_violations(stops: object) -> list[str]:
    stops = as_list(stops)
    violations = [
        f"Value '{stop}' at 'inferenceConfig.stopSequences.{index}.member' failed to satisfy "
        "constraint: Member must have length greater than or equal to 1"
        for index, stop in enumerate(stops, start=1)
        if stop == ""
    ]
    if len(stops) > MAX_STOP_SEQUENCES:
        violations.append(
            "Value at 'inferenceConfig.stopSequences' failed to satisfy constraint: Member must "
            f"have length less than or equal to {MAX_STOP_SEQUENCES}"
        )
    return violations


def role_violations(messages: list[object]) -> list[str]:
    return [
        f"Value '{role}' at 'messages.{index}.member.role' failed to satisfy constraint: Member "
        f"must satisfy enum value set: [{', '.join(ROLES)}]"
        for index, message in enumerate(messages, start=1)
        if (role := as_object(message).get("role")) not in ROLES
    ]


def check_additional_fields(model: ModelRef, fields: dict[str, object]) -> None:
    if model.provider in NO_TOP_K and "top_k" in fields:
        raise validation_error(
            "The model returned the following errors: Malformed input request: #: extraneous key "
            "[top_k] is not permitted, please reformat your input and try again."
        )


def read_turns(messages: list[object]) -> tuple[tuple[str, str], ...]:
    turns: list[tuple[str, str]] = []
    for index, raw in enumerate(messages):
        message = as_object(raw)
        role = str(message.get("role"))
        if (not turns and role != "user") or (turns and turns[-1][0] == role):
            raise validation_error(MUST_START_WITH_USER if not turns else MUST_ALTERNATE)
        content = as_list(message.get("content", []))
        if not content:
            raise validation_error(
                f"The content field in the Message object at messages.{index} is empty. Add a "
                "ContentBlock object to the content field and try again."
            )
        for position, block in enumerate(content):
            text = as_object(block).get("text")
            if isinstance(text, str) and not text.strip():
                raise validation_error(
                    f"The text field in the ContentBlock object at messages.{index}.content."
                    f"{position} is blank. Add text to the text field, and try again."
                )
        turns.append((role, "\n".join(block_text(as_object(block)) for block in content)))
    if not turns:
        raise validation_error(MUST_START_WITH_USER)
    return tuple(turns)


def block_text(block: object) -> str:
    """The text a content block contributes to the prompt; media blocks contribute nothing."""
    if isinstance(block, list):  # a toolResult's own content blocks
        return "\n".join(block_text(item) for item in block)
    if not isinstance(block, dict):
        return ""
    if isinstance(block.get("text"), str):
        return str(block["text"])
    if isinstance(block.get("toolUse"), dict) or isinstance(block.get("toolResult"), dict):
        return json.dumps(block.get("toolUse") or block.get("toolResult"))
    guard = block.get("guardContent")
    if isinstance(guard, dict) and isinstance(guard.get("text"), dict):
        return str(guard["text"].get("text", ""))
    return ""
