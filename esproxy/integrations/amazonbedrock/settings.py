"""The `amazonbedrock` endpoint settings: request parsing in ES's order, stored reading, overrides.

Request bodies are checked strictly (leftover keys are errors, as in ES); stored records are read
leniently, so that records written by other versions keep working. The schemas do the field work.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from marshmallow import ValidationError, fields, validates_schema

from esproxy.errors import BadRequest, ProxyError, ValidationFailed
from esproxy.inference.chunking import parse_chunking_settings
from esproxy.inference.java_text import grown_table_size, java_enum_name, render_java_map
from esproxy.inference.models import EndpointConfig, StoredEndpoint, TaskType
from esproxy.inference.setting_fields import (
    RATE_LIMIT,
    REDACTED,
    SECRET_SETTINGS,
    SERVICE_SETTINGS,
    TASK_SETTINGS,
    JavaBoolean,
    JavaDouble,
    JavaEnum,
    JavaPositiveInteger,
    JavaPositiveLong,
    JavaString,
    SettingsSchema,
    load_settings,
    not_allowed,
    require_map,
)
from esproxy.integrations.amazonbedrock import embedding_options
from esproxy.integrations.amazonbedrock.credentials import Identity
from esproxy.integrations.amazonbedrock.embedding_options import EMBEDDING_TYPES
from esproxy.integrations.amazonbedrock.model_providers import (
    PROVIDER_CHOICES,
    ModelProvider,
    accepts_top_k,
    default_similarity,
    parse_provider,
    supports_task_type,
)

SERVICE = "amazonbedrock"
# ES hands the rate-limit parser this older name, so its leftover message names it.
RATE_LIMIT_SERVICE = "amazon_bedrock"
DISPLAY_NAME = "Amazon Bedrock"
DEFAULT_REQUESTS_PER_MINUTE = 240
TASK_TYPES = frozenset({TaskType.TEXT_EMBEDDING, TaskType.COMPLETION, TaskType.CHAT_COMPLETION})
SECRET_KEYS = frozenset({"access_key", "secret_key", "session_token"})
KEY_PAIR = ("access_key", "secret_key")
# Bad values of these get extractOptionalEnum's text, which the reference infers but no test shows.
SIMILARITIES = ("cosine", "dot_product", "l2_norm")
TRUNCATIONS = ("end", "none", "start")
INPUT_TYPES = frozenset(
    {"ingest", "search", "classification", "clustering", "internal_ingest", "internal_search"}
    | {"unspecified"}
)


def enum_parser(choices: tuple[str, ...]) -> Any:
    """ES's `valueOf(trim().toUpperCase())` for a lower-case choice list."""

    def parse(value: str) -> str:
        name = java_enum_name(value).lower()
        if name not in choices:
            raise ValueError(value)
        return name

    return parse


class RateLimitSchema(SettingsSchema):
    requests_per_minute = JavaPositiveLong(RATE_LIMIT)
    # esproxy's extensions (docs/compatibility.md), checked as ES checks its own rate_limit fields.
    adaptive = JavaBoolean(RATE_LIMIT)
    tokens_per_minute = JavaPositiveLong(RATE_LIMIT)


RATE_LIMIT_KEYS = ("requests_per_minute", "adaptive", "tokens_per_minute")


class ServiceSchema(SettingsSchema):
    """`AmazonBedrockServiceSettings.fromMap`: the fields in ES's extraction order."""

    model = JavaString(SERVICE_SETTINGS, required=True)
    region = JavaString(SERVICE_SETTINGS, required=True)
    provider = JavaEnum(SERVICE_SETTINGS, parse_provider, PROVIDER_CHOICES, required=True)
    rate_limit = fields.Nested(RateLimitSchema, load_default=None, allow_none=True)
    # esproxy extensions: the role to assume through STS (credentials.py), all optional.
    role_arn = JavaString(SERVICE_SETTINGS)
    external_id = JavaString(SERVICE_SETTINGS)
    role_session_name = JavaString(SERVICE_SETTINGS)

    @validates_schema
    def check_role(self, data: Mapping[str, Any], **_: Any) -> None:
        check_role_settings(data)


class RoleSchema(SettingsSchema):
    """The role settings alone, as `_update` may change them."""

    role_arn = JavaString(SERVICE_SETTINGS)
    external_id = JavaString(SERVICE_SETTINGS)
    role_session_name = JavaString(SERVICE_SETTINGS)

    @validates_schema
    def check_role(self, data: Mapping[str, Any], **_: Any) -> None:
        check_role_settings(data)


def check_role_settings(data: Mapping[str, Any]) -> None:
    problems = [
        message
        for name, check, message in ROLE_CHECKS
        if data.get(name) is not None and not check(data[name])
    ]
    if data.get("role_arn") is None:
        problems += [
            f"[{SERVICE_SETTINGS}] setting [{name}] is only allowed together with [role_arn]"
            for name in ("external_id", "role_session_name")
            if data.get(name) is not None
        ]
    if problems:
        raise ValidationError(problems)


class EmbeddingServiceSchema(ServiceSchema):
    similarity = JavaEnum(SERVICE_SETTINGS, enum_parser(SIMILARITIES), SIMILARITIES)
    max_input_tokens = JavaPositiveInteger(SERVICE_SETTINGS)
    dimensions = JavaPositiveInteger(SERVICE_SETTINGS)
    dimensions_set_by_user = JavaBoolean(SERVICE_SETTINGS)
    # esproxy's embedding options (embedding_options.py says which model takes which).
    normalize = JavaBoolean(SERVICE_SETTINGS)
    embedding_type = JavaEnum(SERVICE_SETTINGS, enum_parser(EMBEDDING_TYPES), EMBEDDING_TYPES)


class EmbeddingRequestSchema(EmbeddingServiceSchema):
    @validates_schema(skip_on_field_errors=False)
    def reject_learned_fields(self, data: Mapping[str, Any], **_: Any) -> None:
        """ES sets this from its probe call; a request may not (only valid values are seen).

        `dimensions` is an esproxy option where the model takes it, checked with the others.
        """
        if data.get("dimensions_set_by_user") is not None:
            raise ValidationError([not_allowed("dimensions_set_by_user", SERVICE_SETTINGS)])


class CompletionTaskSchema(SettingsSchema):
    temperature = JavaDouble(TASK_SETTINGS, minimum=0.0, maximum=1.0)
    top_p = JavaDouble(TASK_SETTINGS, minimum=0.0, maximum=1.0)
    top_k = JavaDouble(TASK_SETTINGS, minimum=0.0, maximum=1.0)
    max_new_tokens = JavaPositiveInteger(TASK_SETTINGS)


class EmbeddingTaskSchema(SettingsSchema):
    truncate = JavaEnum(TASK_SETTINGS, enum_parser(TRUNCATIONS), TRUNCATIONS)
    cache = JavaBoolean(TASK_SETTINGS)  # esproxy's: false skips the embedding cache


class SecretSchema(SettingsSchema):
    access_key = JavaString(SECRET_SETTINGS, required=True, secret=True)
    secret_key = JavaString(SECRET_SETTINGS, required=True, secret=True)
    session_token = JavaString(SECRET_SETTINGS, secret=True)


class OptionalKeysSchema(SecretSchema):
    """Under `[bedrock] credentials = "default"`: no keys (the default chain) or both."""

    access_key = JavaString(SECRET_SETTINGS, secret=True)
    secret_key = JavaString(SECRET_SETTINGS, secret=True)

    @validates_schema
    def check_pair(self, data: Mapping[str, Any], **_: Any) -> None:
        given = [name for name in (*KEY_PAIR, "session_token") if data.get(name) is not None]
        if given:
            missing = [name for name in KEY_PAIR if data.get(name) is None]
            if missing:
                raise ValidationError(
                    [f"[{SECRET_SETTINGS}] does not contain the required setting [{missing[0]}]"]
                )


SERVICE_SCHEMAS = {
    TaskType.TEXT_EMBEDDING: EmbeddingServiceSchema(),
    TaskType.COMPLETION: ServiceSchema(),
    # ES reads chat_completion endpoints with the completion settings classes.
    TaskType.CHAT_COMPLETION: ServiceSchema(),
}
REQUEST_SERVICE_SCHEMAS = {**SERVICE_SCHEMAS, TaskType.TEXT_EMBEDDING: EmbeddingRequestSchema()}
TASK_SCHEMAS = {
    TaskType.TEXT_EMBEDDING: EmbeddingTaskSchema(),
    TaskType.COMPLETION: CompletionTaskSchema(),
    TaskType.CHAT_COMPLETION: CompletionTaskSchema(),
}
SECRET_SCHEMA = SecretSchema()
ROLE_SCHEMA = RoleSchema()
ROLE_SETTINGS = ("role_arn", "external_id", "role_session_name")
OPTIONAL_KEYS_SCHEMA = OptionalKeysSchema()
SERVICE_ORDER = (
    "region",
    "model",
    "provider",
    "rate_limit",
    "dimensions",
    "max_input_tokens",
    "similarity",
    "normalize",
    "embedding_type",
    "element_type",
    "role_arn",
    "external_id",
    "role_session_name",
)
ROLE_ARN = re.compile(r"arn:[\w-]+:iam::\d{12}:role/[\w+=,.@/-]{1,512}")
ROLE_CHECKS = (
    (
        "role_arn",
        ROLE_ARN.fullmatch,
        f"[{SERVICE_SETTINGS}] Invalid value for [role_arn]. "
        "It must be an IAM role ARN, e.g. [arn:aws:iam::123456789012:role/bedrock-caller]",
    ),
    (
        "external_id",
        re.compile(r"[\w+=,.@:/-]{2,1224}").fullmatch,
        f"[{SERVICE_SETTINGS}] Invalid value for [external_id]. It must be 2 to 1224 letters, "
        "digits or any of [_+=,.@:/-]",
    ),
    (
        "role_session_name",
        re.compile(r"[\w+=,.@-]{2,64}").fullmatch,
        f"[{SERVICE_SETTINGS}] Invalid value for [role_session_name]. It must be 2 to 64 letters, "
        "digits or any of [_+=,.@-]",
    ),
)


@dataclass(frozen=True)
class CompletionTaskSettings:
    temperature: float | None = None
    top_p: float | None = None
    top_k: float | None = None
    max_new_tokens: int | None = None


@dataclass(frozen=True)
class EmbeddingTaskSettings:
    truncate: str | None = None  # lower case: none, start or end
    cache: bool | None = None  # None means the cache's default (on)


TaskSettings = CompletionTaskSettings | EmbeddingTaskSettings


@dataclass(frozen=True)
class BedrockEndpoint:
    """A stored endpoint as the calls need it; the keys never show in its repr."""

    inference_id: str
    task_type: TaskType
    region: str
    model: str
    provider: ModelProvider
    requests_per_minute: int
    task_settings: TaskSettings
    access_key: str | None = field(repr=False)
    secret_key: str | None = field(repr=False)
    dimensions: int | None = None
    max_input_tokens: int | None = None
    similarity: str | None = None
    dimensions_set_by_user: bool = False
    normalize: bool | None = None
    embedding_type: str | None = None
    session_token: str | None = field(default=None, repr=False)
    role_arn: str | None = None
    external_id: str | None = field(default=None, repr=False)
    role_session_name: str | None = None

    @cached_property
    def identity(self) -> Identity:
        """Kept, with its cache key, for every call this endpoint makes."""
        return Identity(
            self.access_key,
            self.secret_key,
            self.session_token,
            self.role_arn,
            self.external_id,
            self.role_session_name,
        )


def parse_request_endpoint(
    inference_id: str, task_type: TaskType, body: Mapping[str, Any], *, keyless: bool = False
) -> StoredEndpoint:
    """A PUT body (all of it) as ES's `parseRequestConfig` checks it, first error first.

    `keyless` (`[bedrock] credentials = "default"`) lets the keys be left out.
    """
    top, service_map, task_map, chunking = split_body(task_type, body)
    check_rate_limit_keys(service_map)
    service = load_settings(REQUEST_SERVICE_SCHEMAS[task_type], service_map)
    task = load_settings(TASK_SCHEMAS[task_type], task_map)
    secrets = read_secrets(OPTIONAL_KEYS_SCHEMA if keyless else SECRET_SCHEMA, service_map)
    check_provider(task_type, service["provider"], task)
    if task_type is TaskType.TEXT_EMBEDDING:
        problems = embedding_options.option_problems(service["provider"], service["model"], service)
        if problems:
            raise ValidationFailed(problems)
    for leftover, original in (
        (top, body),
        (unread(service_map, REQUEST_SERVICE_SCHEMAS[task_type], SECRET_SCHEMA), service_map),
        (unread(task_map, TASK_SCHEMAS[task_type]), task_map),
    ):
        check_leftovers(leftover, len(original), SERVICE)
    config = EndpointConfig(
        inference_id=inference_id,
        task_type=task_type,
        service=SERVICE,
        service_settings=render_service_settings(service),
        task_settings={k: v for k, v in task.items() if v is not None},
        chunking_settings=chunking,
    )
    internal = {}
    if task_type is TaskType.TEXT_EMBEDDING:
        internal = {"dimensions_set_by_user": service.get("dimensions") is not None}
    return StoredEndpoint(config=config, secrets=secrets, internal=internal)


def read_secrets(schema: SettingsSchema, settings: Mapping[str, Any]) -> dict[str, str]:
    """The given secrets only: an endpoint without keys stores an empty set."""
    return {k: v for k, v in load_settings(schema, settings).items() if v is not None}


def split_body(
    task_type: TaskType, body: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """The body's remaining top level, its settings maps and its chunking settings, in ES order."""
    # ES's transport removes task_type and service before the service sees the map.
    top = {k: v for k, v in body.items() if k not in ("task_type", "service")}
    if top.get("service_settings") is None:
        raise BadRequest("Missing required field [service_settings]")
    service_map = require_map(top.pop("service_settings"), "service_settings")
    task_map = require_map(top.pop("task_settings", None), "task_settings")
    chunking = None
    if task_type is TaskType.TEXT_EMBEDDING:
        chunking = parse_chunking_settings(top.pop("chunking_settings", None))
    if task_type not in TASK_TYPES:
        raise BadRequest(f"The [{SERVICE}] service does not support task type [{task_type}]")
    return top, service_map, task_map, chunking


def check_rate_limit_keys(service_map: Mapping[str, Any]) -> None:
    """ES throws for unknown `rate_limit` keys at once, before its collected errors are raised."""
    rate_limit = require_map(service_map.get("rate_limit"), "rate_limit")
    leftover = {k: v for k, v in rate_limit.items() if k not in RATE_LIMIT_KEYS}
    check_leftovers(leftover, len(rate_limit), RATE_LIMIT_SERVICE)


def check_provider(task_type: TaskType, provider: ModelProvider, task: Mapping[str, Any]) -> None:
    if not supports_task_type(provider, task_type):
        raise BadRequest(f"The [{task_type}] task type for provider [{provider}] is not available")
    if task.get("top_k") is not None and not accepts_top_k(provider):
        raise BadRequest(f"The [top_k] task parameter is not available for provider [{provider}]")
    if task.get("truncate") is not None and provider is not ModelProvider.COHERE:
        raise BadRequest(
            f"The [{task_type}] task type for provider [{provider}] does not allow [truncate] field"
        )


def unread(settings: Mapping[str, Any], *schemas: SettingsSchema) -> dict[str, Any]:
    known = {name for schema in schemas for name in schema.fields}
    return {k: v for k, v in settings.items() if k not in known}


def check_leftovers(leftover: Mapping[str, Any], original_size: int, service: str) -> None:
    """ES's unknown-settings error; the map prints in the order of the HashMap it was parsed into.

    Secret values are masked, where ES would echo a key sent at the wrong level.
    """
    if leftover:
        shown = render_java_map(redact(leftover), table_size=grown_table_size(original_size))
        raise BadRequest(
            f"Configuration contains settings [{shown}] unknown to the [{service}] service"
        )


def redact(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: REDACTED if k in SECRET_KEYS else redact(v) for k, v in value.items()}
    return [redact(v) for v in value] if isinstance(value, list) else value


def render_service_settings(service: Mapping[str, Any]) -> dict[str, Any]:
    """`service_settings` as ES shows it: its key order, the provider's name, no nulls."""
    rate_limit = service.get("rate_limit") or {}
    shown = {
        **service,
        "provider": service["provider"].display_name,
        "rate_limit": render_rate_limit(rate_limit),
    }
    kind = embedding_options.element_type(service.get("embedding_type"))
    if kind is not embedding_options.ElementType.FLOAT:
        shown["element_type"] = str(kind)
    return {key: shown[key] for key in SERVICE_ORDER if shown.get(key) is not None}


def render_rate_limit(rate_limit: Mapping[str, Any]) -> dict[str, Any]:
    """ES's `rate_limit`, plus esproxy's extensions only where the endpoint sets them."""
    shown: dict[str, Any] = {
        "requests_per_minute": rate_limit.get("requests_per_minute") or DEFAULT_REQUESTS_PER_MINUTE
    }
    for key in ("adaptive", "tokens_per_minute"):
        if rate_limit.get(key) is not None:
            shown[key] = rate_limit[key]
    return shown


def read_endpoint(endpoint: StoredEndpoint) -> BedrockEndpoint:
    """The typed view of a stored endpoint; a record that cannot be read gets ES's message."""
    service, task, secrets = load_stored(endpoint)
    rate_limit = service["rate_limit"] or {}
    return BedrockEndpoint(
        inference_id=endpoint.inference_id,
        task_type=endpoint.config.task_type,
        region=service["region"],
        model=service["model"],
        provider=service["provider"],
        requests_per_minute=rate_limit.get("requests_per_minute") or DEFAULT_REQUESTS_PER_MINUTE,
        task_settings=typed_task_settings(endpoint.config.task_type, task),
        access_key=secrets.get("access_key"),
        secret_key=secrets.get("secret_key"),
        dimensions=service.get("dimensions"),
        max_input_tokens=service.get("max_input_tokens"),
        similarity=service.get("similarity"),
        dimensions_set_by_user=endpoint.internal.get("dimensions_set_by_user") is True,
        normalize=service.get("normalize"),
        embedding_type=service.get("embedding_type"),
        session_token=secrets.get("session_token"),
        role_arn=service.get("role_arn"),
        external_id=service.get("external_id"),
        role_session_name=service.get("role_session_name"),
    )


def load_stored(endpoint: StoredEndpoint) -> tuple[dict[str, Any], ...]:
    """Service, task and secret settings of a stored record, read leniently."""
    task_type = endpoint.config.task_type
    try:
        if task_type not in TASK_TYPES:
            raise BadRequest(f"The [{SERVICE}] service does not support task type [{task_type}]")
        service_map = require_map(endpoint.config.service_settings, "service_settings")
        task_map = require_map(endpoint.config.task_settings, "task_settings")
        return (
            load_settings(SERVICE_SCHEMAS[task_type], service_map),
            load_settings(TASK_SCHEMAS[task_type], task_map),
            # Either mode's records read back: whether keyless calls are allowed is decided at
            # call time (credentials.py), so switching modes never makes a record unreadable.
            load_settings(OPTIONAL_KEYS_SCHEMA, endpoint.secrets),
        )
    except ProxyError as error:
        raise BadRequest(
            f"Failed to parse stored model [{endpoint.inference_id}] for [{SERVICE}] service, "
            "please delete and add the service again",
            caused_by=error,
        ) from None


def typed_task_settings(task_type: TaskType, task: Mapping[str, Any]) -> TaskSettings:
    if task_type in (TaskType.COMPLETION, TaskType.CHAT_COMPLETION):
        return CompletionTaskSettings(**task)
    return EmbeddingTaskSettings(**task)


def with_request_task_settings(
    endpoint: BedrockEndpoint, overrides: Mapping[str, Any]
) -> BedrockEndpoint:
    """A POST's `task_settings` over the stored ones: same checks, unknown keys ignored.

    ES does not repeat the provider's `top_k` check here.
    """
    if not overrides:
        return endpoint
    given = load_settings(TASK_SCHEMAS[endpoint.task_type], overrides)
    merged = {k: v for k, v in given.items() if v is not None}
    return replace(endpoint, task_settings=replace(endpoint.task_settings, **merged))


def with_learned_embedding_settings(endpoint: StoredEndpoint, vector_length: int) -> StoredEndpoint:
    """After the PUT probe: the dimensions it returned (as ES counts them for the vector's element
    type), and the default similarity for the provider and element type."""
    service = dict(endpoint.config.service_settings)
    provider = parse_provider(service["provider"])
    kind = embedding_options.element_type(service.get("embedding_type"))
    dimensions = embedding_options.reported_dimensions(kind, vector_length)
    asked = service.get("dimensions")
    if endpoint.internal.get("dimensions_set_by_user") is True and asked != dimensions:
        raise BadRequest(
            f"The retrieved embeddings size [{dimensions}] does not match the size specified in "
            f"the settings [{asked}]. Please recreate the [{endpoint.inference_id}] configuration "
            "with the correct dimensions"
        )
    service["dimensions"] = dimensions
    similarity = embedding_options.default_similarity(kind, default_similarity(provider))
    service.setdefault("similarity", similarity)
    ordered = {key: service[key] for key in SERVICE_ORDER if key in service}
    return replace(endpoint, config=replace(endpoint.config, service_settings=ordered))


def validate_input_type(endpoint: BedrockEndpoint | StoredEndpoint, input_type: str | None) -> None:
    """ES's Bedrock allow-list; it names every input type, so only unknown values fail."""
    if input_type is not None and input_type not in INPUT_TYPES:
        raise ValidationFailed([f"Input type [{input_type}] is not supported for [{DISPLAY_NAME}]"])


def rate_limit_extensions(config: EndpointConfig) -> tuple[bool, int | None]:
    """`rate_limit.adaptive` (default true) and `tokens_per_minute`, from the public config."""
    rate_limit = config.service_settings.get("rate_limit")
    if not isinstance(rate_limit, Mapping):
        return True, None
    adaptive = rate_limit.get("adaptive")
    tokens = rate_limit.get("tokens_per_minute")
    valid_tokens = isinstance(tokens, int) and not isinstance(tokens, bool) and tokens > 0
    return adaptive is not False, tokens if valid_tokens else None


def requests_per_minute(config: EndpointConfig) -> int:
    """The endpoint's rate, read from its public config alone (240 when unset or unreadable)."""
    rate_limit = config.service_settings.get("rate_limit")
    value = rate_limit.get("requests_per_minute") if isinstance(rate_limit, Mapping) else None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return DEFAULT_REQUESTS_PER_MINUTE
