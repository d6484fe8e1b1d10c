"""Fixtures for sidecar mode: esproxy instances in front of the real OpenSearch node."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from esproxy.secret_cipher import generate_key_text
from esproxy.settings import Settings


@pytest.fixture
def index_name() -> str:
    return f".esproxy-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def sidecar_settings(
    settings_for: Callable[..., Settings], opensearch_url: str, index_name: str
) -> Callable[..., Settings]:
    """Settings for one more esproxy instance sharing the node, the index and the key."""
    key = generate_key_text()

    def build(upstream: str | None = None, **environ: str) -> Settings:
        defaults = {
            "ESPROXY_UPSTREAM": upstream or opensearch_url,
            "ESPROXY_SECRETS_KEY": key,
            "ESPROXY_STORAGE_INDEX": index_name,
            "ESPROXY_STORAGE_CACHE_SECONDS": "0.5",
            # The test node has no security plugin: esproxy opens `_inference` on it only when
            # told to (tests/authorization/test_opensearch.py shows the 503 otherwise).
            "ESPROXY_AUTH_ALLOW_UNSECURED_CLUSTER": "true",
        }
        return settings_for(**{**defaults, **environ})

    return build


@pytest.fixture
async def sidecar(start_proxy: Callable[..., Any], sidecar_settings: Callable[..., Settings]):
    return await start_proxy(sidecar_settings())
