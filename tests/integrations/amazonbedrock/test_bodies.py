"""Request builders and response parsers for Titan, Cohere and Converse."""

from __future__ import annotations

from array import array

import pytest

from esproxy.errors import ProxyError
from esproxy.integrations.amazonbedrock import bodies
from esproxy.integrations.amazonbedrock.model_providers import ModelProvider


def test_titan_body_sends_only_the_text_as_es_does():
    assert bodies.titan_embedding_body("how big") == {"inputText": "how big"}


@pytest.mark.parametrize(
    ("input_type", "cohere"),
    [
        (None, "search_document"),
        ("ingest", "search_document"),
        ("internal_ingest", "search_document"),
        ("unspecified", "search_document"),
        ("search", "search_query"),
        ("internal_search", "search_query"),
        ("classification", "classification"),
        ("clustering", "clustering"),
        ("SEARCH", "search_query"),
    ],
)
def test_cohere_input_type_follows_es_mapping(input_type, cohere):
    assert bodies.cohere_embedding_body(["a"], input_type, None) == {
        "texts": ["a"],
        "input_type": cohere,
    }


def test_cohere_truncate_is_sent_upper_case_only_when_set():
    body = bodies.cohere_embedding_body(["a", "b"], "search", "start")
    assert body == {"texts": ["a", "b"], "input_type": "search_query", "truncate": "START"}


def test_inputs_are_cut_to_three_characters_per_token():
    assert bodies.truncate_inputs(["abcdefgh", "abc"], 2) == ["abcdef", "abc"]
    assert bodies.truncate_inputs(["abcdefgh"], None) == ["abcdefgh"]


def test_converse_request_sends_one_input_as_es_does_with_64_tokens_by_default():
    assert bodies.converse_request(["one"], provider=ModelProvider.AMAZONTITAN) == {
        "messages": [{"role": "user", "content": [{"text": "one"}]}],
        "inferenceConfig": {"maxTokens": 64},
    }


def test_converse_request_puts_several_inputs_in_one_user_turn():
    request = bodies.converse_request(["one", "two"], provider=ModelProvider.AMAZONTITAN)
    assert request["messages"] == [
        {"role": "user", "content": [{"text": "one"}, {"text": "two"}]},
    ]


def test_converse_request_carries_the_set_task_settings():
    request = bodies.converse_request(
        ["q"], provider=ModelProvider.META, max_new_tokens=10, temperature=0.5, top_p=0.25
    )
    assert request["inferenceConfig"] == {"temperature": 0.5, "topP": 0.25, "maxTokens": 10}
    assert list(request["inferenceConfig"]) == ["temperature", "topP", "maxTokens"]  # ES's order
    assert "additionalModelRequestFields" not in request


@pytest.mark.parametrize(
    ("provider", "top_k", "field"),
    [
        (ModelProvider.ANTHROPIC, 0.5, {"top_k": 250}),
        (ModelProvider.ANTHROPIC, 1.0, {"top_k": 500}),
        (ModelProvider.ANTHROPIC, 0.0, {"top_k": 1}),
        (ModelProvider.COHERE, 0.1, {"k": 50}),
        (ModelProvider.MISTRAL, 0.5, {"top_k": 100}),
        (ModelProvider.MISTRAL, 0.001, {"top_k": 1}),
    ],
)
def test_top_k_goes_under_the_providers_own_name_as_a_whole_number(provider, top_k, field):
    request = bodies.converse_request(["q"], provider=provider, top_k=top_k)
    assert request["additionalModelRequestFields"] == field


@pytest.mark.parametrize(
    "provider", [ModelProvider.AMAZONTITAN, ModelProvider.META, ModelProvider.AI21LABS]
)
def test_top_k_is_left_out_for_models_without_top_k(provider):
    assert "additionalModelRequestFields" not in bodies.converse_request(
        ["q"], provider=provider, top_k=0.5
    )


def test_titan_embedding_is_read_as_float32():
    vector = bodies.parse_titan_embedding({"embedding": [0.1, -2.5], "inputTextTokenCount": 2})
    assert vector == array("f", [0.1, -2.5])
    assert vector[0] != 0.1  # float32's nearest value, not the double


def test_missing_embedding_field_fails_with_es_text():
    with pytest.raises(ProxyError) as caught:
        bodies.parse_titan_embedding({"inputTextTokenCount": 2})
    assert caught.value.status == 500
    assert caught.value.reason == (
        "Failed to find required field [embedding] in Amazon Bedrock embeddings response"
    )


def test_cohere_embeddings_are_read_per_input_in_either_form():
    plain = {"embeddings": [[1.0, 2.0], [3.0, 4.0]], "response_type": "embeddings_floats"}
    by_type = {"embeddings": {"float": [[1.0, 2.0], [3.0, 4.0]]}}
    expected = [array("f", [1.0, 2.0]), array("f", [3.0, 4.0])]
    assert bodies.parse_cohere_embeddings(plain, 2) == expected
    assert bodies.parse_cohere_embeddings(by_type, 2) == expected


def test_cohere_embeddings_must_match_the_inputs():
    with pytest.raises(ProxyError, match=r"returned \[1\] embeddings for \[2\] inputs"):
        bodies.parse_cohere_embeddings({"embeddings": [[1.0]]}, 2)
    with pytest.raises(ProxyError, match=r"required field \[embeddings\]"):
        bodies.parse_cohere_embeddings({"texts": ["a"]}, 1)


def test_non_numbers_in_a_vector_fail():
    with pytest.raises(ProxyError, match="not a number"):
        bodies.parse_titan_embedding({"embedding": [0.1, "x"]})


def test_converse_output_gives_one_result_per_text_block():
    response = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"text": "first"},
                    {"reasoningContent": {"reasoningText": {"text": "hidden"}}},
                    {"text": "second"},
                ],
            }
        },
        "stopReason": "end_turn",
    }
    assert bodies.parse_converse_output(response) == ["first", "second"]


def test_converse_output_without_message_fails():
    with pytest.raises(ProxyError, match=r"required field \[message\]"):
        bodies.parse_converse_output({"output": {}})
