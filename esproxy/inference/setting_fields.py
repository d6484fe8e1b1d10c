"""marshmallow fields that check settings as Elasticsearch's `ServiceUtils` does, in its words.

Each field knows its ES name and scope (`service_settings`, `task_settings`, ...), so its errors
read exactly like ES's; `load_settings` is the one place a marshmallow ValidationError becomes our
`ValidationFailed`, with the messages in ES's extraction order (the schema's field order).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from marshmallow import EXCLUDE, Schema, ValidationError, fields, types

from esproxy.errors import BadRequest, ValidationFailed
from esproxy.inference.java_text import INT_RANGE, LONG_RANGE, java_double, render_java_value

SERVICE_SETTINGS = "service_settings"
TASK_SETTINGS = "task_settings"
SECRET_SETTINGS = "secret_settings"
CHUNKING_SETTINGS = "chunking_settings"
RATE_LIMIT = "rate_limit"
REDACTED = "<redacted>"

INVALID_VALUE = "[{scope}] Invalid value [{value}]. [{name}] "
MISSING = "[{scope}] does not contain the required setting [{name}]"
WRONG_TYPE = (
    "field [{name}] is not of the expected type. The value [{value}] cannot be converted to a "
    "[{java}]"
)


def not_allowed(name: str, scope: str) -> str:
    return f"[{scope}] does not allow the setting [{name}]"


def wrong_type(name: str, value: Any, java: str) -> str:
    return WRONG_TYPE.format(name=name, value=render_java_value(value), java=java)


class JavaSetting(fields.Field[Any]):
    """One setting read from a JSON map: missing, null and wrong Java type as ES reports them.

    ES treats null as absent. `secret` keeps the value out of type errors (ES would echo it).
    """

    java_class: ClassVar[str] = "Object"
    default_error_messages: types.ErrorMessages = {  # noqa: RUF012 (merged per class by marshmallow)
        "required": MISSING,
        "null": MISSING,
        "invalid": WRONG_TYPE,
    }

    def __init__(self, scope: str, *, required: bool = False, secret: bool = False, **kw: Any):
        if not required:
            kw.setdefault("load_default", None)
        super().__init__(required=required, **kw)
        self.scope = scope
        self.secret = secret

    @property
    def setting(self) -> str:
        return self.data_key or self.name or ""

    def make_error(self, key: str, **kwargs: Any) -> ValidationError:
        return super().make_error(key, name=self.setting, scope=self.scope, **kwargs)

    def accepts(self, value: Any) -> bool:
        return True

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not self.accepts(value):
            shown = REDACTED if self.secret else render_java_value(value)
            raise self.make_error("invalid", value=shown, java=self.java_class)
        return self.check(value)

    def check(self, value: Any) -> Any:
        return value


class JavaString(JavaSetting):
    """`extractRequiredString` / `extractOptionalString`: a non-empty String."""

    java_class = "String"
    default_error_messages: types.ErrorMessages = {  # noqa: RUF012 (merged per class by marshmallow)
        "empty": "[{scope}] Invalid value empty string. [{name}] must be a non-empty string",
    }

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str)

    def check(self, value: Any) -> Any:
        if value == "":
            raise self.make_error("empty")
        return value


class JavaEnum(JavaString):
    """`extractOptionalEnum`: `parse` raises ValueError for unknown values; choices print sorted."""

    default_error_messages: types.ErrorMessages = {  # noqa: RUF012 (merged per class by marshmallow)
        "choice": "[{scope}] Invalid value [{value}] received. [{name}] must be one of [{choices}]",
    }

    def __init__(
        self, scope: str, parse: Callable[[str], Any], choices: Sequence[str], **kw: Any
    ) -> None:
        super().__init__(scope, **kw)
        self.parse = parse
        self.choices = ", ".join(sorted(choices))

    def check(self, value: Any) -> Any:
        super().check(value)
        try:
            return self.parse(value)
        except ValueError:
            raise self.make_error("choice", value=value, choices=self.choices) from None


class JavaBoolean(JavaSetting):
    java_class = "Boolean"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, bool)


class JavaDouble(JavaSetting):
    """`extractOptionalDoubleInRange`: only a JSON number with a fraction or exponent is Double."""

    java_class = "Double"
    default_error_messages: types.ErrorMessages = {  # noqa: RUF012 (merged per class by marshmallow)
        "min": INVALID_VALUE + "must be a greater than or equal to [{limit}]",
        "max": INVALID_VALUE + "must be a less than or equal to [{limit}]",
    }

    def __init__(self, scope: str, *, minimum: float, maximum: float, **kw: Any) -> None:
        super().__init__(scope, **kw)
        self.minimum = minimum
        self.maximum = maximum

    def accepts(self, value: Any) -> bool:
        return isinstance(value, float)

    def check(self, value: Any) -> Any:
        for key, limit, broken in (
            ("min", self.minimum, value < self.minimum),
            ("max", self.maximum, value > self.maximum),
        ):
            if broken:
                raise self.make_error(key, value=java_double(value), limit=java_double(limit))
        return value


class JavaPositiveInteger(JavaSetting):
    """`extractOptionalPositiveInteger`, with the optional bounds of ES's chunking helpers.

    Bounds print as doubles (`[5.0]`) because ES passes the ints to a `double` parameter; the
    chunking helpers (InferenceUtils, 9.x) say "must be greater than", without ServiceUtils' "a".
    """

    java_class = "Integer"
    default_error_messages: types.ErrorMessages = {  # noqa: RUF012 (merged per class by marshmallow)
        "positive": INVALID_VALUE + "must be a positive integer",
        "min": INVALID_VALUE + "must be greater than or equal to [{limit}]",
        "max": INVALID_VALUE + "must be less than or equal to [{limit}]",
    }

    def __init__(
        self, scope: str, *, minimum: int | None = None, maximum: int | None = None, **kw: Any
    ) -> None:
        super().__init__(scope, **kw)
        self.minimum = minimum
        self.maximum = maximum

    def accepts(self, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value in INT_RANGE

    def check(self, value: Any) -> Any:
        if value <= 0:
            raise self.make_error("positive", value=value)
        if self.minimum is not None and value < self.minimum:
            raise self.make_error("min", value=float(value), limit=float(self.minimum))
        if self.maximum is not None and value > self.maximum:
            raise self.make_error("max", value=float(value), limit=float(self.maximum))
        return value


class JavaPositiveLong(JavaSetting):
    """`extractOptionalPositiveLong`: an Integer or a Long."""

    default_error_messages: types.ErrorMessages = {  # noqa: RUF012 (merged per class by marshmallow)
        "invalid": (
            "field [{name}] is not of one of the expected types. The value [{value}] cannot be "
            "converted to one of [Integer, Long]"
        ),
        "positive": INVALID_VALUE + "must be a positive long",
    }

    def accepts(self, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value in LONG_RANGE

    def check(self, value: Any) -> Any:
        if value <= 0:
            raise self.make_error("positive", value=value)
        return value


class JavaStringList(JavaSetting):
    """`extractOptionalList(..., String.class)`: a List whose every item is a String."""

    java_class = "List"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, list)

    def check(self, value: Any) -> Any:
        wrong = [
            wrong_type(self.setting, item, "String") for item in value if not isinstance(item, str)
        ]
        if wrong:
            raise ValidationError(wrong)
        return value


class SettingsSchema(Schema):
    """Unknown keys pass through untouched: ES reports leftovers itself, after every other check."""

    class Meta:
        unknown = EXCLUDE


def load_settings(schema: Schema, data: Mapping[str, Any]) -> dict[str, Any]:
    """Load `data` with `schema`; every message, in field order, becomes one ValidationFailed."""
    try:
        return dict(schema.load(data))
    except ValidationError as error:
        raise ValidationFailed(flatten_messages(error.messages)) from None


def flatten_messages(messages: Any) -> list[str]:
    if isinstance(messages, str):
        return [messages]
    if isinstance(messages, Mapping):
        return [m for value in messages.values() for m in flatten_messages(value)]
    return [m for value in messages for m in flatten_messages(value)]


def require_map(value: Any, name: str) -> dict[str, Any]:
    """A nested settings object; absent or null reads as empty, as ES's map helpers do.

    ES fails a non-object here with a ClassCastException (HTTP 500); a 400 tells the caller more.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadRequest(wrong_type(name, value, "Map"))
    return dict(value)
