"""Bedrock's embedding answers read with their float vectors parsed straight into float32 arrays.

`orjson.loads` makes one Python float per number and `array("f", ...)` then narrows each one:
~30 ns per number of a 96x1024 Cohere answer, more than the HTTP work around it. simdjson parses
the numbers into a float64 buffer instead, which numpy narrows to float32 in one pass. The values
are the same bit for bit (both parsers round each decimal to the nearest float64, and numpy rounds
to float32 as the C cast of `array("f")` does). Whatever this path cannot be sure of (an odd
number, a value that is not a number, nesting, ragged rows, a byte order mark) goes to
`orjson.loads` as before, so odd answers fail or pass exactly as they did.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import numpy as np
import orjson
import simdjson  # type: ignore[import-untyped, unused-ignore]

from esproxy.errors import ProxyError

# Where float vectors live: Titan (`embedding`, `embeddingsByType.float`), Cohere (`embeddings`,
# a list of vectors or, typed, `embeddings.float`). Other types hold whole numbers and stay lists.
VECTOR_FIELDS = ("embedding", "embeddings")
TYPED_FIELDS = ("embeddingsByType", "embeddings")
FLOAT_TYPE = "float"
BYTE_ORDER_MARK = b"\xef\xbb\xbf"  # simdjson skips it, orjson refuses it
ESCAPED_BRACKET = re.compile(rb"\\u005[bB]")
OPEN_BRACKET = ord("[")
PARSERS = threading.local()


class NotVectors(Exception):
    """The answer is not in the shape the fast path reads; orjson reads it instead."""


def load_answer(raw: bytes) -> dict[str, Any]:
    """The JSON object `raw` holds, with its float vectors as float32 numpy arrays (1-D for one
    vector, 2-D for a list of them); any other answer exactly as `orjson.loads` gives it."""
    try:
        return load_vectors(raw)
    except (NotVectors, ValueError, TypeError, RuntimeError, IndexError, KeyError, OverflowError):
        return load_plain(raw)


def load_plain(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise ProxyError("Amazon Bedrock answered with a body that is not a JSON object")
    return body


def load_vectors(raw: bytes) -> dict[str, Any]:
    if raw.startswith(BYTE_ORDER_MARK):
        raise NotVectors
    if b"\\" in raw and ESCAPED_BRACKET.search(raw):  # memchr first: most answers have no escape
        raise NotVectors
    doc = parse(raw)
    if not isinstance(doc, simdjson.Object):
        raise NotVectors
    body: dict[str, Any] = {}
    brackets = 0  # the '[' of the answer's text, counted from what was read
    for key, value in fields(doc):
        if key in VECTOR_FIELDS and isinstance(value, simdjson.Array):
            body[key], counted = read_vectors(value)
        elif key in TYPED_FIELDS and isinstance(value, simdjson.Object):
            body[key], counted = read_typed(value)
        else:
            body[key], counted = plain(value)
        brackets += key.count("[") + counted
    # Numbers hold no '[', so equal counts mean no vector nests a further array (which as_buffer
    # would flatten silently); no escaped '[' in the text makes the count of strings exact.
    if np.count_nonzero(np.frombuffer(raw, dtype=np.uint8) == OPEN_BRACKET) != brackets:
        raise NotVectors
    return body


def parse(raw: bytes) -> Any:
    """simdjson's lazy document. A parser keeps its buffers (a few MB at most): a new one per
    answer would fault in fresh pages, ~1 ms per Cohere answer. One per thread, and a spare when
    the thread's parser still backs a document."""
    parser = getattr(PARSERS, "parser", None)
    if parser is None:
        parser = PARSERS.parser = simdjson.Parser()
    try:
        return parser.parse(raw)
    except RuntimeError:  # in use, or an error a new parser will raise again (depth)
        return simdjson.Parser().parse(raw)


def read_typed(typed: Any) -> tuple[dict[str, Any], int]:
    body: dict[str, Any] = {}
    brackets = 0
    for key, value in fields(typed):
        if key == FLOAT_TYPE and isinstance(value, simdjson.Array):
            body[key], counted = read_vectors(value)
        else:
            body[key], counted = plain(value)
        brackets += key.count("[") + counted
    return body, brackets


def fields(document: Any) -> list[tuple[str, Any]]:
    """An object's fields, their values left unread (`items()` would convert them)."""
    keys = list(document.keys())
    if len(set(keys)) != len(keys):
        raise NotVectors  # orjson keeps a repeated key's last value, simdjson's lookup its first
    return [(key, document[key]) for key in keys]


def read_vectors(values: Any) -> tuple[Any, int]:
    """One vector (1-D) or equal-length vectors (2-D) as float32, and the '[' they were written
    with; anything else as a plain list."""
    rows = len(values)
    if rows == 0:
        return [], 1
    if isinstance(values[0], simdjson.Array):
        width = len(values[0])
        if any(len(row) != width for row in values):
            raise NotVectors  # ragged, or not all rows are lists
        shape: tuple[int, ...] = (rows, width)
        brackets = 1 + rows
    else:
        shape, brackets = (rows,), 1
    # as_buffer refuses anything but numbers (true, null, strings) and numbers beyond 64 bits.
    numbers = np.frombuffer(values.as_buffer(of_type="d"), dtype=np.float64)
    if numbers.size != rows * (shape[1] if len(shape) == 2 else 1):
        raise NotVectors  # a nested list in a row
    with np.errstate(over="ignore"):  # beyond float32's range is ±inf, as array("f") makes it
        return numbers.astype(np.float32).reshape(shape), brackets


def plain(value: Any) -> tuple[Any, int]:
    """A value as Python objects, and the '[' its text holds."""
    if isinstance(value, simdjson.Array):
        items = value.as_list()
        return items, count_brackets(items)
    if isinstance(value, simdjson.Object):
        fields = value.as_dict()
        return fields, count_brackets(fields)
    return value, value.count("[") if isinstance(value, str) else 0


def count_brackets(value: Any) -> int:
    if isinstance(value, list):
        return 1 + sum(count_brackets(item) for item in value)
    if isinstance(value, dict):
        return sum(key.count("[") + count_brackets(item) for key, item in value.items())
    return value.count("[") if isinstance(value, str) else 0
