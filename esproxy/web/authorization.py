"""The access middleware: callers' rights on esproxy's `_inference` routes, and its reserved index.

Forwarded requests carry the caller's credentials to the cluster, which checks them itself; the
middleware only refuses those that would reach esproxy's own index. `open_authorization` is the
cleanup context that picks the authorizer for `[auth] mode` and keeps its cluster view fresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from esproxy.addresses import is_loopback
from esproxy.app_keys import (
    AUTHORIZER,
    CHECKED_BODY,
    FORWARDER,
    READINESS,
    RESERVED_INDEX,
    RESERVED_NAMES,
    SETTINGS,
)
from esproxy.authorization import privileges
from esproxy.authorization.api_keys import ApiKeyAuthorizer
from esproxy.authorization.cluster import ClusterAuthorizer
from esproxy.authorization.decisions import DecisionCache
from esproxy.authorization.privileges import Credentials, Privilege
from esproxy.errors import AccessDenied
from esproxy.guard import BodyCheck, Guard
from esproxy.guard.bodies import MAX_BODY
from esproxy.settings import Settings, SettingsError
from esproxy.upstream_session import own_authorization
from esproxy.web import cache_admin
from esproxy.web.routes import reject_inference

log = logging.getLogger(__name__)


@web.middleware
async def authorization_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path == "/_inference" or request.path.startswith("/_inference/"):
        await authorize(request)
    elif request.match_info.handler is cache_admin.clear:
        await authorize(request, privileges.CLEAR_EMBEDDING_CACHE)
    else:
        await guard_forwarded(request)
    return await handler(request)


async def authorize(request: web.Request, privilege: Privilege | None = None) -> None:
    authorizer = request.app.get(AUTHORIZER)
    privilege = privilege or privilege_for(request)
    if authorizer is None or privilege is None:
        return
    credentials = Credentials(
        request.headers.get("Authorization"), request.headers.get("es-security-runas-user")
    )
    await authorizer.authorize(credentials, privilege, request_target(request))


async def guard_forwarded(request: web.Request) -> None:
    """Raise `AccessDenied` when a request forwarded as it is could reach esproxy's own indices.

    The few admin requests whose bodies decide are read whole, up to the guard's bound, and that
    body is what is forwarded.
    """
    guard = request.app.get(RESERVED_INDEX)
    if guard is None:
        return
    target = request_target(request)
    decision = guard.check(request.method, target)
    if isinstance(decision, BodyCheck):
        body = await read_bounded(request, MAX_BODY)
        if body is not None:
            request[CHECKED_BODY] = body
        headers = request.headers
        decision = guard.check_body(
            decision,
            request.method,
            target,
            body,
            headers.get("Content-Type", ""),
            headers.get("Content-Encoding", ""),
        )
    if decision is not None:
        raise AccessDenied(decision)


async def read_bounded(request: web.Request, limit: int) -> bytes | None:
    """The whole body, or None when it is longer than `limit` (then left unread)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    body = bytearray()
    while chunk := await request.content.read(limit + 1 - len(body)):
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def privilege_for(request: web.Request) -> Privilege | None:
    """What an `_inference` request needs; None when ES would answer before authenticating."""
    match = request.match_info
    if match.http_exception is not None or match.handler is reject_inference:
        return None  # ES answers a wrong method or unknown path with 405/400 before security
    segments = request.path.strip("/").split("/")
    method = request.method
    if method in ("GET", "HEAD"):
        services = segments[1:2] == ["_services"]
        return privileges.GET_SERVICES if services else privileges.GET_ENDPOINTS
    if method == "POST":
        return privileges.INFER
    if method == "DELETE":
        return privileges.DELETE_ENDPOINT
    if segments[-1] == "_update":
        return privileges.UPDATE_ENDPOINT
    return privileges.PUT_ENDPOINT


def request_target(request: web.Request) -> str:
    """The path and query as the client sent them, as ES quotes them and as they are forwarded."""
    target = request.raw_path
    return target if target[:1] == "/" else request.rel_url.raw_path_qs


def resolve_mode(settings: Settings) -> str:
    """`[auth] mode`, or its default: `upstream` with a cluster, else `api_keys` with keys listed,
    else `none` on a loopback address; anything else must choose explicitly. `--dev` changes no
    default, and with endpoints in the cluster it needs an explicit mode.
    """
    auth = settings.auth
    if settings.server.dev and settings.storage_backend == "elasticsearch" and auth.mode is None:
        raise SettingsError(
            "--dev with endpoints stored in the cluster needs [auth] mode set explicitly "
            '(ESPROXY_AUTH_MODE=upstream, "api_keys" or "none"): dev mode accepts any AWS '
            "credentials and must not quietly decide who may use a shared store"
        )
    mode = auth.mode or default_mode(settings)
    if mode == "upstream" and not settings.upstream.urls:
        raise SettingsError('[auth] mode "upstream" needs a cluster: set [upstream] urls')
    if mode == "api_keys" and not auth.api_keys:
        raise SettingsError('[auth] mode "api_keys" needs at least one digest in [auth] api_keys')
    if mode != "api_keys" and auth.api_keys:
        raise SettingsError(f'[auth] api_keys are used only with mode "api_keys", not "{mode}"')
    return mode


def default_mode(settings: Settings) -> str:
    if settings.upstream.urls:
        return "upstream"
    if settings.auth.api_keys:
        return "api_keys"
    if is_loopback(settings.server.host):
        return "none"
    raise SettingsError(
        f"esproxy listens on [{settings.server.host}] with no cluster to check callers: set "
        '[auth] mode = "api_keys" with [auth] api_keys (esproxy hash-api-key), or [auth] mode = '
        '"none" to leave the _inference API open'
    )


async def open_authorization(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    mode = resolve_mode(settings)
    cluster: ClusterAuthorizer | None = None
    if mode == "api_keys":
        app[AUTHORIZER] = ApiKeyAuthorizer(settings.auth.api_keys)
        status = fixed_status({"mode": "api_keys"})
    elif mode == "upstream":
        cache = DecisionCache(settings.auth.cache_seconds, settings.auth.cache_size)
        cluster = ClusterAuthorizer(
            app[FORWARDER],
            cache,
            timeout=settings.auth.check_timeout,
            allow_unsecured=settings.auth.allow_unsecured_cluster,
        )
        await cluster.probe()
        app[AUTHORIZER] = cluster
        status = cluster_status(cluster)
    else:
        log.warning(
            "[auth] mode is none: esproxy's _inference API is OPEN to anyone who can reach "
            "%s:%d, including to create endpoints and spend the AWS credentials stored in them",
            settings.server.host,
            settings.server.port,
        )
        status = fixed_status({"mode": "none", "open": True, "reason": '[auth] mode = "none"'})
    # Not required: a cluster esproxy cannot check makes `_inference` answer 503, while the
    # rest of the sidecar (forwarding) still serves.
    app[READINESS].add("auth", status, required=False)
    guard = await open_guard(app)
    refresher = asyncio.create_task(refresh(app, cluster, guard))
    try:
        yield
    finally:
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher


def fixed_status(status: dict[str, Any]) -> Callable[[], Awaitable[dict[str, Any]]]:
    async def report() -> dict[str, Any]:
        return status

    return report


def cluster_status(cluster: ClusterAuthorizer) -> Callable[[], Awaitable[dict[str, Any]]]:
    async def status() -> dict[str, Any]:
        return cluster.status()

    return status


async def open_guard(app: web.Application) -> Guard | None:
    """Forwarded requests reach only the cluster, so only a forwarding esproxy needs the guard."""
    if FORWARDER not in app:
        return None
    # Every `.esproxy*` name is reserved too, so the store's own name stands in when app.py
    # lists no index in the cluster (the guard names it in its refusals).
    groups: list[tuple[str, ...]] = app.get(RESERVED_NAMES) or []
    names = [name for group in groups for name in group]
    guard = Guard([*names, app[SETTINGS].storage.index])
    if learns_names(app):
        await refresh_guard(app, guard)
    app[RESERVED_INDEX] = guard
    return guard


def learns_names(app: web.Application) -> bool:
    """Aliases are looked up where esproxy keeps its indices in the cluster. Elsewhere its names
    are guarded as it would create them, and startup sends nothing to the cluster.
    """
    return app[SETTINGS].storage_backend == "elasticsearch"


async def refresh_guard(app: web.Application, guard: Guard) -> None:
    await guard.refresh(app[FORWARDER], own_authorization(app[SETTINGS].upstream))


async def refresh(
    app: web.Application, cluster: ClusterAuthorizer | None, guard: Guard | None
) -> None:
    """Re-learn the cluster's security and the indices' aliases, which can change at any time."""
    if guard is not None and not learns_names(app):
        guard = None
    if cluster is None and guard is None:
        return
    while True:
        await asyncio.sleep(app[SETTINGS].auth.refresh_seconds)
        try:
            if cluster is not None:
                await cluster.probe()
            if guard is not None:
                await refresh_guard(app, guard)
        except Exception:
            # A failed round must not end the loop: the next one may succeed.
            log.exception("refreshing the cluster's security state and index aliases failed")
