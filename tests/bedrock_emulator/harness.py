"""What the emulator tests share besides fixtures: model ids, keys, and the control API calls."""

from __future__ import annotations

import math

import aiohttp

ACCESS_KEY = "AKIDEMULATORTEST"
SECRET_KEY = "emulator-test-secret"
TITAN_V1 = "amazon.titan-embed-text-v1"
TITAN_V2 = "amazon.titan-embed-text-v2:0"
COHERE_EN = "cohere.embed-english-v3"
CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
TITAN_TEXT = "amazon.titan-text-premier-v1:0"


def user(text):
    return [{"role": "user", "content": [{"text": text}]}]


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


async def control(server, method, path, body=None):
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, server.make_url(path), json=body) as response,
    ):
        return response.status, await response.json()


async def add_fault(server, **fault):
    status, body = await control(server, "POST", "/_emulator/faults", fault)
    assert status == 200, body
    return body


async def recorded(server):
    return (await control(server, "GET", "/_emulator/requests"))[1]["requests"]
