"""`esproxy bridge create`: the Elasticsearch-side `openai` endpoint that calls esproxy.

The cluster's endpoint names esproxy's route as its `url`, a bridge key as its `api_key` and the
esproxy inference id as its `model_id`; for embeddings it also fixes `dimensions` and
`similarity` from the esproxy endpoint, so ES neither probes nor guesses them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from esproxy.errors import BadRequest, UpstreamUnavailable
from esproxy.inference.models import EndpointConfig, TaskType

ROUTES = {
    TaskType.TEXT_EMBEDDING: "embeddings",
    TaskType.COMPLETION: "chat/completions",
    TaskType.CHAT_COMPLETION: "chat/completions",
}


@dataclass(frozen=True)
class EsEndpoint:
    path: str
    body: dict[str, Any]


def es_endpoint(config: EndpointConfig, es_name: str, base_url: str, key: str) -> EsEndpoint:
    route = ROUTES.get(config.task_type)
    if route is None:
        raise BadRequest(
            f"endpoint [{config.inference_id}] is a [{config.task_type}] endpoint; the bridge "
            f"serves {', '.join(sorted(ROUTES))} endpoints"
        )
    service_settings: dict[str, Any] = {
        "api_key": key,
        "model_id": config.inference_id,
        "url": f"{base_url.rstrip('/')}/_esproxy/openai/v1/{route}",
    }
    if config.task_type == TaskType.TEXT_EMBEDDING:
        for name in ("dimensions", "similarity"):
            if config.service_settings.get(name) is not None:
                service_settings[name] = config.service_settings[name]
    body = {"service": "openai", "service_settings": service_settings}
    return EsEndpoint(f"/_inference/{config.task_type}/{es_name}", body)


async def apply(endpoint: EsEndpoint, base_url: str, authorization: str | None) -> dict[str, Any]:
    """PUT the endpoint through esproxy, which forwards a foreign service to its cluster."""
    headers = {"Content-Type": "application/json"}
    if authorization:
        headers["Authorization"] = authorization
    url = base_url.rstrip("/") + endpoint.path
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session,
            session.put(url, json=endpoint.body, headers=headers) as response,
        ):
            text = await response.text()
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as error:
        raise UpstreamUnavailable(
            f"cannot reach esproxy at [{base_url}] to create the endpoint: {error or 'timed out'}"
        ) from None
    if status >= 400:
        raise BadRequest(refusal(status, text), status=status)
    try:
        answer = orjson.loads(text)
    except orjson.JSONDecodeError:
        answer = None
    return answer if isinstance(answer, dict) else {}


def refusal(status: int, text: str) -> str:
    if "no handler found" in text:
        return (
            f"the cluster behind esproxy has no _inference API (HTTP {status}: no handler found): "
            "the bridge needs Elasticsearch 8.12 or later"
        )
    return f"the cluster refused the endpoint (HTTP {status}): {text.strip()[:500]}"
