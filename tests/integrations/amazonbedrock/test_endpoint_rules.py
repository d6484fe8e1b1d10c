"""A client that keeps its resolved endpoints sends every call where botocore would.

Clients are built as esproxy builds them (aiobotocore, a region, with and without an endpoint
URL, FIPS and dual stack), once with the endpoints kept and once without; for each operation the
endpoint, its headers and properties and the signing context must match, on the first call and
on later ones. A handler that may change the builtins per call turns the keeping off.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

from esproxy.integrations.amazonbedrock.endpoint_rules import keep_resolved_endpoints

OPERATIONS = ("ConverseStream", "Converse", "InvokeModel", "InvokeModelWithResponseStream")
SETUPS = list(
    itertools.product(
        ("us-east-1", "eu-central-1", "us-gov-west-1", "cn-north-1"),
        (None, "http://127.0.0.1:9", "https://vpce-1.bedrock-runtime.example.com"),
        (False, True),  # FIPS
        (False, True),  # dual stack
    )
)


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


async def open_client(
    stack: AsyncExitStack, region: str, url: str | None, fips: bool, dual: bool
) -> Any:
    config = AioConfig(use_fips_endpoint=fips, use_dualstack_endpoint=dual, signature_version="v4")
    return await stack.enter_async_context(
        AioSession().create_client(
            "bedrock-runtime",
            region_name=region,
            endpoint_url=url,
            aws_access_key_id="AKIDEXAMPLE",
            aws_secret_access_key="secret",
            config=config,
        )
    )


async def resolve(client: Any, operation_name: str) -> Any:
    operation = client.meta.service_model.operation_model(operation_name)
    context: dict[str, Any] = {"client_region": client.meta.region_name}
    try:
        answer = await client._resolve_endpoint_ruleset(operation, {"modelId": "m"}, context)
    except Exception as error:  # the error itself is what is compared
        return (type(error), str(error))
    return answer, context


@pytest.mark.parametrize(("region", "url", "fips", "dual"), SETUPS)
async def test_kept_endpoints_are_botocores(
    stack: AsyncExitStack, region: str, url: str | None, fips: bool, dual: bool
) -> None:
    shipped = await open_client(stack, region, url, fips, dual)
    kept = await open_client(stack, region, url, fips, dual)
    keep_resolved_endpoints(kept)
    for operation in OPERATIONS * 2:
        assert await resolve(kept, operation) == await resolve(shipped, operation)


async def test_the_endpoint_is_resolved_once_per_operation(stack: AsyncExitStack) -> None:
    client = await open_client(stack, "us-east-1", None, False, False)
    keep_resolved_endpoints(client)
    resolved: list[str] = []
    # Registered after the keeping was set up, so it sees every resolution botocore runs.
    client.meta.events.register(
        "before-endpoint-resolution.bedrock-runtime",
        lambda model, **_: resolved.append(model.name),
    )
    for _ in range(5):
        for operation in OPERATIONS:
            await resolve(client, operation)
    assert sorted(resolved) == sorted(OPERATIONS)


async def test_a_builtins_handler_turns_the_keeping_off(stack: AsyncExitStack) -> None:
    client = await open_client(stack, "us-east-1", None, False, False)
    seen: list[str] = []

    def toggle_fips(builtins: dict[str, Any], **_: Any) -> None:
        seen.append("called")
        builtins["AWS::UseFIPS"] = len(seen) % 2 == 0

    client.meta.events.register("before-endpoint-resolution.bedrock-runtime", toggle_fips)
    keep_resolved_endpoints(client)
    first, _ = await resolve(client, "Converse")
    second, _ = await resolve(client, "Converse")
    assert len(seen) == 2
    assert first[0] == "https://bedrock-runtime.us-east-1.amazonaws.com"
    assert second[0] == "https://bedrock-runtime-fips.us-east-1.amazonaws.com"
