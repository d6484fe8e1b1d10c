"""Who may use the OpenAI-compatible routes: `Authorization: Bearer <key>`.

- A bridge key (`esproxy bridge create`) opens its one endpoint, whatever `[auth] mode` is.
- Otherwise the bearer token is judged as an `ApiKey` by the `[auth] mode` in force: a listed
  esproxy API key, or an Elasticsearch API key (its encoded form) that the cluster checks with
  the same privileges as `_inference`. With `[auth] mode = "none"` the routes are open.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from esproxy.app_keys import AUTHORIZER, BRIDGE_KEYS
from esproxy.authorization.privileges import Credentials, Privilege
from esproxy.errors import AuthenticationFailed
from esproxy.openai_bridge.keys import looks_like_bridge_key

MISSING_KEY = (
    "You didn't provide an API key. Send it as 'Authorization: Bearer <key>': a bridge key "
    "from `esproxy bridge create`, or a key that esproxy's [auth] mode accepts."
)

# Which endpoints a caller may use, asked per inference id.
Scope = Callable[[str], bool]


def everything(_: str) -> bool:
    return True


def bearer_token(authorization: str | None) -> str | None:
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def grant(request: web.Request, privilege: Privilege) -> Scope:
    """The endpoints this caller may use, or an error that says why none."""
    authorizer = request.app.get(AUTHORIZER)
    if authorizer is None:
        return everything
    token = bearer_token(request.headers.get("Authorization"))
    keys = request.app.get(BRIDGE_KEYS)
    if token is not None and keys is not None and looks_like_bridge_key(token):
        return lambda inference_id: keys.opens(token, inference_id)
    if token is None:
        raise AuthenticationFailed(MISSING_KEY)
    await authorizer.authorize(Credentials(f"ApiKey {token}", None), privilege, request.path_qs)
    return everything


def require(scope: Scope, inference_id: str) -> None:
    if not scope(inference_id):
        raise AuthenticationFailed(
            f"The API key provided does not open model [{inference_id}]: a bridge key opens only "
            "the endpoint it was made for."
        )
