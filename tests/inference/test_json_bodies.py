"""Request bodies decode in one C call, and still say where each top-level member begins."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esproxy.errors import BodyParseError
from esproxy.inference.json_bodies import decode_json_body, scan_members

SPACES = st.sampled_from(["", " ", "\n", "\t ", "\r\n  "])
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def object_texts(draw: Any) -> tuple[str, dict[str, Any]]:
    """A JSON object with odd spacing between its top-level tokens, and what it holds."""
    members = draw(st.dictionaries(st.text(), VALUES, max_size=5))

    def space() -> str:
        return str(draw(SPACES))

    parts = [
        space() + json.dumps(key) + space() + ":" + space() + json.dumps(value) + space()
        for key, value in members.items()
    ]
    return space() + "{" + ",".join(parts) + (space() if not parts else "") + "}", members


@settings(max_examples=300, deadline=None)
@given(object_texts())
def test_a_valid_body_decodes_as_the_member_walk_does(case: tuple[str, dict[str, Any]]) -> None:
    text, members = case
    body = decode_json_body(text.encode("utf-8"))
    walked = list(scan_members(text, text.index("{")))
    assert dict(body) == members == {key: value for key, value, _, _ in walked}
    assert list(body) == [key for key, _, _, _ in walked]
    # Where each key and value begins, found only when asked: the key's quote, the value's text.
    for key, value, key_at, value_at in walked:
        assert body.key_offsets[key] == key_at and text[key_at] == '"'
        assert json.JSONDecoder().raw_decode(text, body.value_offsets[key])[0] == value
        assert value_at == body.value_offsets[key]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"a": 1, "a": 2}', "[1:13] Duplicate field 'a'"),
        (b'{"a": {"b": 1, "b": 2}}', "[1:7] Duplicate field 'b'"),
        (b'{"a": 1,\n "b": NaN}', "[2:7] Non-standard token 'NaN'"),
        (b'{"a": 1 "b": 2}', "[1:9] Unexpected character"),
    ],
)
def test_a_bad_body_is_refused_where_jackson_would_say(raw: bytes, reason: str) -> None:
    with pytest.raises(BodyParseError) as refused:
        decode_json_body(raw)
    assert str(refused.value.reason).startswith(reason)


def test_a_paired_surrogate_beside_a_huge_integer_is_no_lone_surrogate() -> None:
    # Found by the property above: the lone-surrogate check used orjson, which also refuses
    # integers past 64 bits, so this valid body was refused as holding a lone surrogate.
    body = decode_json_body(b'{"\\ud83d\\ude00": -9223372036854775809}')
    assert body == {"\U0001f600": -9223372036854775809}
    with pytest.raises(BodyParseError, match="Invalid UTF-16 surrogate"):
        decode_json_body(b'{"a": -9223372036854775809, "b": "\\ud800"}')
