"""Readiness reports the cluster in sidecar mode."""

from __future__ import annotations


async def test_ready_reports_the_cluster(start_proxy, sidecar_settings):
    proxy = await start_proxy(sidecar_settings())
    body = await (await proxy.get("/_esproxy/ready")).json()
    assert body["status"] == "ready"
    assert body["checks"]["upstream"]["ok"] is True


async def test_a_typo_under_the_esproxy_prefix_is_answered_never_forwarded(
    start_proxy, sidecar_settings
):
    proxy = await start_proxy(sidecar_settings())
    for method, target in (("GET", "/_esproxy/helth"), ("PUT", "/_esproxy/x/_doc/1")):
        response = await proxy.request(method, target, json={"a": 1})
        assert response.status == 400
        assert await response.json() == {
            "error": f"no handler found for uri [{target}] and method [{method}]",
            "status": 400,
        }
        # The node sends no X-Elastic-Product: esproxy answered.
        assert response.headers["X-elastic-product"] == "Elasticsearch"
    ready = await proxy.get("/_esproxy/ready")
    assert ready.status == 200
    assert "Server" not in ready.headers
