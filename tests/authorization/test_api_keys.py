"""`[auth] mode = "api_keys"`: keys stored as SHA-256 digests, sent as `Authorization: ApiKey`."""

from __future__ import annotations

import logging

import pytest

from esproxy.authorization import api_keys
from esproxy.authorization.api_keys import ApiKeyAuthorizer, generate_api_key, hash_api_key
from esproxy.settings import SettingsError, load_settings

KEY = generate_api_key()
OTHER_KEY = generate_api_key()


def unauthenticated(reason):
    cause = {
        "type": "security_exception",
        "reason": reason,
        "header": {"WWW-Authenticate": ["ApiKey"]},
    }
    return {"error": {"root_cause": [cause], **cause}, "status": 401}


@pytest.fixture
async def proxy(start_proxy, settings_for):
    digests = f"{hash_api_key(OTHER_KEY)},{hash_api_key(KEY)}"
    return await start_proxy(settings_for(ESPROXY_AUTH_API_KEYS=digests))


async def test_the_right_key_is_served(proxy):
    response = await proxy.get("/_inference", headers={"Authorization": f"ApiKey {KEY}"})
    assert response.status == 200
    lower = await proxy.get("/_inference", headers={"Authorization": f"apikey {OTHER_KEY}"})
    assert lower.status == 200


async def test_missing_credentials_are_401_with_an_apikey_challenge(proxy):
    response = await proxy.get("/_inference/completion/x?pretty=false")
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == "ApiKey"
    reason = (
        "missing authentication credentials for REST request "
        "[/_inference/completion/x?pretty=false]"
    )
    assert await response.json() == unauthenticated(reason)


@pytest.mark.parametrize(
    "authorization",
    [f"ApiKey {KEY}x", "ApiKey ", f"Bearer {KEY}", "Basic ZWxhc3RpYzpjaGFuZ2VtZQ==", KEY],
)
async def test_wrong_keys_and_schemes_are_401(proxy, authorization):
    response = await proxy.put("/_inference/completion/x", headers={"Authorization": authorization})
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == "ApiKey"
    assert await response.json() == unauthenticated(
        "unable to authenticate with provided credentials and anonymous access is not allowed "
        "for this request"
    )


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("PATCH", "/_inference/x", 405), ("GET", "/_inference/a/b/c/d", 400)],
)
async def test_requests_no_route_takes_are_answered_before_authentication(
    proxy, method, path, status
):
    assert (await proxy.request(method, path)).status == status


async def test_forwarding_and_health_need_no_key(proxy):
    assert (await proxy.get("/_esproxy/health")).status == 200
    assert (await proxy.get("/")).status == 200  # no upstream: esproxy's own root answer


async def test_every_digest_is_compared_in_constant_time(monkeypatch):
    compared = []

    def spy(a, b):
        compared.append((a, b))
        return a == b

    monkeypatch.setattr(api_keys.hmac, "compare_digest", spy)
    authorizer = ApiKeyAuthorizer([hash_api_key(KEY), hash_api_key(OTHER_KEY)])
    assert authorizer.accepts(KEY)
    assert len(compared) == 2  # no early exit on the first match
    assert not authorizer.accepts("nope")
    assert len(compared) == 4


def test_only_digests_are_stored_and_none_is_shown():
    settings = load_settings(environ={"ESPROXY_AUTH_API_KEYS": hash_api_key(KEY).upper()})
    assert settings.auth.api_keys == (hash_api_key(KEY),)
    assert KEY not in repr(settings) and hash_api_key(KEY) not in repr(settings)
    assert "key digests" in repr(ApiKeyAuthorizer(settings.auth.api_keys))


def test_a_key_pasted_in_place_of_its_digest_is_refused_without_echoing_it():
    with pytest.raises(SettingsError) as raised:
        load_settings(environ={"ESPROXY_AUTH_API_KEYS": KEY})
    assert KEY not in str(raised.value)
    assert "SHA-256 hex digest" in str(raised.value)


def test_hash_api_key_is_sha256_hex():
    assert hash_api_key("abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    assert len(generate_api_key()) >= 43  # 32 random bytes, base64url


async def test_keys_never_reach_the_logs(proxy, caplog):
    with caplog.at_level(logging.DEBUG):
        await proxy.get("/_inference", headers={"Authorization": f"ApiKey {KEY}"})
        await proxy.get("/_inference", headers={"Authorization": f"ApiKey {KEY}x"})
    assert KEY not in caplog.text
