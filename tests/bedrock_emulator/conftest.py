"""Fixtures: the emulator on a real socket and real aiobotocore clients pointed at it."""

from __future__ import annotations

from contextlib import AsyncExitStack

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

from esproxy.bedrock_emulator import EmulatorSettings, create_emulator_app
from tests.bedrock_emulator.harness import ACCESS_KEY, SECRET_KEY


@pytest.fixture(autouse=True)
def sigv4_only(monkeypatch):
    # With this variable set botocore would switch to bearer auth and skip SigV4.
    monkeypatch.delenv("AWS_BEARER_TOKEN_BEDROCK", raising=False)


@pytest.fixture
def start_emulator(aiohttp_server):
    """Start an emulator with the given settings; returns the aiohttp TestServer."""

    async def start(**settings):
        return await aiohttp_server(create_emulator_app(EmulatorSettings(**settings)))

    return start


@pytest.fixture
async def emulator(start_emulator):
    return await start_emulator()


@pytest.fixture(scope="session")
def aio_session():
    # One session for the run: it caches botocore's service models, which take long to load.
    return AioSession()


@pytest.fixture
async def make_client(start_emulator, aio_session):
    """Open a bedrock-runtime client on `server`; closed at teardown, before the servers."""
    async with AsyncExitStack() as stack:

        async def make(server, access_key=ACCESS_KEY, secret_key=SECRET_KEY, **options):
            config = AioConfig(retries={"total_max_attempts": 1}, **options.pop("config", {}))
            client = aio_session.create_client(
                "bedrock-runtime",
                region_name="us-east-1",
                endpoint_url=str(server.make_url("")),
                aws_access_key_id=access_key,
                aws_secret_access_key=secret_key,
                config=config,
                **options,
            )
            return await stack.enter_async_context(client)

        yield make


@pytest.fixture
async def bedrock(make_client, emulator):
    return await make_client(emulator)
