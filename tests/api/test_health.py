"""Health and readiness under `/_esproxy/`: what each caller may see, and what a probe costs."""

from __future__ import annotations

import asyncio

from esproxy.app_keys import READINESS
from esproxy.authorization.api_keys import generate_api_key, hash_api_key

KEY = generate_api_key()


async def test_live_and_ready_standalone(proxy):
    live = await proxy.get("/_esproxy/health")
    assert (live.status, await live.json()) == (200, {"status": "ok"})
    ready = await proxy.get("/_esproxy/ready")
    body = await ready.json()
    assert ready.status == 200 and body["status"] == "ready"
    # Nothing checks callers here (mode none on loopback): the loopback caller sees details.
    assert body["checks"]["store"]["ok"] is True
    assert body["checks"]["bedrock"]["ok"] is True
    assert body["checks"]["auth"] == {
        "ok": True,
        "took_ms": body["checks"]["auth"]["took_ms"],
        "mode": "none",
        "open": True,
        "reason": '[auth] mode = "none"',
    }
    assert "upstream" not in body["checks"]


async def test_unauthenticated_callers_get_only_the_status(start_proxy, settings_for):
    proxy = await start_proxy(settings_for(ESPROXY_AUTH_API_KEYS=hash_api_key(KEY)))
    for headers in ({}, {"Authorization": "ApiKey not-the-key"}):
        response = await proxy.get("/_esproxy/ready", headers=headers)
        assert response.status == 200
        assert await response.json() == {"status": "ready"}
    known = await proxy.get("/_esproxy/ready", headers={"Authorization": f"ApiKey {KEY}"})
    checks = (await known.json())["checks"]
    assert checks["bedrock"]["target"].startswith("127.0.0.1:")  # the Bedrock host
    assert checks["auth"]["mode"] == "api_keys"


async def test_a_failing_check_shows_no_error_text_to_unauthenticated_callers(
    start_proxy, settings_for
):
    proxy = await start_proxy(settings_for(ESPROXY_AUTH_API_KEYS=hash_api_key(KEY)))
    readiness = proxy.server.app[READINESS]

    async def broken() -> None:
        raise OSError("cannot reach http://10.1.2.3:9200: secret topology")

    readiness.add("store", broken)
    response = await proxy.get("/_esproxy/ready")
    assert response.status == 503
    assert await response.text() == '{"status":"not_ready"}'
    known = await proxy.get("/_esproxy/ready", headers={"Authorization": f"ApiKey {KEY}"})
    assert (await known.json())["checks"]["store"]["error"] == (
        "cannot reach http://10.1.2.3:9200: secret topology"
    )


async def test_checks_run_at_most_once_a_second(proxy):
    readiness = proxy.server.app[READINESS]
    before = readiness.runs
    answers = await asyncio.gather(*(proxy.get("/_esproxy/ready") for _ in range(20)))
    assert {answer.status for answer in answers} == {200}
    assert readiness.runs == before + 1
    await asyncio.sleep(1.1)
    assert (await proxy.get("/_esproxy/ready")).status == 200
    assert readiness.runs == before + 2
