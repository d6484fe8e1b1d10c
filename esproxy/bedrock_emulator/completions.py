"""Deterministic Converse answers: text derived from the conversation, cut by stop sequences and
the `maxTokens` budget, with token usage counted by the emulator's tokenizer."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Final

from esproxy.bedrock_emulator.conversations import Conversation
from esproxy.bedrock_emulator.model_ids import ModelRef
from esproxy.bedrock_emulator.tokens import count_tokens, cut_to_tokens, words
from esproxy.bedrock_emulator.tool_use import ToolUse, choose_tool_use

VOCABULARY: Final = (
    *("search", "relevance", "vectors", "index", "shards", "query", "cluster", "mapping"),
    *("ranking", "tokens", "semantic", "document", "field", "analyzer", "embedding"),
    *("inference", "endpoint", "latency", "model", "answer", "context", "retrieval"),
    *("score", "segment", "replica", "snapshot", "pipeline", "filter", "aggregation"),
)
ECHO_WORDS: Final = 12
DELTA_PATTERN: Final = re.compile(r"\S+\s*|\s+")


@dataclass(frozen=True)
class Completion:
    text: str
    stop_reason: str
    input_tokens: int
    output_tokens: int
    tool_use: ToolUse | None = None

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def usage(self) -> dict[str, int]:
        return {
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "totalTokens": self.total_tokens,
        }

    def deltas(self) -> list[str]:
        """`text` in streaming pieces: each word with the whitespace after it."""
        return DELTA_PATTERN.findall(self.text)


def complete(model: ModelRef, conversation: Conversation) -> Completion:
    prompt = conversation.prompt
    input_tokens = count_tokens(prompt) + sum(
        count_tokens(f"{tool.name} {tool.description} {tool.schema}")
        for tool in (conversation.tool_config.tools if conversation.tool_config else ())
    )
    tool_use = choose_tool_use(
        conversation.tool_config, conversation.question, f"{model.base_id}\n{prompt}"
    )
    if tool_use is not None:
        return Completion(
            text="",
            stop_reason="tool_use",
            input_tokens=input_tokens,
            output_tokens=count_tokens(tool_use.input_json),
            tool_use=tool_use,
        )
    text, stop_reason = apply_limits(compose_reply(model, conversation), conversation)
    return Completion(
        text=text,
        stop_reason=stop_reason,
        input_tokens=input_tokens,
        output_tokens=count_tokens(text),
    )


def compose_reply(model: ModelRef, conversation: Conversation) -> str:
    """Echo the start of the last user turn, then words picked by a digest of the whole prompt."""
    if conversation.tool_results:
        used = " | ".join(conversation.tool_results)
        return f"Emulated {model.provider} reply from the tool result: {used}."
    seed = hashlib.sha256(f"{model.base_id}\n{conversation.prompt}".encode()).digest()
    picked = [VOCABULARY[byte % len(VOCABULARY)] for byte in seed[1 : 9 + seed[0] % 16]]
    echoed = " ".join(words(conversation.last_user_text)[:ECHO_WORDS]) or "nothing"
    return f"Emulated {model.provider} reply to: {echoed}. Related terms: {', '.join(picked)}."


def apply_limits(text: str, conversation: Conversation) -> tuple[str, str]:
    stop_at = min(
        (text.find(stop) for stop in conversation.stop_sequences if stop and stop in text),
        default=-1,
    )
    stop_reason = "end_turn"
    if stop_at >= 0:
        text, stop_reason = text[:stop_at], "stop_sequence"
    budget = conversation.max_tokens
    if budget is not None and count_tokens(text) > budget:
        text, stop_reason = cut_to_tokens(text, budget), "max_tokens"
    return text, stop_reason
