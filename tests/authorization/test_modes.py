"""Which `[auth] mode` applies, and what esproxy refuses to start with."""

from __future__ import annotations

import logging
import subprocess
import sys

import aiohttp
import pytest
from yarl import URL

from esproxy.app_keys import BEDROCK_ENDPOINT_URL
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


async def test_dev_mode_keeps_the_emulator_and_its_request_log_on_loopback(start_proxy, tmp_path):
    settings = load_settings(environ={"ESPROXY_DATA_DIR": str(tmp_path), "ESPROXY_DEV": "true"})
    proxy = await start_proxy(settings)
    emulator = URL(proxy.server.app[BEDROCK_ENDPOINT_URL])
    assert emulator.host == "127.0.0.1"
    async with (
        aiohttp.ClientSession() as session,
        session.get(emulator / "_emulator" / "requests") as response,
    ):
        assert response.status == 200  # reachable from this machine only
    # esproxy's own port never serves the emulator's control API.
    assert (await proxy.get("/_emulator/requests")).status == 400


def test_dev_mode_off_loopback_does_not_start_open(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "esproxy", "serve", "--dev", "--listen", "0.0.0.0:0",
         "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "with no cluster to check callers" in result.stderr.strip().splitlines()[-1]
