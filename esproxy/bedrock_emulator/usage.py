"""The tokens the emulator reported in its answers, per model: `GET /_emulator/usage`.

Tests compare esproxy's token counters with these, the counts "Bedrock" itself sent.
"""

from __future__ import annotations


class UsageBook:
    def __init__(self) -> None:
        self._models: dict[str, dict[str, int]] = {}

    def record(self, model: str, input_tokens: int, output_tokens: int) -> None:
        counts = self._models.setdefault(model, {"input_tokens": 0, "output_tokens": 0})
        counts["input_tokens"] += input_tokens
        counts["output_tokens"] += output_tokens

    def clear(self) -> None:
        self._models.clear()

    def to_json(self) -> dict[str, object]:
        return {"models": {model: dict(counts) for model, counts in self._models.items()}}
