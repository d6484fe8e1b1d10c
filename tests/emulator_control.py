"""The Bedrock emulator's control API, as tests call it over HTTP."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer


async def control(emulator: TestServer, method: str, path: str, body: Any = None) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, emulator.make_url(path), json=body) as response,
    ):
        assert response.status < 300, await response.text()
        return await response.json()


async def add_fault(emulator: TestServer, **fault: Any) -> None:
    await control(emulator, "POST", "/_emulator/faults", fault)


async def recorded(emulator: TestServer) -> list[dict[str, Any]]:
    return list((await control(emulator, "GET", "/_emulator/requests"))["requests"])
