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
from esproxy.app_keys import AUTHORIZER, FORWARDER, READINESS, RESERVED_INDEX, SETTINGS
from esproxy.authorization import privileges
from esproxy.authorization.api_keys import ApiKeyAuthorizer
from esproxy.authorization.cluster import ClusterAuthorizer
from esproxy.authorization.decisions import DecisionCache
from esproxy.authorization.privileges import Credentials, Privilege
from esproxy.errors import AccessDenied
from esproxy.reserved_index import ReservedIndex, lookup_names
from esproxy.settings import Settings, SettingsError
from esproxy.storage.elasticsearch import reserved_names
from esproxy.upstream_session import own_authorization
from esproxy.web.routes import reject_inference

log = logging.getLogger(__name__)


@web.middleware
async def authorization_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path == "/_inference" or request.path.startswith("/_inference/"):
        await authorize(request)
    else:
        guard_forwarded(request)
    return await handler(request)


async def authorize(request: web.Request) -> None:
    authorizer = request.app.get(AUTHORIZER)
    privilege = privilege_for(request)
    if authorizer is None or privilege is None:
        return
    credentials = Credentials(
        request.headers.get("Authorization"), request.headers.get("es-security-runas-user")
    )
    await authorizer.authorize(credentials, privilege, request_target(request))


def guard_forwarded(request: web.Request) -> None:
    """Raise `AccessDenied` when a request forwarded as it is would reach esproxy's own index."""
    reserved = request.app.get(RESERVED_INDEX)
    if reserved is None:
        return
    reason = reserved.refusal(request.method, request_target(request), request.query)
    if reason is not None:
        raise AccessDenied(reason)


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
        app[READINESS].add("auth", fixed_status({"mode": "api_keys"}), required=False)
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
        app[READINESS].add("auth", cluster_status(cluster), required=False)
    else:
        log.warning(
            "[auth] mode is none: esproxy's _inference API is OPEN to anyone who can reach "
            "%s:%d, including to create endpoints and spend the AWS credentials stored in them",
            settings.server.host,
            settings.server.port,
        )
        status = {"mode": "none", "open": True, "reason": '[auth] mode = "none"'}
        app[READINESS].add("auth", fixed_status(status), required=False)
    reserved = await open_reserved_index(app)
    refresher = asyncio.create_task(refresh(app, cluster, reserved))
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


async def open_reserved_index(app: web.Application) -> ReservedIndex | None:
    """Only an index in the cluster needs guarding; forwarded requests reach only the cluster."""
    settings = app[SETTINGS]
    if FORWARDER not in app or settings.storage_backend != "elasticsearch":
        return None
    # The store's concrete index too: it may not exist yet when the aliases are first looked up.
    reserved = ReservedIndex(settings.storage.index, always=reserved_names(settings.storage.index))
    await refresh_names(app, reserved)
    app[RESERVED_INDEX] = reserved
    return reserved


async def refresh_names(app: web.Application, reserved: ReservedIndex) -> None:
    upstream = app[SETTINGS].upstream
    names = await lookup_names(app[FORWARDER], reserved.index, own_authorization(upstream))
    if names is not None:
        reserved.update(*names)


async def refresh(
    app: web.Application, cluster: ClusterAuthorizer | None, reserved: ReservedIndex | None
) -> None:
    """Re-learn the cluster's security and the index's aliases, which can change at any time."""
    if cluster is None and reserved is None:
        return
    while True:
        await asyncio.sleep(app[SETTINGS].auth.refresh_seconds)
        try:
            if cluster is not None:
                await cluster.probe()
            if reserved is not None:
                await refresh_names(app, reserved)
        except Exception:
            # A failed round must not end the loop: the next one may succeed.
            log.exception("refreshing the cluster's security state and index aliases failed")
