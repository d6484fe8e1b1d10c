"""amazonbedrock endpoint settings: PUT parsing in ES order and texts, stored reads, overrides."""

import json

import pytest

from esproxy.errors import ProxyError
from esproxy.inference.models import StoredEndpoint, TaskType
from esproxy.integrations.amazonbedrock import model_providers, settings
from esproxy.integrations.amazonbedrock.model_providers import ModelProvider
from esproxy.integrations.amazonbedrock.settings import (
    CompletionTaskSettings,
    EmbeddingTaskSettings,
)

EMBED = TaskType.TEXT_EMBEDDING
COMPLETE = TaskType.COMPLETION
KEYS = {"access_key": "AKIAEXAMPLE", "secret_key": "wJalrXUtnFEMIsecret"}
TITAN_EMBEDDINGS = {
    "service": "amazonbedrock",
    "service_settings": {
        **KEYS,
        "region": "us-east-1",
        "provider": "amazontitan",
        "model": "amazon.titan-embed-text-v2:0",
    },
}
TITAN_COMPLETION = {
    "service": "amazonbedrock",
    "service_settings": {
        **KEYS,
        "region": "us-east-1",
        "provider": "amazontitan",
        "model": "amazon.titan-text-premier-v1:0",
    },
}


def service(provider="amazontitan", **extra):
    return {**KEYS, "region": "r", "model": "m", "provider": provider, **extra}


def put(task_type, body, inference_id="my-endpoint"):
    return settings.parse_request_endpoint(inference_id, task_type, body)


def failure(task_type, body):
    with pytest.raises(ProxyError) as raised:
        put(task_type, body)
    return raised.value.status, raised.value.error_type, raised.value.reason


def invalid(*messages):
    numbered = "".join(f"{i}: {m};" for i, m in enumerate(messages, start=1))
    return f"Validation Failed: {numbered}"


def test_the_titan_embeddings_example_renders_as_es_returns_it():
    endpoint = put(EMBED, TITAN_EMBEDDINGS, "amazon_bedrock_embeddings")
    assert json.dumps(endpoint.config.to_dict(), separators=(",", ":")) == (
        '{"inference_id":"amazon_bedrock_embeddings","task_type":"text_embedding",'
        '"service":"amazonbedrock","service_settings":{"region":"us-east-1",'
        '"model":"amazon.titan-embed-text-v2:0","provider":"AMAZONTITAN",'
        '"rate_limit":{"requests_per_minute":240}},"chunking_settings":{"strategy":"sentence",'
        '"max_chunk_size":250,"sentence_overlap":1}}'
    )
    assert endpoint.secrets == KEYS
    assert endpoint.internal == {"dimensions_set_by_user": False}


def test_the_titan_completion_example_renders_as_es_returns_it():
    endpoint = put(COMPLETE, TITAN_COMPLETION, "amazon_bedrock_completion")
    assert json.dumps(endpoint.config.to_dict(), separators=(",", ":")) == (
        '{"inference_id":"amazon_bedrock_completion","task_type":"completion",'
        '"service":"amazonbedrock","service_settings":{"region":"us-east-1",'
        '"model":"amazon.titan-text-premier-v1:0","provider":"AMAZONTITAN",'
        '"rate_limit":{"requests_per_minute":240}}}'
    )


def test_secrets_stay_out_of_reprs_and_the_config():
    endpoint = put(EMBED, TITAN_EMBEDDINGS)
    shown = repr(endpoint) + json.dumps(endpoint.config.to_dict())
    shown += repr(settings.read_endpoint(endpoint))
    assert KEYS["access_key"] not in shown
    assert KEYS["secret_key"] not in shown


def test_settings_are_stored_in_es_key_order_with_only_the_keys_given():
    body = {
        "service_settings": service(
            " Cohere ",
            similarity="DOT_PRODUCT",
            rate_limit={"requests_per_minute": 10},
            max_input_tokens=512,
        ),
        "task_settings": {"max_new_tokens": 512, "top_k": 0.6, "temperature": 1.0},
    }
    config = put(COMPLETE, {**body, "service_settings": service("Anthropic")}).config
    assert list(config.task_settings.items()) == [
        ("temperature", 1.0),
        ("top_k", 0.6),
        ("max_new_tokens", 512),
    ]
    embedding = put(EMBED, {"service_settings": body["service_settings"]}).config
    assert list(embedding.service_settings.items()) == [
        ("region", "r"),
        ("model", "m"),
        ("provider", "COHERE"),
        ("rate_limit", {"requests_per_minute": 10}),
        ("max_input_tokens", 512),
        ("similarity", "dot_product"),
    ]


def test_max_new_tokens_gets_no_stored_default():
    assert put(COMPLETE, TITAN_COMPLETION).config.task_settings == {}


def test_the_probe_adds_dimensions_and_the_providers_default_similarity():
    titan = settings.with_learned_embedding_settings(put(EMBED, TITAN_EMBEDDINGS), 1024)
    assert list(titan.config.service_settings)[-2:] == ["dimensions", "similarity"]
    assert titan.config.service_settings["dimensions"] == 1024
    assert titan.config.service_settings["similarity"] == "cosine"
    cohere = put(EMBED, {"service_settings": service("cohere", max_input_tokens=8)})
    learned = settings.with_learned_embedding_settings(cohere, 8).config.service_settings
    assert list(learned.items())[-3:] == [
        ("dimensions", 8),
        ("max_input_tokens", 8),
        ("similarity", "dot_product"),
    ]
    chosen = put(EMBED, {"service_settings": service("cohere", similarity="l2_norm")})
    assert (
        settings.with_learned_embedding_settings(chosen, 8).config.service_settings["similarity"]
        == "l2_norm"
    )


@pytest.mark.parametrize(
    ("task_type", "body", "error_type", "reason"),
    [
        # Order of precedence: each body also holds every fault of the lines below it.
        (
            TaskType.SPARSE_EMBEDDING,
            {"task_settings": {"x": 1}},
            "status_exception",
            "Missing required field [service_settings]",
        ),
        (
            EMBED,
            {"service_settings": {"rate_limit": {"foo": 1}}, "chunking_settings": {"size": 1}},
            "illegal_argument_exception",
            "Can't generate Chunker without ChunkingStrategy provided",
        ),
        (
            TaskType.SPARSE_EMBEDDING,
            {"service_settings": {"rate_limit": {"foo": 1}}, "chunking_settings": {"size": 1}},
            "status_exception",
            "The [amazonbedrock] service does not support task type [sparse_embedding]",
        ),
        (
            COMPLETE,
            {"service_settings": {"model": "", "rate_limit": {"requests_per_minute": 0, "foo": 1}}},
            "status_exception",
            "Configuration contains settings [{foo=1}] unknown to the [amazon_bedrock] service",
        ),
        (
            COMPLETE,
            {
                "service_settings": {
                    "model": "",
                    "region": 5,
                    "rate_limit": {"requests_per_minute": 0},
                },
                "task_settings": {"temperature": 2.0},
            },
            "validation_exception",
            invalid(
                "[service_settings] Invalid value empty string. [model] must be a non-empty string",
                "field [region] is not of the expected type. The value [5] cannot be converted to "
                "a [String]",
                "[service_settings] does not contain the required setting [provider]",
                "[rate_limit] Invalid value [0]. [requests_per_minute] must be a positive long",
            ),
        ),
        (
            COMPLETE,
            {
                "service_settings": {"region": "r", "model": "m", "provider": "meta"},
                "task_settings": {"temperature": 1, "top_k": 0.5},
            },
            "validation_exception",
            invalid(
                "field [temperature] is not of the expected type. The value [1] cannot be "
                "converted to a [Double]"
            ),
        ),
        (
            COMPLETE,
            {
                "service_settings": {
                    "region": "r",
                    "model": "m",
                    "provider": "meta",
                    "access_key": "",
                },
                "task_settings": {"top_k": 0.5},
                "extra": 1,
            },
            "validation_exception",
            invalid(
                "[secret_settings] Invalid value empty string. [access_key] must be a non-empty "
                "string",
                "[secret_settings] does not contain the required setting [secret_key]",
            ),
        ),
        (
            EMBED,
            {"service_settings": service("meta"), "task_settings": {"truncate": "end"}, "x": 1},
            "status_exception",
            "The [text_embedding] task type for provider [meta] is not available",
        ),
        (
            COMPLETE,
            {"service_settings": service("meta", foo=1), "task_settings": {"top_k": 0.5}, "x": 1},
            "status_exception",
            "The [top_k] task parameter is not available for provider [meta]",
        ),
        (
            COMPLETE,
            {"service_settings": service(foo=1), "task_settings": {"bar": 1}, "x": 1},
            "status_exception",
            "Configuration contains settings [{x=1}] unknown to the [amazonbedrock] service",
        ),
        (
            COMPLETE,
            {"service_settings": service(foo=[1, 2.5, None]), "task_settings": {"bar": 1}},
            "status_exception",
            "Configuration contains settings [{foo=[1, 2.5, null]}] unknown to the [amazonbedrock] "
            "service",
        ),
        (
            COMPLETE,
            {"service_settings": service(), "task_settings": {"bar": {"b": True, "a": None}}},
            "status_exception",
            "Configuration contains settings [{bar={a=null, b=true}}] unknown to the "
            "[amazonbedrock] service",
        ),
    ],
)
def test_the_first_fault_es_would_report_wins(task_type, body, error_type, reason):
    assert failure(task_type, body) == (400, error_type, reason)


@pytest.mark.parametrize(
    ("task_type", "body", "error_type", "reason"),
    [
        (
            COMPLETE,
            {"service_settings": {**KEYS, "provider": "foo"}},
            "validation_exception",
            invalid(
                "[service_settings] does not contain the required setting [model]",
                "[service_settings] does not contain the required setting [region]",
                "[service_settings] Invalid value [foo] received. [provider] must be one of "
                "[ai21labs, amazontitan, anthropic, cohere, meta, mistral]",
            ),
        ),
        (
            COMPLETE,
            {"service_settings": service(rate_limit={"requests_per_minute": "10"})},
            "validation_exception",
            invalid(
                "field [requests_per_minute] is not of one of the expected types. The value [10] "
                "cannot be converted to one of [Integer, Long]"
            ),
        ),
        (
            EMBED,
            {"service_settings": service(dimensions=5, dimensions_set_by_user=False)},
            "validation_exception",
            # `dimensions` itself is an esproxy option, checked per model (test_embedding_options).
            invalid("[service_settings] does not allow the setting [dimensions_set_by_user]"),
        ),
        (
            EMBED,
            {"service_settings": service(dimensions=-1, max_input_tokens=-128, similarity="foo")},
            "validation_exception",
            invalid(
                "[service_settings] Invalid value [foo] received. [similarity] must be one of "
                "[cosine, dot_product, l2_norm]",
                "[service_settings] Invalid value [-128]. [max_input_tokens] must be a positive "
                "integer",
                "[service_settings] Invalid value [-1]. [dimensions] must be a positive integer",
            ),
        ),
        (
            COMPLETE,
            {
                "service_settings": service(),
                "task_settings": {
                    "temperature": 1.5,
                    "top_p": -0.1,
                    "top_k": True,
                    "max_new_tokens": 0,
                },
            },
            "validation_exception",
            invalid(
                "[task_settings] Invalid value [1.5]. [temperature] must be a less than or equal "
                "to [1.0]",
                "[task_settings] Invalid value [-0.1]. [top_p] must be a greater than or equal to "
                "[0.0]",
                "field [top_k] is not of the expected type. The value [true] cannot be converted "
                "to a [Double]",
                "[task_settings] Invalid value [0]. [max_new_tokens] must be a positive integer",
            ),
        ),
        (
            COMPLETE,
            {"service_settings": service(), "task_settings": {"max_new_tokens": 3000000000}},
            "validation_exception",
            invalid(
                "field [max_new_tokens] is not of the expected type. The value [3000000000] "
                "cannot be converted to a [Integer]"
            ),
        ),
        (
            EMBED,
            {"service_settings": service("cohere"), "task_settings": {"truncate": "middle"}},
            "validation_exception",
            invalid(
                "[task_settings] Invalid value [middle] received. [truncate] must be one of "
                "[end, none, start]"
            ),
        ),
        (
            EMBED,
            {"service_settings": service(), "task_settings": {"truncate": "end"}},
            "status_exception",
            "The [text_embedding] task type for provider [amazontitan] does not allow [truncate] "
            "field",
        ),
        (
            COMPLETE,
            {
                "service": "amazonbedrock",
                "service_settings": service(),
                "task_settings": {},
                "extra_key": "value",
                "another": 2,
            },
            "status_exception",
            "Configuration contains settings [{another=2, extra_key=value}] unknown to the "
            "[amazonbedrock] service",
        ),
        (
            COMPLETE,
            {"service_settings": service(), "chunking_settings": {}},
            "status_exception",
            "Configuration contains settings [{chunking_settings={}}] unknown to the "
            "[amazonbedrock] service",
        ),
        (
            COMPLETE,
            {"service_settings": {**service(), "access_key": ["AKIAEXAMPLE"]}},
            "validation_exception",
            invalid(
                "field [access_key] is not of the expected type. The value [<redacted>] cannot be "
                "converted to a [String]"
            ),
        ),
        (
            COMPLETE,
            {"service_settings": service(), "secret_key": "wJalrXUtnFEMIsecret"},
            "status_exception",
            "Configuration contains settings [{secret_key=<redacted>}] unknown to the "
            "[amazonbedrock] service",
        ),
        (
            COMPLETE,
            {"service_settings": "amazontitan"},
            "status_exception",
            "field [service_settings] is not of the expected type. The value [amazontitan] "
            "cannot be converted to a [Map]",
        ),
        (
            TaskType.RERANK,
            {"service_settings": service()},
            "status_exception",
            "The [amazonbedrock] service does not support task type [rerank]",
        ),
    ],
)
def test_each_fault_has_es_text_status_and_type(task_type, body, error_type, reason):
    assert failure(task_type, body) == (400, error_type, reason)


def test_json_integers_are_not_doubles_but_decimals_are():
    body = {"service_settings": service("cohere"), "task_settings": {"temperature": 1.0}}
    assert put(COMPLETE, body).config.task_settings == {"temperature": 1.0}
    assert failure(COMPLETE, {**body, "task_settings": {"top_p": 0}})[2] == invalid(
        "field [top_p] is not of the expected type. The value [0] cannot be converted to a [Double]"
    )


def test_null_settings_read_as_absent():
    body = {"service_settings": service(rate_limit=None, similarity=None), "task_settings": None}
    assert put(EMBED, {**body, "chunking_settings": None}).config.chunking_settings == {
        "strategy": "sentence",
        "max_chunk_size": 250,
        "sentence_overlap": 1,
    }


def test_stored_endpoints_read_back_as_typed_views():
    body = {
        "service_settings": service("cohere", max_input_tokens=100),
        "task_settings": {"truncate": "END"},
    }
    stored = settings.with_learned_embedding_settings(put(EMBED, body), 1024)
    view = settings.read_endpoint(stored)
    assert (view.region, view.model, view.provider, view.requests_per_minute) == (
        "r",
        "m",
        ModelProvider.COHERE,
        240,
    )
    assert (view.dimensions, view.max_input_tokens, view.similarity) == (1024, 100, "dot_product")
    assert view.task_settings == EmbeddingTaskSettings(truncate="end")
    assert (view.access_key, view.secret_key) == (KEYS["access_key"], KEYS["secret_key"])


def test_stored_records_with_unknown_keys_still_read():
    stored = put(COMPLETE, TITAN_COMPLETION)
    config = stored.config
    newer = StoredEndpoint(
        config=type(config)(
            inference_id=config.inference_id,
            task_type=config.task_type,
            service=config.service,
            service_settings={**config.service_settings, "embedding_type": "float"},
            task_settings={"temperature": 0.5, "added_later": 1},
        ),
        secrets=stored.secrets,
    )
    assert settings.read_endpoint(newer).task_settings == CompletionTaskSettings(temperature=0.5)


def test_unreadable_stored_records_ask_to_be_recreated():
    stored = put(COMPLETE, TITAN_COMPLETION)
    broken = StoredEndpoint(config=stored.config, secrets={"access_key": "a"})
    with pytest.raises(ProxyError) as raised:
        settings.read_endpoint(broken)
    assert (raised.value.status, raised.value.error_type, raised.value.reason) == (
        400,
        "status_exception",
        "Failed to parse stored model [my-endpoint] for [amazonbedrock] service, please delete "
        "and add the service again",
    )


def test_request_task_settings_override_the_stored_ones():
    body = {"service_settings": service(), "task_settings": {"temperature": 0.5, "top_p": 0.5}}
    view = settings.read_endpoint(put(COMPLETE, body))
    merged = settings.with_request_task_settings(view, {"top_p": 0.9, "unknown": 1, "top_k": 0.2})
    # ES skips the provider's top_k check here and ignores unknown keys.
    assert merged.task_settings == CompletionTaskSettings(temperature=0.5, top_p=0.9, top_k=0.2)
    assert settings.with_request_task_settings(view, {}) is view
    with pytest.raises(ProxyError) as raised:
        settings.with_request_task_settings(view, {"temperature": 1, "max_new_tokens": -1})
    assert raised.value.reason == invalid(
        "field [temperature] is not of the expected type. The value [1] cannot be converted to a "
        "[Double]",
        "[task_settings] Invalid value [-1]. [max_new_tokens] must be a positive integer",
    )


def test_request_truncate_overrides_the_stored_one():
    body = {"service_settings": service("cohere"), "task_settings": {"truncate": "start"}}
    view = settings.read_endpoint(put(EMBED, body))
    assert settings.with_request_task_settings(view, {"truncate": "None"}).task_settings == (
        EmbeddingTaskSettings(truncate="none")
    )


@pytest.mark.parametrize("input_type", [None, "ingest", "search", "classification", "unspecified"])
def test_bedrock_allows_every_input_type(input_type):
    settings.validate_input_type(put(EMBED, TITAN_EMBEDDINGS), input_type)


def test_an_unknown_input_type_is_rejected_by_the_allow_list():
    with pytest.raises(ProxyError) as raised:
        settings.validate_input_type(put(EMBED, TITAN_EMBEDDINGS), "document")
    assert raised.value.reason == invalid(
        "Input type [document] is not supported for [Amazon Bedrock]"
    )


def test_the_rate_comes_from_the_public_config_alone():
    body = {"service_settings": service(rate_limit={"requests_per_minute": 6})}
    assert settings.requests_per_minute(put(COMPLETE, body).config) == 6
    assert settings.requests_per_minute(put(COMPLETE, TITAN_COMPLETION).config) == 240


@pytest.mark.parametrize(
    ("text", "provider"),
    [
        ("amazontitan", ModelProvider.AMAZONTITAN),
        (" Cohere ", ModelProvider.COHERE),
        ("MISTRAL", ModelProvider.MISTRAL),
        ("ai21labs", ModelProvider.AI21LABS),
    ],
)
def test_providers_parse_trimmed_and_case_insensitively(text, provider):
    assert model_providers.parse_provider(text) is provider
    assert provider.display_name == provider.value.upper()


def test_the_capability_table_matches_es():
    embedders = {p for p in ModelProvider if model_providers.supports_task_type(p, EMBED)}
    assert embedders == {ModelProvider.AMAZONTITAN, ModelProvider.COHERE}
    assert all(model_providers.supports_task_type(p, COMPLETE) for p in ModelProvider)
    top_k = {p for p in ModelProvider if model_providers.accepts_top_k(p)}
    assert top_k == {ModelProvider.ANTHROPIC, ModelProvider.COHERE, ModelProvider.MISTRAL}
    assert model_providers.embedding_batch_size(ModelProvider.AMAZONTITAN) == 1
    assert model_providers.embedding_batch_size(ModelProvider.COHERE) == 96
    with pytest.raises(ValueError):
        model_providers.parse_provider("openai")
