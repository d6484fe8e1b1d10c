"""Deterministic embeddings: a signed, hashed bag of words, so texts sharing words come out similar.

Hashing uses blake2b rather than Python's `hash`, which is salted per process.
"""

from __future__ import annotations

import hashlib
import math

from esproxy.bedrock_emulator.tokens import words

# Each word lands in a few slots so that one collision does not decide a similarity.
SLOTS_PER_WORD = 3


def embed(text: str, dimensions: int, *, normalize: bool = True) -> list[float]:
    vector = [0.0] * dimensions
    for word in words(text):
        for index, sign in word_slots(word, dimensions):
            vector[index] += sign
    return normalized(vector) if normalize else vector


def word_slots(word: str, dimensions: int) -> list[tuple[int, float]]:
    digest = hashlib.blake2b(word.encode(), digest_size=8 * SLOTS_PER_WORD).digest()
    slots = []
    for slot in range(SLOTS_PER_WORD):
        value = int.from_bytes(digest[slot * 8 : slot * 8 + 8], "big")
        slots.append((value % dimensions, 1.0 if value >> 63 else -1.0))
    return slots


def normalized(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(value * value for value in vector))
    if norm == 0.0:
        return vector
    return [value / norm for value in vector]


def to_int8(vector: list[float]) -> list[int]:
    return [max(-128, min(127, round(value * 127))) for value in vector]


def to_uint8(vector: list[float]) -> list[int]:
    return [max(0, min(255, round((value + 1) * 127.5))) for value in vector]


def to_ubinary(vector: list[float]) -> list[int]:
    """One bit per dimension (set when positive), packed eight to a byte, most significant first."""
    packed = []
    for start in range(0, len(vector), 8):
        byte = 0
        for value in vector[start : start + 8]:
            byte = (byte << 1) | (value > 0)
        packed.append(byte)
    return packed


def to_binary(vector: list[float]) -> list[int]:
    """The packed bits of `to_ubinary` read as signed bytes."""
    return [byte - 256 if byte > 127 else byte for byte in to_ubinary(vector)]


def to_bits(vector: list[float]) -> list[int]:
    """Titan's binary form: one 0/1 value per dimension."""
    return [1 if value > 0 else 0 for value in vector]
