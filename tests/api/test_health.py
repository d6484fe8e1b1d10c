"""Health and readiness under `/_esproxy/`."""

from __future__ import annotations


async def test_live_and_ready_standalone(proxy):
    live = await proxy.get("/_esproxy/health")
    assert (live.status, await live.json()) == (200, {"status": "ok"})
    ready = await proxy.get("/_esproxy/ready")
    body = await ready.json()
    assert ready.status == 200 and body["status"] == "ready"
    assert body["checks"]["store"]["ok"] is True
    assert body["checks"]["bedrock"]["ok"] is True
    assert "upstream" not in body["checks"]
