"""The whole HTTP surface in one place: `/_esproxy` and `_inference` routes, fallbacks, the rest.

aiohttp tries routes sharing a path prefix in registration order, so the `_inference` fallback is
registered after the real routes: a wrong method or unknown sub-path under `/_inference` gets
esproxy's own ES-shaped 405 or 400 and is never forwarded.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from esproxy.errors import PlainError
from esproxy.web import cache_admin, handlers, health

# Methods per `_inference` path shape, in the order ES lists them in its 405 message.
ENDPOINT_ROUTES: dict[str, Handler] = {
    "GET": handlers.get_endpoints,
    "POST": handlers.infer,
    "PUT": handlers.put_endpoint,
    "DELETE": handlers.delete_endpoint,
}
# Indexed by the number of path segments: `/_inference`, `/_inference/{a}`, `/_inference/{a}/{b}`.
SHAPES = (("GET",), tuple(ENDPOINT_ROUTES), tuple(ENDPOINT_ROUTES))
# Four segments are valid only with one of these actions last.
ACTIONS = {"_stream": ("POST",), "_update": ("PUT",)}


def add_routes(app: web.Application, other: Handler, root: Handler | None) -> None:
    """`other` serves every path outside `_inference`; `root` answers `/` when set."""
    router = app.router
    router.add_get("/_esproxy/health", health.live)
    router.add_get("/_esproxy/ready", health.ready)
    router.add_post("/_esproxy/cache/_clear", cache_admin.clear)
    router.add_post("/_esproxy/cache/{inference_id:[^/]+}/_clear", cache_admin.clear)
    # The rest of `/_esproxy` is esproxy's too: a typo is answered here, never forwarded.
    router.add_route("*", "/_esproxy", reject_own)
    router.add_route("*", "/_esproxy/{tail:[\\s\\S]*}", reject_own)
    router.add_get("/_inference", handlers.get_endpoints)
    router.add_get("/_inference/_services", handlers.get_services)
    router.add_get("/_inference/_services/{task_type:[^/]+}", handlers.get_services)
    # Literal last segments first: `/_inference/{a}/_stream` must not read `_stream` as an id.
    router.add_post("/_inference/{first:[^/]+}/_stream", handlers.stream_completion)
    router.add_post("/_inference/{first:[^/]+}/{second:[^/]+}/_stream", handlers.stream_completion)
    router.add_put("/_inference/{first:[^/]+}/_update", handlers.update_endpoint)
    router.add_put("/_inference/{first:[^/]+}/{second:[^/]+}/_update", handlers.update_endpoint)
    for path in ("/_inference/{first:[^/]+}", "/_inference/{first:[^/]+}/{second:[^/]+}"):
        router.add_get(path, handlers.get_endpoints)  # add_get answers HEAD too, as ES does
        for method, handler in ENDPOINT_ROUTES.items():
            if method != "GET":
                router.add_route(method, path, handler)
    router.add_route("*", "/_inference", reject_inference)
    router.add_route("*", "/_inference/{tail:[\\s\\S]*}", reject_inference)
    if root is not None:
        router.add_get("/", root)
    router.add_route("*", "/{tail:[\\s\\S]*}", other)


async def reject_inference(request: web.Request) -> web.StreamResponse:
    allowed = allowed_methods(request.path)
    # A path the routes refused although its shape takes this method (empty segments, say) has
    # no handler at all; answering 405 would refuse a method it lists as allowed.
    if allowed and request.method not in allowed:
        raise PlainError(
            f"Incorrect HTTP method for uri [{request.path_qs}] and method [{request.method}], "
            f"allowed: [{', '.join(allowed)}]",
            status=405,
            headers={"Allow": ",".join(allowed)},
        )
    raise PlainError(
        f"no handler found for uri [{request.path_qs}] and method [{request.method}]", status=400
    )


OWN_PATHS = frozenset(
    {"/_esproxy/health", "/_esproxy/ready", "/_esproxy/metrics", "/_esproxy/endpoints"}
)


async def reject_own(request: web.Request) -> web.StreamResponse:
    if request.path in OWN_PATHS:
        raise PlainError(
            f"Incorrect HTTP method for uri [{request.path_qs}] and method [{request.method}], "
            "allowed: [GET]",
            status=405,
            headers={"Allow": "GET"},
        )
    raise PlainError(
        f"no handler found for uri [{request.path_qs}] and method [{request.method}]", status=400
    )


def allowed_methods(path: str) -> tuple[str, ...]:
    segments = path.strip("/").split("/")
    if segments[0] != "_inference" or "" in segments:
        return ()
    if len(segments) == len(SHAPES) + 1:
        return ACTIONS.get(segments[-1], ())
    return SHAPES[len(segments) - 1] if len(segments) <= len(SHAPES) else ()
