"""LeanRestJSONSerializer builds every bedrock-runtime request exactly as botocore does.

Hypothesis builds inputs from the service model itself, for every operation: structures with
their required and some optional members, unions with one member, lists, maps, strings and
numbers near their bounds, blobs as bytes or text, timestamps, NaN and infinite floats, Decimals,
documents. Each input goes through a client's validating serializer twice, once as botocore
ships it and once with the lean one inside: both must raise the same error or build the same
request dict, body bytes included.
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Iterator
from typing import Any

import botocore.session  # type: ignore[import-untyped, unused-ignore]
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from esproxy.integrations.amazonbedrock.serializing import (
    LeanRestJSONSerializer,
    plan_for,
    use_lean_serializer,
)

MAX_DEPTH = 5
JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
)
DOCUMENT = st.recursive(
    JSON_LEAF,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


@pytest.fixture(scope="module")
def clients() -> Iterator[tuple[Any, Any]]:
    session = botocore.session.get_session()
    options = {
        "region_name": "us-east-1",
        "endpoint_url": "http://127.0.0.1:9",
        "aws_access_key_id": "AKIDEXAMPLE",
        "aws_secret_access_key": "secret",
    }
    shipped = session.create_client("bedrock-runtime", **options)
    lean = session.create_client("bedrock-runtime", **options)
    use_lean_serializer(lean)
    yield shipped, lean
    shipped.close()
    lean.close()


def values_of(shape: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values for a botocore shape, mostly within its bounds, sometimes just outside them."""
    kind = shape.type_name
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if kind == "structure":
        if shape.is_document_type:
            return DOCUMENT
        members = shape.members
        if shape.is_tagged_union:
            if depth >= MAX_DEPTH:
                return st.just({})
            return st.sampled_from(sorted(members)).flatmap(
                lambda name: values_of(members[name], depth + 1).map(lambda v: {name: v})
            )
        required = set(shape.required_members)
        optional = [] if depth >= MAX_DEPTH else sorted(set(members) - required)
        return st.fixed_dictionaries(
            {name: values_of(members[name], depth + 1) for name in sorted(required)},
            optional={name: values_of(members[name], depth + 1) for name in optional},
        )
    if kind == "list":
        size = st.integers(low or 0, min(high or 3, (low or 0) + 3))
        item = values_of(shape.member, depth + 1)
        return size.flatmap(lambda n: st.lists(item, min_size=n, max_size=n)).flatmap(
            lambda items: st.sampled_from([items, tuple(items)])
        )
    if kind == "map":
        return st.dictionaries(
            st.text("abc", max_size=3), values_of(shape.value, depth + 1), max_size=2
        )
    if kind == "string":
        base = low or 0
        text = st.text(st.characters(codec="utf-8"), min_size=base, max_size=base + 6)
        if shape.enum:
            return st.one_of(st.sampled_from(shape.enum), text)
        return text
    if kind in ("integer", "long"):
        return st.integers((low or 0) - 1, (low or 0) + 100)
    if kind in ("float", "double"):
        return st.one_of(
            st.floats(allow_nan=True, allow_infinity=True),
            st.integers(0, 5),
            st.decimals(allow_nan=False, places=2, min_value=0, max_value=2),
        )
    if kind == "boolean":
        return st.booleans()
    if kind == "blob":
        return st.one_of(st.binary(max_size=8), st.text(max_size=8))
    if kind == "timestamp":
        return st.datetimes(
            min_value=datetime.datetime(2000, 1, 1), max_value=datetime.datetime(2030, 1, 1)
        )
    raise AssertionError(f"no strategy for {kind}")


def outcome(client: Any, params: dict[str, Any], operation: Any) -> Any:
    try:
        return client._serializer.serialize_to_request(params, operation)
    except Exception as error:  # the error itself is what is compared
        return (type(error), str(error))


@st.composite
def calls(draw: Any, model: Any) -> tuple[Any, dict[str, Any]]:
    operation = model.operation_model(draw(st.sampled_from(sorted(model.operation_names))))
    params = draw(values_of(operation.input_shape))
    return operation, params


def test_the_lean_serializer_sits_inside_botocores_validation(clients: tuple[Any, Any]) -> None:
    _, lean = clients
    assert isinstance(lean._serializer._serializer, LeanRestJSONSerializer)


@settings(max_examples=1500, deadline=None)
@given(data=st.data())
def test_every_request_matches_botocores(clients: tuple[Any, Any], data: Any) -> None:
    shipped, lean = clients
    operation, params = data.draw(calls(shipped.meta.service_model))
    note(f"{operation.name}: {params!r}")
    assert outcome(lean, params, operation) == outcome(shipped, params, operation)


def test_chat_requests_take_the_fast_path(clients: tuple[Any, Any]) -> None:
    """What esproxy sends for a tool loop is built without botocore's serializer."""
    shipped, lean = clients
    operation = shipped.meta.service_model.operation_model("ConverseStream")
    params = {
        "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
        "messages": [
            {"role": "user", "content": [{"text": "Weather in Paris?"}]},
            {
                "role": "assistant",
                "content": [
                    {"toolUse": {"toolUseId": "t1", "name": "weather", "input": {"city": "Paris"}}}
                ],
            },
            {
                "role": "user",
                "content": [
                    {"toolResult": {"toolUseId": "t1", "content": [{"json": {"c": 21.5}}]}}
                ],
            },
        ],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 64, "temperature": 0.5, "stopSequences": ["\n\n"]},
        "toolConfig": {
            "tools": [
                {
                    "toolSpec": {
                        "name": "weather",
                        "inputSchema": {"json": {"type": "object", "properties": {}}},
                    }
                }
            ],
            "toolChoice": {"auto": {}},
        },
    }
    built = lean._serializer.serialize_to_request(params, operation)
    plan = plan_for(operation)
    assert plan is not None and plan.serialize(params) == built
    assert built == shipped._serializer.serialize_to_request(params, operation)


@pytest.mark.parametrize(
    "content",
    [
        {"image": {"format": "png", "source": {"bytes": b"\x89PNG"}}},
        {"image": {"format": "png", "source": {"bytes": "not yet base64"}}},
    ],
)
def test_blobs_are_left_to_botocore(clients: tuple[Any, Any], content: dict[str, Any]) -> None:
    shipped, lean = clients
    operation = shipped.meta.service_model.operation_model("Converse")
    params = {"modelId": "m", "messages": [{"role": "user", "content": [content]}]}
    plan = plan_for(operation)
    assert plan is not None and plan.serialize(params) is None
    built = lean._serializer.serialize_to_request(params, operation)
    assert built == shipped._serializer.serialize_to_request(params, operation)
    assert b"not yet base64" not in built["body"]


def test_decimal_and_nan_floats_are_left_to_botocore(clients: tuple[Any, Any]) -> None:
    shipped, lean = clients
    operation = shipped.meta.service_model.operation_model("Converse")
    for temperature in (decimal.Decimal("0.25"), float("nan"), float("inf")):
        params = {
            "modelId": "m",
            "messages": [{"role": "user", "content": [{"text": "hi"}]}],
            "inferenceConfig": {"temperature": temperature},
        }
        plan = plan_for(operation)
        assert plan is not None and plan.serialize(params) is None
        assert outcome(lean, params, operation) == outcome(shipped, params, operation)
