"""The embedded store's file edited behind esproxy's back: real SQLite, the proxy over HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from esproxy.errors import EndpointModified
from esproxy.sealed_records import open_record, seal_record
from esproxy.secret_cipher import SecretCipher, load_or_create_key_file, read_key_file_keys
from esproxy.storage.base import EndpointRecord
from esproxy.storage.sqlite import SqliteEndpointStore
from tests.test_secret_cipher import seal_legacy
from tests.user_examples import JSON_HEADERS, TITAN_COMPLETION

COMPLETION = "/_inference/completion/amazon_bedrock_completion"


def edit_row(db: Path, inference_id: str, edit) -> None:
    with sqlite3.connect(db) as connection:
        (config,) = connection.execute(
            "SELECT config FROM endpoints WHERE inference_id = ?", (inference_id,)
        ).fetchone()
        changed = edit(json.loads(config))
        connection.execute(
            "UPDATE endpoints SET config = ? WHERE inference_id = ?",
            (json.dumps(changed), inference_id),
        )


async def infer(proxy) -> Any:
    return await proxy.post(COMPLETION, data='{"input": "hello"}', headers=JSON_HEADERS)


async def ready_endpoints(proxy, key: str) -> dict[str, Any]:
    for _ in range(50):
        body = await (await proxy.get("/_esproxy/ready")).json()
        if key in body["checks"].get("endpoints", {}):
            return body
        await asyncio.sleep(0.1)
    return body


@pytest.mark.parametrize(
    "edit",
    [
        lambda c: {**c, "service_settings": {**c["service_settings"], "model": "anthropic.x"}},
        lambda c: {
            **c,
            "service_settings": {
                **c["service_settings"],
                "rate_limit": {"requests_per_minute": 100000},
            },
        },
        lambda c: {**c, "task_settings": {"max_new_tokens": 4096}},
        lambda c: {**c, "added_by_someone": True},
    ],
    ids=["model", "rate-limit", "task-settings", "new-field"],
)
async def test_a_config_edited_in_the_file_is_never_used(
    start_proxy, settings_for, tmp_path, emulator_calls, edit
):
    proxy = await start_proxy(settings_for(ESPROXY_STORAGE_CACHE_SECONDS="0"))
    created = await proxy.put(COMPLETION, data=json.dumps(TITAN_COMPLETION), headers=JSON_HEADERS)
    assert created.status == 200
    calls = len(await emulator_calls())

    edit_row(tmp_path / "data" / "endpoints.sqlite3", "amazon_bedrock_completion", edit)
    refused = await infer(proxy)

    assert refused.status == 500
    error = (await refused.json())["error"]
    assert error["type"] == "illegal_state_exception"
    assert "[amazon_bedrock_completion] was modified outside esproxy" in error["reason"]
    assert len(await emulator_calls()) == calls
    body = await ready_endpoints(proxy, "modified")
    assert list(body["checks"]["endpoints"]["modified"]) == ["amazon_bedrock_completion"]


async def test_a_legacy_record_is_refused_until_an_update_seals_it(
    start_proxy, settings_for, tmp_path
):
    proxy = await start_proxy(settings_for(ESPROXY_STORAGE_CACHE_SECONDS="0"))
    created = await proxy.put(COMPLETION, data=json.dumps(TITAN_COMPLETION), headers=JSON_HEADERS)
    assert created.status == 200
    data = tmp_path / "data"
    key = read_key_file_keys(data / "secrets.key")[0]
    legacy = seal_legacy(
        key,
        "amazon_bedrock_completion",
        {"access_key": "<aws_access_key>", "secret_key": "<aws_secret_key>"},
    )
    with sqlite3.connect(data / "endpoints.sqlite3") as connection:
        connection.execute("UPDATE endpoints SET sealed_secrets = ?", (legacy,))

    refused = await infer(proxy)

    assert refused.status == 500
    reason = (await refused.json())["error"]["reason"]
    assert "stored by an older esproxy that did not authenticate its config" in reason
    assert "esproxy rotate-secrets-key" in reason
    body = await ready_endpoints(proxy, "legacy")
    assert list(body["checks"]["endpoints"]["legacy"]) == ["amazon_bedrock_completion"]
    assert (await proxy.get("/_inference/amazon_bedrock_completion")).status == 200

    updated = await proxy.put(
        "/_inference/amazon_bedrock_completion/_update",
        data=json.dumps({"task_settings": {"max_new_tokens": 32}}),
        headers=JSON_HEADERS,
    )
    assert updated.status == 200, await updated.text()
    assert (await infer(proxy)).status == 200


async def test_an_endpoint_without_secrets_is_authenticated_too(tmp_path):
    store = SqliteEndpointStore(tmp_path / "endpoints.sqlite3")
    await store.open()
    try:
        cipher = SecretCipher(load_or_create_key_file(tmp_path / "secrets.key"))
        config = {"inference_id": "role-only", "task_type": "completion", "service": "x"}
        record = seal_record(cipher, EndpointRecord("role-only", config, {"role": "arn:a"}), {})
        await store.create(record)
        assert open_record(cipher, await store.get("role-only")) == {}

        for changed in (
            dataclasses.replace(record, internal={"role": "arn:attacker"}),
            dataclasses.replace(record, config={**config, "service": "y"}),
        ):
            await store.replace(changed)
            with pytest.raises(EndpointModified, match=r"\[role-only\] was modified"):
                open_record(cipher, await store.get("role-only"))
    finally:
        await store.close()
