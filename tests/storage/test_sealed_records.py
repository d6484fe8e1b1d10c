"""Sealed endpoint records: every stored field is authenticated, and old seals keep opening.

Unit tests of esproxy/sealed_records.py, fast enough for `scripts/mutate secrets`.
"""

from __future__ import annotations

import dataclasses

import pytest

from esproxy.errors import ConfigNotAuthenticated, EndpointModified, SecretsUnreadable
from esproxy.sealed_records import canonical_encoding, open_any_record, open_record, seal_record
from esproxy.secret_cipher import SecretCipher, parse_key
from esproxy.storage.base import EndpointRecord
from tests.test_secret_cipher import seal_legacy

SECRETS = {"access_key": "AKIDEXAMPLE", "secret_key": "s3cret"}
# A fixed key, and a record sealed with it by esproxy: stores written before keep opening.
KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
RECORD = EndpointRecord(
    "my-endpoint",
    {
        "task_type": "completion",
        "service": "amazonbedrock",
        "service_settings": {"model": "m", "région": "é"},
    },
    {"chunking": None, "n": [1, 2.5]},
)
SEALED = (
    "v2.5bcab273dc3dbc0d.2FgDrPwDJvIwpBpAVIrBgAuC-S7WZHIrb8EbZqp4CIs7YW2m8zxgqjlfFNtnSeMFIEchKoyS"
    "QqxhGmyBjc8gStsD_5OsZ77nucFDtJJj"
)


def cipher() -> SecretCipher:
    return SecretCipher(parse_key(KEY))


def test_a_record_sealed_by_an_earlier_esproxy_still_opens() -> None:
    stored = dataclasses.replace(RECORD, sealed_secrets=SEALED)
    assert open_record(cipher(), stored) == SECRETS
    assert open_any_record(cipher(), stored) == SECRETS


def test_a_record_opens_whatever_key_order_its_store_returns() -> None:
    stored = EndpointRecord(
        "my-endpoint",
        {
            "service_settings": {"région": "é", "model": "m"},
            "service": "amazonbedrock",
            "task_type": "completion",
        },
        {"n": [1, 2.5], "chunking": None},
        SEALED,
    )
    assert open_record(cipher(), stored) == SECRETS


def test_the_canonical_encoding_is_sorted_compact_utf8_without_the_seal() -> None:
    stored = dataclasses.replace(RECORD, sealed_secrets=SEALED)
    expected = (
        '{"config":{"service":"amazonbedrock","service_settings":{"model":"m","région":"é"},'
        '"task_type":"completion"},"inference_id":"my-endpoint",'
        '"internal":{"chunking":null,"n":[1,2.5]}}'
    )
    assert canonical_encoding(stored) == expected.encode()


@pytest.mark.parametrize(
    "change",
    [
        {"inference_id": "other-endpoint"},
        {"config": {**RECORD.config, "service_settings": {"model": "expensive", "région": "é"}}},
        {"config": {**RECORD.config, "task_type": "text_embedding"}},
        {"config": {**RECORD.config, "rate_limit": {"requests_per_minute": 1}}},
        {"internal": {"chunking": None, "n": [1, 2.5], "more": True}},
        {"internal": {}},
    ],
)
def test_a_record_changed_outside_esproxy_is_refused_naming_it(change: dict[str, object]) -> None:
    for sealed in (SEALED, seal_record(cipher(), RECORD, SECRETS).sealed_secrets):
        changed = dataclasses.replace(RECORD, sealed_secrets=sealed, **change)  # type: ignore[arg-type]
        for opening in (open_record, open_any_record):
            with pytest.raises(EndpointModified) as raised:
                opening(cipher(), changed)
            assert raised.value.reason.startswith(
                f"Inference endpoint [{changed.inference_id}] was modified outside esproxy"
            )


def test_a_record_without_secrets_is_authenticated_too() -> None:
    sealed = seal_record(cipher(), RECORD, {})
    assert sealed.sealed_secrets.startswith("v2.5bcab273dc3dbc0d.")
    assert dataclasses.replace(sealed, sealed_secrets="") == RECORD
    assert open_record(cipher(), sealed) == {}
    with pytest.raises(EndpointModified):
        open_record(cipher(), dataclasses.replace(sealed, config={**RECORD.config, "x": 1}))
    with pytest.raises(SecretsUnreadable):
        open_record(cipher(), RECORD)  # never sealed at all


def test_a_legacy_record_opens_only_for_migration() -> None:
    key = parse_key(KEY)
    legacy = dataclasses.replace(RECORD, sealed_secrets=seal_legacy(key, "my-endpoint", SECRETS))
    assert open_any_record(cipher(), legacy) == SECRETS
    with pytest.raises(ConfigNotAuthenticated):
        open_record(cipher(), legacy)
    moved = dataclasses.replace(legacy, inference_id="elsewhere")
    with pytest.raises(EndpointModified):
        open_any_record(cipher(), moved)
