"""The kept User-Agent is the one botocore would build for the same call's feature ids."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiobotocore.config import AioConfig  # type: ignore[import-untyped, unused-ignore]
from aiobotocore.session import AioSession  # type: ignore[import-untyped, unused-ignore]
from botocore.context import start_as_current_context  # type: ignore[import-untyped, unused-ignore]
from botocore.useragent import register_feature_id  # type: ignore[import-untyped, unused-ignore]

from esproxy.integrations.amazonbedrock.user_agent import memoize_user_agent


@pytest.fixture
async def client() -> AsyncIterator[Any]:
    config = AioConfig(retries={"total_max_attempts": 1, "mode": "standard"})
    async with AioSession().create_client(
        "bedrock-runtime",
        region_name="us-east-1",
        aws_access_key_id="AKIDUATEST",
        aws_secret_access_key="ua-test-secret",
        endpoint_url="http://127.0.0.1:9",
        config=config,
    ) as opened:
        yield opened


def built_by_botocore(client: Any, *features: str) -> str:
    with start_as_current_context():
        for feature in features:
            register_feature_id(feature)
        return str(type(client._user_agent_creator).to_string(client._user_agent_creator))


def components(header: str) -> list[str]:
    """The header's components, with the comma-separated feature ids (`m/...`) sorted."""
    return [
        "m/" + ",".join(sorted(part[2:].split(","))) if part.startswith("m/") else part
        for part in header.split()
    ]


def kept(client: Any, *features: str) -> str:
    with start_as_current_context():
        for feature in features:
            register_feature_id(feature)
        return str(client._user_agent_creator.to_string())


async def test_the_same_header_for_each_feature_set(client: Any) -> None:
    plain = built_by_botocore(client)
    compressed = built_by_botocore(client, "GZIP_REQUEST_COMPRESSION")
    both = built_by_botocore(client, "GZIP_REQUEST_COMPRESSION", "PAGINATOR")
    memoize_user_agent(client)
    for _ in range(2):  # built once, then kept
        assert kept(client) == plain
        assert kept(client, "GZIP_REQUEST_COMPRESSION") == compressed
        # The same ids given in another order: the same components, ids in botocore's set order.
        assert components(kept(client, "PAGINATOR", "GZIP_REQUEST_COMPRESSION")) == (
            components(both)
        )
    assert compressed != plain


async def test_a_client_without_the_creator_is_left_alone() -> None:
    class Bare:
        pass

    bare = Bare()
    memoize_user_agent(bare)
    assert vars(bare) == {}
