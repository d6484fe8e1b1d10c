"""The emulator's STS, driven by aiobotocore's real STS and Bedrock clients over sockets."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import pytest
from aiobotocore.config import AioConfig
from botocore import UNSIGNED
from botocore.exceptions import ClientError

from esproxy.bedrock_emulator import create_sts_app
from tests.bedrock_emulator.harness import ACCESS_KEY, CLAUDE, SECRET_KEY, control, user

ROLE = "arn:aws:iam::123456789012:role/bedrock-caller"
CROSS = "arn:aws:iam::210987654321:role/models"
TOKEN = "web-identity-token-123"
ONE_TRY = AioConfig(retries={"total_max_attempts": 1})


@pytest.fixture
async def emulator(start_emulator):
    return await start_emulator(
        keys={ACCESS_KEY: SECRET_KEY},
        roles={ROLE: None, CROSS: "ext-1"},
        web_identity_token=TOKEN,
        credential_lifetime_s=2,
    )


@pytest.fixture
async def sts_server(aiohttp_server, emulator):
    return await aiohttp_server(create_sts_app(emulator.app))


@pytest.fixture
def client_for(aio_session):
    @asynccontextmanager
    async def open_client(service, server, *, keys=(ACCESS_KEY, SECRET_KEY, None), config=ONE_TRY):
        access, secret, token = keys
        async with aio_session.create_client(
            service,
            region_name="us-east-1",
            endpoint_url=str(server.make_url("")).rstrip("/"),
            aws_access_key_id=access,
            aws_secret_access_key=secret,
            aws_session_token=token,
            config=config,
        ) as client:
            yield client

    return open_client


def keys_of(answer):
    granted = answer["Credentials"]
    return granted["AccessKeyId"], granted["SecretAccessKey"], granted["SessionToken"]


def code_of(caught):
    error = caught.value.response
    return error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]


async def test_assume_role_issues_temporary_credentials_that_bedrock_accepts(
    client_for, emulator, sts_server
):
    async with client_for("sts", sts_server) as sts:
        answer = await sts.assume_role(RoleArn=ROLE, RoleSessionName="probe")
    access, _, token = keys_of(answer)
    assert access.startswith("ASIA") and len(access) == 20 and token
    assert answer["AssumedRoleUser"]["Arn"] == (
        "arn:aws:sts::123456789012:assumed-role/bedrock-caller/probe"
    )
    async with client_for("bedrock-runtime", emulator, keys=keys_of(answer)) as bedrock:
        await bedrock.converse(modelId=CLAUDE, messages=user("hi"))
    _, log = await control(emulator, "GET", "/_emulator/requests")
    assert [(r["access_key"], r["signature_verified"]) for r in log["requests"]] == [(access, True)]
    _, sts_log = await control(emulator, "GET", "/_emulator/sts-requests")
    assert [(r["operation"], r["access_key"]) for r in sts_log["requests"]] == [
        ("AssumeRole", ACCESS_KEY)
    ]


async def test_sts_also_answers_on_the_bedrock_port(client_for, emulator):
    async with client_for("sts", emulator) as sts:
        identity = await sts.get_caller_identity()
    assert identity["Account"] == "123456789012"


async def test_get_caller_identity_names_the_assumed_role(client_for, sts_server):
    async with client_for("sts", sts_server) as sts:
        answer = await sts.assume_role(RoleArn=CROSS, RoleSessionName="x-acct", ExternalId="ext-1")
    async with client_for("sts", sts_server, keys=keys_of(answer)) as sts:
        identity = await sts.get_caller_identity()
    assert identity["Arn"] == "arn:aws:sts::210987654321:assumed-role/models/x-acct"
    assert identity["Account"] == "210987654321"


@pytest.mark.parametrize(
    ("role", "external_id"),
    [(CROSS, "wrong"), (CROSS, None), ("arn:aws:iam::123456789012:role/nope", None)],
)
async def test_untrusted_assume_role_is_access_denied(client_for, sts_server, role, external_id):
    extra = {"ExternalId": external_id} if external_id else {}
    async with client_for("sts", sts_server) as sts:
        with pytest.raises(ClientError) as caught:
            await sts.assume_role(RoleArn=role, RoleSessionName="s1", **extra)
    assert code_of(caught) == ("AccessDenied", 403)
    assert f"sts:AssumeRole on resource: {role}" in str(caught.value)


@pytest.mark.parametrize(
    ("keys", "code"),
    [
        (("AKIDUNKNOWN", "x", None), ("InvalidClientTokenId", 403)),
        ((ACCESS_KEY, "wrong-secret", None), ("SignatureDoesNotMatch", 403)),
    ],
)
async def test_sts_verifies_sigv4(client_for, sts_server, keys, code):
    async with client_for("sts", sts_server, keys=keys) as sts:
        with pytest.raises(ClientError) as caught:
            await sts.get_caller_identity()
    assert code_of(caught) == code


async def test_a_session_token_must_match_its_key(client_for, emulator, sts_server):
    async with client_for("sts", sts_server) as sts:
        access, secret, _ = keys_of(await sts.assume_role(RoleArn=ROLE, RoleSessionName="s1"))
    async with client_for("bedrock-runtime", emulator, keys=(access, secret, "forged")) as bedrock:
        with pytest.raises(ClientError) as caught:
            await bedrock.converse(modelId=CLAUDE, messages=user("hi"))
    assert code_of(caught) == ("UnrecognizedClientException", 403)


async def test_expired_credentials_get_expired_token_errors(client_for, emulator, sts_server):
    async with client_for("sts", sts_server) as sts:
        keys = keys_of(await sts.assume_role(RoleArn=ROLE, RoleSessionName="s1"))
    await asyncio.sleep(2.1)
    async with client_for("bedrock-runtime", emulator, keys=keys) as bedrock:
        with pytest.raises(ClientError) as caught:
            await bedrock.converse(modelId=CLAUDE, messages=user("hi"))
    assert code_of(caught) == ("ExpiredTokenException", 403)
    assert "The security token included in the request is expired" in str(caught.value)
    async with client_for("sts", sts_server, keys=keys) as sts:
        with pytest.raises(ClientError) as caught:
            await sts.get_caller_identity()
    assert code_of(caught) == ("ExpiredToken", 400)


async def test_web_identity_takes_only_the_configured_token(client_for, sts_server):
    unsigned = AioConfig(signature_version=UNSIGNED, retries={"total_max_attempts": 1})
    async with client_for("sts", sts_server, config=unsigned) as sts:
        answer = await sts.assume_role_with_web_identity(
            RoleArn=ROLE, RoleSessionName="pod", WebIdentityToken=TOKEN
        )
        assert keys_of(answer)[0].startswith("ASIA")
        with pytest.raises(ClientError) as caught:
            await sts.assume_role_with_web_identity(
                RoleArn=ROLE, RoleSessionName="pod", WebIdentityToken="stolen"
            )
    assert code_of(caught) == ("InvalidIdentityToken", 400)


async def test_session_names_are_validated_as_sts_does(client_for, sts_server):
    async with client_for("sts", sts_server) as sts:
        with pytest.raises(ClientError) as caught:
            await sts.assume_role(RoleArn=ROLE, RoleSessionName="has space")
    assert code_of(caught) == ("ValidationError", 400)
