"""Reading Bedrock's vector forms into the forms ES's dense_vector takes, and the option rules."""

from __future__ import annotations

import pytest

from esproxy.errors import ProxyError
from esproxy.integrations.amazonbedrock import embedding_options as options
from esproxy.integrations.amazonbedrock.model_providers import ModelProvider

TITAN = ModelProvider.AMAZONTITAN
COHERE = ModelProvider.COHERE


def test_bits_pack_most_significant_first_into_signed_bytes():
    bits = [1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 1, 1, 1, 1, 1, 1]  # 0x81, 0x7f
    assert list(options.pack_bits(bits)) == [-127, 127]
    assert list(options.titan_binary({"embeddingsByType": {"binary": bits}})) == [-127, 127]


@pytest.mark.parametrize(
    "body",
    [{}, {"embeddingsByType": {"binary": [1, 0, 1]}}, {"embeddingsByType": {"binary": [2] * 8}}],
)
def test_a_titan_answer_without_whole_bytes_of_bits_is_a_provider_fault(body):
    with pytest.raises(ProxyError) as raised:
        options.titan_binary(body)
    assert raised.value.status == 500


def test_cohere_types_become_signed_bytes():
    assert list(options.cohere_typed([-128, 0, 127], "int8")) == [-128, 0, 127]
    assert list(options.cohere_typed([0, 128, 255], "uint8")) == [-128, 0, 127]
    assert list(options.cohere_typed([0, 129, 255], "ubinary")) == [0, -127, -1]
    assert list(options.cohere_typed([-1, 5], "binary")) == [-1, 5]
    with pytest.raises(ProxyError):
        options.cohere_typed([256], "uint8")
    with pytest.raises(ProxyError):
        options.cohere_typed([1.5], "int8")


def test_element_types_and_dims_as_es_counts_them():
    assert [str(options.element_type(t)) for t in (None, "float", "int8", "uint8")] == [
        "float",
        "float",
        "byte",
        "byte",
    ]
    assert options.element_type("ubinary") is options.ElementType.BIT
    assert options.reported_dimensions(options.ElementType.BIT, 128) == 1024
    assert options.reported_dimensions(options.ElementType.BYTE, 1024) == 1024


@pytest.mark.parametrize(
    ("provider", "model", "ok"),
    [
        (TITAN, "amazon.titan-embed-text-v2:0", True),
        (TITAN, "us.amazon.titan-embed-text-v2:0", True),
        (
            TITAN,
            "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0",
            True,
        ),
        (TITAN, "amazon.titan-embed-text-v1", False),
        (TITAN, "arn:aws:bedrock:us-east-1:123456789012:custom-model/abc", False),
        (COHERE, "amazon.titan-embed-text-v2:0", False),
    ],
)
def test_which_models_take_the_titan_options(provider, model, ok):
    problems = options.option_problems(provider, model, {"dimensions": 512, "normalize": True})
    assert (problems == []) is ok


def test_request_fields_appear_only_when_set():
    assert options.titan_fields(None, None, None) == {}
    assert options.titan_fields(None, None, "float") == {}
    assert options.titan_fields(256, False, "binary") == {
        "dimensions": 256,
        "normalize": False,
        "embeddingTypes": ["binary"],
    }
    assert options.cohere_fields("float") == {}
    assert options.cohere_fields("uint8") == {"embedding_types": ["uint8"]}
