"""Readiness reports the cluster in sidecar mode."""

from __future__ import annotations


async def test_ready_reports_the_cluster(start_proxy, sidecar_settings):
    proxy = await start_proxy(sidecar_settings())
    body = await (await proxy.get("/_esproxy/ready")).json()
    assert body["status"] == "ready"
    assert body["checks"]["upstream"]["ok"] is True
