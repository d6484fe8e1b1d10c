"""Request bodies decoded from JSON bytes, with Jackson-style errors and token locations.

The top-level object is walked here so that each key and value keeps its `line:column` (columns
count UTF-8 bytes, as Jackson's byte parser does); nested values are decoded by `json` in C.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from esproxy.errors import BodyParseError
from esproxy.inference.java_text import REDACTED

_SPACE = re.compile(r"[ \t\n\r]*")
_WORD = re.compile(r"[^\s{}\[\]:,\"]+")
UNRECOGNIZED = "(JSON String, Number, Array, Object or token 'null', 'true' or 'false')"
VALUE_EXPECTED = (
    "expected a valid value (JSON String, Number, Array, Object or token 'null', 'true' or 'false')"
)
# Jackson's wording for the failures Python's decoder reports (the texts are not confirmed).
PHRASES = {
    "Expecting value": VALUE_EXPECTED,
    "Expecting property name enclosed in double quotes": (
        "was expecting double-quote to start field name"
    ),
    "Expecting ':' delimiter": "was expecting a colon to separate field name and value",
    "Expecting ',' delimiter": "was expecting comma to separate entries",
    "Invalid \\uXXXX escape": "expected a hex-digit for character escape sequence",
}


@dataclass(frozen=True)
class Location:
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.line}:{self.column}"


class JsonBody(dict[str, Any]):
    """A decoded JSON object that can say where its top-level keys and values begin.

    The offsets are found only when an error asks for them: a valid body is decoded in one C call.
    """

    def __init__(self, text: str, start: int, members: Mapping[str, Any]) -> None:
        super().__init__(members)
        self.text = text
        self.start = start

    @cached_property
    def _offsets(self) -> dict[str, tuple[int, int]]:
        """Each member's key and value offsets, from one walk of the text."""
        walk = scan_members(self.text, self.start)
        return {key: (key_at, value_at) for key, _, key_at, value_at in walk}

    @property
    def key_offsets(self) -> dict[str, int]:
        return {key: at for key, (at, _) in self._offsets.items()}

    @property
    def value_offsets(self) -> dict[str, int]:
        return {key: at for key, (_, at) in self._offsets.items()}

    @classmethod
    def compact(cls, body: Mapping[str, Any]) -> JsonBody:
        """`body` as if it had arrived as compact JSON, for bodies that were not decoded here."""
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str)
        return decode_json_body(text.encode("utf-8"))

    def key_location(self, key: str) -> Location:
        return locate(self.text, self.key_offsets[key])

    def value_location(self, key: str) -> Location:
        return locate(self.text, self.value_offsets[key])

    def item_locations(self, key: str) -> list[Location]:
        """Where each item of the array under `key` begins."""
        return [
            locate(self.text, start) for start in item_offsets(self.text, self.value_offsets[key])
        ]


def parse_failure(reason: str, location: Location | None = None) -> BodyParseError:
    prefix = f"[{location}] " if location else ""
    return BodyParseError(prefix + reason, error_type="x_content_parse_exception")


def decode_json_body(raw: bytes) -> JsonBody:
    """The JSON object of a request body; ES's parse errors for anything else.

    An empty body gets the REST layer's `request body is required` (unconfirmed in the reference).
    """
    if not raw.strip(b" \t\r\n"):
        raise BodyParseError("request body is required")
    text = decode_utf8(raw)
    start = skip_space(text, 1 if text.startswith("\ufeff") else 0)
    if start >= len(text):
        raise BodyParseError("request body is required")
    if text[start] != "{":
        kind = token_kind(text, start)
        raise parse_failure(f"Expected START_OBJECT but was: {kind}", locate(text, start))
    try:
        members, _ = _DECODER.raw_decode(text, start)
    except (ValueError, RecursionError):
        members = None  # the member walk below says what and where, as Jackson would
    try:
        if members is None:
            members = {key: value for key, value, _, _ in scan_members(text, start)}
        body = JsonBody(text, start, members)
    except json.JSONDecodeError as error:
        raise parse_failure(jackson_message(error), locate(text, error.pos)) from None
    except RecursionError:
        # Jackson stops at depth 1000; Python's decoder gives out near the same depth.
        raise parse_failure(
            "Document nesting depth exceeds the maximum allowed (1000, from "
            "`StreamReadConstraints.getMaxNestingDepth()`)"
        ) from None
    if _SURROGATE_ESCAPE.search(text):
        reject_lone_surrogates(body)
    return body


_SECRET_VALUE = re.compile(r'"(?:access_key|secret_key)"\s*:\s*$')
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def reject_lone_surrogates(body: JsonBody) -> None:
    """`\\ud800` alone decodes to text no UTF-8 encoder takes: refuse it here, not later."""
    try:
        # Not orjson: it also refuses integers past 64 bits, which are no surrogate's fault.
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise parse_failure(
            "Invalid UTF-16 surrogate in a JSON string: a \\uD800-\\uDFFF escape must be "
            "half of a valid pair"
        ) from None


def decode_utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        before = raw[: error.start].decode("utf-8")
        where = locate(before, len(before))
        if error.reason == "invalid continuation byte" and error.end < len(raw):
            reason = f"Invalid UTF-8 middle byte 0x{raw[error.end]:x}"
        elif error.reason == "invalid start byte":
            reason = f"Invalid UTF-8 start byte 0x{raw[error.start]:x}"
        else:
            reason = "Unexpected end-of-input"
        raise parse_failure(reason, where) from None


def scan_members(text: str, start: int) -> Iterator[tuple[str, Any, int, int]]:
    """Yield (key, value, key offset, value offset) for each member of the object at `start`."""
    pos = skip_space(text, start + 1)
    if text.startswith("}", pos):
        return
    seen: set[str] = set()
    while True:
        if not text.startswith('"', pos):
            raise json.JSONDecodeError(
                "Expecting property name enclosed in double quotes", text, pos
            )
        key, after = _DECODER.raw_decode(text, pos)
        if key in seen:
            raise parse_failure(f"Duplicate field '{key}'", locate(text, after))
        seen.add(key)
        colon = skip_space(text, after)
        if not text.startswith(":", colon):
            raise json.JSONDecodeError("Expecting ':' delimiter", text, colon)
        value_start = skip_space(text, colon + 1)
        value, end = decode_value(text, value_start)
        yield key, value, pos, value_start
        pos = skip_space(text, end)
        if text.startswith("}", pos):
            return
        if not text.startswith(",", pos):
            raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
        pos = skip_space(text, pos + 1)


def decode_value(text: str, start: int) -> tuple[Any, int]:
    try:
        return _DECODER.raw_decode(text, start)
    except json.JSONDecodeError:
        raise
    except ValueError as error:
        # Raised from the hooks below, which cannot say where; the enclosing value is close.
        raise parse_failure(str(error), locate(text, start)) from None


def unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """ES enables Jackson's strict duplicate detection, at every depth."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"Duplicate field '{key}'")
        result[key] = value
    return result


def reject_constant(name: str) -> Any:
    raise ValueError(
        f"Non-standard token '{name}': enable `JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS` to allow"
    )


_DECODER = json.JSONDecoder(object_pairs_hook=unique_object, parse_constant=reject_constant)


def item_offsets(text: str, start: int) -> list[int]:
    """Offsets of the items of the (already decoded, so valid) array at `start`."""
    offsets: list[int] = []
    pos = skip_space(text, start + 1)
    while not text.startswith("]", pos):
        offsets.append(pos)
        pos = skip_space(text, _DECODER.raw_decode(text, pos)[1])
        if text.startswith(",", pos):
            pos = skip_space(text, pos + 1)
    return offsets


def skip_space(text: str, pos: int) -> int:
    match = _SPACE.match(text, pos)
    return match.end() if match else pos


def locate(text: str, offset: int) -> Location:
    line_start = text.rfind("\n", 0, offset) + 1
    column = len(text[line_start:offset].encode("utf-8", errors="surrogatepass")) + 1
    return Location(text.count("\n", 0, offset) + 1, column)


def token_kind(text: str, pos: int) -> str:
    """The name of the Jackson token starting at `pos`, for ObjectParser's START_OBJECT check."""
    char = text[pos]
    kinds = {"[": "START_ARRAY", '"': "VALUE_STRING", "t": "VALUE_BOOLEAN", "f": "VALUE_BOOLEAN"}
    if char in kinds:
        return kinds[char]
    if char == "n":
        return "VALUE_NULL"
    if char == "-" or char.isdigit():
        return "VALUE_NUMBER"
    error = json.JSONDecodeError("Expecting value", text, pos)
    raise parse_failure(jackson_message(error), locate(text, pos))


def jackson_message(error: json.JSONDecodeError) -> str:
    text, pos, msg = error.doc, error.pos, error.msg
    if msg.startswith("Unterminated string"):
        return "Unexpected end-of-input: was expecting closing quote for a string value"
    if pos >= len(text):
        return "Unexpected end-of-input"
    if msg.startswith("Invalid control character"):
        return (
            f"Illegal unquoted character ({describe(text[pos])}): has to be escaped using "
            "backslash to be included in string value"
        )
    if msg.startswith("Invalid \\escape"):
        return f"Unrecognized character escape {describe(text[pos + 1 : pos + 2] or ' ')}"
    word = _WORD.match(text, pos)
    if msg == "Expecting value" and word and text[pos].isalpha():
        # ES echoes the token; an unquoted key must not be echoed, so that one is masked.
        token = REDACTED if _SECRET_VALUE.search(text, max(0, pos - 64), pos) else word.group()
        return f"Unrecognized token '{token}': was expecting {UNRECOGNIZED}"
    return unexpected(text, pos, PHRASES.get(msg, msg))


def unexpected(text: str, pos: int, phrase: str) -> str:
    return f"Unexpected character ({describe(text[pos])}): {phrase}"


def describe(char: str) -> str:
    """Jackson's `_getCharDesc`."""
    code = ord(char)
    if code < 0x20:
        return f"CTRL-CHAR, code {code}"
    if code > 255:
        return f"'{char}' (code {code} / 0x{code:x})"
    return f"'{char}' (code {code})"
