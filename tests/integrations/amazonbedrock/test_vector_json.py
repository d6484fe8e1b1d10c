"""vector_json against the path it replaced: orjson.loads, array("f"), the same printer.

Every answer, however odd, must give the same printed vectors, the same other fields and the same
errors as before; only the cost may differ.
"""

from __future__ import annotations

import json
from array import array
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from esproxy.errors import ProxyError
from esproxy.integrations.amazonbedrock import bodies, vector_json
from esproxy.web.responses import float32_vectors, to_json


def old_load(raw: bytes) -> dict[str, Any]:
    """The loader before vector_json (client.parse_json)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise ProxyError("Amazon Bedrock answered with a body that is not a JSON object")
    return body


def old_vector(values: Any) -> Any:
    """float32_vector before vector_json: lists only."""
    if not isinstance(values, list):
        raise ProxyError("Amazon Bedrock embeddings response holds no list of numbers", status=500)
    try:
        return array("f", values)
    except TypeError:
        raise ProxyError(
            "Amazon Bedrock embeddings response holds a value that is not a number", status=500
        ) from None


def outcome(work: Any) -> Any:
    try:
        return work()
    except ProxyError as error:
        return ("error", error.status, str(error))
    except ValueError as error:  # ragged rows fail in the printer, before and after alike
        return ("printer", str(error))


def printed(vectors: list[Any]) -> bytes:
    """The answer's bytes as the web layer prints them."""
    return to_json({"text_embedding": [{"embedding": v} for v in float32_vectors(vectors)]})


def titan(load: Any, vector: Any, raw: bytes) -> Any:
    def work() -> Any:
        body = load(raw)
        field = bodies.require_field(body, "embedding", "embeddings")
        by_type = body.get("embeddingsByType")
        typed = by_type.get("float") if isinstance(by_type, dict) else None
        extra = [vector(typed)] if typed is not None else []
        return printed([vector(field), *extra]), others(body), bodies.titan_token_count(body)

    return outcome(work)


def cohere(load: Any, vectors: Any, raw: bytes, expected: int, kind: str = "float") -> Any:
    def work() -> Any:
        body = load(raw)
        rows = bodies.parse_cohere_vectors(body, expected, kind)
        return printed(vectors(rows)) if len(rows) else b"", others(body)

    return outcome(work)


def others(body: dict[str, Any]) -> dict[str, Any]:
    """The fields besides the float vectors, which must come out as orjson gives them."""
    kept = {k: v for k, v in body.items() if k not in ("embedding", "embeddings")}
    if isinstance(body.get("embeddings"), dict):
        kept["typed"] = {k: v for k, v in body["embeddings"].items() if k != "float"}
    if isinstance(body.get("embeddingsByType"), dict):
        kept["embeddingsByType"] = {
            k: v for k, v in body["embeddingsByType"].items() if k != "float"
        }
    return kept


def assert_same_titan(raw: bytes) -> None:
    new = titan(vector_json.load_answer, bodies.float32_vector, raw)
    assert new == titan(old_load, old_vector, raw)


def assert_same_cohere(raw: bytes, expected: int, kind: str = "float") -> None:
    new = cohere(vector_json.load_answer, bodies.float32_rows, raw, expected, kind)
    assert new == cohere(old_load, old_rows, raw, expected, kind)


def old_rows(rows: Any) -> list[Any]:
    """Cohere's vectors before: one float32 copy per row."""
    return [old_vector(row) for row in rows]


float32s = st.floats(width=32, allow_nan=False, allow_infinity=False)


def number_texts(value: float) -> list[str]:
    """Ways a JSON writer may print one number: shortest float64, float32 shortest, exponent."""
    narrow = np.float32(value)
    return [repr(float(narrow)), repr(narrow.item()), str(narrow), f"{float(narrow):.17e}"]


@settings(max_examples=300)
@given(st.lists(float32s, min_size=1, max_size=64), st.integers(0, 3))
def test_float32_values_print_the_same_bytes(values: list[float], style: int) -> None:
    text = ",".join(number_texts(v)[style] for v in values)
    raw = b'{"embedding":[%s],"inputTextTokenCount":3}' % text.encode()
    assert_same_titan(raw)
    read = vector_json.load_answer(raw)["embedding"]
    assert isinstance(read, np.ndarray)  # the fast path, not its fallback
    assert read.tobytes() == np.asarray(values, dtype=np.float32).tobytes()  # bit for bit


# Decimal text as any JSON writer might send it: signs, integers (beyond 2^53 and 2^64 too),
# many digits, exponents of both cases and signs, negative zero, values past float32's range.
decimal_texts = st.builds(
    lambda sign, whole, fraction, exponent: sign + whole + fraction + exponent,
    st.sampled_from(["", "-"]),
    st.one_of(
        st.just("0"),
        st.integers(1, 10**30).map(str),
        st.sampled_from(["9007199254740993", "18446744073709551615", "18446744073709551616"]),
    ),
    st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=40).map(lambda d: "." + d)),
    st.one_of(
        st.just(""),
        st.builds(
            lambda e, s, n: f"{e}{s}{n}",
            st.sampled_from("eE"),
            st.sampled_from(["", "+", "-"]),
            st.integers(0, 330),
        ),
    ),
)


@settings(max_examples=500)
@given(st.lists(st.lists(decimal_texts, min_size=3, max_size=3), min_size=1, max_size=8))
@example([["-0", "-0.0", "0e0"]])
@example([["3.4028235677973366e38", "3.4028236e38", "1e39"]])
@example([["1e-46", "-1.401298464324817e-45", "7.006492321624085e-46"]])
@example([["1e400", "1", "2"]])
def test_float64_text_reads_the_same(rows: list[list[str]]) -> None:
    text = ",".join("[" + ",".join(row) + "]" for row in rows)
    raw = b'{"id":"x","embeddings":[%s],"texts":["a"]}' % text.encode()
    assert_same_cohere(raw, len(rows))
    assert_same_titan(b'{"embedding":[%s]}' % ",".join(rows[0]).encode())


def test_real_vectors_read_as_float32_arrays() -> None:
    """The fast path is taken for the answers Bedrock sends (not only the fallback)."""
    vector = [0.0123, -0.5, 1e-3, 2]
    titan_raw = json.dumps({"embedding": vector, "embeddingsByType": {"float": vector}}).encode()
    body = vector_json.load_answer(titan_raw)
    assert body["embedding"].dtype == np.float32 and body["embedding"].shape == (4,)
    assert body["embeddingsByType"]["float"].dtype == np.float32
    cohere_raw = json.dumps({"embeddings": {"float": [vector, vector], "int8": [[1], [2]]}})
    typed = vector_json.load_answer(cohere_raw.encode())["embeddings"]
    assert typed["float"].shape == (2, 4) and typed["int8"] == [[1], [2]]
    # Cohere's rows stay that one array, which the answer is printed from without a copy.
    assert bodies.float32_rows(typed["float"]) is typed["float"]


ODD_TITAN = [
    b'{"embedding":[true,1.5]}',
    b'{"embedding":[null]}',
    b'{"embedding":["1"]}',
    b'{"embedding":[[1.0],[2.0]]}',
    b'{"embedding":[1.0,[2.0]]}',
    b'{"embedding":[]}',
    b'{"embedding":{"a":1}}',
    b'{"embedding":[1.0],"embedding":[2.0,3.0]}',
    b'{"embedding":[1.0],"inputTextTokenCount":4,"inputTextTokenCount":5}',
    b'{"embedding\\u005b":[[1.0]],"embedding":[[2.0]]}',
    b'{"note":"a \\u005b","embedding":[[2.0]]}',
    b'{"note":"[[","embedding":[2.0]}',
    b'\xef\xbb\xbf{"embedding":[1.0]}',
    b'{"embedding":[1.0]} x',
    b'{"embedding":[1e400]}',
    b'{"embedding":[123456789012345678901234567890]}',
    b'{"embedding":[-9223372036854775809, 18446744073709551615]}',
    b'{"embedding":[1.0], "embeddingsByType": {"float": [[1.0]], "binary": [1, 0]}}',
    b'{"embedding":[1.0], "meta": {"x": [[[]]], "x": 1}}',
    b"[1.0]",
    b"",
    b'{"embedding":[1.0]',
    b'{"embedding":[1.0],"s":"\\ud800"}',
    b'{"embedding":[1.0],"s":"\xff"}',
]


@pytest.mark.parametrize("raw", ODD_TITAN)
def test_odd_titan_answers_read_as_before(raw: bytes) -> None:
    assert_same_titan(raw)


ODD_COHERE = [
    (b'{"embeddings":[[1.0,2.0],[3.0]]}', 2),
    (b'{"embeddings":[[1.0,2.0],3.0]}', 2),
    (b'{"embeddings":[[1.0,2.0],"ab"]}', 2),
    (b'{"embeddings":[[1.0,[2.0]],[3.0,4.0]]}', 2),
    (b'{"embeddings":[[[1.0]],[[2.0]]]}', 2),
    (b'{"embeddings":[[],[]]}', 2),
    (b'{"embeddings":[[1.0]]}', 2),
    (b'{"embeddings":[]}', 0),
    (b'{"embeddings":[[1.0],[2.0]],"texts":["[x]","y["]}', 2),
    (b'{"embeddings":{"float":[[1.0],[2.0]],"float":[[3.0],[4.0]]}}', 2),
    (b'{"embeddings":{"float":[[1.0],[true]]}}', 2),
    (b'{"embeddings":{"int8":[[1],[2]]}}', 2),
    (b'{"embeddings":[[1.0],[2.0]],"meta":{"billed_units":{"input_tokens":7}}}', 2),
]


@pytest.mark.parametrize(("raw", "expected"), ODD_COHERE)
def test_odd_cohere_answers_read_as_before(raw: bytes, expected: int) -> None:
    assert_same_cohere(raw, expected)


def test_typed_cohere_answers_keep_their_whole_numbers() -> None:
    raw = b'{"embeddings":{"float":[[0.5]],"int8":[[-3]],"ubinary":[[200]]}}'
    for kind in ("int8", "ubinary"):
        assert_same_cohere(raw, 1, kind)
    assert vector_json.load_answer(raw)["embeddings"]["int8"] == [[-3]]


def test_a_parser_still_backing_a_document_is_not_reused() -> None:
    held = vector_json.parse(b'{"embedding":[1.0]}')  # keeps this thread's parser busy
    body = vector_json.load_answer(b'{"embedding":[2.5,-0.0]}')
    assert body["embedding"].tobytes() == np.asarray([2.5, -0.0], dtype=np.float32).tobytes()
    assert held["embedding"].as_list() == [1.0]
