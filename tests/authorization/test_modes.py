"""Which `[auth] mode` applies, and what esproxy refuses to start with."""

from __future__ import annotations

import logging

import pytest

from esproxy.settings import SettingsError, load_settings
from esproxy.web.authorization import resolve_mode

DIGEST = "a" * 64


def settings(**environ):
    return load_settings(environ=environ)


@pytest.mark.parametrize(
    ("environ", "mode"),
    [
        ({"ESPROXY_UPSTREAM": "http://es:9200"}, "upstream"),
        ({"ESPROXY_AUTH_API_KEYS": DIGEST}, "api_keys"),
        ({"ESPROXY_DEV": "true"}, "none"),  # loopback, as without --dev
        (
            {"ESPROXY_DEV": "true", "ESPROXY_UPSTREAM": "http://es:9200",
             "ESPROXY_AUTH_MODE": "upstream"},
            "upstream",
        ),
        (
            {"ESPROXY_DEV": "true", "ESPROXY_UPSTREAM": "http://es:9200",
             "ESPROXY_STORAGE_BACKEND": "sqlite"},
            "upstream",
        ),
        ({}, "none"),  # the default listen address is loopback
        ({"ESPROXY_LISTEN": "[::1]:9200"}, "none"),
        ({"ESPROXY_LISTEN": "localhost:9200"}, "none"),
        ({"ESPROXY_LISTEN": "0.0.0.0:9200", "ESPROXY_AUTH_MODE": "none"}, "none"),
        (
            {"ESPROXY_UPSTREAM": "http://es:9200", "ESPROXY_AUTH_MODE": "api_keys",
             "ESPROXY_AUTH_API_KEYS": DIGEST},
            "api_keys",
        ),
    ],
)  # fmt: skip
def test_mode_and_its_defaults(environ, mode):
    assert resolve_mode(settings(**environ)) == mode


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        ({"ESPROXY_LISTEN": "0.0.0.0:9200"}, "with no cluster to check callers"),
        # --dev no longer opens a server listening off loopback
        ({"ESPROXY_DEV": "true", "ESPROXY_LISTEN": "0.0.0.0:9200"}, "with no cluster to check"),
        # nor decides who may use endpoints stored in a shared cluster
        (
            {"ESPROXY_DEV": "true", "ESPROXY_UPSTREAM": "http://es:9200"},
            "--dev with endpoints stored in the cluster needs \\[auth\\] mode set explicitly",
        ),
        ({"ESPROXY_AUTH_MODE": "upstream"}, "needs a cluster"),
        ({"ESPROXY_AUTH_MODE": "api_keys"}, "needs at least one digest"),
        ({"ESPROXY_UPSTREAM": "http://es:9200", "ESPROXY_AUTH_API_KEYS": DIGEST}, "only with"),
    ],
)
def test_unsafe_or_incomplete_choices_do_not_start(environ, problem):
    with pytest.raises(SettingsError, match=problem):
        resolve_mode(settings(**environ))


def test_an_unknown_mode_is_a_settings_error():
    with pytest.raises(SettingsError, match=r"auth\.mode"):
        settings(ESPROXY_AUTH_MODE="basic")


async def test_open_mode_warns_at_startup(start_proxy, settings_for, caplog):
    with caplog.at_level(logging.WARNING, logger="esproxy.web.authorization"):
        proxy = await start_proxy(settings_for(ESPROXY_AUTH_MODE="none"))
    assert "[auth] mode is none: esproxy's _inference API is OPEN" in caplog.text
    assert (await proxy.get("/_inference")).status == 200
