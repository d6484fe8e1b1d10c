"""`POST /_esproxy/cache/_clear` and `POST /_esproxy/cache/{inference_id}/_clear`.

Authorized like `_inference` writes (manage_inference), by the access middleware.
"""

from __future__ import annotations

from aiohttp import web

from esproxy.app_keys import EMBEDDING_CACHE
from esproxy.errors import BadRequest
from esproxy.web.responses import json_response


async def clear(request: web.Request) -> web.Response:
    cache = request.app.get(EMBEDDING_CACHE)
    if cache is None:
        raise BadRequest("the embedding cache is off ([cache] enabled = false)")
    inference_id = request.match_info.get("inference_id")
    cleared = await cache.clear(inference_id)
    body = {"acknowledged": True, "cleared": cleared}
    if inference_id is not None:
        body = {"acknowledged": True, "inference_id": inference_id, "cleared": cleared}
    return json_response(body)
