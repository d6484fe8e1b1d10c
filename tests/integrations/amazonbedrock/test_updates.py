"""amazonbedrock `_update`: key rotation, updatable service fields, task settings, ES texts."""

import json

import pytest

from esproxy.errors import ProxyError
from esproxy.inference.models import TaskType
from esproxy.integrations.amazonbedrock import settings
from esproxy.integrations.amazonbedrock.updates import (
    TASK_TYPE_MISMATCH,
    apply_update,
    read_update_body,
)

EMBED = TaskType.TEXT_EMBEDDING
COMPLETE = TaskType.COMPLETION
KEYS = {"access_key": "AKIAOLDKEY", "secret_key": "oldSecretValue"}
NEW_KEYS = {"access_key": "AKIANEWKEY", "secret_key": "newSecretValue"}
CHUNKING = {"strategy": "word", "max_chunk_size": 120, "overlap": 40}


def created(task_type, provider="amazontitan", task_settings=None, **service):
    body = {
        "service": "amazonbedrock",
        "service_settings": {**KEYS, "region": "us-east-1", "model": "m", "provider": provider},
        "task_settings": task_settings or {},
    }
    body["service_settings"].update(service)
    if task_type is EMBED:
        body["chunking_settings"] = CHUNKING
    endpoint = settings.parse_request_endpoint("my-endpoint", task_type, body)
    if task_type is EMBED:
        endpoint = settings.with_learned_embedding_settings(endpoint, 1024)
    return endpoint


def failure(current, body, path_task_type=None):
    with pytest.raises(ProxyError) as raised:
        apply_update(current, path_task_type or current.config.task_type, body)
    return raised.value.status, raised.value.error_type, raised.value.reason


def invalid(*messages):
    return "Validation Failed: " + "".join(f"{i}: {m};" for i, m in enumerate(messages, start=1))


def unknown(shown):
    return f"Configuration contains settings [{{{shown}}}] unknown to the [amazonbedrock] service"


def test_keys_rotate_as_a_pair_and_nothing_else_changes():
    current = created(EMBED)
    updated = apply_update(current, EMBED, {"service_settings": NEW_KEYS})
    assert updated.secrets == NEW_KEYS
    assert updated.config == current.config
    assert updated.internal == current.internal


@pytest.mark.parametrize(
    ("given", "missing"),
    [({"access_key": "AKIANEW"}, "secret_key"), ({"secret_key": "newSecret"}, "access_key")],
)
def test_half_a_key_pair_is_refused_with_the_missing_secret_message(given, missing):
    current = created(COMPLETE)
    assert failure(current, {"service_settings": given}) == (
        400,
        "validation_exception",
        invalid(f"[secret_settings] does not contain the required setting [{missing}]"),
    )


def test_key_errors_never_echo_the_keys():
    current = created(COMPLETE)
    status, _, reason = failure(current, {"service_settings": {"access_key": "", "secret_key": 7}})
    assert status == 400
    assert reason == invalid(
        "[secret_settings] Invalid value empty string. [access_key] must be a non-empty string",
        "field [secret_key] is not of the expected type. The value [<redacted>] cannot be "
        "converted to a [String]",
    )


def test_service_settings_without_keys_keep_the_stored_pair():
    current = created(COMPLETE)
    body = {"service_settings": {"rate_limit": {"requests_per_minute": 60}}}
    updated = apply_update(current, COMPLETE, body)
    assert updated.secrets == KEYS
    assert updated.config.service_settings == {
        "region": "us-east-1",
        "model": "m",
        "provider": "AMAZONTITAN",
        "rate_limit": {"requests_per_minute": 60},
    }


def test_embeddings_may_change_rate_limit_and_max_input_tokens_in_es_key_order():
    current = created(EMBED, similarity="l2_norm")
    body = {"service_settings": {"max_input_tokens": 512, "rate_limit": {"requests_per_minute": 9}}}
    updated = apply_update(current, EMBED, body)
    assert json.dumps(updated.config.to_dict(), separators=(",", ":")) == (
        '{"inference_id":"my-endpoint","task_type":"text_embedding","service":"amazonbedrock",'
        '"service_settings":{"region":"us-east-1","model":"m","provider":"AMAZONTITAN",'
        '"rate_limit":{"requests_per_minute":9},"dimensions":1024,"max_input_tokens":512,'
        '"similarity":"l2_norm"},"chunking_settings":{"strategy":"word","max_chunk_size":120,'
        '"overlap":40}}'
    )


def test_an_empty_or_null_rate_limit_keeps_the_stored_one():
    current = created(COMPLETE, rate_limit={"requests_per_minute": 33})
    for rate_limit in ({}, None):
        body = {"service_settings": {"rate_limit": rate_limit}}
        assert apply_update(current, COMPLETE, body) == current


@pytest.mark.parametrize(
    ("service_settings", "messages"),
    [
        (
            {"rate_limit": {"requests_per_minute": 0}},
            ["[rate_limit] Invalid value [0]. [requests_per_minute] must be a positive long"],
        ),
        (
            {"rate_limit": {"requests_per_minute": 0, "burst": 5}, "max_input_tokens": -1},
            [
                "[rate_limit] Invalid value [0]. [requests_per_minute] must be a positive long",
                "Rate limit settings contain unknown entries [{burst=5}]",
                "[service_settings] Invalid value [-1]. [max_input_tokens] must be a positive "
                "integer",
            ],
        ),
        (
            {"max_input_tokens": "many"},
            [
                "field [max_input_tokens] is not of the expected type. The value [many] cannot "
                "be converted to a [Integer]"
            ],
        ),
    ],
)
def test_bad_updatable_values_are_collected_in_one_validation_error(service_settings, messages):
    current = created(EMBED)
    assert failure(current, {"service_settings": service_settings}) == (
        400,
        "validation_exception",
        invalid(*messages),
    )


@pytest.mark.parametrize(
    ("task_type", "field", "value"),
    [
        (EMBED, "region", "us-west-2"),
        (EMBED, "model", "amazon.titan-embed-text-v1"),
        (EMBED, "provider", "cohere"),
        (EMBED, "dimensions", 256),
        (EMBED, "similarity", "cosine"),
        (EMBED, "dimensions_set_by_user", True),
        (COMPLETE, "max_input_tokens", 100),
        (COMPLETE, "temperature", 0.5),
    ],
)
def test_any_other_service_setting_is_an_unknown_setting(task_type, field, value):
    current = created(task_type)
    shown = "true" if value is True else value
    body = {"service_settings": {**NEW_KEYS, field: value}}
    assert failure(current, body) == (400, "status_exception", unknown(f"{field}={shown}"))


def test_completion_task_settings_merge_over_the_stored_ones_in_es_order():
    current = created(COMPLETE, "anthropic", {"max_new_tokens": 64, "temperature": 0.2})
    body = {"task_settings": {"top_k": 0.3, "temperature": 0.9, "top_p": None}}
    updated = apply_update(current, COMPLETE, body)
    assert json.dumps(updated.config.task_settings, separators=(",", ":")) == (
        '{"temperature":0.9,"top_k":0.3,"max_new_tokens":64}'
    )
    assert updated.config.service_settings == current.config.service_settings


def test_cohere_embeddings_merge_truncate_case_insensitively():
    current = created(EMBED, "cohere", {"truncate": "start"})
    updated = apply_update(current, EMBED, {"task_settings": {"truncate": "END"}})
    assert updated.config.task_settings == {"truncate": "end"}


@pytest.mark.parametrize(
    ("current", "task_settings", "expected"),
    [
        (
            created(COMPLETE),
            {"temperature": 1},
            (
                400,
                "validation_exception",
                invalid(
                    "field [temperature] is not of the expected type. The value [1] cannot be "
                    "converted to a [Double]"
                ),
            ),
        ),
        (
            created(COMPLETE),
            {"top_p": 1.5, "max_new_tokens": 0},
            (
                400,
                "validation_exception",
                invalid(
                    "[task_settings] Invalid value [1.5]. [top_p] must be a less than or equal "
                    "to [1.0]",
                    "[task_settings] Invalid value [0]. [max_new_tokens] must be a positive "
                    "integer",
                ),
            ),
        ),
        (
            created(COMPLETE),
            {"top_k": 0.5},
            (
                400,
                "status_exception",
                "The [top_k] task parameter is not available for provider [amazontitan]",
            ),
        ),
        (
            created(EMBED),
            {"truncate": "start"},
            (
                400,
                "status_exception",
                "The [text_embedding] task type for provider [amazontitan] does not allow "
                "[truncate] field",
            ),
        ),
        (
            created(COMPLETE, "anthropic"),
            {"temperature": 0.5, "stop": ["x"]},
            (400, "status_exception", unknown("stop=[x]")),
        ),
    ],
)
def test_task_settings_get_puts_checks(current, task_settings, expected):
    assert failure(current, {"task_settings": task_settings}) == expected


def test_checks_run_in_es_order_service_then_task_then_keys_then_leftovers():
    current = created(COMPLETE)
    bad_service = {"rate_limit": {"requests_per_minute": -1}, "region": "x", "access_key": "a"}
    bad_task = {"max_new_tokens": -5, "foo": 1}
    body = {"service_settings": bad_service, "task_settings": bad_task}
    assert "[requests_per_minute]" in failure(current, body)[2]
    body["service_settings"] = {"region": "x", "access_key": "a"}
    assert "[max_new_tokens]" in failure(current, body)[2]
    body["task_settings"] = {"foo": 1}
    assert "[secret_key]" in failure(current, body)[2]
    body["service_settings"] = {"region": "x"}
    assert failure(current, body)[2] == unknown("region=x")
    body["service_settings"] = {}
    assert failure(current, body)[2] == unknown("foo=1")


def test_chunking_settings_are_kept_and_cannot_be_sent():
    current = created(EMBED)
    body = {"service_settings": {"rate_limit": {"requests_per_minute": 5}}}
    assert apply_update(current, EMBED, body).config.chunking_settings == CHUNKING
    body = {"chunking_settings": {"strategy": "sentence", "max_chunk_size": 50}}
    assert failure(current, body) == (
        400,
        "status_exception",
        "Request contained fields which cannot be updated, remove these fields and try again "
        "[{chunking_settings={max_chunk_size=50, strategy=sentence}}]",
    )


@pytest.mark.parametrize(
    ("path_task_type", "body", "expected"),
    [
        (COMPLETE, {"task_settings": {"temperature": 0.5}}, TASK_TYPE_MISMATCH),
        (
            EMBED,
            {"task_type": "completion"},
            "Cannot resolve conflicting task_type parameter in "
            "the request URL [text_embedding] and the request body [completion]",
        ),
        (None, {"task_type": "COMPLETION"}, TASK_TYPE_MISMATCH),
        (None, {"service_settings": NEW_KEYS}, "model is missing required setting [task_type]"),
        (EMBED, {"task_type": "any"}, "task_type [any] is not valid type for inference"),
        (EMBED, {"task_type": "bogus"}, "Unknown task_type [bogus]"),
    ],
)
def test_the_task_type_must_match_the_stored_one(path_task_type, body, expected):
    current = created(EMBED)
    with pytest.raises(ProxyError) as raised:
        apply_update(current, path_task_type, body)
    assert (raised.value.status, raised.value.error_type, raised.value.reason) == (
        400,
        "status_exception",
        expected,
    )


def test_a_task_type_in_the_body_alone_is_enough():
    current = created(EMBED)
    updated = apply_update(current, None, {"task_type": " Text_Embedding ", "task_settings": {}})
    assert updated == current


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({}, 400, "Request body is empty"),
        (
            {"task_type": 5, "service_settings": NEW_KEYS},
            400,
            "Failed to parse [task_type] in update request [{service_settings={secret_key="
            "<redacted>, access_key=<redacted>}, task_type=5}]",
        ),
        (
            {"service_settings": "AKIA"},
            400,
            "Unable to parse service settings in the request [{service_settings=AKIA}]",
        ),
        (
            {"service_settings": None},
            400,
            "Unable to parse service settings in the request [{service_settings=null}]",
        ),
        (
            {"task_settings": [1]},
            400,
            "Unable to parse task settings in the request [{task_settings=[1]}]",
        ),
        (
            {"service": "amazonbedrock", "task_settings": {}},
            400,
            "Request contained fields which cannot be updated, remove these fields and try "
            "again [{service=amazonbedrock}]",
        ),
    ],
)
def test_body_errors_come_before_the_endpoint_is_looked_up(body, status, reason):
    with pytest.raises(ProxyError) as raised:
        read_update_body(EMBED, body)
    assert (raised.value.status, raised.value.error_type, raised.value.reason) == (
        status,
        "status_exception",
        reason,
    )


def test_empty_settings_objects_change_nothing():
    current = created(COMPLETE, "cohere", {"top_k": 0.1})
    assert apply_update(current, COMPLETE, {"service_settings": {}, "task_settings": {}}) == current


def test_reprs_never_show_the_keys():
    current = created(COMPLETE)
    updated = apply_update(current, COMPLETE, {"service_settings": NEW_KEYS})
    request = read_update_body(COMPLETE, {"service_settings": NEW_KEYS})
    for shown in (repr(updated), repr(request), str(updated), str(request)):
        assert "AKIA" not in shown
        assert "SecretValue" not in shown


def test_an_unreadable_stored_record_asks_to_be_recreated():
    current = created(COMPLETE)
    broken = type(current)(config=current.config, secrets={"access_key": "a"})
    assert failure(broken, {"service_settings": NEW_KEYS})[2] == (
        "Failed to parse stored model [my-endpoint] for [amazonbedrock] service, please delete "
        "and add the service again"
    )
