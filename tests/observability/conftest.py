"""Fixtures for observability: esproxy in front of the real OpenSearch node, with a JSON access log
in a file, and helpers that read the scrape with prometheus-client's own parser."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from esproxy.secret_cipher import generate_key_text
from esproxy.settings import Settings


@pytest.fixture
def access_log_path(tmp_path: Path) -> Path:
    return tmp_path / "access.log"


@pytest.fixture
def observed_settings(
    settings_for: Callable[..., Settings], opensearch_url: str, access_log_path: Path
) -> Callable[..., Settings]:
    def build(**environ: str) -> Settings:
        values = {
            "ESPROXY_UPSTREAM": opensearch_url,
            "ESPROXY_SECRETS_KEY": generate_key_text(),
            "ESPROXY_STORAGE_BACKEND": "sqlite",
            "ESPROXY_LOG_FORMAT": "json",
            "ESPROXY_LOG_ACCESS_FILE": str(access_log_path),
            "ESPROXY_BEDROCK_MAX_RETRIES": "1",
            # The test node has no security plugin: _inference is open only when told so.
            "ESPROXY_AUTH_ALLOW_UNSECURED_CLUSTER": "true",
            **environ,
        }
        return settings_for(**values)

    return build


@pytest.fixture
async def observed(
    start_proxy: Callable[..., Any], observed_settings: Callable[..., Settings]
) -> TestClient:
    client: TestClient = await start_proxy(observed_settings())
    return client


LOG_WAIT_SECONDS = 5.0

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: TestClient, path: str = "/_esproxy/metrics") -> Samples:
    """Every sample of the scrape, by name and labels, parsed by prometheus-client."""
    response = await client.get(path)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(await response.text())


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def matching(samples: Samples, name: str, **labels: str) -> dict[frozenset[tuple[str, str]], float]:
    """The samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return {key: v for (n, key), v in samples.items() if n == name and wanted <= key}


async def log_lines(path: Path, count: int) -> list[dict[str, Any]]:
    """The access log's lines once it holds at least `count` (it is written in batches)."""
    async with asyncio.timeout(LOG_WAIT_SECONDS):
        while True:
            lines = (await asyncio.to_thread(read_text, path)).splitlines()
            if len(lines) >= count:
                return [json.loads(line) for line in lines]
            await asyncio.sleep(0.02)


def read_text(path: Path) -> str:
    return path.read_text() if path.exists() else ""
