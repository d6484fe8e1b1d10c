"""Who needs what, how callers are named in denials, and esproxy's own API keys, without servers.

test_api_keys.py and test_cluster_checks.py show the same over real sockets; these check every
text and rule exactly, fast enough for mutation testing.
"""

from __future__ import annotations

import hashlib
import re

import pytest

from esproxy.authorization import privileges
from esproxy.authorization.api_keys import (
    ApiKeyAuthorizer,
    digest_of,
    generate_api_key,
    hash_api_key,
    key_bits,
    presented_key,
    weak_key_reason,
)
from esproxy.authorization.decisions import ALLOWED, Decision, DecisionCache
from esproxy.authorization.privileges import (
    Credentials,
    describe_subject,
    missing_credentials,
    unauthorized,
)
from esproxy.errors import AuthenticationFailed
from tests.fake_clock import Clock

MONITOR = "[monitor_inference,manage_inference,monitor,manage,all]"
MANAGE = "[manage_inference,manage,all]"


@pytest.mark.parametrize(
    ("privilege", "name", "action", "granted_by"),
    [
        ("GET_ENDPOINTS", "monitor_inference", "cluster:monitor/xpack/inference/get", MONITOR),
        (
            "GET_SERVICES",
            "monitor_inference",
            "cluster:monitor/xpack/inference/services/get",
            MONITOR,
        ),
        ("INFER", "monitor_inference", "cluster:monitor/xpack/inference", MONITOR),
        ("PUT_ENDPOINT", "manage_inference", "cluster:admin/xpack/inference/put", MANAGE),
        ("UPDATE_ENDPOINT", "manage_inference", "cluster:admin/xpack/inference/update", MANAGE),
        ("DELETE_ENDPOINT", "manage_inference", "cluster:admin/xpack/inference/delete", MANAGE),
        (
            "CLEAR_EMBEDDING_CACHE",
            "manage_inference",
            "cluster:admin/esproxy/embedding_cache/clear",
            MANAGE,
        ),
    ],
)
def test_each_action_needs_elasticsearchs_privilege_and_is_denied_in_its_words(
    privilege, name, action, granted_by
):
    found = getattr(privileges, privilege)
    assert (found.name, found.action) == (name, action)
    assert unauthorized(found, "user [x]") == (
        f"action [{action}] is unauthorized for user [x], this action is granted by the cluster "
        f"privileges {granted_by}"
    )


@pytest.mark.parametrize(
    ("authenticated", "subject"),
    [
        (None, "user [fallback]"),
        ({}, "user [fallback]"),
        ({"username": "al", "roles": ["b", "a", 3]}, "user [al] with effective roles [3,a,b]"),
        ({"username": "alice", "roles": []}, "user [alice] with effective roles []"),
        ({"username": "alice", "roles": "admin"}, "user [alice] with effective roles []"),
        ({"roles": ["r"]}, "user [fallback] with effective roles [r]"),
        (
            {"username": "svc", "authentication_type": "api_key", "api_key": {"id": "k1"}},
            "API key id [k1] of user [svc]",
        ),
        (
            {"username": "svc", "authentication_type": "api_key", "api_key": "k1", "roles": []},
            "user [svc] with effective roles []",
        ),
        (
            {"username": "svc", "authentication_type": "realm", "api_key": {"id": "k1"}},
            "user [svc] with effective roles []",
        ),
        (
            {"username": "elastic/fleet", "authentication_realm": {"type": "_service_account"}},
            "service account [elastic/fleet]",
        ),
        (
            {"username": "u", "authentication_realm": {"type": "native"}, "roles": ["r"]},
            "user [u] with effective roles [r]",
        ),
        (
            {"username": "u", "authentication_realm": "_service_account", "roles": ["r"]},
            "user [u] with effective roles [r]",
        ),
    ],
)  # fmt: skip
def test_callers_are_named_as_elasticsearch_names_them(authenticated, subject):
    assert describe_subject(authenticated, "fallback") == subject


def test_missing_credentials_quote_the_request_and_challenge():
    error = missing_credentials("/_inference?x=1", ("ApiKey", "Basic"))
    assert isinstance(error, AuthenticationFailed)
    assert error.status == 401 and error.error_type == "security_exception"
    assert error.reason == "missing authentication credentials for REST request [/_inference?x=1]"
    assert error.headers == {"WWW-Authenticate": "ApiKey, Basic"}


# --- esproxy's own API keys --------------------------------------------------------------------

KEY = generate_api_key()
OTHER = generate_api_key()
UNABLE = {
    "error": {
        "root_cause": [
            {
                "type": "security_exception",
                "reason": "unable to authenticate with provided credentials and anonymous "
                "access is not allowed for this request",
                "header": {"WWW-Authenticate": ["ApiKey"]},
            }
        ],
        "type": "security_exception",
        "reason": "unable to authenticate with provided credentials and anonymous access is "
        "not allowed for this request",
        "header": {"WWW-Authenticate": ["ApiKey"]},
    },
    "status": 401,
}


def test_generated_keys_are_32_random_bytes_of_url_safe_base64():
    keys = {generate_api_key() for _ in range(5)}
    assert len(keys) == 5
    for key in keys:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", key)
        assert weak_key_reason(key) is None


def test_a_digest_is_the_sha256_of_the_keys_utf8_bytes():
    assert hash_api_key("clé") == hashlib.sha256("clé".encode()).hexdigest()
    # Undecodable header bytes reach esproxy as surrogates; they hash as the bytes sent.
    assert digest_of("k\udcff") == hashlib.sha256(b"k\xff").digest()


@pytest.mark.parametrize(
    ("key", "bits"),
    [
        ("", 0),
        ("===", 0),
        ("abcdef", 24),  # hex: 4 bits a character
        ("ABCDEF09", 32),
        ("abcdefg", 42),  # one non-hex character: 6 bits each
        ("abc==", 12),
        ("xyz==", 18),
        ("a=b", 18),  # only trailing padding is dropped
        ("0" * 32, 128),
        ("abcX", 24),
        ("0123456789abcdefABCDEF", 88),  # every hex character
    ],
)
def test_a_keys_entropy_is_bounded_by_its_length(key, bits):
    assert key_bits(key) == bits


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (
            "0123456789abcdef0123456789abcde",
            "the key holds at most 124 bits of entropy by its length, under the 128 bits an API "
            "key needs (at least 32 hex or 22 base64 characters of random data); make one with "
            "`esproxy generate-api-key`",
        ),
        (
            "abcdefgh" + "a" * 14,  # 22 base64 characters, 8 distinct
            None,
        ),
        (
            "abcdefg" + "a" * 15,  # 7 distinct characters
            "the key repeats a few characters, so it is not random; make one with "
            "`esproxy generate-api-key`",
        ),
        ("0123456789abcdef0123456789abcdef", None),
        ("abcdefghij0123456789z", "the key holds at most 126 bits"),
    ],
)
def test_weak_keys_are_refused_with_a_reason(key, reason):
    found = weak_key_reason(key)
    if reason is None:
        assert found is None
    else:
        assert found is not None and found.startswith(reason)


@pytest.mark.parametrize(
    ("authorization", "key"),
    [
        (None, None),
        ("ApiKey abc", "abc"),
        ("apikey abc", "abc"),
        ("APIKEY   abc  ", "abc"),
        ("  ApiKey abc", "abc"),
        ("ApiKey", None),
        ("ApiKey    ", None),
        ("Bearer abc", None),
        ("ApiKeyabc", None),
        ("ApiKey a b", "a b"),
    ],
)
def test_the_key_is_read_from_an_apikey_authorization(authorization, key):
    assert presented_key(authorization) == key


async def test_a_listed_key_is_let_through():
    authorizer = ApiKeyAuthorizer([hash_api_key(OTHER), hash_api_key(KEY)])
    for key in (KEY, OTHER):
        assert await authorizer.authorize(
            Credentials(f"ApiKey {key}"), privileges.PUT_ENDPOINT, "/_inference/x"
        ) is None  # fmt: skip
    assert authorizer.accepts(KEY) and not authorizer.accepts(KEY[:-1])


async def test_no_credentials_is_a_401_quoting_the_request():
    authorizer = ApiKeyAuthorizer([hash_api_key(KEY)])
    with pytest.raises(AuthenticationFailed) as raised:
        await authorizer.authorize(Credentials(), privileges.INFER, "/_inference/x?pretty")
    assert raised.value.reason == (
        "missing authentication credentials for REST request [/_inference/x?pretty]"
    )
    assert raised.value.challenges == ("ApiKey",)


@pytest.mark.parametrize(
    "authorization", ["", f"ApiKey {KEY}x", "ApiKey ", f"Bearer {KEY}", KEY, f"ApiKey {OTHER}"]
)
async def test_any_other_credentials_are_a_401(authorization):
    authorizer = ApiKeyAuthorizer([hash_api_key(KEY)])
    with pytest.raises(AuthenticationFailed) as raised:
        await authorizer.authorize(Credentials(authorization), privileges.INFER, "/_inference")
    assert (raised.value.status, raised.value.to_body()) == (401, UNABLE)
    assert raised.value.headers == {"WWW-Authenticate": "ApiKey"}


def test_an_authorizer_needs_a_digest_and_shows_none():
    with pytest.raises(ValueError, match=r"^api_keys mode needs at least one key digest$"):
        ApiKeyAuthorizer([])
    authorizer = ApiKeyAuthorizer([hash_api_key(KEY), hash_api_key(OTHER)])
    assert repr(authorizer) == "ApiKeyAuthorizer(<2 key digests>)"


# --- the decision cache ------------------------------------------------------------------------


def test_a_decision_is_allowed_only_without_a_denial():
    assert ALLOWED.allowed and Decision().allowed
    assert not Decision("no").allowed and Decision("no").denied == "no"


def test_a_decision_expires_exactly_at_its_ttl():
    clock = Clock()
    cache = DecisionCache(ttl=5, size=2, clock=clock)
    key = cache.key(Credentials("Basic a"), "p")
    cache.put(key, ALLOWED)
    clock.now += 4.5
    assert cache.get(key) is ALLOWED
    clock.now += 0.5
    assert cache.get(key) is None
    assert len(cache) == 0


def test_a_ttl_under_a_second_still_caches():
    cache = DecisionCache(ttl=0.5, size=2, clock=Clock())
    key = cache.key(Credentials("Basic a"), "p")
    cache.put(key, ALLOWED)
    assert cache.get(key) is ALLOWED


def test_a_negative_ttl_caches_nothing():
    cache = DecisionCache(ttl=-1, size=2)
    key = cache.key(Credentials("Basic a"), "p")
    cache.put(key, ALLOWED)
    assert len(cache) == 0 and cache.get(key) is None


def test_the_cache_holds_exactly_its_size_and_a_put_refreshes_an_entry():
    clock = Clock()
    cache = DecisionCache(ttl=10, size=2, clock=clock)
    a, b, c = (cache.key(Credentials(f"Basic {n}"), "p") for n in "abc")
    cache.put(a, ALLOWED)
    cache.put(b, ALLOWED)
    assert len(cache) == 2
    clock.now += 5
    cache.put(a, Decision("later"))  # a is now the most recent, with a new expiry
    cache.put(c, ALLOWED)
    assert len(cache) == 2 and cache.get(b) is None
    clock.now += 9
    assert cache.get(a) == Decision("later")
    cache.clear()
    assert len(cache) == 0 and cache.get(c) is None


def test_cache_keys_keep_the_parts_apart():
    cache = DecisionCache(ttl=10, size=10)
    keys = [
        cache.key(Credentials(None, None), "p"),
        cache.key(Credentials("a", None), "p"),
        cache.key(Credentials(None, "a"), "p"),
        cache.key(Credentials("a", "b"), "p"),
        cache.key(Credentials("a\0b", None), "p"),
        cache.key(Credentials("\udcff", None), "p"),
        cache.key(Credentials("\udcfe", None), "p"),
    ]
    keys += [
        cache.key(Credentials("", None), "p"),  # an empty header is not an absent one
        cache.key(Credentials(None, ""), "p"),
        cache.key(Credentials(None, None), "q"),
    ]
    assert len(set(keys)) == len(keys)
