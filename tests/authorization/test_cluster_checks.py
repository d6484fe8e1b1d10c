"""`[auth] mode = "upstream"` against a cluster with security (the fake in conftest.py)."""

from __future__ import annotations

import json
import logging
import socket

import pytest

from esproxy.app_keys import SETTINGS
from tests.authorization.conftest import ADMIN, ALICE, BOB_WRONG, CHALLENGES, SERVICE_KEY
from tests.user_examples import JSON_HEADERS, TITAN_COMPLETION

ENDPOINT = "/_inference/completion/titan"
PUT_DENIED = (
    "action [cluster:admin/xpack/inference/put] is unauthorized for user [alice] with effective "
    "roles [inference_reader,viewer], this action is granted by the cluster privileges "
    "[manage_inference,manage,all]"
)


def security_error(status, reason, challenges=None):
    cause = {"type": "security_exception", "reason": reason}
    if challenges:
        cause["header"] = {"WWW-Authenticate": list(challenges)}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


async def put_endpoint(proxy, authorization):
    return await proxy.put(
        ENDPOINT,
        data=json.dumps(TITAN_COMPLETION),
        headers={**JSON_HEADERS, "Authorization": authorization},
    )


async def test_privileged_callers_are_served(start_proxy, cluster_settings, fake_cluster):
    proxy = await start_proxy(cluster_settings())
    assert (await put_endpoint(proxy, ADMIN)).status == 200
    listed = await proxy.get("/_inference", headers={"Authorization": ALICE})
    assert listed.status == 200
    inferred = await proxy.post(
        ENDPOINT, data='{"input": "hi"}', headers={**JSON_HEADERS, "Authorization": ALICE}
    )
    assert inferred.status == 200, await inferred.text()


async def test_a_caller_without_the_privilege_gets_the_clusters_denial(
    start_proxy, cluster_settings
):
    proxy = await start_proxy(cluster_settings())
    denied = await put_endpoint(proxy, ALICE)
    assert denied.status == 403
    assert await denied.json() == security_error(403, PUT_DENIED)
    assert denied.headers["X-elastic-product"] == "Elasticsearch"


async def test_api_keys_are_named_by_id_without_roles(start_proxy, cluster_settings):
    proxy = await start_proxy(cluster_settings())
    denied = await proxy.delete(ENDPOINT, headers={"Authorization": SERVICE_KEY})
    assert denied.status == 403
    assert (await denied.json())["error"]["reason"] == (
        "action [cluster:admin/xpack/inference/delete] is unauthorized for API key id [key-1] "
        "of user [svc], this action is granted by the cluster privileges "
        "[manage_inference,manage,all]"
    )


async def test_missing_credentials_get_the_clusters_401_for_the_callers_request(
    start_proxy, cluster_settings
):
    proxy = await start_proxy(cluster_settings())
    response = await proxy.get("/_inference/completion/titan?timeout=5s")
    assert response.status == 401
    reason = (
        "missing authentication credentials for REST request "
        "[/_inference/completion/titan?timeout=5s]"
    )
    assert await response.json() == security_error(401, reason, CHALLENGES)
    assert response.headers["WWW-Authenticate"] == ", ".join(CHALLENGES)


async def test_unknown_credentials_get_the_clusters_401(start_proxy, cluster_settings):
    proxy = await start_proxy(cluster_settings())
    response = await proxy.get("/_inference", headers={"Authorization": BOB_WRONG})
    assert response.status == 401
    body = await response.json()
    assert (
        body["error"]["reason"]
        == "unable to authenticate user [bob] for REST request [/_inference]"
    )


async def test_decisions_are_cached_per_credentials_and_privilege(
    start_proxy, cluster_settings, fake_cluster
):
    cluster, _ = fake_cluster
    proxy = await start_proxy(cluster_settings())
    cluster.calls.clear()
    for _ in range(3):
        assert (await proxy.get("/_inference", headers={"Authorization": ALICE})).status == 200
    assert cluster.checks() == [ALICE]
    assert (await proxy.get("/_inference", headers={"Authorization": ADMIN})).status == 200
    assert cluster.checks() == [ALICE, ADMIN]
    for _ in range(2):  # a denial is cached too, and the other privilege is asked separately
        assert (await put_endpoint(proxy, ALICE)).status == 403
    assert cluster.checks() == [ALICE, ADMIN, ALICE]


async def test_expired_decisions_are_asked_again(start_proxy, cluster_settings, fake_cluster):
    cluster, _ = fake_cluster
    proxy = await start_proxy(cluster_settings(ESPROXY_AUTH_CACHE_SECONDS="0"))
    cluster.calls.clear()
    for _ in range(2):
        assert (await proxy.get("/_inference", headers={"Authorization": ALICE})).status == 200
    assert cluster.checks() == [ALICE, ALICE]


async def test_unreachable_cluster_is_503_never_open(start_proxy, settings_for, caplog):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = settings_for(
        ESPROXY_UPSTREAM=f"http://127.0.0.1:{port}", ESPROXY_STORAGE_BACKEND="sqlite"
    )
    with caplog.at_level(logging.WARNING):
        proxy = await start_proxy(settings)
    assert "cannot tell whether the cluster has security" in caplog.text
    response = await proxy.get("/_inference", headers={"Authorization": ALICE})
    assert response.status == 503
    body = await response.json()
    assert body["status"] == 503
    assert "cannot check the caller's privileges" in body["error"]["reason"]
    assert "Connection refused" in body["error"]["reason"]


async def test_a_cluster_without_security_is_503_unless_the_operator_allows_it(
    start_proxy, cluster_settings, fake_cluster, caplog
):
    cluster, _ = fake_cluster
    cluster.security = "off"
    with caplog.at_level(logging.ERROR, logger="esproxy.authorization.cluster"):
        proxy = await start_proxy(cluster_settings())
    assert "shows no security" in caplog.text
    assert "allow_unsecured_cluster = true to leave it open" in caplog.text
    cluster.calls.clear()
    for response in (
        await put_endpoint(proxy, "Basic bm9ib2R5Og=="),
        await proxy.get("/_inference"),
        await proxy.get("/_inference", headers={"Authorization": ADMIN}),
    ):
        assert response.status == 503
        body = await response.json()
        assert body["error"]["type"] == "exception"
        assert "its _inference API answers 503" in body["error"]["reason"]
    assert cluster.calls == []  # known uncheckable: no round of cluster calls per request
    ready = await proxy.get("/_esproxy/ready", headers={"Authorization": ADMIN})
    auth = (await ready.json())["checks"]["auth"]
    assert auth["ok"] is False and auth["cluster_security"] == "absent"


async def test_an_unsecured_cluster_is_open_only_when_the_operator_says_so(
    start_proxy, cluster_settings, fake_cluster, caplog
):
    cluster, _ = fake_cluster
    cluster.security = "off"
    with caplog.at_level(logging.WARNING, logger="esproxy.authorization.cluster"):
        proxy = await start_proxy(cluster_settings(ESPROXY_AUTH_ALLOW_UNSECURED_CLUSTER="true"))
    assert "allow_unsecured_cluster = true: esproxy's _inference API is OPEN" in caplog.text
    cluster.calls.clear()
    assert (await put_endpoint(proxy, "Basic bm9ib2R5Og==")).status == 200
    assert (await proxy.get("/_inference")).status == 200
    assert cluster.checks() == []  # nothing to ask: the cluster checks no one
    auth = (await (await proxy.get("/_esproxy/ready")).json())["checks"]["auth"]
    assert auth["open"] is True and "open to every caller" in auth["reason"]


async def test_security_switched_off_later_closes_inference(
    start_proxy, cluster_settings, fake_cluster
):
    cluster, _ = fake_cluster
    proxy = await start_proxy(cluster_settings())
    assert (await proxy.get("/_inference", headers={"Authorization": ALICE})).status == 200
    cluster.security = "off"
    response = await proxy.get("/_inference", headers={"Authorization": ADMIN})
    assert response.status == 503
    assert (await proxy.get("/_inference")).status == 503


async def test_security_switched_off_later_opens_only_when_allowed(
    start_proxy, cluster_settings, fake_cluster, caplog
):
    cluster, _ = fake_cluster
    proxy = await start_proxy(cluster_settings(ESPROXY_AUTH_ALLOW_UNSECURED_CLUSTER="true"))
    cluster.security = "off"
    with caplog.at_level(logging.WARNING, logger="esproxy.authorization.cluster"):
        assert (await proxy.get("/_inference", headers={"Authorization": ALICE})).status == 200
    assert "OPEN to every caller" in caplog.text


@pytest.mark.parametrize("allow", ["false", "true"])
async def test_no_handler_for_anonymous_callers_is_not_taken_for_no_security(
    start_proxy, cluster_settings, fake_cluster, allow
):
    """The review's reproduction: 400 "no handler found" to anonymous callers, 401 to bad ones."""
    cluster, _ = fake_cluster
    cluster.security = "anonymous"
    proxy = await start_proxy(cluster_settings(ESPROXY_AUTH_ALLOW_UNSECURED_CLUSTER=allow))
    created = await put_endpoint(proxy, ADMIN)
    assert created.status == 503
    assert "authenticates callers but has no Elasticsearch" in await created.text()
    anonymous = await proxy.put(ENDPOINT, data=json.dumps(TITAN_COMPLETION), headers=JSON_HEADERS)
    assert anonymous.status == 503
    assert (await proxy.get(ENDPOINT)).status == 503
    listed = await proxy.get("/_inference", headers={"Authorization": ADMIN})
    assert listed.status == 503  # nothing was created on the way


@pytest.mark.parametrize("allow", ["false", "true"])
async def test_opensearch_security_seen_through_authinfo_is_never_open(
    start_proxy, cluster_settings, fake_cluster, allow
):
    cluster, _ = fake_cluster
    cluster.security = "authinfo"
    proxy = await start_proxy(cluster_settings(ESPROXY_AUTH_ALLOW_UNSECURED_CLUSTER=allow))
    assert ("/_plugins/_security/authinfo", None) in cluster.calls
    response = await put_endpoint(proxy, ADMIN)
    assert response.status == 503
    assert "authenticates callers but has no Elasticsearch" in await response.text()
    assert (await proxy.get("/_inference")).status == 503


@pytest.mark.parametrize(
    ("fault", "status", "reason"),
    [
        ("403", 403, "action [has_privileges] denied"),
        ("500", 503, "answered the privilege check with status [500]"),
        ("malformed", 503, "answered the privilege check with status [200]"),
        ("garbage", 503, "cannot check the caller's privileges"),
        ("timeout", 503, "did not answer [GET /_security/user/_has_privileges] within 0.5s"),
    ],
)
async def test_an_unusable_privilege_answer_never_grants_access(
    start_proxy, cluster_settings, fake_cluster, fault, status, reason
):
    cluster, _ = fake_cluster
    proxy = await start_proxy(cluster_settings(ESPROXY_AUTH_CHECK_TIMEOUT="0.5"))
    cluster.fault = fault
    for request in (
        put_endpoint(proxy, ADMIN),
        proxy.get("/_inference", headers={"Authorization": ALICE}),
    ):
        response = await request
        assert response.status == status
        body = await response.json()
        assert reason in body["error"]["reason"]
    cluster.fault = None  # nothing was created while the check could not be made
    listed = await proxy.get("/_inference", headers={"Authorization": ADMIN})
    assert await listed.json() == {"endpoints": []}


async def test_a_cluster_that_authenticates_without_has_privileges_is_503_not_open(
    start_proxy, cluster_settings, fake_cluster
):
    cluster, _ = fake_cluster
    cluster.security = "plugin"  # like OpenSearch's security plugin: 401 first, then no route
    proxy = await start_proxy(cluster_settings())
    response = await proxy.get("/_inference", headers={"Authorization": ALICE})
    assert response.status == 503
    assert "authenticates callers but has no Elasticsearch" in await response.text()
    assert (await proxy.get("/_inference")).status == 401


async def test_wrong_methods_are_answered_before_authentication(start_proxy, cluster_settings):
    proxy = await start_proxy(cluster_settings())
    response = await proxy.patch("/_inference/my-id")
    assert response.status == 405


async def test_health_endpoints_stay_open(start_proxy, cluster_settings):
    proxy = await start_proxy(cluster_settings())
    assert (await proxy.get("/_esproxy/health")).status == 200


async def test_sidecar_details_need_credentials_the_cluster_accepts(
    start_proxy, cluster_settings, fake_cluster
):
    cluster, _ = fake_cluster
    proxy = await start_proxy(cluster_settings())
    cluster.calls.clear()
    anonymous = await proxy.get("/_esproxy/ready")
    assert await anonymous.json() == {"status": "ready"}
    assert cluster.checks() == []  # probes without credentials cost no privilege check
    assert await (
        await proxy.get("/_esproxy/ready", headers={"Authorization": BOB_WRONG})
    ).json() == {"status": "ready"}
    for user in (ALICE, ADMIN):
        body = await (await proxy.get("/_esproxy/ready", headers={"Authorization": user})).json()
        assert body["checks"]["upstream"]["target"] == proxy.server.app[SETTINGS].upstream.urls[0]
        assert body["checks"]["auth"]["cluster_security"] == "enabled"
