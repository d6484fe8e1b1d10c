"""Key rotation against the real stores: a rotation racing an update, legacy records, tampering."""

from __future__ import annotations

import dataclasses

import pytest

from esproxy.key_rotation import RotationReport, rotate_one, rotate_secrets
from esproxy.sealed_records import open_record, seal_record
from esproxy.secret_cipher import SecretCipher, generate_key_text, parse_key
from esproxy.storage.base import EndpointRecord
from tests.storage.test_endpoint_store import elasticsearch_store, sqlite_store
from tests.test_secret_cipher import seal_legacy

REVOKED = {"access_key": "AKIDREVOKED", "secret_key": "revoked"}
CURRENT = {"access_key": "AKIDCURRENT", "secret_key": "current"}
CONFIG = {"inference_id": "e", "task_type": "completion", "service": "amazonbedrock"}

pytestmark = pytest.mark.parametrize(
    "factory", [sqlite_store, elasticsearch_store], ids=["sqlite", "elasticsearch"]
)


def new_key():
    return parse_key(generate_key_text())


async def test_a_rotation_racing_an_update_never_restores_revoked_keys(request, factory):
    old, new = new_key(), new_key()
    serving, rotating = SecretCipher(old), SecretCipher(new, [old])
    bare = EndpointRecord("e", CONFIG, {})
    async with factory(request) as store:
        await store.create(seal_record(serving, bare, REVOKED))
        (read_by_rotation,) = await store.list()
        # Meanwhile an instance that does not know the new key yet updates the endpoint's keys.
        await store.replace(seal_record(serving, bare, CURRENT), expected=read_by_rotation)

        report = RotationReport()
        await rotate_one(store, rotating, read_by_rotation, report)

        stored = await store.get("e")
        assert open_record(rotating, stored) == CURRENT
        assert not rotating.needs_reseal(stored.sealed_secrets)
        assert report.resealed == ["e"]


async def test_rotation_seals_legacy_records_and_never_blesses_tampered_ones(request, factory):
    key = new_key()
    cipher = SecretCipher(key)
    async with factory(request) as store:
        legacy = EndpointRecord("legacy", {**CONFIG, "inference_id": "legacy"}, {})
        await store.create(
            dataclasses.replace(legacy, sealed_secrets=seal_legacy(key, "legacy", CURRENT))
        )
        intact = seal_record(cipher, EndpointRecord("intact", CONFIG, {}), CURRENT)
        await store.create(intact)
        tampered = seal_record(cipher, EndpointRecord("tampered", CONFIG, {}), CURRENT)
        await store.create(dataclasses.replace(tampered, config={**CONFIG, "model": "other"}))

        report = await rotate_secrets(store, cipher)

        assert report.resealed == ["legacy"]
        assert report.current == ["intact"]
        assert list(report.unreadable) == ["tampered"]
        assert "modified outside esproxy" in report.unreadable["tampered"]
        assert open_record(cipher, await store.get("legacy")) == CURRENT
