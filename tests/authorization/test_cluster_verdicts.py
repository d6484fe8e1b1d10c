"""`[auth] mode = "upstream"` decisions, without servers: what each cluster answer means.

The cluster is scripted (scripted_cluster.py); test_cluster_checks.py shows the same rules over
real sockets. Every refusal is checked as a client sees it: status, ES error type and reason.
"""

from __future__ import annotations

import base64
import logging
import re

import aiohttp
import pytest

from esproxy.authorization.cluster import (
    AUTHENTICATE_PATH,
    CHECK_PATH,
    OPENSEARCH_AUTHINFO_PATH,
    ClusterAuthorizer,
    Security,
    made_up_basic,
)
from esproxy.authorization.decisions import DecisionCache
from esproxy.authorization.privileges import (
    DELETE_ENDPOINT,
    GET_ENDPOINTS,
    INFER,
    PUT_ENDPOINT,
    Credentials,
)
from esproxy.errors import (
    AccessDenied,
    AuthenticationFailed,
    AuthorizationUnavailable,
    UpstreamUnavailable,
)
from tests.authorization.scripted_cluster import (
    NODE_URL,
    Asked,
    Reply,
    ScriptedCluster,
    granted,
    no_handler,
    security_error,
)
from tests.fake_clock import Clock

ALICE = Credentials("Basic YWxpY2U6c2VjcmV0")
CAROL_AS_ALICE = Credentials("Basic YWxpY2U6c2VjcmV0", run_as="carol")
URI = "/_inference/completion/titan?timeout=5s"
CHALLENGES = [("WWW-Authenticate", 'Basic realm="security"'), ("WWW-Authenticate", "ApiKey")]
UNSECURED = (
    f"the cluster at [{NODE_URL}] shows no security (no /_security/user/_has_privileges API), so "
    "esproxy cannot check callers and its _inference API answers 503; set [auth] mode = "
    '"api_keys", or [auth] allow_unsecured_cluster = true to leave it open'
)
UNCHECKABLE = (
    f"the cluster at [{NODE_URL}] authenticates callers but has no Elasticsearch "
    "/_security/user/_has_privileges API, so esproxy cannot check privileges and its "
    '_inference API answers 503; set [auth] mode = "api_keys"'
)
PUT_DENIED_ALICE = (
    "action [cluster:admin/xpack/inference/put] is unauthorized for user [alice] with effective "
    "roles [reader,viewer], this action is granted by the cluster privileges "
    "[manage_inference,manage,all]"
)


def authorizer(answer, *, allow=False, ttl=30.0, timeout=1.0):
    cluster = ScriptedCluster(answer)
    cache = DecisionCache(ttl=ttl, size=100, clock=Clock())
    if not allow:  # the default, as the operator leaves it
        return ClusterAuthorizer(cluster, cache, timeout=timeout), cluster
    return ClusterAuthorizer(cluster, cache, timeout=timeout, allow_unsecured=True), cluster


def body_of(error):
    return error.status, error.to_body()


def unavailable(reason, caused_by=None):
    error = {"root_cause": [{"type": "exception", "reason": reason}], "type": "exception"}
    error["reason"] = reason
    if caused_by is not None:
        error["caused_by"] = caused_by
    return 503, {"error": error, "status": 503}


# --- how a secured Elasticsearch answers -------------------------------------------------------


def secured_es(asked: Asked) -> Reply:
    """Alice reads, admin manages; `_authenticate` names her roles."""
    who = asked.headers.get("Authorization")
    if who is None:
        reason = f"missing authentication credentials for REST request [{asked.path}]"
        return Reply(401, security_error(401, reason), CHALLENGES)
    if who != ALICE.authorization:
        reason = f"unable to authenticate user [bob] for REST request [{asked.path}]"
        return Reply(401, security_error(401, reason), CHALLENGES)
    if asked.path == AUTHENTICATE_PATH:
        return Reply(200, {"username": "alice", "roles": ["viewer", "reader"]})
    return granted("alice", asked.body == {"cluster": ["monitor_inference"]})


async def test_a_secured_cluster_is_found_by_one_anonymous_question(caplog):
    auth, cluster = authorizer(secured_es)
    with caplog.at_level(logging.INFO, logger="esproxy.authorization.cluster"):
        assert await auth.probe() is Security.ENABLED
    assert auth.security is Security.ENABLED and auth.node == NODE_URL
    [asked] = cluster.asked
    assert (asked.method, asked.path, asked.body) == ("GET", CHECK_PATH, {"cluster": [INFER.name]})
    assert "Authorization" not in asked.headers
    assert caplog.messages == [
        f"the cluster at [{NODE_URL}] has security: callers' privileges are checked"
    ]
    assert not auth.is_open
    assert auth.status() == {"mode": "upstream", "cluster_security": "enabled"}
    assert all(reply.closed for reply in cluster.replies)


@pytest.mark.parametrize("status", [200, 401, 403])
async def test_any_answer_of_a_security_layer_means_enabled(status):
    auth, _ = authorizer(lambda asked: Reply(status, security_error(status, "x")))
    assert await auth.probe() is Security.ENABLED


@pytest.mark.parametrize(
    "reply",
    [
        Reply(500, security_error(500, "node is shutting down")),
        Reply(502, b"<html>bad gateway</html>"),
        Reply(400, {"error": "something else", "status": 400}),
        Reply(404, security_error(404, "no such index", type="index_not_found_exception")),
    ],
)
async def test_an_answer_that_shows_nothing_leaves_the_verdict_unknown(reply):
    auth, cluster = authorizer(lambda asked: reply)
    assert await auth.probe() is Security.UNKNOWN
    assert auth.node is None and len(cluster.asked) == 1
    assert auth.status() == {"mode": "upstream", "cluster_security": "unknown"}


def no_route_until(sign):
    """No `_security` route for anonymous callers; `sign(asked)` answers the later probes."""

    def answer(asked):
        if asked.path == CHECK_PATH and "Authorization" not in asked.headers:
            return no_handler(asked)
        return sign(asked)

    return answer


@pytest.mark.parametrize("status", [401, 403])
async def test_made_up_credentials_refused_mean_uncheckable(status, caplog):
    auth, cluster = authorizer(
        no_route_until(lambda asked: Reply(status, security_error(status, "no"))), allow=True
    )
    with caplog.at_level(logging.ERROR, logger="esproxy.authorization.cluster"):
        assert await auth.probe() is Security.UNCHECKABLE
    assert cluster.paths() == [CHECK_PATH, CHECK_PATH]
    bogus = cluster.asked[1]
    assert bogus.method == "GET" and bogus.body == {"cluster": [INFER.name]}
    assert bogus.headers["Authorization"].startswith("Basic ")
    assert caplog.messages == [UNCHECKABLE]
    assert not auth.is_open  # allow_unsecured_cluster does not open a cluster that checks
    assert auth.status() == {
        "mode": "upstream",
        "cluster_security": "uncheckable",
        "ok": False,
        "reason": UNCHECKABLE,
    }


def opensearch_plugin(status):
    def sign(asked):
        if asked.path == OPENSEARCH_AUTHINFO_PATH:
            return Reply(status, {"user_name": "opendistro_security_anonymous"})
        return no_handler(asked)

    return no_route_until(sign)


@pytest.mark.parametrize("status", [200, 401, 403])
async def test_opensearchs_authinfo_answering_means_uncheckable(status):
    auth, cluster = authorizer(opensearch_plugin(status), allow=True)
    assert await auth.probe() is Security.UNCHECKABLE
    assert cluster.paths() == [CHECK_PATH, CHECK_PATH, OPENSEARCH_AUTHINFO_PATH]
    authinfo = cluster.asked[2]
    assert authinfo.method == "GET" and authinfo.body is None
    assert "Authorization" not in authinfo.headers
    assert "Content-Type" not in authinfo.headers
    assert not auth.is_open


@pytest.mark.parametrize("status", [400, 404, 405])
async def test_no_sign_anywhere_means_absent_and_refused(status, caplog):
    def sign(asked):
        return Reply(status, b"") if asked.path == OPENSEARCH_AUTHINFO_PATH else no_handler(asked)

    auth, cluster = authorizer(no_route_until(sign))
    with caplog.at_level(logging.WARNING, logger="esproxy.authorization.cluster"):
        assert await auth.probe() is Security.ABSENT
    assert len(cluster.asked) == 3
    assert caplog.messages == [UNSECURED]
    assert not auth.is_open
    assert auth.status() == {
        "mode": "upstream",
        "cluster_security": "absent",
        "ok": False,
        "reason": UNSECURED,
    }
    with pytest.raises(AuthorizationUnavailable) as raised:
        await auth.authorize(ALICE, INFER, URI)
    assert body_of(raised.value) == unavailable(UNSECURED)
    assert len(cluster.asked) == 3  # known to be unsecured: no cluster call per request


async def test_no_sign_anywhere_opens_only_when_the_operator_allows_it(caplog):
    auth, cluster = authorizer(no_route_until(no_handler), allow=True)
    with caplog.at_level(logging.WARNING, logger="esproxy.authorization.cluster"):
        assert await auth.probe() is Security.ABSENT
    assert (
        f"the cluster at [{NODE_URL}] shows no security (it answered "
        "/_security/user/_has_privileges with status [400]) and [auth] allow_unsecured_cluster "
        "= true: esproxy's _inference API is OPEN to every caller"
    ) in caplog.text
    assert auth.is_open
    assert auth.status() == {
        "mode": "upstream",
        "cluster_security": "absent",
        "open": True,
        "reason": "the cluster shows no security and [auth] allow_unsecured_cluster = true: "
        "_inference is open to every caller",
    }
    asked = len(cluster.asked)
    await auth.authorize(Credentials(), PUT_ENDPOINT, URI)
    assert len(cluster.asked) == asked


@pytest.mark.parametrize(
    "reply",
    [
        Reply(200, {"has_all_requested": True}),
        Reply(500, security_error(500, "busy")),
        Reply(400, {"error": "bad request", "status": 400}),
    ],
)
async def test_made_up_credentials_answered_oddly_leave_the_verdict_as_it_was(reply, caplog):
    auth, cluster = authorizer(no_route_until(lambda asked: reply))
    with caplog.at_level(logging.WARNING, logger="esproxy.authorization.cluster"):
        assert await auth.probe() is Security.UNKNOWN
    assert len(cluster.asked) == 2
    assert caplog.messages == [
        f"cannot tell whether the cluster has security: the cluster at [{NODE_URL}] answered "
        f"the privilege check with status [{reply.status}], so esproxy cannot check the "
        "caller's privileges"
    ]


@pytest.mark.parametrize("status", [201, 301, 500, 502])
async def test_authinfo_answered_oddly_leaves_the_verdict_as_it_was(status):
    def sign(asked):
        return Reply(status, b"") if asked.path == OPENSEARCH_AUTHINFO_PATH else no_handler(asked)

    auth, _ = authorizer(no_route_until(sign))
    assert await auth.probe() is Security.UNKNOWN


async def test_a_probe_that_fails_keeps_the_last_verdict(caplog):
    state = {"up": True}

    def answer(asked):
        return secured_es(asked) if state["up"] else OSError("connection reset")

    auth, _ = authorizer(answer)
    assert await auth.probe() is Security.ENABLED
    state["up"] = False
    with caplog.at_level(logging.WARNING, logger="esproxy.authorization.cluster"):
        assert await auth.probe() is Security.ENABLED
    assert (
        "cannot tell whether the cluster has security: cannot check the caller's privileges: "
        f"[GET {CHECK_PATH}] failed: connection reset"
    ) in caplog.text


async def test_the_verdict_follows_the_cluster_both_ways(caplog):
    state = {"secured": False}

    def answer(asked):
        return secured_es(asked) if state["secured"] else no_handler(asked)

    auth, _ = authorizer(answer, allow=True)
    assert await auth.probe() is Security.ABSENT and auth.is_open
    state["secured"] = True
    with caplog.at_level(logging.INFO, logger="esproxy.authorization.cluster"):
        assert await auth.probe() is Security.ENABLED
    assert "has security" in caplog.text and not auth.is_open
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="esproxy.authorization.cluster"):
        assert await auth.probe() is Security.ENABLED
    assert caplog.text == ""  # an unchanged verdict is not announced again


@pytest.mark.parametrize(
    "reply",
    [
        Reply(405, {"error": "Incorrect HTTP method for uri [/x] and method [GET]"}),
        Reply(404, {"error": {"type": "invalid_index_name_exception", "reason": "bad name"}}),
        Reply(500, security_error(500, "Security must be explicitly enabled when using a trial")),
        Reply(500, security_error(500, "Security is not enabled but a role was specified")),
        Reply(400, {"error": {"type": "x", "reason": "no handler found for uri [/x]"}}),
    ],
)
async def test_every_form_of_no_security_is_read_as_such(reply):
    def answer(asked):
        return Reply(404, b"") if asked.path == OPENSEARCH_AUTHINFO_PATH else reply

    auth, cluster = authorizer(answer)
    assert await auth.probe() is Security.ABSENT
    assert cluster.paths() == [CHECK_PATH, CHECK_PATH, OPENSEARCH_AUTHINFO_PATH]


# --- deciding one caller -----------------------------------------------------------------------


async def test_a_granted_privilege_is_asked_once_with_the_callers_own_headers():
    auth, cluster = authorizer(secured_es)
    await auth.authorize(CAROL_AS_ALICE, INFER, URI)
    [asked] = cluster.asked
    assert (asked.method, asked.path, asked.body) == ("GET", CHECK_PATH, {"cluster": [INFER.name]})
    assert asked.headers == {
        "Accept": "application/json",
        "Accept-Encoding": "identity",
        "Content-Type": "application/json",
        "Authorization": ALICE.authorization,
        "es-security-runas-user": "carol",
    }
    assert auth.security is Security.ENABLED and auth.node == NODE_URL
    await auth.authorize(CAROL_AS_ALICE, INFER, URI)
    await auth.authorize(CAROL_AS_ALICE, GET_ENDPOINTS, URI)  # the same cluster privilege
    assert len(cluster.asked) == 1


async def test_a_denial_names_the_callers_roles_and_is_cached():
    auth, cluster = authorizer(secured_es)
    for _ in range(2):
        with pytest.raises(AccessDenied) as raised:
            await auth.authorize(ALICE, PUT_ENDPOINT, URI)
        assert body_of(raised.value) == (403, security_error(403, PUT_DENIED_ALICE))
    assert cluster.paths() == [CHECK_PATH, AUTHENTICATE_PATH]
    check, who = cluster.asked
    assert check.body == {"cluster": ["manage_inference"]}
    assert who.method == "GET" and who.body is None
    assert who.headers == {
        "Accept": "application/json",
        "Accept-Encoding": "identity",
        "Authorization": ALICE.authorization,
    }


async def test_cached_decisions_expire():
    auth, cluster = authorizer(secured_es, ttl=10)
    await auth.authorize(ALICE, INFER, URI)
    auth.cache.clock.now += 10
    await auth.authorize(ALICE, INFER, URI)
    assert len(cluster.asked) == 2


@pytest.mark.parametrize(
    "who",
    [
        OSError("reset"),
        Reply(500, security_error(500, "busy")),
        Reply(401, security_error(401, "expired")),
    ],
)
async def test_a_denial_without_roles_names_the_user_the_check_gave(who):
    def answer(asked):
        return who if asked.path == AUTHENTICATE_PATH else granted("dave", False)

    auth, _ = authorizer(answer)
    with pytest.raises(AccessDenied) as raised:
        await auth.authorize(ALICE, DELETE_ENDPOINT, URI)
    assert raised.value.reason == (
        "action [cluster:admin/xpack/inference/delete] is unauthorized for user [dave], this "
        "action is granted by the cluster privileges [manage_inference,manage,all]"
    )


async def test_the_clusters_401_names_the_callers_request():
    auth, cluster = authorizer(secured_es)
    for credentials, reason in [
        (Credentials(), f"missing authentication credentials for REST request [{URI}]"),
        (
            Credentials("Basic Ym9iOndyb25n"),
            f"unable to authenticate user [bob] for REST request [{URI}]",
        ),
    ]:
        with pytest.raises(AuthenticationFailed) as raised:
            await auth.authorize(credentials, INFER, URI)
        listed = {"WWW-Authenticate": ['Basic realm="security"', "ApiKey"]}
        assert body_of(raised.value) == (401, security_error(401, reason, header=listed))
        assert raised.value.challenges == ('Basic realm="security"', "ApiKey")
        assert raised.value.headers == {"WWW-Authenticate": 'Basic realm="security", ApiKey'}
    await auth.authorize(ALICE, INFER, URI)  # failures are not cached, nor do they stick
    with pytest.raises(AuthenticationFailed):
        await auth.authorize(Credentials(), INFER, URI)
    assert cluster.paths().count(CHECK_PATH) == 4


async def test_a_401_keeps_the_clusters_metadata_and_listed_challenges():
    body = security_error(
        401,
        f"token expired for REST request [{CHECK_PATH}]",
        header={"WWW-Authenticate": ["Bearer realm=x", 7]},
        **{"es.additional_unsuccessful_credentials": "jwt"},
    )
    auth, _ = authorizer(lambda asked: Reply(401, body))
    with pytest.raises(AuthenticationFailed) as raised:
        await auth.authorize(ALICE, INFER, URI)
    error = raised.value
    assert error.reason == f"token expired for REST request [{URI}]"
    assert error.challenges == ("Bearer realm=x", "7")
    assert error.metadata == {"es.additional_unsuccessful_credentials": "jwt"}
    assert error.to_body()["error"]["es.additional_unsuccessful_credentials"] == "jwt"


async def test_the_401s_challenge_headers_win_over_those_its_body_lists():
    body = security_error(401, "no", header={"WWW-Authenticate": ["Bearer"]})
    auth, _ = authorizer(lambda asked: Reply(401, body, [("WWW-Authenticate", "Basic")]))
    with pytest.raises(AuthenticationFailed) as raised:
        await auth.authorize(ALICE, INFER, URI)
    assert raised.value.challenges == ("Basic",)


@pytest.mark.parametrize(
    "body", [None, {"error": "plain text"}, {"error": {"type": "x"}}, {"error": {"header": 5}}]
)
async def test_a_401_without_the_usual_parts_is_still_a_401(body):
    auth, _ = authorizer(lambda asked: Reply(401, body, [("WWW-Authenticate", "Basic")]))
    with pytest.raises(AuthenticationFailed) as raised:
        await auth.authorize(ALICE, INFER, URI)
    expected = body["error"] if body and isinstance(body["error"], str) else None
    assert raised.value.reason == (expected or "unable to authenticate")
    assert raised.value.challenges == ("Basic",)
    assert raised.value.metadata == {}
    assert raised.value.status == 401


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (security_error(403, "action [has_privileges] denied"), "action [has_privileges] denied"),
        ({"error": "forbidden"}, "forbidden"),
        (None, "the cluster refused the check"),
        ({"error": {"reason": 5}}, "the cluster refused the check"),
    ],
)
async def test_the_check_refused_is_a_403_that_is_not_cached(body, reason):
    auth, cluster = authorizer(lambda asked: Reply(403, body))
    for _ in range(2):
        with pytest.raises(AccessDenied) as raised:
            await auth.authorize(ALICE, INFER, URI)
        assert body_of(raised.value) == (403, security_error(403, reason))
    assert len(cluster.asked) == 2


@pytest.mark.parametrize(
    "reply",
    [
        Reply(500, security_error(500, "node is shutting down")),
        Reply(200, {"has_all_requested": "yes"}),
        Reply(200, {"has_all_requested": 1}),
        Reply(200, [True]),
        Reply(200, b'{"has_all_requested": tr'),
        Reply(201, {"has_all_requested": True}),
        Reply(404, {"error": {"type": "index_not_found_exception", "reason": "no index"}}),
    ],
)
async def test_an_unusable_answer_is_a_503_never_a_grant(reply):
    auth, cluster = authorizer(lambda asked: reply)
    for _ in range(2):
        with pytest.raises(AuthorizationUnavailable) as raised:
            await auth.authorize(ALICE, INFER, URI)
        reason = (
            f"the cluster at [{NODE_URL}] answered the privilege check with status "
            f"[{reply.status}], so esproxy cannot check the caller's privileges"
        )
        assert raised.value.reason == reason and raised.value.status == 503
    assert len(cluster.asked) == 2  # never cached
    assert auth.security is Security.UNKNOWN


@pytest.mark.parametrize(
    ("body", "cause"),
    [
        (security_error(500, "down"), {"type": "security_exception", "reason": "down"}),
        ({"error": "plain"}, {"type": "exception", "reason": "plain"}),
        ({"error": {"type": "x"}}, None),
        ({"error": {"type": 5, "reason": "r"}}, {"type": "exception", "reason": "r"}),
    ],
)  # fmt: skip
async def test_an_unusable_answer_names_the_clusters_error(body, cause):
    auth, _ = authorizer(lambda asked: Reply(500, body))
    with pytest.raises(AuthorizationUnavailable) as raised:
        await auth.authorize(ALICE, INFER, URI)
    reason = (
        f"the cluster at [{NODE_URL}] answered the privilege check with status [500], so "
        "esproxy cannot check the caller's privileges"
    )
    assert body_of(raised.value) == unavailable(reason, cause)


async def test_a_cluster_that_does_not_answer_in_time_is_a_503():
    auth, _ = authorizer(lambda asked: None, timeout=0.05)
    with pytest.raises(AuthorizationUnavailable) as raised:
        await auth.authorize(ALICE, INFER, URI)
    assert body_of(raised.value) == unavailable(
        f"the cluster did not answer [GET {CHECK_PATH}] within 0.05s, so esproxy cannot check "
        "the caller's privileges"
    )


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (
            UpstreamUnavailable("no node of the cluster answers"),
            "cannot check the caller's privileges: no node of the cluster answers",
        ),
        (
            aiohttp.ServerDisconnectedError("gone"),
            f"cannot check the caller's privileges: [GET {CHECK_PATH}] failed: gone",
        ),
        (
            ConnectionResetError("reset by peer"),
            f"cannot check the caller's privileges: [GET {CHECK_PATH}] failed: reset by peer",
        ),
    ],
)
async def test_a_cluster_that_cannot_be_reached_is_a_503(failure, reason):
    auth, _ = authorizer(lambda asked: failure)
    with pytest.raises(AuthorizationUnavailable) as raised:
        await auth.authorize(ALICE, INFER, URI)
    assert body_of(raised.value) == unavailable(reason)


@pytest.mark.parametrize("allow", [False, True])
async def test_security_gone_between_probes_is_found_at_the_next_check(allow):
    state = {"secured": True}

    def answer(asked):
        return secured_es(asked) if state["secured"] else no_handler(asked)

    auth, _ = authorizer(answer, allow=allow, ttl=0)
    assert await auth.probe() is Security.ENABLED
    state["secured"] = False
    if allow:
        await auth.authorize(Credentials(), PUT_ENDPOINT, URI)
        assert auth.is_open
        return
    with pytest.raises(AuthorizationUnavailable) as raised:
        await auth.authorize(ALICE, INFER, URI)
    assert body_of(raised.value) == unavailable(UNSECURED)
    assert auth.security is Security.ABSENT


async def test_a_cluster_that_stops_answering_checks_for_known_callers_is_uncheckable():
    def answer(asked):  # OpenSearch's plugin: known callers reach "no such route"
        if asked.headers.get("Authorization") == ALICE.authorization:
            return no_handler(asked)
        return Reply(401, security_error(401, "who?"))

    auth, _ = authorizer(answer, allow=True)
    assert await auth.probe() is Security.ENABLED
    with pytest.raises(AuthorizationUnavailable) as raised:
        await auth.authorize(ALICE, INFER, URI)
    assert body_of(raised.value) == unavailable(UNCHECKABLE)
    assert auth.security is Security.ENABLED  # the others are still judged by the cluster
    with pytest.raises(AuthenticationFailed):
        await auth.authorize(Credentials(), INFER, URI)


async def test_a_check_on_a_cluster_that_cannot_be_probed_is_refused():
    def answer(asked):  # no route for the caller, and the probe's questions fail
        if asked.headers.get("Authorization") == ALICE.authorization:
            return no_handler(asked)
        return OSError("down")

    auth, _ = authorizer(answer, allow=True)
    with pytest.raises(AuthorizationUnavailable) as raised:
        await auth.authorize(ALICE, INFER, URI)
    assert raised.value.reason == UNCHECKABLE
    assert auth.security is Security.UNKNOWN and not auth.is_open


def test_made_up_credentials_are_unguessable_basic_ones():
    seen = set()
    for _ in range(3):
        scheme, _, token = made_up_basic().partition(" ")
        assert scheme == "Basic"
        user, _, password = base64.b64decode(token, validate=True).decode().partition(":")
        assert re.fullmatch(r"esproxy-probe-[0-9a-f]{16}", user)
        assert len(password) == 32
        seen.add(token)
    assert len(seen) == 3


async def test_each_question_is_logged_for_debugging(caplog):
    auth, _ = authorizer(secured_es)
    with caplog.at_level(logging.DEBUG, logger="esproxy.authorization.cluster"):
        await auth.probe()
    [message] = [message for message in caplog.messages if " -> " in message]
    took = re.fullmatch(rf"GET {NODE_URL}{CHECK_PATH} -> 401 in ([0-9]+\.[0-9]) ms", message)
    assert took is not None, message
    assert float(took[1]) < 10_000


def test_the_refusal_names_an_unknown_node_as_such():
    auth, _ = authorizer(secured_es)
    auth.security = Security.UNCHECKABLE
    assert "the cluster at [?] authenticates callers" in auth.refusal_reason()
    auth.security = Security.ABSENT
    assert "the cluster at [?] shows no security" in auth.refusal_reason()


async def test_a_cached_denial_names_the_action_asked_each_time():
    """PUT and DELETE share `manage_inference`, so one check serves both; each denial still
    names its own action, as Elasticsearch's does."""
    auth, cluster = authorizer(secured_es)
    with pytest.raises(AccessDenied) as put:
        await auth.authorize(ALICE, PUT_ENDPOINT, URI)
    with pytest.raises(AccessDenied) as delete:
        await auth.authorize(ALICE, DELETE_ENDPOINT, URI)
    assert put.value.reason == PUT_DENIED_ALICE
    assert delete.value.reason == PUT_DENIED_ALICE.replace("inference/put", "inference/delete")
    assert cluster.paths() == [CHECK_PATH, AUTHENTICATE_PATH]  # asked once


@pytest.mark.parametrize("shown", [[1], b'"alice"', b"5", b"null"])
async def test_an_odd_authenticate_answer_still_gives_the_403(shown):
    def answer(asked):
        return Reply(200, shown) if asked.path == AUTHENTICATE_PATH else granted("dave", False)

    auth, _ = authorizer(answer)
    with pytest.raises(AccessDenied) as raised:
        await auth.authorize(ALICE, DELETE_ENDPOINT, URI)
    assert "is unauthorized for user [dave], this action" in raised.value.reason


async def test_a_grant_of_one_privilege_is_never_reused_for_another():
    auth, cluster = authorizer(secured_es)
    await auth.authorize(ALICE, INFER, URI)  # monitor_inference: granted and cached
    with pytest.raises(AccessDenied):
        await auth.authorize(ALICE, PUT_ENDPOINT, URI)  # manage_inference: asked, denied
    bodies = [asked.body for asked in cluster.asked if asked.path == CHECK_PATH]
    assert bodies == [{"cluster": ["monitor_inference"]}, {"cluster": ["manage_inference"]}]
