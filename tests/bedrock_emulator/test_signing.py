"""SigV4 verification against configured keys, with real (and deliberately wrong) credentials."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import botocore
import pytest

from esproxy.bedrock_emulator import EmulatorSettings
from esproxy.bedrock_emulator.signing import clock_problem
from tests.bedrock_emulator.harness import ACCESS_KEY, CLAUDE, SECRET_KEY, TITAN_V2, recorded, user


@pytest.fixture
async def keyed(start_emulator):
    return await start_emulator(keys={ACCESS_KEY: SECRET_KEY, "AKIDOTHER": "other-secret"})


async def call(client):
    return await client.converse(modelId=CLAUDE, messages=user("signed"))


def error_of(caught):
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


async def test_right_keys_pass_and_are_recorded_as_verified(keyed, make_client):
    await call(await make_client(keyed))
    await call(await make_client(keyed, "AKIDOTHER", "other-secret"))
    client = await make_client(keyed)
    await client.invoke_model(
        modelId=TITAN_V2, body=json.dumps({"inputText": "x"}), contentType="application/json"
    )
    entries = [(r["access_key"], r["signature_verified"]) for r in await recorded(keyed)]
    assert entries == [(ACCESS_KEY, True), ("AKIDOTHER", True), (ACCESS_KEY, True)]


async def test_session_token_is_signed_and_accepted(keyed, make_client):
    client = await make_client(keyed, aws_session_token="token-123")
    await call(client)
    assert (await recorded(keyed))[0]["signature_verified"] is True


async def test_wrong_secret_is_a_signature_mismatch(keyed, make_client):
    client = await make_client(keyed, ACCESS_KEY, "not-the-secret")
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        await call(client)
    assert error_of(caught) == ("InvalidSignatureException", 403)
    message = caught.value.response["Error"]["Message"]
    assert message.startswith("The request signature we calculated does not match")
    assert "/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse" in message
    assert (await recorded(keyed))[0]["signature_verified"] is False


async def test_unknown_access_key_is_unrecognized(keyed, make_client):
    client = await make_client(keyed, "AKIDNOBODY", SECRET_KEY)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        await call(client)
    assert error_of(caught) == ("UnrecognizedClientException", 403)
    assert caught.value.response["Error"]["Message"] == (
        "The security token included in the request is invalid."
    )


async def test_unsigned_call_is_missing_a_token(keyed, make_client):
    client = await make_client(keyed, config={"signature_version": botocore.UNSIGNED})
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        await call(client)
    assert error_of(caught) == ("MissingAuthenticationTokenException", 403)


async def test_without_keys_any_credentials_pass(emulator, make_client):
    await call(await make_client(emulator, "AKIDANY", "whatever"))
    await call(await make_client(emulator, config={"signature_version": botocore.UNSIGNED}))
    entries = [(r["access_key"], r["signature_verified"]) for r in await recorded(emulator)]
    assert entries == [("AKIDANY", True), (None, False)]


async def test_secrets_never_reach_the_request_log(keyed, make_client):
    await call(await make_client(keyed))
    with pytest.raises(botocore.exceptions.ClientError):
        await call(await make_client(keyed, ACCESS_KEY, "leaky-wrong-secret"))
    dumped = json.dumps(await recorded(keyed))
    assert SECRET_KEY not in dumped
    assert "leaky-wrong-secret" not in dumped


def test_settings_repr_hides_keys():
    assert SECRET_KEY not in repr(EmulatorSettings(keys={ACCESS_KEY: SECRET_KEY}))


@pytest.mark.parametrize(
    ("offset", "start"),
    [(-timedelta(minutes=6), "Signature expired: "), (timedelta(minutes=6), "Signature not yet")],
)
def test_clock_skew_beyond_five_minutes_is_refused(offset, start):
    problem = clock_problem(datetime.now(UTC) + offset, 300)
    assert problem is not None
    assert (problem.code, problem.status) == ("InvalidSignatureException", 403)
    assert problem.message.startswith(start)
    assert problem.message.endswith(" 5 min.)")
    assert clock_problem(datetime.now(UTC) - timedelta(minutes=4), 300) is None


async def test_bedrock_api_key_bearer_auth(emulator, keyed, make_client, monkeypatch):
    # botocore switches to `Authorization: Bearer` when this variable is set.
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "bedrock-api-key")
    await call(await make_client(emulator))
    assert [(r["access_key"], r["signature_verified"]) for r in await recorded(emulator)] == [
        (None, False)
    ]
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        await call(await make_client(keyed))
    assert error_of(caught) == ("UnrecognizedClientException", 403)
