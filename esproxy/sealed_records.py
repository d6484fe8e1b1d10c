"""Sealing a whole endpoint record: its secrets encrypted, everything else authenticated with them.

The canonical encoding covers every field of `EndpointRecord` except the sealed value itself, so a
field added to the record later is authenticated without a change here.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping

from esproxy.secret_cipher import SecretCipher
from esproxy.storage.base import EndpointRecord

SEALED_FIELD = "sealed_secrets"


def canonical_encoding(record: EndpointRecord) -> bytes:
    """Sorted keys, no spaces, UTF-8: the same bytes for the same JSON data, whichever store kept
    it and in whatever key order it came back."""
    fields = {
        field.name: getattr(record, field.name)
        for field in dataclasses.fields(record)
        if field.name != SEALED_FIELD
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def seal_record(
    cipher: SecretCipher, record: EndpointRecord, secrets: Mapping[str, str]
) -> EndpointRecord:
    """`record` with its secrets sealed; one without secrets is sealed (authenticated) too."""
    sealed = cipher.seal(record.inference_id, secrets, canonical_encoding(record))
    return dataclasses.replace(record, sealed_secrets=sealed)


def open_record(cipher: SecretCipher, record: EndpointRecord) -> dict[str, str]:
    """The record's secrets, only if the record is exactly as esproxy sealed it."""
    return cipher.open(record.inference_id, record.sealed_secrets, canonical_encoding(record))


def open_any_record(cipher: SecretCipher, record: EndpointRecord) -> dict[str, str]:
    """As `open_record`, but a legacy (v1) record opens too: for rotation and updates, which
    re-seal it and so authenticate its config from then on."""
    if record.sealed_secrets.startswith("v1."):
        return cipher.open_legacy(record.inference_id, record.sealed_secrets)
    return open_record(cipher, record)
