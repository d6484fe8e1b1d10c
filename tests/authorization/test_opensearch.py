"""Against the real OpenSearch node: no security API means 503 on `_inference` unless allowed, and
esproxy's own index cannot be reached through the proxy, while everything else forwards as before.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

import aiohttp
import pytest

from esproxy.app_keys import AUTHORIZER
from esproxy.authorization.cluster import Security
from tests.user_examples import JSON_HEADERS, TITAN_COMPLETION

ENDPOINT = "/_inference/completion/titan"


async def direct(opensearch_url, method, path, body=None):
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, opensearch_url + path, json=body) as response,
    ):
        return response.status, await response.read()


async def add_alias(opensearch_url, index, alias):
    # `index` names esproxy's alias; an alias is added to the concrete index behind it.
    action = {"actions": [{"add": {"index": f"{index}-000001", "alias": alias}}]}
    assert (await direct(opensearch_url, "POST", "/_aliases", action))[0] == 200


@pytest.fixture
async def alias_cleanup(opensearch_url):
    """Visible aliases of `.esproxy*` indices make every guard on the shared node refuse plain
    wildcards, so each test removes the ones it made (by name: the index is itself an alias).
    """
    yield
    status, body = await direct(opensearch_url, "GET", "/_alias?expand_wildcards=all")
    assert status == 200, body
    for index, entry in json.loads(body).items():
        for alias in entry.get("aliases", {}):
            if alias.startswith(("endpoints-", "later-")):
                await direct(opensearch_url, "DELETE", f"/{index}/_alias/{alias}")


@pytest.fixture
async def sidecar(start_proxy, sidecar_settings):
    return await start_proxy(sidecar_settings())


async def test_a_cluster_without_security_is_503_by_default(start_proxy, sidecar_settings, caplog):
    with caplog.at_level(logging.WARNING, logger="esproxy.authorization.cluster"):
        proxy = await start_proxy(sidecar_settings(ESPROXY_AUTH_ALLOW_UNSECURED_CLUSTER="false"))
    assert "shows no security (no /_security/user/_has_privileges API)" in caplog.text
    assert proxy.server.app[AUTHORIZER].security is Security.ABSENT
    created = await proxy.put(ENDPOINT, data=json.dumps(TITAN_COMPLETION), headers=JSON_HEADERS)
    assert created.status == 503, await created.text()
    listed = await proxy.get(ENDPOINT, headers={"Authorization": "Basic eDp5"})
    assert listed.status == 503
    assert (await proxy.get("/_cluster/health")).status == 200  # forwarding is unaffected


async def test_a_cluster_without_security_is_open_when_allowed_and_logs_it(
    start_proxy, sidecar_settings, caplog
):
    with caplog.at_level(logging.WARNING, logger="esproxy.authorization.cluster"):
        proxy = await start_proxy(sidecar_settings())
    warning = "shows no security (it answered /_security/user/_has_privileges with status [400])"
    assert warning in caplog.text
    assert "esproxy's _inference API is OPEN to every caller" in caplog.text
    assert proxy.server.app[AUTHORIZER].security is Security.ABSENT
    created = await proxy.put(ENDPOINT, data=json.dumps(TITAN_COMPLETION), headers=JSON_HEADERS)
    assert created.status == 200, await created.text()
    assert (await proxy.get(ENDPOINT, headers={"Authorization": "Basic eDp5"})).status == 200


def assert_refused(response_status, body, index):
    assert response_status == 403, body
    error = json.loads(body)["error"]
    assert error["type"] == "security_exception"
    # A wildcard may name another test's `.esproxy-test-*` index on the shared node first.
    assert error["reason"].startswith("index [.esproxy"), error["reason"]
    assert "] is reserved for esproxy and cannot be used through it: " in error["reason"]


@pytest.mark.parametrize(
    "path",
    [
        "/{index}/_search",
        "/{index}/_doc/titan",
        "/{encoded}/_count",
        "/docs,{index}/_search?ignore_unavailable=true",
        "/.esproxy-test-*/_search",
        "/*/_search?expand_wildcards=all",
        "/_all/_count?expand_wildcards=open,hidden",
        "/_search?expand_wildcards=all",
        "/_cat/indices/.esproxy*",
        "/_cat/indices?expand_wildcards=all",
    ],
)
async def test_esproxys_index_cannot_be_named(sidecar, index_name, path):
    encoded = "%2E" + index_name[1:]
    response = await sidecar.get(path.format(index=index_name, encoded=encoded))
    assert_refused(response.status, await response.read(), index_name)


async def test_writes_to_the_index_are_refused_before_reaching_the_cluster(
    sidecar, opensearch_url, index_name
):
    assert (await sidecar.put(ENDPOINT, json=TITAN_COMPLETION)).status == 200
    for method, path in (
        ("DELETE", f"/{index_name}"),
        ("DELETE", f"/{index_name}/_doc/titan"),
        ("POST", f"/{index_name}/_delete_by_query?q=*"),
        ("PUT", f"/{index_name}/_alias/stolen"),
        ("PUT", f"/{index_name}/_mapping"),
    ):
        response = await sidecar.request(method, path, json={})
        assert_refused(response.status, await response.read(), index_name)
    status, _ = await direct(opensearch_url, "GET", f"/{index_name}/_doc/titan")
    assert status == 200
    assert (await sidecar.get(ENDPOINT)).status == 200


async def test_aliases_found_at_startup_are_refused(
    start_proxy, sidecar_settings, opensearch_url, index_name, alias_cleanup
):
    await start_proxy(sidecar_settings())  # creates the index
    alias = f"endpoints-{uuid.uuid4().hex[:8]}"
    await add_alias(opensearch_url, index_name, alias)
    proxy = await start_proxy(sidecar_settings())
    for path in (f"/{alias}/_search", f"/{alias[:12]}*/_count", f"/docs,{alias}/_search"):
        response = await proxy.get(path)
        assert_refused(response.status, await response.read(), index_name)
        assert f"through its alias [{alias}]" in (await response.json())["error"]["reason"]


async def test_aliases_made_later_are_refused_after_a_refresh(
    start_proxy, sidecar_settings, opensearch_url, index_name, alias_cleanup
):
    proxy = await start_proxy(sidecar_settings(ESPROXY_AUTH_REFRESH_SECONDS="0.2"))
    alias = f"later-{uuid.uuid4().hex[:8]}"
    await add_alias(opensearch_url, index_name, alias)
    for _ in range(50):
        response = await proxy.get(f"/{alias}/_search")
        if response.status == 403:
            break
        await asyncio.sleep(0.1)
    assert_refused(response.status, await response.read(), index_name)


@pytest.fixture
async def reserved_leftovers_hidden(opensearch_url):
    """Other tests leave indices under esproxy's reserved prefix on the shared node, some of them
    visible on purpose (foreign indices planted for the store's checks); a wildcard over the whole
    cluster rightly reaches those and is refused. Hide them, as esproxy keeps its own, so that the
    requests below reach only ordinary indices. (Before the sidecar starts: it reads what is
    hidden then.)"""
    status, raw = await direct(
        opensearch_url, "GET", "/_cat/indices/.esproxy*?h=index&expand_wildcards=open&format=json"
    )
    assert status == 200
    for row in json.loads(raw):
        hidden = {"index": {"hidden": True}}
        assert (await direct(opensearch_url, "PUT", f"/{row['index']}/_settings", hidden))[0] == 200


async def test_ordinary_forwarding_is_unaffected(
    reserved_leftovers_hidden, sidecar, opensearch_url, index_name
):
    docs = f"docs-{uuid.uuid4().hex[:8]}"
    assert (
        await sidecar.put(f"/{docs}", json={"settings": {"number_of_replicas": 0}})
    ).status == 200
    bulk = "".join(
        json.dumps({"index": {"_id": str(i)}}) + "\n" + json.dumps({"n": i}) + "\n"
        for i in range(5)
    )
    indexed = await sidecar.post(
        f"/{docs}/_bulk?refresh=true", data=bulk, headers={"Content-Type": "application/x-ndjson"}
    )
    assert indexed.status == 200
    for path in (
        f"/{docs}/_search?q=n:3&filter_path=hits.hits._id",
        f"/{docs},other-*/_count?filter_path=count",
        "/*/_count?filter_path=_shards.total",
        "/_all/_count?filter_path=_shards.total",
        "/_search?size=0&filter_path=_shards.total",
        "/_cat/indices?h=index&s=index",
        "/_cluster/health?filter_path=status",
        f"/{index_name[1:]}/_count",  # no leading dot: not ours, the cluster answers 404 itself
    ):
        ours = await sidecar.get(path)
        theirs = await direct(opensearch_url, "GET", path)
        got = (ours.status, await ours.read())
        assert got == theirs, (path, got)
