"""Shared pieces of the identity tests: emulator identities, a clean AWS environment, bodies."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiobotocore.session import AioSession
from aiohttp.test_utils import TestClient, TestServer

from esproxy.bedrock_emulator import EmulatorSettings
from tests.user_examples import JSON_HEADERS

BASE_KEY, BASE_SECRET = "AKIDIDENTITYBASE", "bAsE/SeCrEt+identity"
ROLE = "arn:aws:iam::123456789012:role/bedrock-caller"
CROSS_ACCOUNT_ROLE = "arn:aws:iam::210987654321:role/models-in-b"
EXTERNAL_ID = "ext-7f3a9c"
WEB_TOKEN = "eyJhbGciOiJSUzI1NiJ9.emulated-service-account-token.sig"
PATH = "/_inference/completion/{}"


def identity_settings(**overrides: Any) -> EmulatorSettings:
    options: dict[str, Any] = {
        "keys": {BASE_KEY: BASE_SECRET},
        "roles": {ROLE: None, CROSS_ACCOUNT_ROLE: EXTERNAL_ID},
        "web_identity_token": WEB_TOKEN,
        **overrides,
    }
    return EmulatorSettings(**options)


def isolate_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sts_url: str) -> None:
    """No identity from the machine running the tests, no instance metadata, STS on the emulator."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_SESSION_NAME",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_BEARER_TOKEN_BEDROCK",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", sts_url)


def completion(**service: Any) -> dict[str, Any]:
    settings = {
        "region": "us-east-1",
        "provider": "anthropic",
        "model": "anthropic.claude-3-haiku-20240307-v1:0",
        **service,
    }
    return {"service": "amazonbedrock", "service_settings": settings}


async def put(proxy: TestClient, inference_id: str, body: Mapping[str, Any]) -> Any:
    response = await proxy.put(
        PATH.format(inference_id), data=json.dumps(body), headers=JSON_HEADERS
    )
    return response.status, await response.json()


async def infer(proxy: TestClient, inference_id: str, text: str = "hello") -> Any:
    response = await proxy.post(
        PATH.format(inference_id), data=json.dumps({"input": text}), headers=JSON_HEADERS
    )
    return response.status, await response.json()


async def control(server: TestServer, path: str) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.make_url(path)) as response,
    ):
        body: dict[str, Any] = await response.json()
        return list(body["requests"])


async def model_calls(server: TestServer) -> list[dict[str, Any]]:
    return await control(server, "/_emulator/requests")


async def sts_calls(server: TestServer) -> list[dict[str, Any]]:
    return await control(server, "/_emulator/sts-requests")


async def assume_directly(sts: TestServer, role: str = ROLE) -> dict[str, str]:
    """Temporary credentials fetched the way a user would, with aiobotocore's STS client."""
    async with AioSession().create_client(
        "sts",
        region_name="us-east-1",
        endpoint_url=str(sts.make_url("")).rstrip("/"),
        aws_access_key_id=BASE_KEY,
        aws_secret_access_key=BASE_SECRET,
    ) as client:
        answer = await client.assume_role(RoleArn=role, RoleSessionName="handed-out")
    granted: dict[str, str] = answer["Credentials"]
    return granted
