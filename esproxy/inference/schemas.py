"""Integration-neutral request parsing: inference ids, task types, POST bodies, query values.

ES's checking order and texts throughout. marshmallow checks each POST body field; the first
failure in document order becomes ES's located ObjectParser error (`body_error`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from marshmallow import RAISE, Schema, ValidationError, fields

from esproxy.errors import BadRequest, BodyParseError, RequestValidationFailed
from esproxy.inference.java_text import java_enum_name, java_trim, lucene_similarity
from esproxy.inference.json_bodies import JsonBody, decode_json_body, parse_failure
from esproxy.inference.models import InferenceRequest, TaskType
from esproxy.inference.setting_fields import wrong_type

__all__ = [
    "decode_json_body",
    "load_inference_request",
    "parse_bool_param",
    "parse_time_value",
    "require_service",
    "resolve_task_type",
    "validate_inference_id",
]

ID_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9_\-.]*[a-z0-9])?")
PARSER = "cluster:internal/xpack/inference"
INPUT_TYPES = frozenset({"INGEST", "SEARCH", "UNSPECIFIED", "CLASSIFICATION", "CLUSTERING"})
INTERNAL_INPUT_TYPES = frozenset({"INTERNAL_SEARCH", "INTERNAL_INGEST"})
_LONG = re.compile(r"[+-]?[0-9]+")
_DOUBLE = re.compile(r"[+-]?(NaN|Infinity|([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?[fFdD]?)")
_TIME_UNITS = (
    ("nanos", 1e-9),
    ("micros", 1e-6),
    ("ms", 1e-3),
    ("s", 1.0),
    ("m", 60.0),
    ("h", 3600.0),
    ("d", 86400.0),
)


def validate_inference_id(inference_id: str) -> None:
    if inference_id == "_all" or not ID_PATTERN.fullmatch(inference_id):
        raise RequestValidationFailed(
            [
                f"Invalid inference_id; '{inference_id}' can contain lowercase alphanumeric (a-z "
                "and 0-9), hyphens or underscores; must start and end with alphanumeric"
            ]
        )


def parse_task_type(value: str) -> TaskType:
    """ES's `TaskType.fromStringOrStatusException`: trimmed and case-insensitive."""
    try:
        return TaskType[java_enum_name(value)]
    except KeyError:
        raise BadRequest(f"Unknown task_type [{value}]") from None


def resolve_task_type(path_task_type: TaskType | str | None, body: Mapping[str, Any]) -> TaskType:
    """The task type of a PUT, from the URL and the body's `task_type`, as ES resolves them."""
    url = path_task_type if isinstance(path_task_type, TaskType) else TaskType.ANY
    if isinstance(path_task_type, str) and not isinstance(path_task_type, TaskType):
        url = parse_task_type(path_task_type)
    given = body.get("task_type")
    if given is None:
        if url is TaskType.ANY:
            raise BadRequest("model is missing required setting [task_type]")
        return url
    if not isinstance(given, str):
        raise BadRequest(wrong_type("task_type", given, "String"))  # ES: ClassCastException, 500
    parsed = parse_task_type(given)
    if parsed is TaskType.ANY:
        raise BadRequest("task_type [any] is not valid type for inference")
    if url not in (TaskType.ANY, parsed):
        raise BadRequest(
            "Cannot resolve conflicting task_type parameter in the request URL "
            f"[{url}] and the request body [{given}]"
        )
    return parsed


def require_service(body: Mapping[str, Any]) -> str:
    service = body.get("service")
    if service is None:
        raise BadRequest("Inference endpoint configuration is missing the [service] setting")
    if not isinstance(service, str):
        raise BadRequest(wrong_type("service", service, "String"))  # ES: ClassCastException, 500
    return service


def parse_time_value(name: str, value: str) -> float:
    """ES's `TimeValue.parseTimeValue`, in seconds; `-1` (no timeout) gives -1.0."""
    normalized = java_trim(value.lower())
    for suffix, seconds in _TIME_UNITS:
        # Only minutes are matched case-sensitively, on the raw value: `M` would mean months.
        if (value if suffix == "m" else normalized).endswith(suffix):
            return time_amount(name, value, java_trim(normalized[: -len(suffix)])) * seconds
    if re.fullmatch(r"-0*1", normalized):
        return -1.0
    if re.fullmatch(r"0+", normalized):
        return 0.0
    raise BodyParseError(
        f"failed to parse setting [{name}] with value [{value}] as a time value: unit is missing "
        "or unrecognized"
    )


def time_amount(name: str, value: str, number: str) -> int:
    if _LONG.fullmatch(number) and -(2**63) <= int(number) < 2**63:
        if int(number) < -1:
            raise BadRequest(
                f"failed to parse setting [{name}] with value [{value}] as a time value: negative "
                "durations are not supported",
                error_type="illegal_argument_exception",
            )
        return int(number)
    cause = {"type": "number_format_exception", "reason": f'For input string: "{number}"'}
    if _DOUBLE.fullmatch(number):
        reason = f"failed to parse [{value}], fractional time values are not supported"
        raise BodyParseError(reason, caused_by=cause)
    raise BodyParseError(f"failed to parse [{value}]", caused_by=cause)


def parse_bool_param(name: str, value: str) -> bool:
    """`RestRequest.paramAsBoolean`: present but empty means true."""
    if value in ("", "true"):
        return True
    if value == "false":
        return False
    raise BadRequest(
        f"Failed to parse value [{value}] as only [true] or [false] are allowed.",
        error_type="illegal_argument_exception",
    )


@dataclass(frozen=True)
class Fault:
    """Why one POST body field failed: its JSON token is unsupported, or its value is bad."""

    token: str | None = None
    cause: Mapping[str, str] | None = None
    item: int | None = None


class BodyField(fields.Field[Any]):
    """A field of ES's `InferenceAction` ObjectParser: which JSON tokens it takes, and how."""

    tokens: ClassVar[frozenset[str]] = frozenset()

    def __init__(self) -> None:
        super().__init__(load_default=None)

    def _validate_missing(self, value: Any) -> None:
        if value is None:
            raise ValidationError([Fault(token="VALUE_NULL")])

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if json_token(value) not in self.tokens:
            raise ValidationError([Fault(token=json_token(value))])
        return self.convert(value)

    def convert(self, value: Any) -> Any:
        return value


def failed(kind: str, reason: str, item: int | None = None) -> ValidationError:
    return ValidationError([Fault(cause={"type": kind, "reason": reason}, item=item)])


class InputField(BodyField):
    tokens = frozenset({"START_ARRAY", "VALUE_STRING"})

    def convert(self, value: Any) -> list[str]:
        return [value] if isinstance(value, str) else [self.text(v, i) for i, v in enumerate(value)]

    @staticmethod
    def text(item: Any, index: int) -> str:
        """Jackson's `getText()` of an array item; only scalars have one."""
        if isinstance(item, list):
            raise failed("illegal_state_exception", "expected value but got [START_ARRAY]", index)
        if item is None or isinstance(item, dict):
            reason = f"Can't get text on a {json_token(item)} at {{location}}"
            raise failed("illegal_state_exception", reason, index)
        if isinstance(item, bool):
            return "true" if item else "false"
        return item if isinstance(item, str) else str(item)


class InputTypeField(BodyField):
    tokens = frozenset({"VALUE_STRING"})

    def convert(self, value: Any) -> str:
        """`InputType.fromRestString`, as the lower-case name (unknown-value text unconfirmed)."""
        name = java_enum_name(value)
        if name in INTERNAL_INPUT_TYPES:
            raise failed("illegal_argument_exception", f"Unrecognized input_type [{name.lower()}]")
        if name not in INPUT_TYPES:
            reason = f"No enum constant org.elasticsearch.inference.InputType.{name}"
            raise failed("illegal_argument_exception", reason)
        return name.lower()


class ObjectField(BodyField):
    tokens = frozenset({"START_OBJECT"})


class StringField(BodyField):
    tokens = frozenset({"VALUE_STRING"})


class BooleanField(BodyField):
    tokens = frozenset({"VALUE_BOOLEAN", "VALUE_STRING"})

    def convert(self, value: Any) -> bool:
        if isinstance(value, bool) or value in ("", "false"):
            return value is True
        if value == "true":
            return True
        reason = f"Failed to parse value [{value}] as only [true] or [false] are allowed."
        raise failed("illegal_argument_exception", reason)


class IntegerField(BodyField):
    tokens = frozenset({"VALUE_NUMBER", "VALUE_STRING"})

    def convert(self, value: Any) -> int:
        try:
            return int(float(value))  # ES coerces strings and truncates fractions
        except (ValueError, OverflowError):
            raise failed("number_format_exception", f'For input string: "{value}"') from None


class TimeoutField(StringField):
    def convert(self, value: Any) -> float:
        try:
            return parse_time_value("timeout", value)
        except BadRequest as error:
            raise failed(error.error_type, error.reason) from None


class InferenceBodySchema(Schema):
    """`InferenceAction.Request.PARSER`; unknown keys are errors, as in ES."""

    class Meta:
        unknown = RAISE

    input = InputField()
    input_type = InputTypeField()
    task_settings = ObjectField()
    query = StringField()
    return_documents = BooleanField()
    top_n = IntegerField()
    timeout = TimeoutField()


BODY_SCHEMA = InferenceBodySchema()


def load_inference_request(task_type: TaskType, body: Mapping[str, Any]) -> InferenceRequest:
    """A POST body, parsed then validated as ES's `InferenceAction.Request` is."""
    if task_type is not TaskType.RERANK and (inputs := plain_inputs(body)) is not None:
        return InferenceRequest(inputs=inputs)
    try:
        loaded = BODY_SCHEMA.load(body)
    except ValidationError as error:
        raise body_error(body, cast(dict[str, Any], error.messages)) from None
    check_request(task_type, loaded)
    return InferenceRequest(
        inputs=loaded["input"],
        input_type=loaded["input_type"],
        task_settings=loaded["task_settings"] or {},
        timeout=loaded["timeout"],
    )


def plain_inputs(body: Mapping[str, Any]) -> list[str] | None:
    """The inputs of the commonest body, `{"input": ...}` with text or a list of texts, which the
    schema would pass as they are (~10 us of marshmallow per call); None for any other body."""
    if len(body) != 1 or "input" not in body:
        return None
    value = body["input"]
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return list(value)
    return None


def check_request(task_type: TaskType, loaded: Mapping[str, Any]) -> None:
    """`InferenceAction.Request.validate`: the first problem found is the only one reported."""
    for message in request_problems(task_type, loaded):
        raise RequestValidationFailed([message])


def request_problems(task_type: TaskType, loaded: Mapping[str, Any]) -> list[str]:
    problems = []
    if loaded["input"] is None:
        problems.append("Field [input] cannot be null")
    elif not loaded["input"]:
        problems.append("Field [input] cannot be an empty array")
    if task_type is TaskType.RERANK:
        if loaded["query"] is None:
            problems.append(f"Field [query] cannot be null for task type [{task_type}]")
        elif not loaded["query"]:
            problems.append(f"Field [query] cannot be empty for task type [{task_type}]")
    elif task_type is not TaskType.ANY:
        for name in ("return_documents", "top_n"):
            if loaded[name] is not None:
                problems.append(f"Field [{name}] cannot be specified for task type [{task_type}]")
    embedding = task_type in (TaskType.TEXT_EMBEDDING, TaskType.SPARSE_EMBEDDING)
    if embedding and loaded["query"] is not None:
        problems.append(f"Field [query] cannot be specified for task type [{task_type}]")
    specified = loaded["input_type"] not in (None, "unspecified")
    if specified and task_type not in (TaskType.TEXT_EMBEDDING, TaskType.ANY):
        problems.append(f"Field [input_type] cannot be specified for task type [{task_type}]")
    return problems


def body_error(body: Mapping[str, Any], messages: Mapping[str, Any]) -> BodyParseError:
    """ObjectParser stops at the first bad field in document order; say where it was.

    The reference marks these texts unconfirmed; they follow ObjectParser's and Jackson's source.
    """
    key = next(k for k in body if k in messages)
    locations = body if isinstance(body, JsonBody) else JsonBody.compact(body)
    fault = messages[key][0]
    if not isinstance(fault, Fault):
        reason = f"[{PARSER}] unknown field [{key}]{suggestion(key)}"
        return parse_failure(reason, locations.key_location(key))
    if fault.token is not None:
        reason = f"[{PARSER}] {key} doesn't support values of type: {fault.token}"
        return parse_failure(reason, locations.value_location(key))
    where = locations.value_location(key)
    if fault.item is not None:
        where = locations.item_locations(key)[fault.item]
    error = parse_failure(f"[{PARSER}] failed to parse field [{key}]", where)
    cause = dict(fault.cause or {})
    cause["reason"] = cause["reason"].replace("{location}", str(where))
    error.caused_by = cause
    return error


def suggestion(key: str) -> str:
    """ES's `SuggestingErrorOnUnknown`: declared fields more than half similar, best first."""
    scored = sorted((-lucene_similarity(key, name), name) for name in BODY_SCHEMA.fields)
    close = [name for score, name in scored if score < -0.5]
    if len(close) > 1:
        return f" did you mean any of [{', '.join(close)}]?"
    return f" did you mean [{close[0]}]?" if close else ""


def json_token(value: Any) -> str:
    """The Jackson token a decoded JSON value started with."""
    if value is None:
        return "VALUE_NULL"
    if isinstance(value, bool):
        return "VALUE_BOOLEAN"
    if isinstance(value, int | float):
        return "VALUE_NUMBER"
    if isinstance(value, str):
        return "VALUE_STRING"
    return "START_OBJECT" if isinstance(value, Mapping) else "START_ARRAY"
