"""amazonbedrock in `GET _inference/_services`: ES 9.x content, key order and task type filters."""

import json

import pytest

from esproxy.inference.models import TaskType
from esproxy.integrations.amazonbedrock.service_description import describe_service

EVERY = ["text_embedding", "completion", "chat_completion"]


def entry(description, label, *, required=True, sensitive=False, updatable=False, kind="str"):
    return {
        "description": description,
        "label": label,
        "required": required,
        "sensitive": sensitive,
        "updatable": updatable,
        "type": kind,
        "supported_task_types": EVERY,
    }


# ES's AmazonBedrockServiceTests.testGetConfiguration (era D), in the order ES writes the
# HashMap: only `dimensions` differs from the test, which lists it first by hand.
EXPECTED = {
    "service": "amazonbedrock",
    "name": "Amazon Bedrock",
    "task_types": EVERY,
    "configurations": {
        "secret_key": entry(
            "A valid AWS secret key that is paired with the access_key.",
            "Secret Key",
            sensitive=True,
            updatable=True,
        ),
        "provider": entry("The model provider for your deployment.", "Provider"),
        "access_key": entry(
            "A valid AWS access key that has permissions to use Amazon Bedrock.",
            "Access Key",
            sensitive=True,
            updatable=True,
        ),
        "model": entry(
            "The base model ID or an ARN to a custom model based on a foundational model.", "Model"
        ),
        "rate_limit.requests_per_minute": entry(
            "By default, the amazonbedrock service sets the number of requests allowed per minute "
            "to 240.",
            "Rate Limit",
            required=False,
            kind="int",
        ),
        "region": entry("The region that your model or ARN is deployed in.", "Region"),
        "dimensions": {
            **entry(
                "The number of dimensions the resulting embeddings should have. For more "
                "information refer to https://docs.aws.amazon.com/bedrock/latest/userguide/"
                "model-parameters-titan-embed-text.html.",
                "Dimensions",
                required=False,
                kind="int",
            ),
            "supported_task_types": ["text_embedding"],
        },
    },
}


def rendered(value):
    return json.dumps(value, separators=(",", ":"))


@pytest.mark.parametrize(
    "task_type",
    [None, TaskType.ANY, TaskType.TEXT_EMBEDDING, TaskType.COMPLETION, TaskType.CHAT_COMPLETION],
)
def test_every_listing_that_includes_bedrock_shows_the_whole_configuration(task_type):
    # ES filters services by task type but never filters the settings it shows for them.
    assert rendered(describe_service(task_type)) == rendered([EXPECTED])


@pytest.mark.parametrize(
    "task_type", [TaskType.SPARSE_EMBEDDING, TaskType.RERANK, TaskType.EMBEDDING]
)
def test_task_types_bedrock_lacks_leave_it_out(task_type):
    assert describe_service(task_type) == []


def test_keys_are_in_es_order_at_every_level():
    (service,) = describe_service(TaskType.TEXT_EMBEDDING)
    assert list(service) == ["service", "name", "task_types", "configurations"]
    assert list(service["configurations"]) == [
        "secret_key",
        "provider",
        "access_key",
        "model",
        "rate_limit.requests_per_minute",
        "region",
        "dimensions",
    ]
    for setting in service["configurations"].values():
        assert list(setting) == [
            "description",
            "label",
            "required",
            "sensitive",
            "updatable",
            "type",
            "supported_task_types",
        ]


def test_only_the_keys_are_sensitive_and_updatable():
    (service,) = describe_service(None)
    flagged = {k for k, v in service["configurations"].items() if v["sensitive"] or v["updatable"]}
    assert flagged == {"access_key", "secret_key"}


def test_each_call_returns_a_fresh_structure():
    first = describe_service(None)
    first[0]["configurations"]["region"]["label"] = "changed"
    first[0]["task_types"].append("rerank")
    assert rendered(describe_service(None)) == rendered([EXPECTED])
