"""The access middleware, the choice of `[auth] mode` and the OpenAI routes' keys, without servers.

Requests are built in memory and routed by esproxy's own router, so each test shows what a caller
would get (which privilege is asked, which refusal, whether the request goes on) in milliseconds.
The same rules are shown over real sockets in test_api_keys.py, test_cluster_checks.py,
test_modes.py and test_openai_bridge_access.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request

from esproxy.app_keys import (
    AUTHORIZER,
    BRIDGE_KEYS,
    CHECKED_BODY,
    FORWARDER,
    READINESS,
    RESERVED_INDEX,
    RESERVED_NAMES,
    SETTINGS,
)
from esproxy.authorization import privileges
from esproxy.authorization.api_keys import ApiKeyAuthorizer, generate_api_key, hash_api_key
from esproxy.authorization.cluster import (
    CHECK_PATH,
    OPENSEARCH_AUTHINFO_PATH,
    ClusterAuthorizer,
    Security,
)
from esproxy.authorization.privileges import Credentials
from esproxy.errors import AccessDenied, AuthenticationFailed
from esproxy.guard import Guard
from esproxy.guard.bodies import MAX_BODY
from esproxy.openai_bridge import access
from esproxy.openai_bridge.keys import BridgeKeys
from esproxy.readiness import Readiness
from esproxy.settings import SettingsError, load_settings
from esproxy.web.authorization import (
    authorization_middleware,
    open_authorization,
    read_bounded,
    resolve_mode,
)
from esproxy.web.routes import add_routes
from tests.authorization.scripted_cluster import Reply, ScriptedCluster, no_handler

INDEX = ".esproxy-inference"


class Recorder:
    """An authorizer (the Authorizer protocol) that records what it is asked; `error` refuses."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[tuple[Credentials, privileges.Privilege, str]] = []
        self.error = error

    async def authorize(self, credentials, privilege, uri):
        self.calls.append((credentials, privilege, uri))
        if self.error is not None:
            raise self.error


async def forwarded(request: web.Request) -> web.Response:
    return web.Response(text="forwarded")


def routed_app(authorizer=None, guard=None):
    app = web.Application()
    add_routes(app, forwarded, None)
    if authorizer is not None:
        app[AUTHORIZER] = authorizer
    if guard is not None:
        app[RESERVED_INDEX] = guard
    return app


def stream_of(body: bytes) -> StreamReader:
    reader = StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
    if body:
        reader.feed_data(body)
    reader.feed_eof()
    return reader


async def routed(app, method, target, headers=None, body=b""):
    request = make_mocked_request(method, target, headers=headers, app=app, payload=stream_of(body))
    match = await app.router.resolve(request)
    match.add_app(app)
    request._match_info = match  # routed as aiohttp routes it, without a server
    return request


async def through_middleware(app, method, target, headers=None, body=b""):
    """The middleware's verdict: the handler's answer, or the error the caller would get."""
    request = await routed(app, method, target, headers, body)
    reached = []

    async def handler(request):
        reached.append(request)
        return web.Response(text="handled")

    await authorization_middleware(request, handler)
    assert reached == [request]
    return request


# --- which privilege each `_inference` request needs -------------------------------------------


@pytest.mark.parametrize(
    ("method", "target", "privilege"),
    [
        ("GET", "/_inference", "GET_ENDPOINTS"),
        ("GET", "/_inference/titan", "GET_ENDPOINTS"),
        ("HEAD", "/_inference/completion/titan", "GET_ENDPOINTS"),
        ("GET", "/_inference/_all", "GET_ENDPOINTS"),
        ("GET", "/_inference/completion/_services", "GET_ENDPOINTS"),
        ("GET", "/_inference/_services", "GET_SERVICES"),
        ("GET", "/_inference/_services/completion", "GET_SERVICES"),
        ("GET", "/_inference/_servicesX", "GET_ENDPOINTS"),
        ("POST", "/_inference/titan", "INFER"),
        ("POST", "/_inference/completion/titan", "INFER"),
        ("POST", "/_inference/completion/titan/_stream", "INFER"),
        ("PUT", "/_inference/titan", "PUT_ENDPOINT"),
        ("PUT", "/_inference/completion/titan", "PUT_ENDPOINT"),
        ("PUT", "/_inference/titan/_update", "UPDATE_ENDPOINT"),
        ("PUT", "/_inference/completion/titan/_update", "UPDATE_ENDPOINT"),
        ("DELETE", "/_inference/titan", "DELETE_ENDPOINT"),
        ("DELETE", "/_inference/completion/titan", "DELETE_ENDPOINT"),
        ("POST", "/_esproxy/cache/_clear", "CLEAR_EMBEDDING_CACHE"),
        ("POST", "/_esproxy/cache/titan/_clear", "CLEAR_EMBEDDING_CACHE"),
    ],
)
async def test_each_inference_request_asks_for_its_privilege(method, target, privilege):
    recorder = Recorder()
    await through_middleware(routed_app(recorder), method, target)
    [(credentials, asked, uri)] = recorder.calls
    assert asked is getattr(privileges, privilege)
    assert uri == target and credentials == Credentials()


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("PATCH", "/_inference/titan"),  # ES answers 405 before authenticating
        ("GET", "/_inference/a/b/c/d"),  # and 400 to a path no route takes
        ("POST", "/_inference"),
        ("GET", "/_esproxy/health"),
        ("GET", "/_esproxy/ready"),  # decides for itself what to show
        ("GET", "/_inferencex/_search"),
        ("GET", "/_esproxy/cache/_clear"),
    ],
)
async def test_other_requests_ask_no_privilege(method, target):
    recorder = Recorder()
    await through_middleware(routed_app(recorder), method, target)
    assert recorder.calls == []


async def test_the_caller_is_judged_by_its_own_headers_and_request():
    recorder = Recorder()
    headers = {"Authorization": "Basic YWxpY2U6cw==", "es-security-runas-user": "carol"}
    target = "/_inference/completion/titan?timeout=5s&pretty"
    await through_middleware(routed_app(recorder), "POST", target, headers)
    [(credentials, _, uri)] = recorder.calls
    assert credentials == Credentials("Basic YWxpY2U6cw==", "carol")
    assert uri == target


async def test_the_request_is_quoted_as_sent_fragment_and_all():
    recorder = Recorder()
    await through_middleware(routed_app(recorder), "GET", "/_inference?x=1#f")
    assert recorder.calls[0][2] == "/_inference?x=1#f"


async def test_an_absolute_form_target_is_quoted_as_its_path_and_query():
    recorder = Recorder()
    await through_middleware(routed_app(recorder), "GET", "http://es:9200/_inference?x=1")
    assert recorder.calls[0][2] == "/_inference?x=1"


async def test_a_refusal_stops_the_request():
    denied = AccessDenied("no")
    app = routed_app(Recorder(denied))
    request = await routed(app, "PUT", "/_inference/titan")

    async def handler(request):
        raise AssertionError("the request went on")

    with pytest.raises(AccessDenied) as raised:
        await authorization_middleware(request, handler)
    assert raised.value is denied


async def test_without_an_authorizer_every_inference_request_goes_on():
    await through_middleware(routed_app(), "DELETE", "/_inference/titan")
    await through_middleware(routed_app(), "POST", "/_esproxy/cache/_clear")


# --- the guard on forwarded requests -----------------------------------------------------------


def reserved(expression, method, path, alias=""):
    through = f" through its alias [{alias}]" if alias else ""
    return (
        f"index [{INDEX}] is reserved for esproxy and cannot be used through it: [{expression}] "
        f"in [{method} {path}] would reach it{through}"
    )


def unsure(method, path, why):
    return (
        f"index [{INDEX}] is reserved for esproxy and cannot be used through it: esproxy cannot "
        f"be sure that [{method} {path}] stays away from it, because {why}"
    )


async def refusal(app, method, target, headers=None, body=b""):
    request = await routed(app, method, target, headers, body)

    async def handler(request):
        raise AssertionError("the request went on")

    with pytest.raises(AccessDenied) as raised:
        await authorization_middleware(request, handler)
    assert raised.value.status == 403 and raised.value.error_type == "security_exception"
    return raised.value.reason, request


async def test_forwarded_requests_for_the_reserved_index_are_refused():
    recorder = Recorder()
    app = routed_app(recorder, Guard([INDEX]))
    reason, _ = await refusal(app, "GET", f"/{INDEX}/_search?q=x")
    assert reason == reserved(INDEX, "GET", f"/{INDEX}/_search")
    reason, _ = await refusal(app, "GET", "/*/_search?expand_wildcards=all")
    assert reason == reserved("*", "GET", "/*/_search")
    request = await through_middleware(app, "GET", "/logs/_search")
    assert CHECKED_BODY not in request
    assert recorder.calls == []  # the cluster judges forwarded requests' credentials


def aliases_body(index):
    return json.dumps({"actions": [{"add": {"index": index, "alias": "a"}}]}).encode()


JSON = {"Content-Type": "application/json"}


async def test_bodies_that_decide_are_read_checked_and_kept_for_forwarding():
    app = routed_app(guard=Guard([INDEX]))
    body = aliases_body("logs")
    request = await through_middleware(app, "POST", "/_aliases", JSON, body)
    assert request[CHECKED_BODY] == body
    reason, _ = await refusal(app, "POST", "/_aliases", JSON, aliases_body(INDEX))
    assert reason == reserved(INDEX, "POST", "/_aliases")


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({**JSON, "Content-Encoding": "gzip"}, "its body is content-encoded, and the guard reads "
         "only plain JSON"),
        ({"Content-Type": "text/plain"}, "its body is not JSON, the only format the guard reads"),
        ({}, "its body is not JSON, the only format the guard reads"),
    ],
)  # fmt: skip
async def test_bodies_the_guard_cannot_read_are_refused(headers, why):
    app = routed_app(guard=Guard([INDEX]))
    reason, _ = await refusal(app, "POST", "/_aliases", headers, aliases_body("logs"))
    assert reason == unsure("POST", "/_aliases", why)


@pytest.mark.parametrize("declared", [True, False])
async def test_a_body_over_the_guards_bound_is_refused_unread(declared):
    app = routed_app(guard=Guard([INDEX]))
    body = b" " * MAX_BODY + b"{}"
    headers = {**JSON, "Content-Length": str(len(body))} if declared else JSON
    reason, request = await refusal(app, "POST", "/_aliases", headers, body)
    assert reason == unsure(
        "POST", "/_aliases", f"its body is longer than the {MAX_BODY} bytes the guard reads"
    )
    assert CHECKED_BODY not in request


async def test_a_body_of_exactly_the_bound_is_read_whole():
    app = routed_app(guard=Guard([INDEX]))
    body = aliases_body("logs")
    body += b" " * (MAX_BODY - len(body))
    request = await through_middleware(app, "POST", "/_aliases", JSON, body)
    assert request[CHECKED_BODY] == body


async def test_a_body_arriving_in_pieces_is_read_whole_and_at_most_one_byte_past_the_bound():
    app = web.Application()
    for pieces, found, unread in [
        ([b"abc", b"d"], b"abcd", 0),
        ([b"abc", b"defghijklm"], None, 8),
        ([b"a", b"b", b"c", b"d"], b"abcd", 0),
    ]:
        reader = StreamReader(
            mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop()
        )
        request = make_mocked_request("POST", "/_aliases", app=app, payload=reader)
        reading = asyncio.create_task(read_bounded(request, 4))
        for piece in pieces:
            reader.feed_data(piece)
            await asyncio.sleep(0)  # the reader takes what has arrived so far
        reader.feed_eof()
        assert await reading == found
        assert len(await reader.read()) == unread


async def test_read_bounded_reads_up_to_its_limit():
    app = web.Application()
    for body, limit, headers, found in [
        (b"abcd", 4, {}, b"abcd"),
        (b"abcde", 4, {}, None),
        (b"", 4, {}, b""),
        (b"abcd", 4, {"Content-Length": "4"}, b"abcd"),
        (b"abcd", 3, {"Content-Length": "4"}, None),
    ]:
        request = make_mocked_request(
            "POST", "/_aliases", headers=headers, app=app, payload=stream_of(body)
        )
        assert await read_bounded(request, limit) == found
    request = make_mocked_request(
        "POST", "/x", headers={"Content-Length": "5"}, app=app, payload=stream_of(b"abcde")
    )
    assert await read_bounded(request, 4) is None
    assert await request.content.read() == b"abcde"  # a declared length over the bound: unread


# --- which mode applies ------------------------------------------------------------------------

DIGEST = "a" * 64


def settings(**environ):
    return load_settings(environ=environ)


@pytest.mark.parametrize(
    ("environ", "mode"),
    [
        ({"ESPROXY_UPSTREAM": "http://es:9200"}, "upstream"),
        ({"ESPROXY_UPSTREAM": "http://es:9200", "ESPROXY_AUTH_MODE": "none"}, "none"),
        ({"ESPROXY_AUTH_API_KEYS": DIGEST, "ESPROXY_LISTEN": "0.0.0.0:9200"}, "api_keys"),
        ({}, "none"),
        ({"ESPROXY_LISTEN": "[::1]:9200"}, "none"),
        ({"ESPROXY_DEV": "true", "ESPROXY_UPSTREAM": "http://es:9200",
          "ESPROXY_AUTH_MODE": "none"}, "none"),
        ({"ESPROXY_DEV": "true", "ESPROXY_UPSTREAM": "http://es:9200",
          "ESPROXY_STORAGE_BACKEND": "sqlite"}, "upstream"),
        ({"ESPROXY_DEV": "true"}, "none"),
    ],
)  # fmt: skip
def test_the_mode_in_force(environ, mode):
    assert resolve_mode(settings(**environ)) == mode


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        (
            {"ESPROXY_DEV": "true", "ESPROXY_UPSTREAM": "http://es:9200"},
            "--dev with endpoints stored in the cluster needs [auth] mode set explicitly "
            '(ESPROXY_AUTH_MODE=upstream, "api_keys" or "none"): dev mode accepts any AWS '
            "credentials and must not quietly decide who may use a shared store",
        ),
        (
            {"ESPROXY_AUTH_MODE": "upstream"},
            '[auth] mode "upstream" needs a cluster: set [upstream] urls',
        ),
        (
            {"ESPROXY_AUTH_MODE": "api_keys", "ESPROXY_UPSTREAM": "http://es:9200"},
            '[auth] mode "api_keys" needs at least one digest in [auth] api_keys',
        ),
        (
            {"ESPROXY_UPSTREAM": "http://es:9200", "ESPROXY_AUTH_API_KEYS": DIGEST},
            '[auth] api_keys are used only with mode "api_keys", not "upstream"',
        ),
        (
            {"ESPROXY_AUTH_MODE": "none", "ESPROXY_AUTH_API_KEYS": DIGEST},
            '[auth] api_keys are used only with mode "api_keys", not "none"',
        ),
        (
            {"ESPROXY_LISTEN": "0.0.0.0:9200"},
            "esproxy listens on [0.0.0.0] with no cluster to check callers: set [auth] mode = "
            '"api_keys" with [auth] api_keys (esproxy hash-api-key), or [auth] mode = "none" to '
            "leave the _inference API open",
        ),
        (
            {"ESPROXY_DEV": "true", "ESPROXY_LISTEN": "0.0.0.0:9200"},
            "esproxy listens on [0.0.0.0] with no cluster to check callers",
        ),
    ],
)
def test_unsafe_or_incomplete_choices_say_what_to_set(environ, problem):
    with pytest.raises(SettingsError) as raised:
        resolve_mode(settings(**environ))
    assert str(raised.value).startswith(problem)


# --- starting and refreshing the authorizer ----------------------------------------------------


def app_for(forwarder=None, **environ):
    app = web.Application()
    app[SETTINGS] = settings(**environ)
    app[READINESS] = Readiness(cache_seconds=0)
    if forwarder is not None:
        app[FORWARDER] = forwarder
    return app


async def auth_check(app):
    report = await app[READINESS].report()
    found = dict(report.checks["auth"])
    found.pop("took_ms")
    return report.ready, found


async def test_api_keys_mode_accepts_the_listed_keys():
    key = generate_api_key()
    app = app_for(ESPROXY_AUTH_API_KEYS=hash_api_key(key))
    started = open_authorization(app)
    await started.__anext__()
    authorizer = app[AUTHORIZER]
    assert isinstance(authorizer, ApiKeyAuthorizer) and authorizer.accepts(key)
    assert await auth_check(app) == (True, {"ok": True, "mode": "api_keys"})
    assert RESERVED_INDEX not in app  # nothing is forwarded without a cluster
    await started.aclose()


async def test_none_mode_is_open_and_says_so(caplog):
    app = app_for(ESPROXY_AUTH_MODE="none", ESPROXY_LISTEN="0.0.0.0:9201")
    with caplog.at_level(logging.WARNING, logger="esproxy.web.authorization"):
        started = open_authorization(app)
        await started.__anext__()
    assert (
        "[auth] mode is none: esproxy's _inference API is OPEN to anyone who can reach "
        "0.0.0.0:9201, including to create endpoints and spend the AWS credentials stored in them"
    ) in caplog.text
    assert AUTHORIZER not in app
    assert await auth_check(app) == (
        True,
        {"ok": True, "mode": "none", "open": True, "reason": '[auth] mode = "none"'},
    )
    await started.aclose()


def secured(asked):
    if asked.path == CHECK_PATH:
        return Reply(401, {"error": "who?", "status": 401})
    return Reply(200, {INDEX: {"aliases": {"endpoints": {}}}})


async def test_upstream_mode_probes_the_cluster_with_the_settings_given():
    cluster = ScriptedCluster(secured)
    app = app_for(
        cluster,
        ESPROXY_UPSTREAM="http://es:9200",
        ESPROXY_STORAGE_BACKEND="sqlite",
        ESPROXY_AUTH_CHECK_TIMEOUT="3",
        ESPROXY_AUTH_CACHE_SECONDS="7",
        ESPROXY_AUTH_CACHE_SIZE="11",
        ESPROXY_AUTH_ALLOW_UNSECURED_CLUSTER="true",
    )
    started = open_authorization(app)
    await started.__anext__()
    authorizer = app[AUTHORIZER]
    assert isinstance(authorizer, ClusterAuthorizer) and authorizer.forwarder is cluster
    assert (authorizer.timeout, authorizer.cache.ttl, authorizer.cache.size) == (3, 7, 11)
    assert authorizer.allow_unsecured is True
    assert authorizer.security is Security.ENABLED
    assert cluster.paths() == [CHECK_PATH]  # SQLite: the guard asks the cluster nothing
    assert await auth_check(app) == (
        True,
        {"ok": True, "mode": "upstream", "cluster_security": "enabled"},
    )
    # The readiness check is live, and a refused cluster does not make esproxy unready.
    authorizer.security = Security.ABSENT
    authorizer.allow_unsecured = False
    ready, found = await auth_check(app)
    assert ready is True and found["cluster_security"] == "absent"
    guard = app[RESERVED_INDEX]
    assert guard.check("GET", f"/{INDEX}/_search") is not None
    assert guard.check("GET", "/endpoints/_search") is None
    await started.aclose()


async def test_reserved_names_and_the_store_index_are_guarded():
    app = app_for(
        ScriptedCluster(secured), ESPROXY_UPSTREAM="http://es:9200", ESPROXY_AUTH_MODE="none",
        ESPROXY_STORAGE_BACKEND="sqlite",
    )  # fmt: skip
    app[RESERVED_NAMES] = [("esproxy-leases", "esproxy-cache")]
    started = open_authorization(app)
    await started.__anext__()
    guard = app[RESERVED_INDEX]
    for name in ("esproxy-leases", "esproxy-cache", INDEX):
        assert guard.check("GET", f"/{name}/_search") is not None
    assert guard.check("GET", "/esproxy-other/_search") is None
    await started.aclose()


async def test_with_endpoints_in_the_cluster_the_guard_learns_aliases_as_esproxy():
    cluster = ScriptedCluster(secured)
    app = app_for(
        cluster,
        ESPROXY_UPSTREAM="http://es:9200",
        ESPROXY_AUTH_MODE="none",
        ESPROXY_UPSTREAM_USERNAME="esproxy",
        ESPROXY_UPSTREAM_PASSWORD="pw",
    )
    started = open_authorization(app)
    await started.__anext__()
    [asked] = cluster.asked
    assert asked.headers["Authorization"] == "Basic ZXNwcm94eTpwdw=="
    assert app[RESERVED_INDEX].check("GET", "/endpoints/_search") == reserved(
        "endpoints", "GET", "/endpoints/_search", alias="endpoints"
    )
    await started.aclose()


def errors(caplog):
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]


async def eventually(condition, seconds=10.0):
    """Waits for the refresh loop (which runs every 10 ms here), however loaded the machine."""
    async with asyncio.timeout(seconds):
        while True:
            if condition():
                return
            await asyncio.sleep(0.005)


async def test_the_clusters_security_and_aliases_are_learned_again_until_shutdown():
    state = {"alias": "endpoints", "secured": True}

    def answer(asked):
        if asked.path == CHECK_PATH:
            return secured(asked) if state["secured"] else no_handler(asked)
        if asked.path == OPENSEARCH_AUTHINFO_PATH:
            return no_handler(asked)
        return Reply(200, {INDEX: {"aliases": {state["alias"]: {}}}})

    cluster = ScriptedCluster(answer)
    app = app_for(cluster, ESPROXY_UPSTREAM="http://es:9200", ESPROXY_AUTH_REFRESH_SECONDS="0.01")
    started = open_authorization(app)
    await started.__anext__()
    guard, authorizer = app[RESERVED_INDEX], app[AUTHORIZER]
    assert guard.check("GET", "/endpoints/_search") is not None
    assert guard.check("GET", "/renamed/_search") is None
    state.update(alias="renamed", secured=False)
    await eventually(lambda: guard.check("GET", "/renamed/_search") is not None)
    await eventually(lambda: authorizer.security is Security.ABSENT)
    assert guard.check("GET", "/endpoints/_search") is None
    await started.aclose()
    asked = len(cluster.asked)
    await asyncio.sleep(0.05)
    assert len(cluster.asked) == asked  # stopped with the server


async def test_with_endpoints_in_sqlite_only_the_clusters_security_is_learned_again(caplog):
    cluster = ScriptedCluster(secured)
    app = app_for(
        cluster,
        ESPROXY_UPSTREAM="http://es:9200",
        ESPROXY_STORAGE_BACKEND="sqlite",
        ESPROXY_AUTH_REFRESH_SECONDS="0.01",
    )
    started = open_authorization(app)
    await started.__anext__()
    with caplog.at_level(logging.ERROR, logger="esproxy.web.authorization"):
        await eventually(lambda: len(cluster.asked) >= 3)
    assert set(cluster.paths()) == {CHECK_PATH}
    assert errors(caplog) == []  # every round succeeded
    await started.aclose()


@pytest.mark.parametrize("mode", ["none", "api_keys"])
async def test_without_cluster_checks_the_aliases_are_still_learned_again(mode, caplog):
    state = {"alias": "endpoints"}

    def answer(asked):
        return Reply(200, {INDEX: {"aliases": {state["alias"]: {}}}})

    cluster = ScriptedCluster(answer)
    keys = {"ESPROXY_AUTH_API_KEYS": DIGEST} if mode == "api_keys" else {}
    app = app_for(
        cluster,
        ESPROXY_UPSTREAM="http://es:9200",
        ESPROXY_AUTH_MODE=mode,
        ESPROXY_AUTH_REFRESH_SECONDS="0.01",
        **keys,
    )
    started = open_authorization(app)
    await started.__anext__()
    guard = app[RESERVED_INDEX]
    state["alias"] = "renamed"
    with caplog.at_level(logging.ERROR, logger="esproxy.web.authorization"):
        await eventually(lambda: guard.check("GET", "/renamed/_search") is not None)
    assert set(cluster.paths()) == {cluster.asked[0].path}  # only the aliases are asked
    assert errors(caplog) == []
    await started.aclose()


async def test_a_failed_refresh_round_does_not_end_the_loop(caplog):
    state = {"calls": 0}

    def answer(asked):
        state["calls"] += 1
        if state["calls"] == 3:
            raise RuntimeError("boom")
        return secured(asked)

    cluster = ScriptedCluster(answer)
    app = app_for(cluster, ESPROXY_UPSTREAM="http://es:9200", ESPROXY_AUTH_REFRESH_SECONDS="0.01")
    with caplog.at_level(logging.ERROR, logger="esproxy.web.authorization"):
        started = open_authorization(app)
        await started.__anext__()
        await eventually(lambda: state["calls"] > 5)
    assert "refreshing the cluster's security state and index aliases failed" in caplog.messages
    await started.aclose()


@pytest.mark.parametrize("mode", ["none", "api_keys"])
async def test_nothing_is_refreshed_when_nothing_can_change(mode, caplog):
    cluster = ScriptedCluster(no_handler)
    keys = {"ESPROXY_AUTH_API_KEYS": DIGEST} if mode == "api_keys" else {}
    app = app_for(
        cluster,
        ESPROXY_UPSTREAM="http://es:9200",
        ESPROXY_AUTH_MODE=mode,
        ESPROXY_STORAGE_BACKEND="sqlite",
        ESPROXY_AUTH_REFRESH_SECONDS="0.01",
        **keys,
    )
    with caplog.at_level(logging.ERROR, logger="esproxy.web.authorization"):
        started = open_authorization(app)
        await started.__anext__()
        await asyncio.sleep(0.05)
    assert cluster.asked == []
    assert errors(caplog) == []  # no loop at all, so no failing rounds either
    await started.aclose()


# --- the OpenAI routes' keys -------------------------------------------------------------------

BRIDGE = BridgeKeys(lambda: [bytes(32)])
OPENAI = "/_esproxy/openai/v1/embeddings?trace=1"


def openai_request(authorization=None, authorizer=None, bridge=True):
    app = web.Application()
    if authorizer is not None:
        app[AUTHORIZER] = authorizer
    if bridge:
        app[BRIDGE_KEYS] = BRIDGE
    headers = {"Authorization": authorization} if authorization is not None else None
    return make_mocked_request("POST", OPENAI, headers=headers, app=app)


async def test_without_an_authorizer_the_routes_are_open():
    scope = await access.grant(openai_request(), privileges.INFER)
    assert scope("anything") and access.everything("x")


async def test_a_bridge_key_opens_its_endpoint_only_and_asks_no_one():
    recorder = Recorder(AccessDenied("no"))
    key = BRIDGE.mint("titan")
    scope = await access.grant(openai_request(f"Bearer {key}", recorder), privileges.INFER)
    assert scope("titan") and not scope("other")
    access.require(scope, "titan")
    with pytest.raises(AuthenticationFailed) as raised:
        access.require(scope, "other")
    assert raised.value.reason == (
        "The API key provided does not open model [other]: a bridge key opens only the "
        "endpoint it was made for."
    )
    assert raised.value.status == 401
    assert recorder.calls == []


async def test_other_tokens_are_judged_as_api_keys_by_the_mode_in_force():
    recorder = Recorder()
    key = BRIDGE.mint("titan")
    for authorization, token, bridge in [
        ("Bearer es-key", "es-key", True),
        ("bearer  es-key ", "es-key", True),
        (f"Bearer {key}", key, False),  # no bridge keys configured: judged as any other
    ]:
        recorder.calls.clear()
        request = openai_request(authorization, recorder, bridge)
        scope = await access.grant(request, privileges.GET_ENDPOINTS)
        assert scope("anything")
        assert recorder.calls == [
            (Credentials(f"ApiKey {token}", None), privileges.GET_ENDPOINTS, OPENAI)
        ]
    refusing = Recorder(AuthenticationFailed("unable"))
    with pytest.raises(AuthenticationFailed, match="unable"):
        await access.grant(openai_request("Bearer x", refusing), privileges.INFER)


@pytest.mark.parametrize(
    "authorization", [None, "", "Bearer", "Bearer   ", "Basic eDp5", "Bearerx"]
)
async def test_a_request_without_a_bearer_token_is_told_how_to_send_one(authorization):
    recorder = Recorder()
    with pytest.raises(AuthenticationFailed) as raised:
        await access.grant(openai_request(authorization, recorder), privileges.INFER)
    assert raised.value.status == 401
    assert raised.value.reason == (
        "You didn't provide an API key. Send it as 'Authorization: Bearer <key>': a bridge key "
        "from `esproxy bridge create`, or a key that esproxy's [auth] mode accepts."
    )
    assert raised.value.challenges == ()
    assert recorder.calls == []
