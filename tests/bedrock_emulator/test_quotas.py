"""Per-access-key quotas: over quota, calls fail with ThrottlingException (429) like Bedrock."""

from __future__ import annotations

import aiohttp
import pytest

from esproxy.bedrock_emulator.quotas import QuotaBook
from tests.bedrock_emulator.harness import CLAUDE, user


async def call(client):
    return await client.converse(modelId=CLAUDE, messages=user("quota"))


async def test_calls_over_quota_are_throttled_per_access_key(start_emulator, make_client):
    server = await start_emulator(quota_per_minute=2)
    first, second = await make_client(server, "AKIDONE"), await make_client(server, "AKIDTWO")
    await call(first)
    await call(first)
    with pytest.raises(first.exceptions.ThrottlingException) as caught:
        await call(first)
    error = caught.value.response
    assert error["Error"]["Message"] == "Too many requests, please wait before trying again."
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert error["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"].startswith(
        "ThrottlingException:"
    )
    await call(second)
    async with aiohttp.ClientSession() as session:
        log = await (await session.get(server.make_url("/_emulator/requests"))).json()
    assert [e["throttled"] for e in log["requests"]] == [False, False, True, False]


def test_quota_window_slides_and_refusals_do_not_count():
    now = [0.0]
    book = QuotaBook(2, clock=lambda: now[0])
    book.admit("a")
    now[0] = 30.0
    book.admit("a")
    with pytest.raises(Exception, match="ThrottlingException"):
        book.admit("a")
    now[0] = 60.5
    book.admit("a")
    with pytest.raises(Exception, match="ThrottlingException"):
        book.admit("a")


def test_no_quota_admits_everything():
    book = QuotaBook(None)
    for _ in range(1000):
        book.admit("a")
