"""What `GET _inference/_services[/{task_type}]` shows for `amazonbedrock` in Elasticsearch 9.x.

Mirrors `AmazonBedrockService.Configuration` as ES's own `testGetConfiguration` pins it; merging
with the cluster's other services (a list sorted by `service`) is the caller's job.
"""

from __future__ import annotations

from typing import Any

from esproxy.inference.java_text import grown_table_size, hash_map_order
from esproxy.inference.models import TaskType
from esproxy.integrations.amazonbedrock.settings import DISPLAY_NAME, SERVICE

# ES lists chat_completion here since it added Bedrock chat completion (PR #139411; 9.4 by the
# spec); esproxy serves all three (chat_completion through `integrations/amazonbedrock/chat.py`).
SERVICE_TASK_TYPES = (TaskType.TEXT_EMBEDDING, TaskType.COMPLETION, TaskType.CHAT_COMPLETION)
RATE_LIMIT_DESCRIPTION = (
    "By default, the amazonbedrock service sets the number of requests allowed per minute to 240."
)
DIMENSIONS_DESCRIPTION = (
    "The number of dimensions the resulting embeddings should have. For more information refer "
    "to https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html."
)


def describe_service(task_type: TaskType | None) -> list[dict[str, Any]]:
    """The `amazonbedrock` entries of the services list: none when it lacks `task_type`."""
    if task_type not in (None, TaskType.ANY, *SERVICE_TASK_TYPES):
        return []
    return [
        {
            "service": SERVICE,
            "name": DISPLAY_NAME,
            "task_types": [str(t) for t in SERVICE_TASK_TYPES],
            "configurations": configurations(),
        }
    ]


def configurations() -> dict[str, dict[str, Any]]:
    """Each setting, in the iteration order of the Java HashMap ES builds them into."""
    every = SERVICE_TASK_TYPES
    settings = {
        "provider": setting("The model provider for your deployment.", "Provider", every),
        "model": setting(
            "The base model ID or an ARN to a custom model based on a foundational model.",
            "Model",
            every,
        ),
        "region": setting("The region that your model or ARN is deployed in.", "Region", every),
        "dimensions": setting(
            DIMENSIONS_DESCRIPTION,
            "Dimensions",
            (TaskType.TEXT_EMBEDDING,),
            required=False,
            field_type="int",
        ),
        "access_key": setting(
            "A valid AWS access key that has permissions to use Amazon Bedrock.",
            "Access Key",
            every,
            sensitive=True,
            updatable=True,
        ),
        "secret_key": setting(
            "A valid AWS secret key that is paired with the access_key.",
            "Secret Key",
            every,
            sensitive=True,
            updatable=True,
        ),
        "rate_limit.requests_per_minute": setting(
            RATE_LIMIT_DESCRIPTION, "Rate Limit", every, required=False, field_type="int"
        ),
    }
    order = hash_map_order(list(settings), grown_table_size(len(settings)))
    return {key: settings[key] for key in order}


def setting(
    description: str,
    label: str,
    task_types: tuple[TaskType, ...],
    *,
    required: bool = True,
    sensitive: bool = False,
    updatable: bool = False,
    field_type: str = "str",
) -> dict[str, Any]:
    """One `SettingsConfiguration` in toXContent key order; no Bedrock setting has a default."""
    return {
        "description": description,
        "label": label,
        "required": required,
        "sensitive": sensitive,
        "updatable": updatable,
        "type": field_type,
        "supported_task_types": [str(t) for t in task_types],
    }
