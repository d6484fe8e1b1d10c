"""Real AWS identities end to end: esproxy, aiobotocore's own providers, and the emulator's STS.

Nothing here is mocked: the default chain reads real environment variables and files, roles are
assumed over HTTP against the emulator's STS port (via AWS_ENDPOINT_URL_STS), and every Bedrock
call is SigV4-verified by the emulator, temporary credentials with their session token.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from esproxy.app_keys import BACKING_STORE, CIPHER
from esproxy.bedrock_emulator import create_emulator_app, create_sts_app
from esproxy.sealed_records import open_record
from tests.integrations.amazonbedrock.identity_support import (
    BASE_KEY,
    BASE_SECRET,
    CROSS_ACCOUNT_ROLE,
    EXTERNAL_ID,
    ROLE,
    WEB_TOKEN,
    assume_directly,
    completion,
    identity_settings,
    infer,
    isolate_aws_environment,
    model_calls,
    put,
    sts_calls,
)
from tests.user_examples import JSON_HEADERS

KEYS = {"access_key": BASE_KEY, "secret_key": BASE_SECRET}


@pytest.fixture
async def emulator(aiohttp_server):
    return await aiohttp_server(create_emulator_app(identity_settings()))


@pytest.fixture
async def sts(aiohttp_server, emulator):
    return await aiohttp_server(create_sts_app(emulator.app))


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch, tmp_path, sts):
    isolate_aws_environment(monkeypatch, tmp_path, str(sts.make_url("")).rstrip("/"))


@pytest.fixture
async def ambient(start_proxy, settings_for):
    """esproxy with `[bedrock] credentials = "default"`, set through its environment variable."""
    return await start_proxy(settings_for(ESPROXY_BEDROCK_CREDENTIALS="default"))


async def stored_secrets(proxy, inference_id):
    app = proxy.server.app
    record = await app[BACKING_STORE].get(inference_id)
    return open_record(app[CIPHER], record)


async def test_default_chain_from_environment_variables(monkeypatch, ambient, emulator):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", BASE_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", BASE_SECRET)
    status, config = await put(ambient, "ambient", completion())
    assert status == 200, config
    assert "access_key" not in json.dumps(config)
    assert await stored_secrets(ambient, "ambient") == {}
    status, answer = await infer(ambient, "ambient")
    assert status == 200, answer
    calls = await model_calls(emulator)
    assert [(c["access_key"], c["signature_verified"]) for c in calls] == [(BASE_KEY, True)] * 2


async def test_default_chain_from_a_profile_in_a_shared_credentials_file(
    monkeypatch, tmp_path, ambient, emulator
):
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[default]\naws_access_key_id = AKIDNOTTHISONE\naws_secret_access_key = nope\n\n"
        f"[bedrock-team]\naws_access_key_id = {BASE_KEY}\naws_secret_access_key = {BASE_SECRET}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_PROFILE", "bedrock-team")
    status, config = await put(ambient, "profiled", completion())
    assert status == 200, config
    assert [c["access_key"] for c in await model_calls(emulator)] == [BASE_KEY]


async def test_default_chain_from_a_web_identity_token_file(
    monkeypatch, tmp_path, ambient, emulator, sts
):
    token = tmp_path / "token"
    token.write_text(WEB_TOKEN)
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
    monkeypatch.setenv("AWS_ROLE_ARN", ROLE)
    monkeypatch.setenv("AWS_ROLE_SESSION_NAME", "irsa-pod")
    status, config = await put(ambient, "irsa", completion())
    assert status == 200, config
    assert (await infer(ambient, "irsa"))[0] == 200
    keys = {c["access_key"] for c in await model_calls(emulator)}
    assert len(keys) == 1 and keys.pop().startswith("ASIA")
    exchanges = await sts_calls(sts)
    assert [c["operation"] for c in exchanges] == ["AssumeRoleWithWebIdentity"]
    assert exchanges[0]["body"]["RoleArn"] == ROLE
    assert "WebIdentityToken" not in exchanges[0]["body"]


async def test_no_identity_anywhere_is_a_clear_400_and_nothing_is_stored(ambient):
    status, answer = await put(ambient, "nobody", completion())
    assert status == 400
    assert "No AWS credentials were found in the default credential chain" in json.dumps(answer)
    assert (await ambient.get("/_inference/nobody")).status == 404


async def test_role_assumed_with_the_endpoint_keys(proxy, emulator, sts):
    body = completion(**KEYS, role_arn=ROLE, role_session_name="bedrock-prod")
    status, config = await put(proxy, "role", body)
    assert status == 200, config
    assert config["service_settings"]["role_arn"] == ROLE
    assert config["service_settings"]["role_session_name"] == "bedrock-prod"
    shown = await (await proxy.get("/_inference/role")).text()
    assert ROLE in shown and BASE_KEY not in shown and BASE_SECRET not in shown
    for _ in range(3):
        assert (await infer(proxy, "role"))[0] == 200
    keys = [c["access_key"] for c in await model_calls(emulator)]
    assert len(set(keys)) == 1 and keys[0].startswith("ASIA") and len(keys) == 4
    exchanges = await sts_calls(sts)
    # Once for the probe; later calls use the cached credentials.
    assert [(c["operation"], c["access_key"]) for c in exchanges] == [("AssumeRole", BASE_KEY)]
    assert exchanges[0]["body"]["RoleSessionName"] == "bedrock-prod"
    assert exchanges[0]["signature_verified"]


async def test_cross_account_role_with_an_external_id_through_the_ambient_identity(
    monkeypatch, ambient, emulator, sts
):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", BASE_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", BASE_SECRET)
    body = completion(role_arn=CROSS_ACCOUNT_ROLE, external_id=EXTERNAL_ID)
    status, config = await put(ambient, "cross", body)
    assert status == 200, config
    assert await stored_secrets(ambient, "cross") == {}
    exchange = (await sts_calls(sts))[0]
    assert exchange["body"]["ExternalId"] == EXTERNAL_ID
    assert exchange["access_key"] == BASE_KEY
    assert (await model_calls(emulator))[0]["access_key"].startswith("ASIA")


@pytest.mark.parametrize(
    ("role", "external_id"),
    [
        pytest.param(CROSS_ACCOUNT_ROLE, "not-the-id", id="wrong external id"),
        pytest.param(CROSS_ACCOUNT_ROLE, None, id="missing external id"),
        pytest.param("arn:aws:iam::123456789012:role/does-not-exist", None, id="missing role"),
    ],
)
async def test_a_role_that_cannot_be_assumed_is_a_400_naming_the_sts_code(
    proxy, emulator, role, external_id
):
    extra = {"external_id": external_id} if external_id else {}
    status, answer = await put(proxy, "untrusted", completion(**KEYS, role_arn=role, **extra))
    assert status == 400
    reason = answer["error"]["reason"]
    assert f"Could not get AWS credentials for role [{role}]: STS answered [AccessDenied]" in (
        reason
    )
    assert answer["error"]["caused_by"]["type"] == "access_denied"
    assert BASE_SECRET not in json.dumps(answer)
    assert (await proxy.get("/_inference/untrusted")).status == 404
    assert await model_calls(emulator) == []


async def test_endpoint_mode_keeps_requiring_keys_with_es_texts(proxy):
    status, answer = await put(proxy, "keyless", completion(role_arn=ROLE))
    assert status == 400
    assert answer["error"]["reason"] == (
        "Validation Failed: 1: [secret_settings] does not contain the required setting "
        "[access_key];2: [secret_settings] does not contain the required setting [secret_key];"
    )


async def test_default_mode_wants_both_keys_or_none(ambient):
    status, answer = await put(ambient, "half", completion(access_key=BASE_KEY))
    assert status == 400
    assert (
        "[secret_settings] does not contain the required setting [secret_key]"
        in (answer["error"]["reason"])
    )


async def test_session_token_beside_the_keys_is_used_and_never_shown(proxy, emulator, sts):
    granted = await assume_directly(sts)
    body = completion(
        access_key=granted["AccessKeyId"],
        secret_key=granted["SecretAccessKey"],
        session_token=granted["SessionToken"],
    )
    status, config = await put(proxy, "token", body)
    assert status == 200, config
    assert (await infer(proxy, "token"))[0] == 200
    shown = await (await proxy.get("/_inference/token")).text()
    assert granted["SessionToken"] not in shown and "session_token" not in shown
    assert await stored_secrets(proxy, "token") == {
        "access_key": granted["AccessKeyId"],
        "secret_key": granted["SecretAccessKey"],
        "session_token": granted["SessionToken"],
    }
    calls = await model_calls(emulator)
    assert {(c["access_key"], c["signature_verified"]) for c in calls} == {
        (granted["AccessKeyId"], True)
    }


async def test_a_session_token_alone_does_not_rotate(proxy, sts):
    granted = await assume_directly(sts)
    body = completion(
        access_key=granted["AccessKeyId"],
        secret_key=granted["SecretAccessKey"],
        session_token=granted["SessionToken"],
    )
    assert (await put(proxy, "token", body))[0] == 200
    response = await proxy.put(
        "/_inference/token/_update",
        data=json.dumps({"service_settings": {"session_token": "new"}}),
        headers=JSON_HEADERS,
    )
    assert response.status == 400
    assert "does not contain the required setting [access_key]" in await response.text()


async def test_an_expired_session_token_says_to_rotate_it_and_is_not_retried(
    aiohttp_server, monkeypatch, tmp_path, start_proxy, settings_for
):
    short = await aiohttp_server(create_emulator_app(identity_settings(credential_lifetime_s=2)))
    short_sts = await aiohttp_server(create_sts_app(short.app))
    isolate_aws_environment(monkeypatch, tmp_path, str(short_sts.make_url("")).rstrip("/"))
    proxy = await start_proxy(
        settings_for(ESPROXY_BEDROCK_ENDPOINT_URL=str(short.make_url("")).rstrip("/"))
    )
    granted = await assume_directly(short_sts)
    body = completion(
        access_key=granted["AccessKeyId"],
        secret_key=granted["SecretAccessKey"],
        session_token=granted["SessionToken"],
    )
    assert (await put(proxy, "stale", body))[0] == 200
    await asyncio.sleep(2.2)
    status, answer = await infer(proxy, "stale")
    assert status == 403
    reason = answer["error"]["reason"]
    assert "The security token included in the request is expired" in reason
    assert "rotate its [access_key], [secret_key] and [session_token]" in reason
    assert "PUT _inference/stale/_update" in reason
    assert answer["error"]["caused_by"]["type"] == "expired_token_exception"
    calls = await model_calls(short)
    assert len(calls) == 2  # the probe, then one refused call: no retry storm
    fresh = await assume_directly(short_sts)
    rotation = {
        "service_settings": {
            "access_key": fresh["AccessKeyId"],
            "secret_key": fresh["SecretAccessKey"],
            "session_token": fresh["SessionToken"],
        }
    }
    response = await proxy.put(
        "/_inference/stale/_update", data=json.dumps(rotation), headers=JSON_HEADERS
    )
    assert response.status == 200, await response.text()
    assert "session_token" not in await response.text()
    assert (await infer(proxy, "stale"))[0] == 200
    assert (await model_calls(short))[-1]["access_key"] == fresh["AccessKeyId"]


async def test_a_keyless_endpoint_refuses_calls_once_default_credentials_are_off(
    monkeypatch, tmp_path, start_proxy, settings_for, emulator
):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", BASE_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", BASE_SECRET)
    data_dir = tmp_path / "shared-data"
    first = await start_proxy(settings_for(data_dir, ESPROXY_BEDROCK_CREDENTIALS="default"))
    assert (await put(first, "ambient", completion()))[0] == 200
    await first.close()
    second = await start_proxy(settings_for(data_dir))
    status, answer = await infer(second, "ambient")
    assert status == 400
    assert '[bedrock] credentials = "default"' in answer["error"]["reason"]
    assert len(await model_calls(emulator)) == 1  # only the first instance's probe


async def test_a_refused_role_is_not_asked_again_at_once(proxy, sts):
    body = completion(**KEYS, role_arn=CROSS_ACCOUNT_ROLE, external_id="not-the-id")
    answers = [await put(proxy, f"untrusted-{n}", body) for n in range(5)]
    assert {status for status, _ in answers} == {400}
    assert len({answer["error"]["reason"] for _, answer in answers}) == 1
    assert len(await sts_calls(sts)) == 1  # a broken role makes no storm against STS


async def test_update_changes_the_role_under_a_probe(proxy, emulator, sts):
    assert (await put(proxy, "moving", completion(**KEYS)))[0] == 200

    async def update(service):
        response = await proxy.put(
            "/_inference/moving/_update",
            data=json.dumps({"service_settings": service}),
            headers=JSON_HEADERS,
        )
        return response.status, await response.json()

    status, answer = await update({"role_arn": CROSS_ACCOUNT_ROLE, "external_id": "wrong"})
    assert status == 400 and "STS answered [AccessDenied]" in answer["error"]["reason"]
    shown = await (await proxy.get("/_inference/moving")).json()
    assert "role_arn" not in shown["endpoints"][0]["service_settings"]
    status, config = await update({"role_arn": CROSS_ACCOUNT_ROLE, "external_id": EXTERNAL_ID})
    assert status == 200, config
    assert config["service_settings"]["role_arn"] == CROSS_ACCOUNT_ROLE
    assert config["service_settings"]["external_id"] == EXTERNAL_ID
    assert (await infer(proxy, "moving"))[0] == 200
    assert (await model_calls(emulator))[-1]["access_key"].startswith("ASIA")
    status, answer = await update({"role_session_name": "x"})
    assert status == 400 and "[role_session_name]" in answer["error"]["reason"]
