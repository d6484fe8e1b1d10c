"""botocore's rest-json request for esproxy's Bedrock calls, built with less Python per call.

botocore's serializer walks the whole input against its shapes and copies it node by node before
dumping it as JSON: ~0.02 ms per Converse call hot, ~0.25 ms on the cold core that a streamed
chat at concurrency 1 runs on. esproxy's Converse inputs are plain JSON already (text, tool uses,
tool results and documents, no blobs or timestamps), so `LeanRestJSONSerializer` dumps them as
they are, after checking, shape by shape, that botocore would write the same bytes: only the
parts of a shape that can hold a blob, a timestamp or a renamed member are looked at. Anything
else (an image, a NaN, a Decimal, an operation with header or query members) goes to botocore's
own serializer, unchanged. Tests compare both on generated inputs.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from botocore.utils import percent_encode  # type: ignore[import-untyped, unused-ignore]

# Types whose JSON form differs from the Python value that botocore is given.
CONVERTED_TYPES = frozenset({"blob", "timestamp"})
# botocore's json.dumps defaults, but refusing NaN and infinities (botocore writes them as
# strings); one encoder, since json.dumps builds a new one for any non-default option.
ENCODER = json.JSONEncoder(allow_nan=False)


class RequestPlan:
    """What one operation's request looks like, for inputs that botocore would dump as they are."""

    def __init__(
        self,
        operation: Any,
        uri_members: dict[str, str],
        checked: dict[str, Any],
        check: ValueCheck,
    ) -> None:
        self.method = operation.http.get("method", "POST")
        self.uri = operation.http["requestUri"]
        self.labels = re.findall(r"{(.*?)}", self.uri)
        self.uri_members = uri_members  # member name -> label in the URI template
        self.checked = checked  # body member name -> its shape, where a value must be looked at
        self.check = check

    @lru_cache(maxsize=256)  # noqa: B019 - one plan per operation, kept for the client's life
    def path_for(self, values: tuple[str, ...]) -> str:
        """The URI with its labels percent-encoded as botocore encodes them (a few model ids)."""
        path = {}
        for label, value in zip(self.labels, values, strict=True):
            if label.endswith("+"):
                path[label] = percent_encode(value, safe="/~")
            else:
                path[label] = percent_encode(value)
        return str(self.uri.format(**path))

    def serialize(self, parameters: dict[str, Any]) -> dict[str, Any] | None:
        """botocore's request dict, or None when botocore must build this one itself."""
        body: dict[str, Any] = {}
        labels: dict[str, Any] = {}
        for name, value in parameters.items():
            if value is None:
                continue
            label = self.uri_members.get(name)
            if label is not None:
                if not isinstance(value, str):
                    return None
                labels[label] = value
                continue
            shape = self.checked.get(name)
            if shape is not None and not self.check.is_dumped_as_is(value, shape):
                return None
            body[name] = value
        if not body:
            return None
        try:
            encoded = ENCODER.encode(body).encode("utf-8")
        except (TypeError, ValueError):  # bytes, Decimal, NaN: botocore converts these
            return None
        values = tuple(labels.get(label.rstrip("+")) for label in self.labels)
        if None in values:
            return None
        return {
            "url_path": self.path_for(values),
            "query_string": {},
            "method": self.method,
            "headers": {"Content-Type": "application/json"},
            "body": encoded,
        }


class LeanRestJSONSerializer:
    """botocore's RestJSONSerializer with a fast path for inputs that are plain JSON."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._plans: dict[str, RequestPlan | None] = {}

    def serialize_to_request(self, parameters: Any, operation_model: Any) -> Any:
        name = operation_model.name
        try:
            plan = self._plans[name]
        except KeyError:
            plan = self._plans[name] = plan_for(operation_model)
        if plan is not None:
            request = plan.serialize(parameters)
            if request is not None:
                return request
        return self._inner.serialize_to_request(parameters, operation_model)


def plan_for(operation: Any) -> RequestPlan | None:
    """The plan for an operation whose input is a JSON body plus string URI labels, else None."""
    shape = operation.input_shape
    if (
        operation.metadata.get("protocol") != "rest-json"
        or shape is None
        or shape.serialization.get("payload")
        or operation.endpoint
        or "authPath" in operation.http
    ):
        return None
    uri_members: dict[str, str] = {}
    checked: dict[str, Any] = {}
    check = ValueCheck()
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        if location == "uri" and member.type_name == "string":
            uri_members[name] = member.serialization.get("name", name)
        elif location is not None or "name" in member.serialization:
            return None
        elif check.differs(member):
            checked[name] = member
    return RequestPlan(operation, uri_members, checked, check)


def may_differ(shape: Any, seen: set[str]) -> bool:
    """Whether a value of this shape can be written differently by botocore than by json.dumps."""
    if shape.type_name in CONVERTED_TYPES:
        return True
    if shape.name in seen:
        return False  # a cycle: its other paths are looked at where it was first met
    seen.add(shape.name)
    if shape.type_name == "structure":
        if shape.is_document_type:
            return False
        return any(
            "name" in member.serialization or may_differ(member, seen)
            for member in shape.members.values()
        )
    if shape.type_name == "list":
        return may_differ(shape.member, seen)
    if shape.type_name == "map":
        return may_differ(shape.value, seen)
    return False


class ValueCheck:
    """Looks at a value only where its shape can make botocore write it differently."""

    def __init__(self) -> None:
        self._differs: dict[str, bool] = {}

    def differs(self, shape: Any) -> bool:
        known = self._differs.get(shape.name)
        if known is None:
            known = self._differs[shape.name] = may_differ(shape, set())
        return known

    def is_dumped_as_is(self, value: Any, shape: Any) -> bool:
        """Whether botocore would put this value in the JSON body as it is."""
        if not self.differs(shape):
            return True
        kind = shape.type_name
        if kind == "structure":
            if not isinstance(value, dict):
                return False
            members = shape.members
            for key, item in value.items():
                member = members.get(key)
                if member is None or "name" in member.serialization:
                    return False
                if not self.is_dumped_as_is(item, member):
                    return False
            return True
        if kind == "list":
            return isinstance(value, list | tuple) and all(
                self.is_dumped_as_is(item, shape.member) for item in value
            )
        if kind == "map":
            return isinstance(value, dict) and all(
                self.is_dumped_as_is(item, shape.value) for item in value.values()
            )
        return False  # a blob or a timestamp


def use_lean_serializer(client: Any) -> None:
    """Build this client's rest-json requests with LeanRestJSONSerializer where it applies."""
    outer = client._serializer
    inner = getattr(outer, "_serializer", None)  # inside botocore's ParamValidationDecorator
    if inner is not None and type(inner).__name__ == "RestJSONSerializer":
        outer._serializer = LeanRestJSONSerializer(inner)
    elif type(outer).__name__ == "RestJSONSerializer":
        client._serializer = LeanRestJSONSerializer(outer)
