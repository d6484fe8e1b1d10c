"""The emulator's stand-in tokenizer: words and single punctuation marks each count as one token."""

from __future__ import annotations

import re

TOKEN_PATTERN = re.compile(r"\w+|[^\w\s]")
WORD_PATTERN = re.compile(r"\w+")


def count_tokens(text: str) -> int:
    return sum(1 for _ in TOKEN_PATTERN.finditer(text))


def words(text: str) -> list[str]:
    """Lower-case words, the unit embeddings are built from."""
    return WORD_PATTERN.findall(text.lower())


def cut_to_tokens(text: str, budget: int) -> str:
    """The longest prefix of `text` holding at most `budget` tokens."""
    end = 0
    for index, match in enumerate(TOKEN_PATTERN.finditer(text)):
        if index == budget:
            break
        end = match.end()
    return text[:end]
