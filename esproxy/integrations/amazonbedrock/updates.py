"""`_update` of an `amazonbedrock` endpoint, as ES's TransportUpdateInferenceModelAction does it.

Only the settings arithmetic lives here. The caller looks the endpoint up, runs the PUT probe when
the result differs from what was stored, and stores it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from esproxy.errors import BadRequest, StatusError, ValidationFailed
from esproxy.inference.java_text import grown_table_size, render_java_map
from esproxy.inference.models import EndpointConfig, StoredEndpoint, TaskType
from esproxy.inference.schemas import parse_task_type, resolve_task_type
from esproxy.inference.setting_fields import (
    RATE_LIMIT,
    SERVICE_SETTINGS,
    JavaPositiveInteger,
    SettingsSchema,
    load_settings,
    require_map,
)
from esproxy.integrations.amazonbedrock.settings import (
    RATE_LIMIT_KEYS,
    ROLE_SCHEMA,
    ROLE_SETTINGS,
    SECRET_KEYS,
    SECRET_SCHEMA,
    SERVICE,
    SERVICE_ORDER,
    TASK_SCHEMAS,
    RateLimitSchema,
    check_leftovers,
    check_provider,
    read_endpoint,
    read_secrets,
    redact,
    render_rate_limit,
)

TASK_TYPE_MISMATCH = "Task type must match the task type of the existing endpoint"
RATE_LIMIT_SCHEMA = RateLimitSchema()


class MaxInputTokensSchema(SettingsSchema):
    max_input_tokens = JavaPositiveInteger(SERVICE_SETTINGS)


MAX_INPUT_TOKENS_SCHEMA = MaxInputTokensSchema()


@dataclass(frozen=True)
class UpdateBody:
    """An `_update` body after ES's request checks; empty settings objects count as absent."""

    task_type: TaskType
    service_settings: Mapping[str, Any] | None = field(repr=False)
    task_settings: Mapping[str, Any] | None = None


def read_update_body(path_task_type: TaskType | None, body: Mapping[str, Any]) -> UpdateBody:
    """ES's `UpdateInferenceModelAction.Request` parsing and task type resolution.

    ES runs these before it looks the endpoint up, so a bad body wins over an unknown id.
    """
    if not body:
        raise BadRequest("Request body is empty")
    table_size = grown_table_size(len(body))
    remaining = dict(body)
    given = None
    if "task_type" in remaining:
        if not isinstance(remaining["task_type"], str):
            shown = render_java_map(redact(remaining), table_size=table_size)
            # Older ES answered this one with a 500; current ES (and esproxy) say 400.
            raise StatusError(
                f"Failed to parse [task_type] in update request [{shown}]", status=400
            )
        given = parse_task_type(remaining.pop("task_type"))
    service_settings = take_settings(remaining, "service_settings", "service settings", table_size)
    task_settings = take_settings(remaining, "task_settings", "task settings", table_size)
    if remaining:
        shown = render_java_map(redact(remaining), table_size=table_size)
        raise BadRequest(
            "Request contained fields which cannot be updated, remove these fields and try "
            f"again [{shown}]"
        )
    task_type = resolve_task_type(path_task_type, {} if given is None else {"task_type": given})
    return UpdateBody(task_type, service_settings or None, task_settings or None)


def take_settings(
    remaining: dict[str, Any], key: str, label: str, table_size: int
) -> dict[str, Any] | None:
    """Remove one settings object from the body; anything but an object (null too) is refused."""
    if key not in remaining:
        return None
    if not isinstance(remaining[key], Mapping):
        shown = render_java_map(redact(remaining), table_size=table_size)
        raise BadRequest(f"Unable to parse {label} in the request [{shown}]")
    return dict(remaining.pop(key))


def apply_update(
    current: StoredEndpoint, path_task_type: TaskType | None, body: Mapping[str, Any]
) -> StoredEndpoint:
    """`current` with the body's changes, checked in ES's order; chunking settings are kept.

    Only `rate_limit` (and, for embeddings, `max_input_tokens`) may change in `service_settings`,
    next to a new `access_key`/`secret_key` pair; `task_settings` are merged over the stored ones.
    """
    update = read_update_body(path_task_type, body)
    stored = read_endpoint(current)
    if update.task_type is not current.config.task_type:
        raise BadRequest(TASK_TYPE_MISMATCH)
    service_map = dict(update.service_settings or {})
    task_map = dict(update.task_settings or {})
    service = merged_service_settings(current.config, stored.requests_per_minute, service_map)
    task = merged_task_settings(current.config, task_map)
    secrets = rotated_secrets(current.secrets, service_map)
    check_leftovers(service_map, len(update.service_settings or {}), SERVICE)
    check_leftovers(task_map, len(update.task_settings or {}), SERVICE)
    check_provider(current.config.task_type, stored.provider, task)
    config = replace(current.config, service_settings=service, task_settings=task)
    return replace(current, config=config, secrets=secrets)


def merged_service_settings(
    config: EndpointConfig, requests_per_minute: int, service_map: dict[str, Any]
) -> dict[str, Any]:
    """Take the updatable fields out of `service_map` and apply them; everything else is left."""
    problems: list[str] = []
    rate_limit = read_rate_limit(service_map.pop(RATE_LIMIT, None), problems)
    tokens = None
    if config.task_type is TaskType.TEXT_EMBEDDING and "max_input_tokens" in service_map:
        given = {"max_input_tokens": service_map.pop("max_input_tokens")}
        tokens = collect(MAX_INPUT_TOKENS_SCHEMA, given, problems).get("max_input_tokens")
    role = merged_role(config, service_map, problems)
    if problems:
        raise ValidationFailed(problems)
    stored = config.service_settings.get(RATE_LIMIT)
    merged = {**(stored if isinstance(stored, Mapping) else {}), **rate_limit}
    merged["requests_per_minute"] = merged.get("requests_per_minute") or requests_per_minute
    shown = {**config.service_settings, RATE_LIMIT: render_rate_limit(merged), **role}
    if tokens is not None:
        shown["max_input_tokens"] = tokens
    return {key: shown[key] for key in SERVICE_ORDER if shown.get(key) is not None}


def merged_role(
    config: EndpointConfig, service_map: dict[str, Any], problems: list[str]
) -> dict[str, Any]:
    """An esproxy extension: `role_arn`, `external_id` and `role_session_name` may change too
    (the changed endpoint is then probed under the new role before it is stored)."""
    given = {key: service_map.pop(key) for key in ROLE_SETTINGS if key in service_map}
    if not given:
        return {}
    merged = {key: config.service_settings.get(key) for key in ROLE_SETTINGS}
    merged.update({key: value for key, value in given.items() if value is not None})
    loaded = collect(ROLE_SCHEMA, {k: v for k, v in merged.items() if v is not None}, problems)
    return {key: value for key, value in loaded.items() if value is not None}


def read_rate_limit(value: Any, problems: list[str]) -> dict[str, Any]:
    """ES's update-time `RateLimitSettings.of`: unknown entries are a validation message here.

    The given fields (esproxy's extensions too); fields left out keep their stored values.
    """
    rate_limit = require_map(value, RATE_LIMIT)
    given = collect(RATE_LIMIT_SCHEMA, rate_limit, problems)
    unknown = {k: v for k, v in rate_limit.items() if k not in RATE_LIMIT_KEYS}
    if unknown:
        shown = render_java_map(redact(unknown), table_size=grown_table_size(len(rate_limit)))
        problems.append(f"Rate limit settings contain unknown entries [{shown}]")
    return {k: v for k, v in given.items() if v is not None}


def collect(schema: SettingsSchema, data: Mapping[str, Any], problems: list[str]) -> dict[str, Any]:
    """Load `data`, adding its messages to `problems` so that one error reports them all."""
    try:
        return load_settings(schema, data)
    except ValidationFailed as failed:
        problems.extend(failed.messages)
        return {}


def merged_task_settings(config: EndpointConfig, task_map: dict[str, Any]) -> dict[str, Any]:
    """The given task settings over the stored ones, with PUT's checks; known keys are taken."""
    schema = TASK_SCHEMAS[config.task_type]
    given = load_settings(schema, task_map)
    for name in schema.fields:
        task_map.pop(name, None)
    merged = {**config.task_settings, **{k: v for k, v in given.items() if v is not None}}
    return {name: merged[name] for name in schema.fields if merged.get(name) is not None}


def rotated_secrets(current: Mapping[str, str], service_map: dict[str, Any]) -> Mapping[str, str]:
    """New keys when any secret is given: both keys are then required, as at PUT, and a session
    token goes with them (new keys without one drop the old token)."""
    given = {key: service_map.pop(key) for key in sorted(SECRET_KEYS) if key in service_map}
    if not given:
        return current
    return read_secrets(SECRET_SCHEMA, given)
