"""Refresh under load: a role whose credentials live 20 s, called steadily for 60 s (three expiries
and more), fails no request, and the emulator sees every renewed temporary key in use.

The one slow test of the identity work (about 65 s); `scripts/bench/inference` measures the speed.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from esproxy.app_keys import BEDROCK_CLIENTS
from esproxy.bedrock_emulator import create_emulator_app, create_sts_app
from tests.integrations.amazonbedrock.identity_support import (
    BASE_KEY,
    BASE_SECRET,
    ROLE,
    completion,
    identity_settings,
    infer,
    isolate_aws_environment,
    model_calls,
    put,
    sts_calls,
)

LIFETIME_S = 20.0
LOAD_S = 60.0
WORKERS = 4


@pytest.fixture
async def emulator(aiohttp_server):
    settings = identity_settings(credential_lifetime_s=LIFETIME_S, max_recorded_requests=50_000)
    return await aiohttp_server(create_emulator_app(settings))


@pytest.fixture
async def sts(aiohttp_server, emulator):
    return await aiohttp_server(create_sts_app(emulator.app))


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch, tmp_path, sts):
    isolate_aws_environment(monkeypatch, tmp_path, str(sts.make_url("")).rstrip("/"))


@pytest.mark.timeout(150)
async def test_steady_calls_across_three_expiries_never_fail(proxy, emulator, sts):
    body = completion(
        access_key=BASE_KEY,
        secret_key=BASE_SECRET,
        role_arn=ROLE,
        rate_limit={"requests_per_minute": 100_000},  # the load, not the limiter, sets the pace
    )
    status, config = await put(proxy, "rotating", body)
    assert status == 200, config
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + LOAD_S

    async def caller(worker: int) -> None:
        while time.monotonic() < deadline:
            status, answer = await infer(proxy, "rotating", f"call from worker {worker}")
            statuses[status] += 1
            if status != 200:
                print(answer)
            await asyncio.sleep(0.05)

    await asyncio.gather(*(caller(worker) for worker in range(WORKERS)))

    assert set(statuses) == {200}, statuses
    assert statuses[200] > 500  # steady load, not a trickle
    calls = await model_calls(emulator)
    assert all(call["signature_verified"] for call in calls)
    in_use = list(dict.fromkeys(call["access_key"] for call in calls))  # in order of first use
    assert all(key.startswith("ASIA") for key in in_use)
    # 60 s of credentials that live 20 s: the first key and at least three renewals.
    assert len(in_use) >= 4, in_use
    issued = [c for c in await sts_calls(sts) if c["operation"] == "AssumeRole"]
    # Each key STS issued was put to use: renewals happen off the call path, once per need.
    assert len(issued) in (len(in_use), len(in_use) + 1)
    renewals = proxy.server.app[BEDROCK_CLIENTS].credentials.snapshot()
    assert renewals["renewals"] >= 3 and renewals["renewal_failures"] == 0
